"""Where data lives: the one place that turns a URI into a filesystem and a path.

Everything else passes URIs around (they pickle to Ray workers and print well) and
asks this module for a :class:`Location` when it needs to touch bytes. How to reach S3
(region, endpoint, where credentials come from) is decided once, where the flow runs,
and travels with the work in :class:`S3Settings`, given to :func:`resolve` and carried
by every :class:`Location` (which pickles with it to Ray workers). The credentials
themselves never travel: every process resolves them for itself (:func:`credentials`)
and resolves them again when S3 refuses them.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import posixpath
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import pyarrow.fs as pafs

from tasks.errors import InputError

if TYPE_CHECKING:
    from prefect_aws import AwsCredentials

T = TypeVar("T")

# How often the AWS SDKs try a request before giving up (throttling, 5xx, resets), unless
# AWS_MAX_ATTEMPTS, the AWS SDKs' own setting, says otherwise where the request is made.
S3_MAX_ATTEMPTS = 6


def s3_max_attempts() -> int:
    """``AWS_MAX_ATTEMPTS`` of this process's environment (a node's, on a cluster), else
    :data:`S3_MAX_ATTEMPTS`; refused by name unless a whole number of at least 1."""
    value = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not value:
        return S3_MAX_ATTEMPTS
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"AWS_MAX_ATTEMPTS must be a whole number of at least 1, got {value!r}")
    return int(value)


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3: region, endpoint (for S3-compatible stores), and where each
    process gets its credentials.

    Without ``credentials_block``, from the standard AWS chain of the process doing the
    I/O (environment, profile, SSO, web identity/IRSA, container or instance role). With
    it, from that saved prefect-aws ``AwsCredentials`` block, which each process loads by
    id from the Prefect API at ``prefect_api_url``. Nothing here is secret.
    """

    region: str | None = None
    endpoint_url: str | None = None
    credentials_block: str | None = None
    prefect_api_url: str | None = None

    @classmethod
    def from_environment(cls, region: str | None = None) -> S3Settings:
        """Region and endpoint from the standard AWS variables of this process."""
        env = os.environ
        return cls(
            region=region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        )

    @classmethod
    def from_block(cls, block: AwsCredentials, region: str | None = None) -> S3Settings:
        """Settings that load a saved prefect-aws ``AwsCredentials`` block in each process."""
        from prefect.settings import get_current_settings

        block_id = saved_block_id(block)
        if block_id is None:
            raise InputError(
                "aws_credentials: save the AwsCredentials block first "
                "(AwsCredentials(...).save('name')); every Ray process loads it from the "
                "Prefect API, so its keys never travel with the work"
            )
        params = block.aws_client_parameters
        return cls(
            region=region or block.region_name,
            endpoint_url=params.endpoint_url if params else None,
            credentials_block=block_id,
            prefect_api_url=get_current_settings().api.url,
        )

    def credentials(self) -> Any:
        """This process's current credentials (botocore's frozen triple), or None."""
        found = _session(self).get_credentials()
        return found.get_frozen_credentials() if found is not None else None

    def filesystem(self) -> pafs.S3FileSystem:
        """pyarrow's S3 filesystem with this process's current credentials."""
        return _s3_filesystem(self, self.credentials())

    def client(self, region: str | None = None) -> Any:
        """A boto3 S3 client (its credentials refresh themselves as they expire)."""
        from botocore.config import Config

        return _session(self).client(
            "s3",
            region_name=region or self.region,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"mode": "standard", "total_max_attempts": s3_max_attempts()}),
        )


def saved_block_id(block: Any) -> str | None:
    """The id a saved Prefect block is referred to by (as in a deployment's parameters),
    or None for a block never saved."""
    from prefect.exceptions import PrefectException

    try:
        reference = block.model_dump(mode="json", context={"serialize_blocks_as_references": True})
    except PrefectException:  # BlockNotSavedError
        return None
    return reference["$ref"]["block_document_id"]


# Credentials belong to the process that uses them (each resolves its own, by design):
# one session per settings, kept until forget_credentials(), like the clients below.
_SESSIONS: dict[S3Settings, Any] = {}
_SESSIONS_LOCK = threading.Lock()


def _session(settings: S3Settings) -> Any:
    """This process's boto3 session for ``settings``, made once and kept until
    :func:`forget_credentials`; botocore refreshes temporary credentials before they expire."""
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(settings)
        if session is None:
            session = _SESSIONS[settings] = _new_session(settings)
        return session


