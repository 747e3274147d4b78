"""Key passwords and references, options for cosign, and IMAGE[:VERSION] parsing. Pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from moka_images.config.settings import Settings, load_settings
from moka_images.errors import ConfigError
from moka_images.models import Digest, Environment
from moka_images.stages import keys
from moka_images.stages.images import parse_spec

ROOT = Path(__file__).resolve().parents[3]
PEM = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyMbdCgrNywHyYBJnj9Ur0X2GpROk
aW4zFMMN0AMjVZx6IfalFZOu4IWRTKtasfLTV+KU/v6K18+o8xMid2SCdw==
-----END PUBLIC KEY-----
"""


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.setenv("MOKA_HOME", str(tmp_path))
    for env in Environment:
        monkeypatch.delenv(keys.password_variable(env), raising=False)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    return load_settings(ROOT, "local")


def test_password_comes_from_variable_then_file_then_cosign_password(local: Settings, monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    key = local.env(Environment.DEV).signing_key
    with pytest.raises(ConfigError, match="no password for dev's signing key"):
        keys.password(Environment.DEV, key)
    monkeypatch.setenv("COSIGN_PASSWORD", "generic")
    assert keys.password(Environment.DEV, key) == "generic"
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "dev.password").write_text("from-file\n")
    assert keys.password_file(key) == tmp_path / "keys" / "dev.password"
    assert keys.password(Environment.DEV, key) == "from-file"
    monkeypatch.setenv("MOKA_COSIGN_PASSWORD_DEV", "from-ci")
    assert keys.password(Environment.DEV, key) == "from-ci"


def test_options_for_loopback_signing_and_verifying(local: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOKA_COSIGN_PASSWORD_TEST", "pw")
    signing = keys.options(local, Environment.TEST, signing=True)
    assert signing.plain_http and signing.env == {"COSIGN_PASSWORD": "pw"}
    assert keys.options(local, Environment.PROD).env == {}


def test_ensure_keys_leaves_kms_keys_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOKA_HOME", str(tmp_path))
    assert keys.ensure_keys(load_settings(ROOT, "production")) == []


def test_ensure_keys_leaves_a_verify_only_setup_alone(local: Settings) -> None:
    for env in Environment:
        pub = Path(local.env(env).public_key)
        pub.parent.mkdir(parents=True, exist_ok=True)
        pub.write_text(PEM)
    assert keys.ensure_keys(local) == []


def test_fingerprint_is_of_the_der_bytes() -> None:
    assert keys.fingerprint(PEM) == keys.fingerprint("\n" + PEM.replace("\n", "\n\n"))
    assert keys.fingerprint(PEM).startswith("sha256:") and len(keys.fingerprint(PEM)) == 23


@pytest.mark.parametrize("spec, expected", [
    ("spark-3.5", ("spark-3.5", "latest", None)),
    ("spark-3.5:1.2.0", ("spark-3.5", "1.2.0", None)),
    ("data-eng/etl-jobs", ("data-eng/etl-jobs", "latest", None)),
    ("data-eng/etl-jobs:2.0.0-rc.1", ("data-eng/etl-jobs", "2.0.0-rc.1", None)),
    ("spark-3.5@sha256:" + "a" * 64, ("spark-3.5", None, Digest("sha256:" + "a" * 64))),
])
def test_parse_spec(spec: str, expected: tuple) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("Spark", "not an image name"),
    ("spark@sha256:abc", "not a digest"),
    ("spark:", "not a valid tag"),
    ("spark:+bad", "not a valid tag"),
])
def test_parse_spec_refuses(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_spec(spec)
