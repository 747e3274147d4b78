"""ECR control plane through boto3: the same code talks to real ECR or to a moto server by endpoint alone.

It only talks: what a repository should look like is decided in `stages.repositories` (from `plan.tags` and
`plan.lifecycle`), which calls the operations here. The botocore and moto
of this project (1.44, 5.2) take every one of these parameters, so nothing is faked locally (an older botocore
refuses the exclusion filters: a ServiceError says to upgrade). moto stores the tag rule and the lifecycle
policy but enforces neither on images: locally the registry gate enforces the tag rule.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, ParamValidationError

from moka_images.errors import ServiceError

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


@dataclass(frozen=True)
class AwsAccess:
    """Where and as whom to call AWS: the region, a non-AWS endpoint (moto) if any, and the role to act through."""

    region: str
    endpoint: str | None = None
    role_arn: str | None = None


def _session_kwargs(access: AwsAccess) -> dict[str, Any]:
    if access.endpoint and not os.environ.get("AWS_ACCESS_KEY_ID"):
        return dict(_LOCAL_CREDENTIALS)
    return {}


def _common(access: AwsAccess, attempts: int = 5) -> dict[str, Any]:
    config = Config(retries={"max_attempts": attempts, "mode": "standard"}, connect_timeout=10, read_timeout=60)
    common: dict[str, Any] = {"region_name": access.region, "config": config}
    if access.endpoint:
        common["endpoint_url"] = access.endpoint
    return common


def assume_role(access: AwsAccess, role_arn: str, session_name: str) -> dict[str, str]:
    """Temporary credentials of `role_arn`, as the AWS_* variables an SDK or a tool reads."""
    return _assumed(access, role_arn, session_name)[0]


def _assumed(access: AwsAccess, role_arn: str, session_name: str) -> tuple[dict[str, str], datetime | None]:
    sts = client(AwsAccess(access.region, access.endpoint), "sts")  # as the caller itself, to take the role
    try:
        creds = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
    except EndpointConnectionError as exc:
        where = access.endpoint or f"AWS STS in {access.region}"
        raise ServiceError(f"cannot reach {where} to assume role {role_arn}: {exc}",
                           "the local stack is down: start it with `moka-images dev up`" if access.endpoint
                           else "check the network and the region") from exc
    except (ClientError, BotoCoreError) as exc:
        raise ServiceError(f"cannot assume role {role_arn}: {exc}",
                           "check the role ARN in moka.yaml and your AWS credentials") from exc
    expires = creds.get("Expiration")
    return ({"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
             "AWS_SESSION_TOKEN": creds["SessionToken"]}, expires if isinstance(expires, datetime) else None)


_clients: dict[tuple[AwsAccess, str, int], tuple[Any, datetime | None]] = {}
_clients_lock = threading.Lock()
_sessions: list[boto3.session.Session] = []
_roles: dict[AwsAccess, tuple[dict[str, str], datetime | None]] = {}
_role_locks: dict[AwsAccess, threading.Lock] = {}


def client(access: AwsAccess, service: str, *, attempts: int = 5) -> Any:
    """The run's boto3 client for `service`, acting through `access.role_arn` when there is one; `attempts` per call.

    Made once per process (a client takes longer to make than most calls take; boto3 clients are thread-safe)
    and again when the role's temporary credentials are about to expire. Every client comes from one boto3
    session, which reads botocore's service models once (a new session per client read them each time:
    0.1 s a client).
    """
    key = (access, service, attempts)
    with _clients_lock:
        kept = _clients.get(key)
    if kept is not None and not _expiring(kept[1]):
        return kept[0]
    expires = None
    creds = _session_kwargs(access)
    if access.role_arn:  # a network call: outside the lock, so environments log in side by side
        assumed, expires = _role_credentials(access)
        creds = {"aws_access_key_id": assumed["AWS_ACCESS_KEY_ID"],
                 "aws_secret_access_key": assumed["AWS_SECRET_ACCESS_KEY"],
                 "aws_session_token": assumed["AWS_SESSION_TOKEN"]}
    with _clients_lock:  # a boto3 session makes one client at a time
        if not _sessions:
            _sessions.append(boto3.session.Session())
        made = _sessions[0].client(service, **creds, **_common(access, attempts))
        _clients[key] = (made, expires)
    return made


def _expiring(expires: datetime | None) -> bool:
    return expires is not None and expires - datetime.now(UTC) <= REFRESH_MARGIN


def _role_credentials(access: AwsAccess) -> tuple[dict[str, str], datetime | None]:
    """The role's temporary credentials, assumed once for every client of the account (ECR, STS, and ECR with
    other retry settings) and again when about to expire."""
    with _clients_lock:
        lock = _role_locks.setdefault(access, threading.Lock())
    with lock:  # one STS call for the clients made at once, and none holding up other accounts
        kept = _roles.get(access)
        if kept is None or _expiring(kept[1]):
            kept = _roles[access] = _assumed(access, access.role_arn or "", "moka-images")
    return kept


def registry_credentials(access: AwsAccess, account: str) -> RegistryCredentials:
    """Registry login for `account` from ECR's authorization token."""
    try:
        data = client(access, "ecr").get_authorization_token(registryIds=[account])["authorizationData"][0]
    except (ClientError, BotoCoreError) as exc:
        raise ServiceError(f"cannot get an ECR token for account {account}: {exc}",
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


def describe(access: AwsAccess, account: str, repository: str) -> RepositoryState | None:
    """The repository as ECR holds it in `account`, or None if there is none."""
    return _describe(client(access, "ecr"), account, repository)


def list_repositories(access: AwsAccess, account: str) -> list[str]:
    """Every repository name in `account`, all pages."""
    pages = client(access, "ecr").get_paginator("describe_repositories").paginate(registryId=account)
    return [r["repositoryName"] for page in pages for r in page["repositories"]]


@dataclass(frozen=True)
class RepositorySpec:
    """What a repository should be: tag mutability and its exceptions, encryption, lifecycle policy text."""

    mutability: str
    exclusion_filters: list[dict[str, str]]  # as ECR takes them
    kms_key: str | None
    lifecycle_text: str


def create_repository(access: AwsAccess, account: str, repository: str, spec: RepositorySpec) -> bool:
    """Create `repository` with scan on push and KMS encryption; False if another process made it first."""
    ecr = client(access, "ecr")
    encryption = {"encryptionType": "KMS", **({"kmsKey": spec.kms_key} if spec.kms_key else {})}
    try:
        _call(f"create {repository} in {account}", ecr.create_repository, registryId=account,
              repositoryName=repository, **_mutability(spec), imageScanningConfiguration={"scanOnPush": True},
              encryptionConfiguration=encryption, tags=[{"Key": "managed-by", "Value": "moka-images"}])
    except ServiceError as exc:
        cause = exc.__cause__
        if isinstance(cause, ClientError) and _code(cause) == "RepositoryAlreadyExistsException":
            return False
        raise
    return True


def _mutability(spec: RepositorySpec) -> dict[str, Any]:
    return {"imageTagMutability": spec.mutability, "imageTagMutabilityExclusionFilters": spec.exclusion_filters}


def set_tag_mutability(access: AwsAccess, account: str, repository: str, spec: RepositorySpec) -> None:
    """Put the tag mutability rule and its exclusion filters."""
    _call("set tag mutability", client(access, "ecr").put_image_tag_mutability, registryId=account,
          repositoryName=repository, **_mutability(spec))


def turn_on_scan_on_push(access: AwsAccess, account: str, repository: str) -> None:
    """ECR's basic scan of every pushed image."""
    _call("turn on scan on push", client(access, "ecr").put_image_scanning_configuration, registryId=account,
          repositoryName=repository, imageScanningConfiguration={"scanOnPush": True})


def set_lifecycle_policy(access: AwsAccess, account: str, repository: str, text: str) -> None:
    """Replace the repository's lifecycle policy."""
    _call("set the lifecycle policy", client(access, "ecr").put_lifecycle_policy, registryId=account,
          repositoryName=repository, lifecyclePolicyText=text)


# --- account settings -----------------------------------------------------------------------------------
BLOB_MOUNTING = "BLOB_MOUNTING"  # cross-repository blob mounts (ECR mounts only between same-encryption repositories)
_SETTING_ATTEMPTS = 1  # nice to have, and idempotent: no backoff for an endpoint that answers 500 (moto)
_UNSUPPORTED_CODES = {"UnknownOperationException", "InvalidAction", "NotImplemented"}


class Unsupported(ServiceError):
    """The endpoint does not implement the operation (moto 5.2 answers account settings with HTTP 500)."""


def _setting_call(access: AwsAccess, operation: str, **kw: Any) -> dict[str, Any]:
    ecr = client(access, "ecr", attempts=_SETTING_ATTEMPTS)
    try:
        return dict(getattr(ecr, operation)(**kw))
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        name = ecr.meta.method_to_api_mapping.get(operation, operation)
        if _code(exc) in _UNSUPPORTED_CODES or (access.endpoint and status in (500, 501)):
            raise Unsupported(f"the ECR endpoint does not implement {name}: {exc}") from exc
        denied = "AccessDenied" in _code(exc)
        raise ServiceError(f"ECR: {name} failed: {exc}", "the role needs ecr:GetAccountSetting and "
                                                         "ecr:PutAccountSetting" if denied else None) from exc
    except BotoCoreError as exc:
        raise ServiceError(f"ECR: cannot {operation}: {exc}", "is the endpoint up? (`moka-images dev up`)") from exc


def get_account_setting(access: AwsAccess, name: str) -> str:
    """An account setting's value (e.g. ENABLED) in the account `access` acts in; Unsupported, ServiceError."""
    return str(_setting_call(access, "get_account_setting", name=name)["value"])


def put_account_setting(access: AwsAccess, name: str, value: str) -> str:
    """Set an account setting in the account `access` acts in; returns the value ECR now holds."""
    return str(_setting_call(access, "put_account_setting", name=name, value=value)["value"])
