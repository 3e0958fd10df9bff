"""Where data lives: the one place that turns a URI into a filesystem and a path.

Everything else passes URIs around (they pickle to Ray workers and print well) and
asks this module for a :class:`Location` when it needs to touch bytes. S3 settings
(region, endpoint, credentials) are captured once, where the flow runs, and travel with
the work in :class:`S3Settings`; :func:`using_s3` makes them current for a block of code.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import posixpath
import re
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from tasks.errors import InputError

if TYPE_CHECKING:
    from prefect_aws import AwsCredentials

# How often the AWS SDKs try a request before giving up (throttling, 5xx, resets).
S3_MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3: region, endpoint (for S3-compatible stores) and credentials.

    Credentials left empty mean "the standard AWS chain of the process doing the I/O"
    (environment, profile, instance role). Secrets are kept out of ``repr``.
    """

    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, region: str | None = None) -> S3Settings:
        """The standard AWS variables and profile of this process."""
        env = os.environ
        settings = cls(
            region=region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
            access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            session_token=env.get("AWS_SESSION_TOKEN"),
        )
        if settings.access_key_id is None and env.get("AWS_PROFILE"):
            return settings._with_session_credentials(_boto3_session(profile=env["AWS_PROFILE"]))
        return settings

    @classmethod
    def from_block(cls, block: AwsCredentials, region: str | None = None) -> S3Settings:
        """The settings of a prefect-aws ``AwsCredentials`` block (saved or not)."""
        params = block.aws_client_parameters
        settings = cls(
            region=region or block.region_name,
            endpoint_url=params.endpoint_url if params else None,
        )
        return settings._with_session_credentials(block.get_boto3_session())

    def _with_session_credentials(self, session: Any) -> S3Settings:
        credentials = session.get_credentials()
        if credentials is None:
            return self
        frozen = credentials.get_frozen_credentials()
        return S3Settings(
            region=self.region or session.region_name,
            endpoint_url=self.endpoint_url,
            access_key_id=frozen.access_key,
            secret_access_key=frozen.secret_key,
            session_token=frozen.token,
        )

    def filesystem(self) -> pafs.S3FileSystem:
        """pyarrow's S3 filesystem; pyarrow ignores ``AWS_ENDPOINT_URL``, so pass it."""
        options: dict[str, Any] = {
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS)
        }
        if self.region:
            options["region"] = self.region
        if self.endpoint_url:
            parsed = urlparse(self.endpoint_url)
            options["endpoint_override"] = parsed.netloc or self.endpoint_url
            options["scheme"] = parsed.scheme or "https"
        if self.access_key_id and self.secret_access_key:
            options["access_key"] = self.access_key_id
            options["secret_key"] = self.secret_access_key
            if self.session_token:
                options["session_token"] = self.session_token
        return pafs.S3FileSystem(**options)

    def client(self) -> Any:
        """A boto3 S3 client with the same settings (through prefect-aws)."""
        from prefect_aws import AwsCredentials
        from prefect_aws.client_parameters import AwsClientParameters

        credentials = AwsCredentials(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            region_name=self.region,
            aws_client_parameters=AwsClientParameters(
                endpoint_url=self.endpoint_url,
                config={"retries": {"mode": "standard", "max_attempts": S3_MAX_ATTEMPTS}},
            ),
        )
        return credentials.get_s3_client()

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def _boto3_session(profile: str) -> Any:
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=profile)
    except ProfileNotFound as exc:
        raise InputError(f"AWS_PROFILE {profile!r} is not configured") from exc


_CURRENT_S3: contextvars.ContextVar[S3Settings | None] = contextvars.ContextVar(
    "current_s3", default=None
)


@contextlib.contextmanager
def using_s3(settings: S3Settings | None) -> Iterator[None]:
    """Make ``settings`` the S3 settings of every location resolved inside the block."""
    token = _CURRENT_S3.set(settings)
    try:
        yield
    finally:
        _CURRENT_S3.reset(token)


