"""Registry clients and tool logins for each environment, with credentials from ECR."""

from __future__ import annotations

from moka_images.adapters import docker_config, ecr
from moka_images.adapters.registry import RegistryClient
from moka_images.config.settings import Settings
from moka_images.models import Environment
from moka_images.stages import repositories

_tokens: dict[tuple[str, str, Environment], ecr.RegistryCredentials] = {}


def credentials(settings: Settings, environment: Environment) -> ecr.RegistryCredentials:
    """ECR token credentials of an environment, fetched once per process and again when about to expire."""
    key = (settings.profile, settings.env(environment).account, environment)
    if key not in _tokens or _tokens[key].expiring():
        _tokens[key] = ecr.registry_credentials(repositories.aws_access(settings, environment),
                                                       settings.env(environment).account)
    return _tokens[key]


def client(settings: Settings, environment: Environment) -> RegistryClient:
    """A registry client for `environment`, logged in with its ECR token."""
    creds = credentials(settings, environment)
    return RegistryClient(settings.env(environment).registry, creds.username, creds.password)


def mirror(settings: Settings) -> RegistryClient:
    """The upstream mirror (OS base images, vulnerability databases); anonymous read locally."""
    return RegistryClient(settings.mirror)


def login_tools(settings: Settings, environment: Environment) -> None:
    """Let docker, buildx, cosign and trivy reach `environment`'s registry."""
    creds = credentials(settings, environment)
    docker_config.store_login(settings.env(environment).registry, creds.username, creds.password)
