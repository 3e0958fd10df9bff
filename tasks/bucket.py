"""Step 1 of the seed: make sure the bucket (or local directory) exists."""

from __future__ import annotations

import os

from tasks import storage
from tasks.errors import InputError
from tasks.storage import Location


def ensure_local_bucket(loc: Location) -> bool:
    """Create the directory if needed; True if it was created."""
    if os.path.isfile(loc.path):
        raise InputError(f"bucket_uri {loc.uri} is a file, not a directory")
    created = not os.path.isdir(loc.path)
    os.makedirs(loc.path, exist_ok=True)
    return created


def ensure_s3_bucket(loc: Location, region: str | None) -> bool:
    """Create the S3 bucket in ``region`` unless we already own it; True if created."""
    from botocore.exceptions import ClientError
    from prefect_aws import AwsCredentials

    bucket = loc.path.split("/", 1)[0]
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    # Empty credentials fall back to boto3's standard chain (environment, profile, role).
    client = AwsCredentials(region_name=region).get_s3_client()
    kwargs: dict = {"Bucket": bucket}
    # us-east-1 is the one region that refuses an explicit LocationConstraint.
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
        return True
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "BucketAlreadyOwnedByYou":
            return False
        if code == "BucketAlreadyExists":
            raise InputError(f"bucket {bucket} already exists and belongs to someone else") from exc
        raise


def ensure_bucket(bucket_uri: str, region: str | None = None) -> dict[str, object]:
    """Idempotently create the bucket; report whether it was new."""
    loc = storage.resolve(bucket_uri)
    if loc.scheme == "s3":
        if "/" in loc.path:
            raise InputError(f"bucket_uri {loc.uri} must name a bucket only, without a prefix")
        created = ensure_s3_bucket(loc, region)
    else:
        created = ensure_local_bucket(loc)
    return {"bucket_uri": loc.uri, "created": created}
