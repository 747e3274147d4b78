"""Repositories in each environment's account, made and kept the way the rules say.

Build tags immutable, rolling and cosign tags mutable (MUTABLE_WITH_EXCLUSION, see `plan.tags` for why not
IMMUTABLE), scan on push, KMS encryption, and a lifecycle policy that never expires an image a rolling tag
points at. moto stores the tag rule and the lifecycle policy but enforces neither on images: locally the
registry gate enforces the tag rule.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from moka_images import log
from moka_images.adapters import ecr
from moka_images.adapters.registry import RegistryClient
from moka_images.config.settings import Settings
from moka_images.errors import ServiceError
from moka_images.models import Environment
from moka_images.plan import lifecycle, tags


def aws_access(settings: Settings, env: Environment | None = None) -> ecr.AwsAccess:
    """How to reach AWS (or moto) for `env`'s account: through its role when it has one."""
    return ecr.AwsAccess(settings.ecr.region, settings.ecr.endpoint, settings.env(env).role_arn if env else None)


def describe(settings: Settings, env: Environment, repository: str) -> ecr.RepositoryState | None:
    """The repository as ECR holds it in `env`'s account, or None if there is none."""
    return ecr.describe(aws_access(settings, env), settings.env(env).account, repository)


def desired_policy(settings: Settings, protected: Iterable[str]) -> dict[str, Any]:
    """The lifecycle policy settings ask for, protecting `protected` tags."""
    return lifecycle.lifecycle_policy(
        expire_untagged_days=settings.ecr.lifecycle_expire_untagged_days,
        keep_prerelease=settings.ecr.lifecycle_keep_prerelease,
        images_per_build=1 + len(settings.platforms), protected=protected)


def _in_use(settings: Settings, env: Environment, repository: str) -> list[str]:
    """Rolling tags the repository holds now that a lifecycle rule could otherwise select."""
    cfg = settings.env(env)
    creds = ecr.registry_credentials(aws_access(settings, env), cfg.account)
    return lifecycle.protected_tags(RegistryClient(cfg.registry, creds.username, creds.password)
                                    .list_tags(repository))


def ensure_repository(settings: Settings, env: Environment, repository: str,
                      protected: Iterable[str] | None = None) -> list[str]:
    """Create `repository` in `env`'s account or bring its settings in line; returns what changed.

    `protected`: rolling tags whose images the lifecycle policy must keep; by default the ones the registry
    holds now (so each promotion refreshes the set).
    """
    access, account = aws_access(settings, env), settings.env(env).account
    policy = desired_policy(settings, _in_use(settings, env, repository) if protected is None else protected)
    spec = ecr.RepositorySpec(tags.MUTABILITY, tags.exclusion_filters(), settings.ecr.kms_key,
                              lifecycle.policy_text(policy))
    changes: list[str] = []
    state = ecr.describe(access, account, repository)
    if state is None:
        if ecr.create_repository(access, account, repository, spec):  # False: another process won the race
            changes.append("created")
        state = ecr.describe(access, account, repository)
        if state is None:
            raise ServiceError(f"ECR: {repository} in {account} vanished right after it was made")
    if (state.mutability, state.exclusions) != (tags.MUTABILITY, tags.IMMUTABLE_FILTERS):
        ecr.set_tag_mutability(access, account, repository, spec)
        changes.append(f"tag mutability {state.mutability} {list(state.exclusions)} -> {tags.MUTABILITY} "
                       f"{list(tags.IMMUTABLE_FILTERS)}")
    if not state.scan_on_push:
        ecr.turn_on_scan_on_push(access, account, repository)
        changes.append("scan on push")
    if state.encryption != "KMS" or (settings.ecr.kms_key and state.kms_key != settings.ecr.kms_key):
        log.warn(f"{repository} in {env} is encrypted with {state.encryption} {state.kms_key or ''}, not the "
                 f"configured KMS key: ECR cannot change a repository's encryption, and mounts blobs only between "
                 f"repositories encrypted alike (so copies into it upload every blob); recreate it to fix")
    if state.lifecycle is None or lifecycle.policy_text(state.lifecycle) != spec.lifecycle_text:
        ecr.set_lifecycle_policy(access, account, repository, spec.lifecycle_text)
        changes.append("lifecycle policy")
    if changes:
        log.info(f"ECR {env} {repository}: " + ", ".join(changes))
    return changes


@dataclass(frozen=True)
class BlobMounting:
    """ECR's BLOB_MOUNTING account setting as learned: True, False, or None when it could not be learned."""

    enabled: bool | None
    detail: str
    implemented: bool = True  # False: the endpoint has no account settings at all (moto)


_mounting: dict[tuple[str | None, str], BlobMounting] = {}  # per (endpoint, account): once per run
_mounting_lock = threading.Lock()


def _not_implemented(settings: Settings, operation: str) -> BlobMounting:
    detail = f"the ECR endpoint does not implement {operation}" + (" (moto)" if settings.local_stack else "")
    return BlobMounting(None, f"unknown: {detail}", implemented=False)


def blob_mounting(settings: Settings, env: Environment) -> BlobMounting:
    """Whether ECR mounts blobs across repositories in `env`'s account (what `doctor` shows); never raises."""
    try:
        value = ecr.get_account_setting(aws_access(settings, env), ecr.BLOB_MOUNTING)
    except ecr.Unsupported:
        return _not_implemented(settings, "GetAccountSetting")
    except ServiceError as exc:
        return BlobMounting(None, f"unknown: {exc.message}")
    return BlobMounting(value == "ENABLED", value.lower())


def ensure_blob_mounting(settings: Settings, env: Environment) -> BlobMounting:
    """Turn ECR's blob mounting on in `env`'s account, once per account per run, before copying into it.

    Never fails a promotion: without the setting ECR answers a mount with an upload session, and the copy
    uploads. ECR mounts only between repositories with the same encryption settings (`ensure_repository` warns
    about a repository encrypted otherwise). docker-registry, the local stand-in, mounts without any setting.
    """
    key = (settings.ecr.endpoint, settings.env(env).account)
    with _mounting_lock:
        if key not in _mounting:
            _mounting[key] = _enable_blob_mounting(settings, env)
        return _mounting[key]


def _enable_blob_mounting(settings: Settings, env: Environment) -> BlobMounting:
    state = blob_mounting(settings, env)
    if state.enabled:
        return state
    if state.implemented:
        try:
            value = ecr.put_account_setting(aws_access(settings, env), ecr.BLOB_MOUNTING, "ENABLED")
        except ecr.Unsupported:
            state = _not_implemented(settings, "PutAccountSetting")
        except ServiceError as exc:
            log.warn(f"ECR {env}: cannot turn blob mounting on ({exc.message}); blobs ECR will not mount are "
                     f"uploaded", hint=exc.hint or "")
            return state
        else:
            log.info(f"ECR {env}: blob mounting turned on (was {state.detail})")
            return BlobMounting(value == "ENABLED", value.lower())
    log.info(f"ECR {env}: blob mounting {state.detail}; mounts work as far as the registry allows")
    return state
