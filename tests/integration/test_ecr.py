"""The ECR control plane against a real moto server of this module's own (not the stack's) and a registry.

Repositories are made in each environment's account through its role, idempotently, with the tag rule of
`plan.tags`, scan on push, KMS and the lifecycle policy from settings; drift is repaired; the rolling tags a
registry holds are protected. moto stores these settings but does not enforce them on images: the gate's
tests prove the enforcement.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moka_images.adapters import ecr, run
from moka_images.adapters.registry import RegistryClient
from moka_images.config.settings import Settings
from moka_images.devstack.services import Daemon, is_ready
from moka_images.models import Environment
from moka_images.plan import lifecycle
from moka_images.plan.graph import BuildTag
from moka_images.plan.tags import IMMUTABLE_FILTERS, MUTABILITY
from moka_images.stages import repositories

pytestmark = pytest.mark.integration

TEST, DEV = Environment.TEST, Environment.DEV
RUN = uuid.uuid4().hex[:8]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(argv: list[str], log: Path, ready: str) -> int:
    pid = run.spawn(argv, log)
    deadline = time.monotonic() + 30
    while not is_ready(Daemon("probe", [], ready_url=ready)):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"{argv[0]} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return pid


@pytest.fixture(scope="module")
def esettings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The local profile pointed at a moto server and a (test-environment) registry of this module's own."""
    tmp = tmp_path_factory.mktemp("ecr")
    moto_port, reg_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    config = tmp / "registry.yml"
    config.write_text(f"version: 0.1\nlog: {{level: warn}}\nhttp: {{addr: 127.0.0.1:{reg_port}}}\n"
                      f"storage: {{filesystem: {{rootdirectory: {tmp}/data}}}}\n")
    pids = [start(["moto_server", "-H", "127.0.0.1", "-p", str(moto_port)], tmp / "moto.log",
                  f"{endpoint}/moto-api/"),
            start(["docker-registry", "serve", str(config)], tmp / "registry.log",
                  f"http://127.0.0.1:{reg_port}/v2/")]
    envs = dict(settings.environments)
    envs[TEST] = envs[TEST].model_copy(update={"registry": f"127.0.0.1:{reg_port}"})
    yield settings.model_copy(update={"ecr": settings.ecr.model_copy(update={"endpoint": endpoint}),
                                      "environments": envs})
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


def repo(name: str) -> str:
    return f"scratch-ecr/{name}-{RUN}"


def test_a_repository_is_made_once_in_its_own_account_as_configured(esettings: Settings) -> None:
    name = repo("made")
    assert repositories.describe(esettings, TEST, name) is None

    assert repositories.ensure_repository(esettings, TEST, name) == ["created", "lifecycle policy"]
    assert repositories.ensure_repository(esettings, TEST, name) == []

    state = repositories.describe(esettings, TEST, name)
    assert state is not None
    assert (state.mutability, state.exclusions) == (MUTABILITY, IMMUTABLE_FILTERS)
    assert state.scan_on_push and state.encryption == "KMS" and state.kms_key
    assert state.uri.startswith(f"{esettings.env(TEST).account}.dkr.ecr.")
    assert state.lifecycle == repositories.desired_policy(esettings, ())
    assert repositories.describe(esettings, DEV, name) is None  # another account does not see it


def test_drift_is_repaired(esettings: Settings) -> None:
    name = repo("drift")
    repositories.ensure_repository(esettings, TEST, name)
    cfg = esettings.env(TEST)
    client = ecr.client(repositories.aws_access(esettings, TEST), "ecr")
    client.put_image_tag_mutability(registryId=cfg.account, repositoryName=name, imageTagMutability="MUTABLE")
    client.put_image_scanning_configuration(registryId=cfg.account, repositoryName=name,
                                            imageScanningConfiguration={"scanOnPush": False})
    client.delete_lifecycle_policy(registryId=cfg.account, repositoryName=name)

    changes = repositories.ensure_repository(esettings, TEST, name)

    assert [c.split(" ")[0] for c in changes] == ["tag", "scan", "lifecycle"]
    state = repositories.describe(esettings, TEST, name)
    assert state is not None and state.mutability == MUTABILITY
    assert state.scan_on_push and state.lifecycle_present


def test_a_configured_kms_key_is_used(esettings: Settings) -> None:
    key = f"arn:aws:kms:{esettings.ecr.region}:{esettings.env(TEST).account}:key/{uuid.uuid4()}"
    keyed = esettings.model_copy(update={"ecr": esettings.ecr.model_copy(update={"kms_key": key})})
    repositories.ensure_repository(keyed, TEST, repo("kms"))
    state = repositories.describe(keyed, TEST, repo("kms"))
    assert state is not None and (state.encryption, state.kms_key) == ("KMS", key)


def test_rolling_prerelease_tags_the_registry_holds_are_protected(esettings: Settings) -> None:
    name = repo("protect")
    client = RegistryClient(esettings.env(TEST).registry)
    config = client.push_blob(name, b"{}")
    tags = [str(BuildTag("1.3.0-rc.1", "a" * 10, "b" * 10)), "1.3.0-rc.1", "1.2.0", "latest"]
    for n, tag in enumerate(tags):
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"n": str(n)}, "layers": [],
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(config),
                          "size": 2}}
        client.put_manifest(name, tag, json.dumps(doc).encode(), OCI_MANIFEST)

    repositories.ensure_repository(esettings, TEST, name)

    state = repositories.describe(esettings, TEST, name)
    assert state is not None and state.lifecycle is not None
    keep = [r["selection"]["tagPatternList"] for r in state.lifecycle["rules"]
            if r["selection"].get("countNumber") == lifecycle.NEVER]
    assert keep == [["1.3.0-rc.1"]]


def test_tokens_from_moto_never_count_as_expiring_and_real_ones_refresh_in_time(esettings: Settings) -> None:
    creds = ecr.registry_credentials(repositories.aws_access(esettings, TEST), esettings.env(TEST).account)
    assert creds.username == "AWS" and creds.password and creds.expires_at is None  # moto says 2015-01-01
    assert not creds.expiring()
    now = datetime.now(UTC)
    real = ecr.RegistryCredentials("AWS", "t", now + timedelta(hours=12))
    assert not real.expiring(now)
    assert real.expiring(now + timedelta(hours=11, minutes=56))
