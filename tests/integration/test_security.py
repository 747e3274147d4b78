"""Security on the real local stack: each environment's registry takes only its own account's ECR token; the CI
identity promotes to dev (and staging) but never to prod without a named approver, nor around a stage; no
registry token or signing-key password reaches the logs, on success or failure; a secret in an image's
layers blocks its promotion.

That trivy finds a planted secret and the scan verdict blocks it is proved in test_scan.py
(`test_a_planted_secret_is_found_and_blocks`); here the same kind of secret rides in a pushed image and the
promotion gate refuses it. Images are pushed straight through the registry API under `scratch-security/`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import uuid

import pytest
import requests
from promote_support import OCI_INDEX, Pushed, push_image, ready_in_test, snapshot, suite_settings

from moka_images.adapters import cosign
from moka_images.adapters.registry import RegistryClient, digest_of
from moka_images.config.settings import Settings
from moka_images.devstack import stack
from moka_images.errors import GateFailed, ServiceError
from moka_images.models import Environment
from moka_images.stages import history, keys, registries

pytestmark = pytest.mark.integration

TEST, DEV, STAGING, PROD = Environment.TEST, Environment.DEV, Environment.STAGING, Environment.PROD
PREFIX = "scratch-security"
RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def ssettings(stack: Settings) -> Settings:
    """The local profile with this suite's own repository prefix, and every environment's keys."""
    return suite_settings(stack, PREFIX)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A real `moka-images` process with JSON logs, acting as whoever `env` says."""
    base = {k: v for k, v in os.environ.items() if k not in ("MOKA_ACTOR", "GITHUB_ACTOR", "GITHUB_RUN_ID")}
    return subprocess.run([sys.executable, "-m", "moka_images.cli", "--log-format", "json", *args],
                          env={**base, "MOKA_REPOSITORY_PREFIX": PREFIX, **(env or {})}, capture_output=True,
                          text=True, timeout=900, check=False)


def pushed(settings: Settings, name: str, **kw: object) -> Pushed:
    return push_image(registries.client(settings, TEST), settings.repository(name), "1.0.0", seed=f"{name}-{RUN}",
                      **kw)  # type: ignore[arg-type]


# ---- credentials ---------------------------------------------------------------------------------------------


def test_each_registry_takes_only_its_own_account_s_token(ssettings: Settings) -> None:
    tokens = {e: registries.credentials(ssettings, e) for e in Environment}
    assert len({t.password for t in tokens.values()}) == len(tokens), "two environments share a token"
    session = requests.Session()
    session.trust_env = False
    for owner, creds in tokens.items():
        for env in Environment:
            for address in (ssettings.env(env).registry, stack.backend_address(ssettings.env(env).registry)):
                got = session.get(f"http://{address}/v2/", auth=(creds.username, creds.password), timeout=10)
                assert got.status_code == (200 if env is owner else 401), (owner, env, address, got.status_code)


def test_a_developer_s_test_token_cannot_write_to_prod(ssettings: Settings) -> None:
    """The token a developer gets for test pushes to test (the control) and is refused by prod, gate or no
    gate, for every write; afterwards prod holds nothing of it."""
    creds = registries.credentials(ssettings, TEST)
    repo = ssettings.repository(f"dev-write-{RUN}")
    image = push_image(RegistryClient(ssettings.env(TEST).registry, creds.username, creds.password), repo, "1.0.0",
                       seed=f"dev-write-{RUN}")
    index = registries.client(ssettings, TEST).get_manifest(repo, str(image.digest))
    prod_address = ssettings.env(PROD).registry
    intruder = RegistryClient(prod_address, creds.username, creds.password, retries=0)
    blob = f"not for prod {RUN}".encode()

    with pytest.raises(ServiceError, match="not authorized"):
        intruder.push_blob(repo, blob)
    with pytest.raises(ServiceError, match="not authorized"):
        intruder.put_manifest(repo, "latest", index.raw, OCI_INDEX)
    with pytest.raises(ServiceError, match="not authorized"):
        intruder.list_tags(repo)
    session = requests.Session()
    session.trust_env = False
    for address in (prod_address, stack.backend_address(prod_address)):
        for method, path, body in [("POST", f"/v2/{repo}/blobs/uploads/", None),
                                   ("PUT", f"/v2/{repo}/manifests/{image.build}", index.raw),
                                   ("PUT", f"/v2/{repo}/manifests/{image.digest}", index.raw),
                                   ("DELETE", f"/v2/{repo}/manifests/{image.digest}", None),
                                   ("GET", "/v2/_catalog", None)]:
            got = session.request(method, f"http://{address}{path}", data=body, timeout=10,
                                  auth=(creds.username, creds.password), headers={"Content-Type": OCI_INDEX})
            assert got.status_code == 401, (address, method, path, got.status_code, got.text[:200])

    prod = registries.client(ssettings, PROD)
    assert prod.list_tags(repo) == [] and repo not in prod.catalog()
    assert not prod.blob_exists(repo, digest_of(blob))
    assert prod.head_manifest(repo, str(image.digest)) is None


# ---- promotion rights -------------------------------------------------------------------------------------