def _new_session(settings: S3Settings) -> Any:
    import boto3
    from botocore.exceptions import ProfileNotFound

    if settings.credentials_block:
        from prefect.settings import PREFECT_API_URL, temporary_settings
        from prefect_aws import AwsCredentials

        # Ray Data's workers have no Prefect context: point them at the flow's API.
        api = {PREFECT_API_URL: settings.prefect_api_url} if settings.prefect_api_url else {}
        with temporary_settings(updates=api):
            block = AwsCredentials.load_from_ref(settings.credentials_block)
        return block.get_boto3_session()
    try:
        return boto3.Session()
    except ProfileNotFound as exc:
        raise InputError(
            f"AWS_PROFILE {os.environ.get('AWS_PROFILE')!r} is not configured"
        ) from exc


def forget_credentials() -> None:
    """Drop this process's credentials, sessions and clients: the next use resolves
    them again (a rotated key, a block saved with new keys, a refreshed token)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()
    _s3_filesystem_with.cache_clear()
    _s3_client.cache_clear()


# S3's refusals: 403s, and the codes of keys that are unknown, wrong or expired.
# A HEAD request's 403 has no body, so pyarrow can only say ACCESS_DENIED.
_S3_DENIED = re.compile(
    r"ACCESS_DENIED|AccessDenied|HTTP status 403|INVALID_ACCESS_KEY_ID|InvalidAccessKeyId|"
    r"SignatureDoesNotMatch|SIGNATURE_DOES_NOT_MATCH|ExpiredToken|EXPIRED_TOKEN|"
    r"InvalidToken|TokenRefreshRequired|RequestExpired"
)


def refused(exc: BaseException) -> bool:
    """True if S3 refused the request's credentials or their permissions."""
    return bool(_S3_DENIED.search(str(exc)))


# Whether an outer with_fresh_credentials already retries this call chain on a refusal.
# Never copied anywhere: a new thread (or Ray worker) starts without one and retries itself.
_REFRESHING: contextvars.ContextVar[bool] = contextvars.ContextVar("refreshing", default=False)


def with_fresh_credentials(fn: Callable[[], T]) -> T:
    """``fn()``, and once more with credentials resolved afresh if S3 refused the ones in
    use: a key rotated or a token expired since this process resolved them. ``fn`` must
    be safe to run twice. A refusal that fresh credentials do not cure is raised.

    Nested calls (a storage helper inside a part) leave the retry to the outermost one,
    so a refusal costs one more attempt, not one per level.
    """
    if _REFRESHING.get():
        return fn()
    token = _REFRESHING.set(True)
    try:
        try:
            return fn()
        except Exception as exc:
            if not refused(exc):
                raise
            log.warning("S3 refused the credentials in use (%s); resolving them again", exc)
            forget_credentials()
        return fn()
    finally:
        _REFRESHING.reset(token)


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
            return (self.s3 or S3Settings.from_environment()).filesystem()
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


def resolve(uri: str, s3: S3Settings | None = None) -> Location:
    """Parse a user-given URI: a plain path, ``file://`` or ``s3://``; an S3 location
    reaches S3 as ``s3`` says (None: as this process's environment says).

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
        if "@" in parsed.netloc:  # not echoed: what precedes @ would be a secret
            raise InputError(
                "an s3:// URI must not hold credentials (s3://user:secret@bucket/...): use "
                "the AWS environment or an aws_credentials block"
            )
        if not parsed.netloc:
            raise InputError(f"{uri}: an s3:// URI needs a bucket name")
        key = parsed.path.strip("/")
        path = f"{parsed.netloc}/{key}" if key else parsed.netloc
        return Location("s3", path, s3 or S3Settings.from_environment())
    raise InputError(
        f"{uri}: unsupported scheme {parsed.scheme!r}; use a local path, file:// or s3://"
    )


def as_location(where: Location | str) -> Location:
    """``where`` as a location: a :class:`Location` as it is (its S3 settings with it), a
    URI resolved with this process's environment."""
    return where if isinstance(where, Location) else resolve(where)


def is_s3(uri: str) -> bool:
    """Whether ``uri`` is on S3 (``s3://...``, a bare ``s3://`` included): the one place
    that tells S3 from local storage."""
    return uri.strip().lower().startswith("s3:")


def is_new_bucket(uri: str) -> bool:
    """A bare ``s3://``: a bucket named per run (the seed's ``ray-on-aws-<epoch>``)."""
    return uri.strip().lower().rstrip("/") == "s3:"


def short_name(uri: str) -> str:
    """The last two segments of a location, e.g. ``local-bucket/raw``: how run names and
    artifacts refer to a dataset."""
    return "/".join(uri.strip().rstrip("/").split("/")[-2:]) or uri


