"""ECR's BLOB_MOUNTING account setting: the calls' shapes (botocore's Stubber, no network), and the stage that turns
it on once per account per run and never fails a promotion over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from moka_images.adapters import ecr
from moka_images.config.settings import Settings, load_settings
from moka_images.devstack import doctor
from moka_images.errors import ServiceError
from moka_images.models import Environment
from moka_images.stages import repositories

ROOT = Path(__file__).resolve().parents[3]
LOCAL = ecr.AwsAccess("us-east-1", "http://127.0.0.1:15080")
AWS = ecr.AwsAccess("eu-west-1")
SETTING = {"name": "BLOB_MOUNTING"}


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """Every ECR client the code makes is this stubbed one; each test queues the answers it expects."""
    client = boto3.client("ecr", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    asked: list[int] = []

    def make(access: ecr.AwsAccess, service: str, *, attempts: int = 5) -> Any:
        asked.append(attempts)
        return client

    monkeypatch.setattr(ecr, "client", make)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()
    assert set(asked) <= {1}  # a setting is not worth backoffs against an endpoint that answers 500


def _moto_500(stub: Stubber, method: str) -> None:
    """What moto 5.2's server answers for an action it does not implement: werkzeug's HTML 500."""
    stub.add_client_error(method, service_error_code="", service_message="Internal Server Error",
                          http_status_code=500)


def test_get_and_put_send_the_setting_by_name(stub: Stubber) -> None:
    stub.add_response("get_account_setting", {"name": "BLOB_MOUNTING", "value": "DISABLED"}, SETTING)
    stub.add_response("put_account_setting", {"name": "BLOB_MOUNTING", "value": "ENABLED"},
                      {**SETTING, "value": "ENABLED"})
    assert ecr.get_account_setting(LOCAL, ecr.BLOB_MOUNTING) == "DISABLED"
    assert ecr.put_account_setting(LOCAL, ecr.BLOB_MOUNTING, "ENABLED") == "ENABLED"


def test_a_500_from_a_local_endpoint_is_unsupported_and_from_aws_a_failure(stub: Stubber) -> None:
    _moto_500(stub, "get_account_setting")
    with pytest.raises(ecr.Unsupported, match="does not implement GetAccountSetting"):
        ecr.get_account_setting(LOCAL, ecr.BLOB_MOUNTING)
    _moto_500(stub, "get_account_setting")
    with pytest.raises(ServiceError) as failed:
        ecr.get_account_setting(AWS, ecr.BLOB_MOUNTING)
    assert not isinstance(failed.value, ecr.Unsupported)
    stub.add_client_error("put_account_setting", service_error_code="AccessDeniedException", http_status_code=400)
    with pytest.raises(ServiceError) as denied:
        ecr.put_account_setting(AWS, ecr.BLOB_MOUNTING, "ENABLED")
    assert "ecr:PutAccountSetting" in (denied.value.hint or "")


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    for name in ("MOKA_REPOSITORY_PREFIX", "MOKA_PROFILE", "MOKA_PLATFORMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOKA_HOME", str(tmp_path))
    monkeypatch.setattr(repositories, "_mounting", {})
    return load_settings(ROOT)


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    monkeypatch.setattr(repositories.log, "info", lambda msg, **kw: out.append(("info", msg)))
    monkeypatch.setattr(repositories.log, "warn", lambda msg, **kw: out.append(("warn", msg)))
    return out


def test_the_stage_turns_it_on_once_per_account_per_run(stub: Stubber, settings: Settings,
                                                        said: list[tuple[str, str]]) -> None:
    stub.add_response("get_account_setting", {"name": "BLOB_MOUNTING", "value": "DISABLED"}, SETTING)
    stub.add_response("put_account_setting", {"name": "BLOB_MOUNTING", "value": "ENABLED"},
                      {**SETTING, "value": "ENABLED"})
    state = repositories.ensure_blob_mounting(settings, Environment.STAGING)
    assert (state.enabled, state.detail) == (True, "enabled")
    assert repositories.ensure_blob_mounting(settings, Environment.STAGING) == state  # no second call
    assert said == [("info", "ECR staging: blob mounting turned on (was disabled)")]


def test_already_on_needs_no_put(stub: Stubber, settings: Settings, said: list[tuple[str, str]]) -> None:
    stub.add_response("get_account_setting", {"name": "BLOB_MOUNTING", "value": "ENABLED"}, SETTING)
    assert repositories.ensure_blob_mounting(settings, Environment.DEV).enabled is True
    assert said == []


def test_moto_not_implementing_it_is_logged_and_the_copy_goes_on(stub: Stubber, settings: Settings,
                                                                  said: list[tuple[str, str]]) -> None:
    _moto_500(stub, "get_account_setting")
    state = repositories.ensure_blob_mounting(settings, Environment.DEV)
    assert (state.enabled, state.implemented) == (None, False)
    assert state.detail == "unknown: the ECR endpoint does not implement GetAccountSetting (moto)"
    assert said == [("info", ("ECR dev: blob mounting unknown: the ECR endpoint does not implement "
                              "GetAccountSetting (moto); mounts work as far as the registry allows"))]


def test_an_account_that_does_not_allow_it_warns_and_the_copy_goes_on(stub: Stubber, settings: Settings,
                                                                       said: list[tuple[str, str]]) -> None:
    stub.add_response("get_account_setting", {"name": "BLOB_MOUNTING", "value": "DISABLED"}, SETTING)
    stub.add_client_error("put_account_setting", service_error_code="AccessDeniedException", http_status_code=400)
    state = repositories.ensure_blob_mounting(settings, Environment.PROD)
    assert state.enabled is False
    assert [level for level, _ in said] == ["warn"] and "cannot turn blob mounting on" in said[0][1]


def test_doctor_reads_without_changing_anything(stub: Stubber, settings: Settings) -> None:
    stub.add_response("get_account_setting", {"name": "BLOB_MOUNTING", "value": "DISABLED"}, SETTING)
    assert repositories.blob_mounting(settings, Environment.TEST) == repositories.BlobMounting(False, "disabled")
    stub.add_client_error("get_account_setting", service_error_code="AccessDeniedException", http_status_code=400)
    denied = repositories.blob_mounting(settings, Environment.TEST)
    assert denied.enabled is None and denied.detail.startswith("unknown: ECR: GetAccountSetting failed")


def test_doctor_has_a_line_per_environment_and_only_disabled_is_not_ok(settings: Settings,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    states = {Environment.TEST: repositories.BlobMounting(True, "enabled"),
              Environment.DEV: repositories.BlobMounting(False, "disabled"),
              Environment.STAGING: repositories.BlobMounting(None, "unknown: the ECR endpoint does not implement "
                                                                   "GetAccountSetting (moto)", implemented=False),
              Environment.PROD: repositories.BlobMounting(None, "unknown: ECR: GetAccountSetting failed")}
    monkeypatch.setattr(doctor, "is_ready", lambda daemon: True)
    monkeypatch.setattr(repositories, "blob_mounting", lambda settings, env: states[env])
    checks = doctor.check_blob_mounting(settings)
    assert [(c.name, c.ok, c.detail) for c in checks] == [
        ("test blob mounting", True, "enabled"), ("dev blob mounting", False, "disabled"),
        ("staging blob mounting", True, states[Environment.STAGING].detail),
        ("prod blob mounting", True, "unknown: ECR: GetAccountSetting failed")]
    assert "same encryption" in checks[1].fix
    monkeypatch.setattr(doctor, "is_ready", lambda daemon: False)
    assert [(c.ok, c.detail) for c in doctor.check_blob_mounting(settings)] == [
        (True, "unknown: the ECR endpoint does not answer")]
