"""Step 1 of the seed: make sure the bucket exists (an S3 bucket or a local directory)."""

from __future__ import annotations

import ipaddress
import os
import re
import time

from tasks.errors import InputError
from tasks.store import storage
from tasks.store.storage import Location

SEED_BUCKET_PREFIX = "ray-on-aws-"

# S3's general purpose bucket naming rules, each with the sentence that explains it.
_NAME_RULES: list[tuple[str, object]] = [
    ("must be 3 to 63 characters long", lambda n: 3 <= len(n) <= 63),
    (
        "may contain only lowercase letters, digits, dots (.) and hyphens (-)",
        lambda n: re.fullmatch(r"[a-z0-9.-]*", n) is not None,
    ),
    ("must begin and end with a letter or digit", lambda n: n[:1].isalnum() and n[-1:].isalnum()),
    ("must not contain two adjacent dots", lambda n: ".." not in n),
    ("must not be formatted as an IP address", lambda n: not _is_ip(n)),
    (
        "must not start with xn--, sthree- or amzn-s3-demo-",
        lambda n: not n.startswith(("xn--", "sthree-", "amzn-s3-demo-")),
    ),
    (
        "must not end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3",
        lambda n: not n.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")),
    ),
]


def _is_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def seed_bucket_name(now: float | None = None) -> str:
    """The seed's naming: ``ray-on-aws-<epoch seconds>``."""
    return f"{SEED_BUCKET_PREFIX}{int(time.time() if now is None else now)}"


def check_bucket_name(name: str) -> None:
    """Raise naming the first S3 naming rule ``name`` breaks."""
    for rule, holds in _NAME_RULES:
        if not holds(name):  # type: ignore[operator]
            raise InputError(f"invalid S3 bucket name {name!r}: a bucket name {rule}")


def bucket_location(bucket_uri: str, s3: storage.S3Settings | None = None) -> Location:
    """Parse ``bucket_uri`` (reached as ``s3`` says); a bare ``s3://`` gets the seed's
    name. Checks S3 names before anything talks to S3."""
    if storage.is_new_bucket(bucket_uri):
        bucket_uri = f"s3://{seed_bucket_name()}"
    loc = storage.resolve(bucket_uri, s3)
    if loc.scheme == "s3":
        name, _, prefix = loc.path.partition("/")
        check_bucket_name(name)
        if prefix.strip("/"):
            raise InputError(f"bucket_uri {bucket_uri} must name a bucket only, without a prefix")
    return loc


def ensure_local_bucket(loc: Location) -> bool:
    """Create the directory if needed; True if it was created."""
    if os.path.isfile(loc.path):
        raise InputError(f"bucket_uri {loc.uri} is a file, not a directory")
    created = not os.path.isdir(loc.path)
    os.makedirs(loc.path, exist_ok=True)
    return created


def ensure_s3_bucket(loc: Location, region: str | None, tags: dict[str, str] | None) -> bool:
    """Create a private, encrypted bucket unless we already own it; True if created.

    An existing bucket of ours is left exactly as it is.
    """
    from botocore.exceptions import ClientError

    settings = loc.s3 or storage.S3Settings.from_environment()
    region = region or settings.region or "us-east-1"
    client = settings.client(region)
    request: dict = {"Bucket": loc.bucket}
    # us-east-1 is the one region that refuses an explicit LocationConstraint.
    if region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**request)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "BucketAlreadyOwnedByYou":
            return False
        if code == "BucketAlreadyExists":
            raise InputError(
                f"bucket {loc.bucket} already exists and belongs to another account; "
                "choose another name"
            ) from exc
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise PermissionError(
                f"cannot create bucket {loc.bucket}: the AWS credentials in use need "
                f"s3:CreateBucket ({code})"
            ) from exc
        raise
    client.put_public_access_block(
        Bucket=loc.bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    client.put_bucket_encryption(
        Bucket=loc.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    if tags:
        client.put_bucket_tagging(
            Bucket=loc.bucket,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]},
        )
    return True


def ensure_bucket(
    bucket_uri: str,
    region: str | None = None,
    tags: dict[str, str] | None = None,
    s3: storage.S3Settings | None = None,
) -> dict[str, object]:
    """Idempotently create the bucket (on S3 as ``s3`` says); report its URI and whether
    it was new."""
    loc = bucket_location(bucket_uri, s3)
    if loc.scheme == "s3":
        created = ensure_s3_bucket(loc, region, tags)
    else:
        created = ensure_local_bucket(loc)
    return {"bucket_uri": loc.uri, "created": created}