def current_s3() -> S3Settings:
    """The S3 settings in force: the block's, else this process's environment."""
    return _CURRENT_S3.get() or S3Settings.from_environment()


@dataclass(frozen=True)
class Location:
    """A file or directory: ``scheme`` plus ``path`` inside that filesystem."""

    scheme: str
    path: str  # absolute local path, or "bucket/key" for S3
    s3: S3Settings | None = field(default=None, compare=False, repr=False)

    @property
    def uri(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}"
        return f"{self.scheme}://{self.path}"

    @property
    def fs(self) -> pafs.FileSystem:
        if self.scheme == "s3":
            return _s3_filesystem(self.s3 or current_s3())
        return _local_filesystem()

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def child(self, relative: str) -> Location:
        """The location ``relative`` below this one (a POSIX relative path)."""
        if relative.startswith("/") or ".." in relative.split("/"):
            raise InputError(f"{relative!r} is not a relative path inside {self.uri}")
        return Location(self.scheme, posixpath.join(self.path, relative), self.s3)

    def relative_to(self, root: Location) -> str:
        return posixpath.relpath(self.path, root.path)

    def contains(self, other: Location) -> bool:
        """True if ``other`` is this location or lies below it."""
        if self.scheme != other.scheme:
            return False
        return other.path == self.path or other.path.startswith(self.path.rstrip("/") + "/")

    def __str__(self) -> str:
        return self.uri


def resolve(uri: str) -> Location:
    """Parse a user-given URI: a plain path, ``file://`` or ``s3://``.

    Local paths are made absolute here, in the process that received them, because
    Ray workers run in other working directories.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InputError(f"expected a path or URI, got {uri!r}")
    uri = uri.strip()
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
        path = parsed.path if parsed.scheme == "file" else uri
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise InputError(f"{uri}: file:// URIs must not name a host")
        return Location("file", os.path.abspath(os.path.expanduser(path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise InputError(f"{uri}: an s3:// URI needs a bucket name")
        key = parsed.path.strip("/")
        path = f"{parsed.netloc}/{key}" if key else parsed.netloc
        return Location("s3", path, current_s3())
    raise InputError(
        f"{uri}: unsupported scheme {parsed.scheme!r}; use a local path, file:// or s3://"
    )


def settings_for(
    uris: list[str], aws_credentials: AwsCredentials | None = None, region: str | None = None
) -> S3Settings | None:
    """The S3 settings a flow's work needs: from the prefect-aws block if given, else
    from this process's AWS environment if any URI is on S3, else none."""
    if aws_credentials is not None:
        return S3Settings.from_block(aws_credentials, region)
    if any(u.strip().startswith("s3:") for u in uris):
        return S3Settings.from_environment(region)
    return None


GLOB_CHARS = "*?["


def split_glob(uri: str) -> tuple[str, str | None]:
    """``(base, pattern)`` of a URI with glob characters, else ``(uri, None)``.

    The base is everything before the path segment holding the first ``*``, ``?`` or
    ``[`` (``s3://b/c4/en`` for ``s3://b/c4/en/c4-train.*.json.gz``); the pattern is
    the rest, matched against paths relative to the base.
    """
    if not isinstance(uri, str):  # resolve() says what is wrong with it
        return uri, None
    uri = uri.strip()
    first = min((i for i in (uri.find(c) for c in GLOB_CHARS) if i >= 0), default=-1)
    if first < 0:
        return uri, None
    cut = uri.rfind("/", 0, first)
    base, pattern = (uri[:cut], uri[cut + 1 :]) if cut >= 0 else (".", uri)
    if base.endswith(":/") or base.endswith("://"):  # s3://* names no bucket
        raise InputError(f"{uri}: a glob needs a bucket or directory before its pattern")
    return base, pattern


