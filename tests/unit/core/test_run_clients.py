"""The run's clients: one boto3 client per account access and service, one registry client per environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moka_images.adapters import ecr
from moka_images.config.settings import load_settings
from moka_images.models import Environment
from moka_images.stages import registries


def test_a_boto3_client_is_made_once_per_access_and_service() -> None:
    here = ecr.AwsAccess("eu-west-1", "http://127.0.0.1:1")
    ecr_client = ecr.client(here, "ecr")
    assert ecr.client(here, "ecr") is ecr_client
    assert ecr.client(here, "sts") is not ecr_client
    assert ecr.client(ecr.AwsAccess("eu-west-2", "http://127.0.0.1:1"), "ecr") is not ecr_client


class Ecr:
    """ECR's token endpoint: answers with `token`, and records what it handed out."""

    def __init__(self) -> None:
        self.token, self.handed = "first", list[str]()

    def registry_credentials(self, access: ecr.AwsAccess, account: str) -> ecr.RegistryCredentials:
        self.handed.append(self.token)
        return ecr.RegistryCredentials("AWS", self.token, None)


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> Ecr:
    """A stand-in ECR, and a process that has fetched no token yet."""
    stand_in = Ecr()
    monkeypatch.setattr(ecr, "registry_credentials", stand_in.registry_credentials)
    monkeypatch.setattr(registries, "_tokens", {})
    monkeypatch.setattr(registries, "_clients", {})
    monkeypatch.setattr(registries, "_token_caches", {})
    return stand_in


def test_a_role_is_assumed_once_for_every_client_of_its_account(monkeypatch: pytest.MonkeyPatch) -> None:
    assumed: list[str] = []
    expires = [datetime.now(UTC) + timedelta(hours=1)]

    def assume(access: ecr.AwsAccess, role_arn: str, session_name: str) -> tuple[dict[str, str], datetime]:
        assumed.append(role_arn)
        return {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}, expires[0]

    monkeypatch.setattr(ecr, "_assumed", assume)
    monkeypatch.setattr(ecr, "_clients", {})
    monkeypatch.setattr(ecr, "_roles", {})
    dev = ecr.AwsAccess("eu-west-1", "http://127.0.0.1:1", "arn:aws:iam::100000000002:role/moka")
    ecr.client(dev, "ecr"), ecr.client(dev, "ecr", attempts=1), ecr.client(dev, "sts")
    assert assumed == [dev.role_arn]
    ecr.client(ecr.AwsAccess("eu-west-1", "http://127.0.0.1:1", "arn:aws:iam::100000000003:role/moka"), "ecr")
    assert len(assumed) == 2
    expires[0] = datetime.now(UTC) + timedelta(minutes=1)  # the next one is about to expire as it is made
    monkeypatch.setattr(ecr, "_roles", {})
    ecr.client(dev, "ecr", attempts=2)
    ecr.client(dev, "ecr", attempts=3)
    assert len(assumed) == 4  # renewed rather than handed out expiring


def test_one_registry_client_per_environment_until_the_token_changes(fetched: Ecr, tmp_path: Path) -> None:
    settings = load_settings(profile="local").model_copy(update={"home": tmp_path})
    test = registries.client(settings, Environment.TEST)
    assert registries.client(settings, Environment.TEST) is test
    assert registries.client(settings, Environment.DEV) is not test
    fetched.token = "renewed"
    assert registries.credentials(settings, Environment.TEST, fresh=True).password == "renewed"
    assert registries.client(settings, Environment.TEST) is not test


def test_a_token_fetched_by_one_run_serves_the_next_from_disk(fetched: Ecr, tmp_path: Path) -> None:
    settings = load_settings(profile="local").model_copy(update={"home": tmp_path})
    assert registries.credentials(settings, Environment.PROD).password == "first"
    registries._tokens.clear()  # a new process: nothing in memory
    registries._token_caches.clear()
    fetched.token = "second"
    assert registries.credentials(settings, Environment.PROD).password == "first"
    assert fetched.handed == ["first"]  # not asked again
    registries._tokens.clear()
    other_home = settings.model_copy(update={"home": tmp_path / "elsewhere"})  # another user's cache
    assert registries.credentials(other_home, Environment.PROD).password == "second"


def test_a_refused_kept_token_is_fetched_anew_once_for_all_threads(fetched: Ecr, tmp_path: Path) -> None:
    settings = load_settings(profile="local").model_copy(update={"home": tmp_path})
    registries.credentials(settings, Environment.DEV)
    fetched.token = "renewed"
    assert registries._renewed(settings, Environment.DEV, "first") == ("AWS", "renewed")
    assert registries._renewed(settings, Environment.DEV, "first") == ("AWS", "renewed")  # another thread, later
    assert fetched.handed == ["first", "renewed"]
    registries._tokens.clear()
    assert registries.credentials(settings, Environment.DEV).password == "renewed"  # and kept on disk