def test_the_ci_identity_promotes_to_dev_but_not_to_prod_without_approval(ssettings: Settings) -> None:
    name = f"ci-{RUN}"
    image = pushed(ssettings, name)
    ready_in_test(ssettings, image)
    ci = {"GITHUB_ACTOR": "moka-ci-bot", "GITHUB_RUN_ID": "4242"}
    for env in ("dev", "staging"):
        done = cli("promote", f"{name}:1.0.0", "--to", env, "--confirm", "--json", env=ci)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["outcome"] == "copy"
    mine = [r for r in history.read(ssettings) if r.get("repository") == image.repository]
    assert [(r["to"], r["by"], r["approved_by"]) for r in mine] == [
        ("dev", "github:moka-ci-bot (run 4242)", None), ("staging", "github:moka-ci-bot (run 4242)", None)]
    assert registries.client(ssettings, DEV).head_manifest(image.repository, str(image.build)) == image.digest

    prod = registries.client(ssettings, PROD)
    before = snapshot(prod, image.repository)
    attempts = {
        "no approver": (["--to", "prod"], "approval: prod needs a named approver"),
        "blank approver": (["--to", "prod", "--approved-by", "  "], "approval: prod needs a named approver"),
        "around staging": (["--from", "dev", "--to", "prod", "--approved-by", "moka-ci-bot"],
                           "stage: prod takes images from staging, not from dev"),
        "straight from test": (["--from", "test", "--to", "prod", "--approved-by", "moka-ci-bot"],
                               "stage: prod takes images from staging, not from test"),
    }
    for label, (args, reason) in attempts.items():
        done = cli("promote", f"{name}:1.0.0", *args, "--confirm", env=ci)
        assert done.returncode == GateFailed.exit_code, (label, done.stdout + done.stderr)
        assert reason in done.stdout + done.stderr, (label, done.stderr)
        assert "nothing was changed in prod" in done.stderr, label
        assert snapshot(prod, image.repository) == before, f"{label}: a refused promotion changed prod"
    assert before == {}
    assert [r["to"] for r in history.read(ssettings) if r.get("repository") == image.repository] == ["dev", "staging"]


# ---- secrets ------------------------------------------------------------------------------------------------


def _secrets(settings: Settings) -> dict[str, str]:
    """Every registry token (plain and as the Basic/docker-config form) and every local key password."""
    found = {}
    for env in Environment:
        creds = registries.credentials(settings, env)
        found[f"{env} token"] = creds.password
        found[f"{env} basic auth"] = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        key = settings.env(env).signing_key
        if not cosign.is_kms(key):
            found[f"{env} key password"] = keys.password(env, key)
    assert all(len(v) >= 16 for v in found.values()), "a secret too short to search for"
    return found


def _assert_clean(done: subprocess.CompletedProcess[str], known: dict[str, str]) -> None:
    output = done.stdout + done.stderr
    leaked = [label for label, value in known.items() if value in output]
    assert not leaked, f"secrets in the output: {leaked}"
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert logged, "no JSON log lines"
    assert not any("Authorization" in json.dumps(line) for line in logged)


def test_no_token_or_key_password_reaches_the_logs(ssettings: Settings) -> None:
    """A promotion (registry reads and writes with tokens, cosign signing and attesting with key passwords) and
    a failing sign (cosign's error output passed on) with JSON logs: no secret in anything printed."""
    known = _secrets(ssettings)
    name = f"logs-{RUN}"
    image = pushed(ssettings, name)
    ready_in_test(ssettings, image)

    done = cli("promote", f"{name}:1.0.0", "--to", "dev", "--confirm", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    _assert_clean(done, known)

    wrong = "wrong-" + secrets.token_urlsafe(18)
    failed = cli("sign", f"{name}@{image.digest}", "--env", "staging",
                 env={keys.password_variable(STAGING): wrong, "MOKA_REPOSITORY_PREFIX": PREFIX})
    assert failed.returncode != 0, failed.stdout + failed.stderr
    _assert_clean(failed, {**known, "the wrong password": wrong})


def _planted() -> bytes:
    # Made at run time, like test_scan.py's, so that the repository holds nothing that looks like a key.
    seed = hashlib.sha256(f"moka-images security {RUN}".encode()).digest()
    key_id = "AKIA" + base64.b32encode(seed).decode()[:16]
    secret = base64.b64encode(hashlib.sha256(seed).digest() + seed).decode().replace("+", "x")[:40]
    return f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n".encode()


def test_a_secret_in_the_layers_blocks_promotion(ssettings: Settings) -> None:
    name = f"leaky-{RUN}"
    image = pushed(ssettings, name, extra={"opt/app/conf/credentials": _planted()})
    ready_in_test(ssettings, image)
    dev = registries.client(ssettings, DEV)
    before = snapshot(dev, image.repository)

    done = cli("promote", f"{name}:1.0.0", "--to", "dev", "--confirm")

    assert done.returncode == GateFailed.exit_code, done.stdout + done.stderr
    assert "scan: blocked by dev policy" in done.stderr and "/opt/app/conf/credentials" in done.stderr, done.stderr
    assert snapshot(dev, image.repository) == before == {}