def canonical_uri(uri: str) -> str:
    """The absolute, normalised form of ``uri`` (what manifests and logs show); a glob
    keeps its pattern after its absolute base."""
    base, pattern = split_glob(uri)
    root = resolve(base).uri
    return f"{root.rstrip('/')}/{pattern}" if pattern else root


@functools.cache
def _local_filesystem() -> pafs.FileSystem:
    return pafs.LocalFileSystem()


@functools.lru_cache(maxsize=8)
def _s3_filesystem(settings: S3Settings) -> pafs.FileSystem:
    return settings.filesystem()


@functools.lru_cache(maxsize=8)
def _s3_client(settings: S3Settings) -> Any:
    return settings.client()


_S3_DENIED = re.compile(
    r"ACCESS_DENIED|AccessDenied|HTTP status 403|InvalidAccessKeyId|SignatureDoesNotMatch"
)
_S3_NO_BUCKET = re.compile(r"NoSuchBucket|NO_SUCH_BUCKET|Bucket '[^']*' not found")


def explain(exc: OSError, loc: Location, action: str) -> OSError:
    """S3's terse permission and missing-bucket errors as ones that say what is missing
    (and, being PermissionError / FileNotFoundError, are not retried); others as they are."""
    if isinstance(exc, (PermissionError, FileNotFoundError)) or loc.scheme != "s3":
        return exc
    message = str(exc)
    first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    if _S3_DENIED.search(message):
        return PermissionError(
            f"access denied while trying to {action} {loc.uri}: the AWS credentials in use "
            f"need permission for it ({first_line})"
        )
    if _S3_NO_BUCKET.search(message):
        return FileNotFoundError(
            f"bucket {loc.bucket} does not exist (while trying to {action} {loc.uri}); "
            "create it with the create-bucket flow"
        )
    return exc


@contextlib.contextmanager
def explained(loc: Location, action: str) -> Iterator[None]:
    """Raise :func:`explain`'s version of any OSError from the block."""
    try:
        yield
    except OSError as exc:
        better = explain(exc, loc, action)
        if better is exc:
            raise
        raise better from exc


def info(loc: Location) -> pafs.FileInfo:
    return loc.fs.get_file_info(loc.path)


def exists(loc: Location) -> bool:
    return info(loc).type != pafs.FileType.NotFound


def list_files(loc: Location) -> list[pafs.FileInfo]:
    """Every file below ``loc``, recursively, sorted by path."""
    selector = pafs.FileSelector(loc.path, recursive=True, allow_not_found=True)
    found = [f for f in loc.fs.get_file_info(selector) if f.type == pafs.FileType.File]
    return sorted(found, key=lambda f: f.path)


def read_bytes(loc: Location) -> bytes:
    with loc.fs.open_input_stream(loc.path) as stream:
        return stream.read()


def write_bytes_atomic(loc: Location, data: bytes) -> None:
    """Write ``data`` so that readers see either nothing or all of it.

    An S3 PUT is atomic by itself; locally we write a temporary sibling and rename.
    """
    if loc.scheme != "file":
        with loc.fs.open_output_stream(loc.path) as out:
            out.write(data)
        return
    os.makedirs(posixpath.dirname(loc.path), exist_ok=True)
    tmp = f"{loc.path}.tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, loc.path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def delete_file(loc: Location) -> None:
    """Delete one file if it exists."""
    if loc.scheme == "s3":
        # Not through pyarrow: after a delete it recreates the parent "directory" as an
        # empty marker object, which would be a stray object beside the dataset.
        bucket, _, key = loc.path.partition("/")
        _s3_client(loc.s3 or current_s3()).delete_object(Bucket=bucket, Key=key)
        return
    with contextlib.suppress(FileNotFoundError):
        loc.fs.delete_file(loc.path)


def make_dirs(loc: Location) -> None:
    """Create a local directory; S3 has no directories, so nothing to do there."""
    if loc.scheme == "file":
        os.makedirs(loc.path, exist_ok=True)
