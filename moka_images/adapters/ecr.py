"""ECR control plane through boto3: the same code talks to real ECR or to a moto server by endpoint alone.

Repositories are made and kept the way `plan.tags` and `plan.lifecycle` decide: build tags immutable, rolling
and cosign tags mutable (MUTABLE_WITH_EXCLUSION, see `plan.tags` for why not IMMUTABLE), scan on push, KMS
encryption, and a lifecycle policy that never expires an image a rolling tag points at. The botocore and moto
of this project (1.44, 5.2) take every one of these parameters, so nothing is faked locally (an older botocore
refuses the exclusion filters: a ServiceError says to upgrade). moto stores the tag rule and the lifecycle
policy but enforces neither on images: locally the registry gate enforces the tag rule.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from moka_images import log
from moka_images.adapters.registry import RegistryClient
from moka_images.config.settings import EnvironmentSettings, Settings
from moka_images.errors import ServiceError
from moka_images.models import Environment
from moka_images.plan import lifecycle, tags

# Any credentials do for the local moto server; real AWS uses the default credential chain.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "mokalocal", "aws_secret_access_key": "mokalocal"}


REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class RegistryCredentials:
    """What a registry accepts: ECR's `AWS` user and the authorization token's password (valid 12 hours)."""

    username: str
    password: str
    expires_at: datetime | None  # None: the endpoint gave no meaningful expiry (moto)

    def expiring(self, now: datetime | None = None) -> bool:
        """Whether to fetch a new token: less than five minutes left."""
        if self.expires_at is None:
            return False
        return self.expires_at - (now or datetime.now(UTC)) < REFRESH_MARGIN


def _session_kwargs(settings: Settings) -> dict[str, Any]:
    if settings.ecr.endpoint and not os.environ.get("AWS_ACCESS_KEY_ID"):
        return dict(_LOCAL_CREDENTIALS)
    return {}


def client(settings: Settings, service: str, env: EnvironmentSettings | None = None) -> Any:
    """A boto3 client for `service`, acting in `env`'s account (through its role) when given."""
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60)
    common: dict[str, Any] = {"region_name": settings.ecr.region, "config": config}
    if settings.ecr.endpoint:
        common["endpoint_url"] = settings.ecr.endpoint
    session = boto3.session.Session(**_session_kwargs(settings))
    if env is not None and env.role_arn:
        try:
            creds = session.client("sts", **common).assume_role(
                RoleArn=env.role_arn, RoleSessionName="moka-images")["Credentials"]
        except (ClientError, BotoCoreError) as exc:
            raise ServiceError(f"cannot assume role {env.role_arn}: {exc}",
                               "check the role ARN in moka.yaml and your AWS credentials") from exc
        session = boto3.session.Session(aws_access_key_id=creds["AccessKeyId"],
                                        aws_secret_access_key=creds["SecretAccessKey"],
                                        aws_session_token=creds["SessionToken"])
    return session.client(service, **common)


def registry_credentials(settings: Settings, env: EnvironmentSettings) -> RegistryCredentials:
    """Registry login for `env` from ECR's authorization token for that account."""
    try:
        data = client(settings, "ecr", env).get_authorization_token(registryIds=[env.account])["authorizationData"][0]
    except (ClientError, BotoCoreError) as exc:
        raise ServiceError(f"cannot get an ECR token for account {env.account}: {exc}",
                           "is the ECR endpoint up? locally: `moka-images dev up`") from exc
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return RegistryCredentials(user, password, _meaningful_expiry(data.get("expiresAt")))


def _meaningful_expiry(expires_at: datetime | None) -> datetime | None:
    """ECR's expiry, or None when it was already past as the token was issued: moto always answers 2015-01-01
    with a token that never expires, and refreshing on that date would fetch a token on every call."""
    if expires_at is None or expires_at <= datetime.now(UTC):
        return None
    return expires_at


@dataclass(frozen=True)
class RepositoryState:
    """What ECR says about one repository."""

    name: str
    uri: str
    mutability: str
    exclusions: tuple[str, ...]  # wildcard filters excepted from `mutability`
    scan_on_push: bool
    encryption: str
    kms_key: str | None
    lifecycle: dict[str, Any] | None

    @property
    def lifecycle_present(self) -> bool:
        """Whether a lifecycle policy is set."""
        return self.lifecycle is not None