def settings_for(
    uris: list[str], aws_credentials: AwsCredentials | None = None, region: str | None = None
) -> S3Settings | None:
    """The S3 settings a flow's work needs: from the prefect-aws block if given, else
    from this process's AWS environment if any URI is on S3, else none."""
    if aws_credentials is not None:
        return S3Settings.from_block(aws_credentials, region)
    if any(is_s3(u) for u in uris):
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


def _s3_filesystem(settings: S3Settings, credentials: Any) -> pafs.S3FileSystem:
    return _s3_filesystem_with(settings, credentials, s3_max_attempts())


@functools.lru_cache(maxsize=8)
def _s3_filesystem_with(settings: S3Settings, credentials: Any, attempts: int) -> pafs.S3FileSystem:
    """pyarrow ignores ``AWS_ENDPOINT_URL`` and knows no credential refresh: both are
    passed in. Keyed by the credentials, so refreshed ones get a filesystem of their own."""
    options: dict[str, Any] = {
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=attempts)
    }
    if settings.region:
        options["region"] = settings.region
    if settings.endpoint_url:
        parsed = urlparse(settings.endpoint_url)
        options["endpoint_override"] = parsed.netloc or settings.endpoint_url
        options["scheme"] = parsed.scheme or "https"
    if credentials is not None:
        options["access_key"] = credentials.access_key
        options["secret_key"] = credentials.secret_key
        if credentials.token:
            options["session_token"] = credentials.token
    return pafs.S3FileSystem(**options)


@functools.lru_cache(maxsize=8)
def _s3_client(settings: S3Settings) -> Any:
    return settings.client()


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


def _s3_retried(loc: Location, fn: Callable[[], T]) -> T:
    return with_fresh_credentials(fn) if loc.scheme == "s3" else fn()


def info(loc: Location) -> pafs.FileInfo:
    return _s3_retried(loc, lambda: loc.fs.get_file_info(loc.path))


def exists(loc: Location) -> bool:
    return info(loc).type != pafs.FileType.NotFound


def list_files(loc: Location) -> list[pafs.FileInfo]:
    """Every file below ``loc``, recursively, sorted by path."""
    selector = pafs.FileSelector(loc.path, recursive=True, allow_not_found=True)
    found = _s3_retried(loc, lambda: loc.fs.get_file_info(selector))
    return sorted((f for f in found if f.type == pafs.FileType.File), key=lambda f: f.path)


def list_dirs(loc: Location) -> list[str]:
    """The names of the directories (S3: common prefixes) right below ``loc``, sorted."""
    selector = pafs.FileSelector(loc.path, recursive=False, allow_not_found=True)
    found = _s3_retried(loc, lambda: loc.fs.get_file_info(selector))
    return sorted(f.base_name for f in found if f.type == pafs.FileType.Directory)


def read_bytes(loc: Location) -> bytes:
    def read() -> bytes:
        with loc.fs.open_input_stream(loc.path) as stream:
            return stream.read()

    return _s3_retried(loc, read)


def read_range(loc: Location, offset: int, size: int) -> bytes:
    """``size`` bytes of the file at ``loc`` from ``offset`` (one ranged GET on S3)."""

    def read() -> bytes:
        with loc.fs.open_input_file(loc.path) as handle:
            data = handle.read_at(size, offset)
        if len(data) != size:
            raise OSError(f"{loc.uri}: {size} bytes at {offset} asked, {len(data)} read")
        return data

    return _s3_retried(loc, read) if size else b""


def write_bytes_atomic(loc: Location, data: bytes) -> None:
    """Write ``data`` so that readers see either nothing or all of it.

    An S3 PUT is atomic by itself; locally we write a temporary sibling and rename.
    """
    if loc.scheme != "file":

        def put() -> None:
            with loc.fs.open_output_stream(loc.path) as out:
                out.write(data)

        _s3_retried(loc, put)
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
        settings = loc.s3 or S3Settings.from_environment()
        _s3_retried(loc, lambda: _s3_client(settings).delete_object(Bucket=bucket, Key=key))
        return
    with contextlib.suppress(FileNotFoundError):
        loc.fs.delete_file(loc.path)


def remove_empty_dir(loc: Location) -> None:
    """Remove a local directory if nothing is left in it; S3 has none to remove."""
    if loc.scheme == "file":
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(loc.path)  # fails, and is left, if anything is still inside


def make_dirs(loc: Location) -> None:
    """Create a local directory; S3 has no directories, so nothing to do there."""
    if loc.scheme == "file":
        os.makedirs(loc.path, exist_ok=True)
