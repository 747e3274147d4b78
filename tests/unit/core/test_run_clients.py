"""The run's clients: one boto3 client per account access and service, one registry client per environment."""

from __future__ import annotations

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


def test_one_registry_client_per_environment_until_the_token_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(profile="local")
    token = ["first"]
    monkeypatch.setattr(ecr, "registry_credentials",
                        lambda access, account: ecr.RegistryCredentials("AWS", token[0], None))
    monkeypatch.setattr(registries, "_tokens", {})
    monkeypatch.setattr(registries, "_clients", {})
    test = registries.client(settings, Environment.TEST)
    assert registries.client(settings, Environment.TEST) is test
    assert registries.client(settings, Environment.DEV) is not test
    token[0] = "renewed"
    registries._tokens.clear()
    assert registries.client(settings, Environment.TEST) is not test
