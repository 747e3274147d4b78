"""S3 through boto3, for the local stand-in's smoke bucket: the same client code as ECR, by endpoint alone."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from moka_images.adapters import ecr
from moka_images.errors import ServiceError


def ensure_bucket(access: ecr.AwsAccess, bucket: str) -> None:
    """Create `bucket` unless it is there (idempotent: a bucket we already own is fine)."""
    s3 = ecr.client(access, "s3")
    try:
        if access.region == "us-east-1":  # the one region that refuses a location constraint
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": access.region})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise ServiceError(f"cannot create the smoke bucket {bucket}: {exc}",
                               "is the local stack up? `moka-images dev up`") from exc
    except BotoCoreError as exc:
        raise ServiceError(f"cannot reach S3 for the smoke bucket {bucket}: {exc}",
                           "is the local stack up? `moka-images dev up`") from exc
