"""Where data lives: the one place that turns a URI into a filesystem and a path.

Everything else passes URIs around (they pickle to Ray workers and print well) and
asks this module for a :class:`Location` when it needs to touch bytes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pafs

from tasks.errors import InputError

SUPPORTED_SCHEMES = ("file", "s3")


@dataclass(frozen=True)
class Location:
    """A file or directory: ``scheme`` plus ``path`` inside that filesystem."""

    scheme: str
    path: str  # absolute local path, or "bucket/key" for S3

    @property
    def uri(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}"
        return f"{self.scheme}://{self.path}"

    @property
    def fs(self) -> pafs.FileSystem:
        return _filesystem(self.scheme)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def child(self, relative: str) -> Location:
        """The location ``relative`` below this one (a POSIX relative path)."""
        if relative.startswith("/") or ".." in relative.split("/"):
            raise InputError(f"{relative!r} is not a relative path inside {self.uri}")
        return Location(self.scheme, posixpath.join(self.path, relative))

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
        return Location("s3", f"{parsed.netloc}/{key}" if key else parsed.netloc)
    raise InputError(
        f"{uri}: unsupported scheme {parsed.scheme!r}; use a local path, file:// or s3://"
    )


def canonical_uri(uri: str) -> str:
    """The absolute, normalised form of ``uri`` (what manifests and logs show)."""
    return resolve(uri).uri


@functools.cache
def _filesystem(scheme: str) -> pafs.FileSystem:
    if scheme == "file":
        return pafs.LocalFileSystem()
    if scheme == "s3":
        # pyarrow reads credentials and region from the standard AWS chain, but not
        # the endpoint variables that S3-compatible stores use; pass those through.
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        options: dict[str, object] = {}
        if endpoint:
            parsed = urlparse(endpoint)
            options["endpoint_override"] = parsed.netloc or endpoint
            options["scheme"] = parsed.scheme or "https"
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            options["region"] = region
        return pafs.S3FileSystem(**options)
    raise InputError(f"unsupported scheme {scheme!r}")


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
    loc.fs.create_dir(posixpath.dirname(loc.path), recursive=True)
    if loc.scheme != "file":
        with loc.fs.open_output_stream(loc.path) as out:
            out.write(data)
        return
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
    with contextlib.suppress(FileNotFoundError):
        loc.fs.delete_file(loc.path)


def make_dirs(loc: Location) -> None:
    loc.fs.create_dir(loc.path, recursive=True)
