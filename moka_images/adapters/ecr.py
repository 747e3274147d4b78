"""ECR control plane through boto3: the same code talks to real ECR or to a moto server by endpoint alone."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..config.settings import EnvironmentSettings, Settings
from ..errors import ServiceError

# Any credentials do for the local moto server; real AWS uses the default credential chain.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "mokalocal", "aws_secret_access_key": "mokalocal"}


@dataclass(frozen=True)
class RegistryCredentials:
    """What a registry accepts: ECR's `AWS` user and the authorization token's password."""

    username: str
    password: str
    expires_at: datetime | None


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
    return RegistryCredentials(user, password, data.get("expiresAt"))
