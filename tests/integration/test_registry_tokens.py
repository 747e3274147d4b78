"""Registry tokens kept on disk between runs, against the real stack: a kept token the registry refuses (revoked,
or from a stack set up anew) is replaced, for our own client and before any tool is given it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moka_images.adapters import ecr, run
from moka_images.adapters.token_cache import TokenCache
from moka_images.config.settings import Settings
from moka_images.models import Environment
from moka_images.stages import registries, repositories
from moka_images.stages.build import BuiltImage

pytestmark = pytest.mark.integration

TEST = Environment.TEST


def test_a_refused_kept_token_is_replaced_on_disk_and_for_the_tools(
        built: dict[str, BuiltImage], stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = stack.model_copy(update={"home": tmp_path / "home"})  # this test's own token cache
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    for kept in ("_tokens", "_clients", "_token_caches"):  # a new process
        monkeypatch.setattr(registries, kept, {})
    key = registries._token_key(own, TEST)
    registries._token_cache(own).put(key, ecr.RegistryCredentials("AWS", "revoked-token", None))
    real = ecr.registry_credentials(repositories.aws_access(own, TEST), own.env(TEST).account)

    repository = own.repository("spark-3.5")
    assert built["spark-3.5"].tag in registries.client(own, TEST).list_tags(repository)  # 401, renewed
    assert TokenCache(own.home / "cache" / "registry-tokens").get(key) == real  # and kept for the next run

    registries.login_tools(own, TEST)
    auths = json.loads((tmp_path / "docker" / "config.json").read_text())["auths"]
    assert "revoked-token" not in json.dumps(auths)
    listed = run.call(["skopeo", "list-tags", "--tls-verify=false", "--authfile", str(tmp_path / "docker" /
                                                                                       "config.json"),
                       f"docker://{own.env(TEST).registry}/{repository}"], quiet=True)
    assert built["spark-3.5"].tag in json.loads(listed.stdout)["Tags"]
