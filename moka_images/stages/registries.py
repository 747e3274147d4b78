"""Registry clients and tool logins for each environment, with credentials from ECR.

The run's registry context: one client per environment (one HTTP session, one token, one cache of what was read
by digest) for the whole process, shared by its threads, made again only when the ECR token is renewed. Small
blobs (signatures, attestations, configs) are also kept on disk by digest for later runs (`$MOKA_HOME/cache/blobs`).
"""

from __future__ import annotations

import threading
from pathlib import Path

from moka_images.adapters import docker_config, ecr
from moka_images.adapters.blob_store import BlobStore
from moka_images.adapters.registry import RegistryClient
from moka_images.config.settings import Settings
from moka_images.models import Environment
from moka_images.stages import repositories

_tokens: dict[tuple[str, str, Environment], ecr.RegistryCredentials] = {}
_clients: dict[tuple[str, str, str], RegistryClient] = {}
_stores: dict[Path, BlobStore] = {}
_lock = threading.Lock()


def credentials(settings: Settings, environment: Environment) -> ecr.RegistryCredentials:
    """ECR token credentials of an environment, fetched once per process and again when about to expire."""
    key = (settings.profile, settings.env(environment).account, environment)
    with _lock:
        kept = _tokens.get(key)
    if kept is None or kept.expiring():  # asked outside the lock: environments log in side by side
        kept = ecr.registry_credentials(repositories.aws_access(settings, environment),
                                        settings.env(environment).account)
        with _lock:
            _tokens[key] = kept
    return kept


def client(settings: Settings, environment: Environment) -> RegistryClient:
    """The run's registry client for `environment`, logged in with its ECR token."""
    creds = credentials(settings, environment)
    key = (settings.env(environment).registry, creds.username, creds.password)
    with _lock:
        if key not in _clients:
            _clients[key] = RegistryClient(key[0], creds.username, creds.password, store=_store(settings))
        return _clients[key]


def _store(settings: Settings) -> BlobStore:
    """This machine's store of small blobs (signatures, attestations, configs), one per home."""
    path = settings.home / "cache" / "blobs"
    if path not in _stores:
        _stores[path] = BlobStore(path)
    return _stores[path]


def mirror(settings: Settings) -> RegistryClient:
    """The upstream mirror (OS base images, vulnerability databases); anonymous read locally."""
    key = (settings.mirror, "", "")
    with _lock:
        if key not in _clients:
            _clients[key] = RegistryClient(settings.mirror)
        return _clients[key]


def login_tools(settings: Settings, environment: Environment) -> None:
    """Let docker, buildx, cosign and trivy reach `environment`'s registry."""
    creds = credentials(settings, environment)
    docker_config.store_login(settings.env(environment).registry, creds.username, creds.password)