def _call(what: str, fn: Any, **kw: Any) -> Any:
    try:
        return fn(**kw)
    except ParamValidationError as exc:
        raise ServiceError(f"ECR: cannot {what}: {exc}", "upgrade boto3: it predates the parameter") from exc
    except ClientError as exc:
        raise ServiceError(f"ECR: cannot {what}: {exc}", "check the account's role and the endpoint") from exc
    except BotoCoreError as exc:
        raise ServiceError(f"ECR: cannot {what}: {exc}", "is the endpoint up? (`moka-images dev up`)") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(ecr: Any, account: str, repository: str) -> RepositoryState | None:
    try:
        repo = ecr.describe_repositories(registryId=account, repositoryNames=[repository])["repositories"][0]
    except ClientError as exc:
        if _code(exc) == "RepositoryNotFoundException":
            return None
        raise ServiceError(f"ECR: cannot describe {repository} in {account}: {exc}") from exc
    try:
        text = ecr.get_lifecycle_policy(registryId=account, repositoryName=repository)["lifecyclePolicyText"]
        policy = json.loads(text)
    except ClientError as exc:
        if _code(exc) != "LifecyclePolicyNotFoundException":
            raise ServiceError(f"ECR: cannot read the lifecycle policy of {repository}: {exc}") from exc
        policy = None
    enc = repo.get("encryptionConfiguration") or {}
    return RepositoryState(
        name=repo["repositoryName"], uri=repo["repositoryUri"], mutability=repo["imageTagMutability"],
        exclusions=tuple(f["filter"] for f in repo.get("imageTagMutabilityExclusionFilters") or []),
        scan_on_push=bool((repo.get("imageScanningConfiguration") or {}).get("scanOnPush")),
        encryption=enc.get("encryptionType", "AES256"), kms_key=enc.get("kmsKey"), lifecycle=policy)


def describe(settings: Settings, env: Environment, repository: str) -> RepositoryState | None:
    """The repository as ECR holds it in `env`'s account, or None if there is none."""
    cfg = settings.env(env)
    return _describe(client(settings, "ecr", cfg), cfg.account, repository)


def desired_policy(settings: Settings, protected: Iterable[str]) -> dict[str, Any]:
    """The lifecycle policy settings ask for, protecting `protected` tags."""
    return lifecycle.lifecycle_policy(
        expire_untagged_days=settings.ecr.lifecycle_expire_untagged_days,
        keep_prerelease=settings.ecr.lifecycle_keep_prerelease,
        images_per_build=1 + len(settings.platforms), protected=protected)


def _in_use(settings: Settings, cfg: EnvironmentSettings, repository: str) -> list[str]:
    """Rolling tags the repository holds now that a lifecycle rule could otherwise select."""
    creds = registry_credentials(settings, cfg)
    return lifecycle.protected_tags(RegistryClient(cfg.registry, creds.username, creds.password)
                                    .list_tags(repository))


def ensure_repository(settings: Settings, env: Environment, repository: str,
                      protected: Iterable[str] | None = None) -> list[str]:
    """Create `repository` in `env`'s account or bring its settings in line; returns what changed.

    `protected`: rolling tags whose images the lifecycle policy must keep; by default the ones the registry
    holds now (so each promotion refreshes the set).
    """
    cfg = settings.env(env)
    ecr = client(settings, "ecr", cfg)
    acct = {"registryId": cfg.account, "repositoryName": repository}
    mutability = {"imageTagMutability": tags.MUTABILITY,
                  "imageTagMutabilityExclusionFilters": tags.exclusion_filters()}
    encryption = {"encryptionType": "KMS"}
    if settings.ecr.kms_key:
        encryption["kmsKey"] = settings.ecr.kms_key
    changes: list[str] = []
    state = _describe(ecr, cfg.account, repository)
    if state is None:
        try:
            _call(f"create {repository} in {cfg.account}", ecr.create_repository, **acct, **mutability,
                  imageScanningConfiguration={"scanOnPush": True}, encryptionConfiguration=encryption,
                  tags=[{"Key": "managed-by", "Value": "moka-images"}])
            changes.append("created")
        except ServiceError as exc:  # another process may have won the race: fine
            cause = exc.__cause__
            if not (isinstance(cause, ClientError) and _code(cause) == "RepositoryAlreadyExistsException"):
                raise
        state = _describe(ecr, cfg.account, repository)
        if state is None:
            raise ServiceError(f"ECR: {repository} in {cfg.account} vanished right after it was made")
    if (state.mutability, state.exclusions) != (tags.MUTABILITY, tags.IMMUTABLE_FILTERS):
        _call("set tag mutability", ecr.put_image_tag_mutability, **acct, **mutability)
        changes.append(f"tag mutability {state.mutability} {list(state.exclusions)} -> {tags.MUTABILITY} "
                       f"{list(tags.IMMUTABLE_FILTERS)}")
    if not state.scan_on_push:
        _call("turn on scan on push", ecr.put_image_scanning_configuration, **acct,
              imageScanningConfiguration={"scanOnPush": True})
        changes.append("scan on push")
    if state.encryption != "KMS" or (settings.ecr.kms_key and state.kms_key != settings.ecr.kms_key):
        log.warn(f"{repository} in {env} is encrypted with {state.encryption} {state.kms_key or ''}, not the "
                 f"configured KMS key: ECR cannot change a repository's encryption; recreate it to fix")
    policy = desired_policy(settings, _in_use(settings, cfg, repository) if protected is None else protected)
    if state.lifecycle is None or lifecycle.policy_text(state.lifecycle) != lifecycle.policy_text(policy):
        _call("set the lifecycle policy", ecr.put_lifecycle_policy, **acct,
              lifecyclePolicyText=lifecycle.policy_text(policy))
        changes.append("lifecycle policy")
    if changes:
        log.info(f"ECR {env} {repository}: " + ", ".join(changes))
    return changes
