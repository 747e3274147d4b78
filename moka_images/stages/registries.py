"""Registry clients and tool logins for each environment, with credentials from ECR.

The run's registry context: one client per environment (one HTTP session, one token, one cache of what was read
by digest) for the whole process, shared by its threads, made again only when the ECR token is renewed. Small
blobs (signatures, attestations, configs) are also kept on disk by digest for later runs (`$MOKA_HOME/cache/blobs`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from moka_images.adapters import docker_config, ecr
from moka_images.adapters.blob_store import BlobStore
from moka_images.adapters.registry import RegistryClient
from moka_images.adapters.token_cache import TokenCache
from moka_images.config.settings import Settings
from moka_images.models import Environment
from moka_images.stages import repositories

_tokens: dict[tuple[str, str, Environment], ecr.RegistryCredentials] = {}
_clients: dict[tuple[str, str, str], RegistryClient] = {}
_stores: dict[Path, BlobStore] = {}
_token_caches: dict[Path, TokenCache] = {}
_lock = threading.Lock()


def credentials(settings: Settings, environment: Environment, *, fresh: bool = False) -> ecr.RegistryCredentials:
    """ECR token credentials of an environment: kept for the process and on disk (`adapters.token_cache`),
    fetched when there are none, when about to expire, and when `fresh` (a registry refused them)."""
    key = (settings.profile, settings.env(environment).account, environment)
    with _lock:
        kept = None if fresh else _tokens.get(key)
    if kept is None or kept.expiring():  # asked outside the lock: environments log in side by side
        cache, on_disk = _token_cache(settings), _token_key(settings, environment)
        kept = None if fresh else cache.get(on_disk)
        if kept is None:
            kept = ecr.registry_credentials(repositories.aws_access(settings, environment),
                                            settings.env(environment).account)
            cache.put(on_disk, kept)
        with _lock:
            _tokens[key] = kept
    return kept


def _renewed(settings: Settings, environment: Environment, refused: str) -> tuple[str, str]:
    """Credentials to try after the registry refused the password `refused`: those another thread has
    fetched meanwhile, else new ones from ECR."""
    now = credentials(settings, environment)
    if now.password == refused:
        now = credentials(settings, environment, fresh=True)
    return now.username, now.password


def _token_key(settings: Settings, environment: Environment) -> str:
    """What a token is fetched for and as whom: it is used again only for the same."""
    access, cfg = repositories.aws_access(settings, environment), settings.env(environment)
    caller = [os.environ.get(v, "") for v in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_ROLE_ARN")]
    return "|".join([settings.profile, environment.value, cfg.registry, cfg.account, access.region,
                     access.endpoint or "", access.role_arn or "", *caller])


def _token_cache(settings: Settings) -> TokenCache:
    path = settings.home / "cache" / "registry-tokens"
    with _lock:
        if path not in _token_caches:
            _token_caches[path] = TokenCache(path)
        return _token_caches[path]


def client(settings: Settings, environment: Environment) -> RegistryClient:
    """The run's registry client for `environment`, logged in with its ECR token (renewed if refused)."""
    creds = credentials(settings, environment)
    key = (settings.env(environment).registry, creds.username, creds.password)
    with _lock:
        if key not in _clients:
            _clients[key] = RegistryClient(key[0], creds.username, creds.password, store=_store(settings),
                                           renew=lambda refused: _renewed(settings, environment, refused))
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
    """Let docker, buildx, cosign and trivy reach `environment`'s registry, with a token it has accepted in
    this run (a kept one the registry refuses is replaced first, not handed to a tool)."""
    username, password = client(settings, environment).accepted_credentials()
    docker_config.store_login(settings.env(environment).registry, username, password)
