"""Repositories in each environment's account, made and kept the way the rules say.

Build tags immutable, rolling and cosign tags mutable (MUTABLE_WITH_EXCLUSION, see `plan.tags` for why not
IMMUTABLE), scan on push, KMS encryption, and a lifecycle policy that never expires an image a rolling tag
points at. moto stores the tag rule and the lifecycle policy but enforces neither on images: locally the
registry gate enforces the tag rule.
"""

from __future__ import annotations

from collections.abc import Iterable
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
                 f"configured KMS key: ECR cannot change a repository's encryption; recreate it to fix")
    if state.lifecycle is None or lifecycle.policy_text(state.lifecycle) != spec.lifecycle_text:
        ecr.set_lifecycle_policy(access, account, repository, spec.lifecycle_text)
        changes.append("lifecycle policy")
    if changes:
        log.info(f"ECR {env} {repository}: " + ", ".join(changes))
    return changes
