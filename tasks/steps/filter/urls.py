"""Filter ``url``: documents whose URL's host is a blocked domain or one of its
subdomains (datatrove's ``URLFilter``, dolma's blocklist taggers).

A domain blocks itself and every name under it: ``blocked.com`` blocks
``blocked.com`` and ``www.blocked.com``, not ``notblocked.com``. Domains and hosts are
compared lower-cased, IDN as punycode (Python's IDNA 2003 codec: ``ß`` is ``ss``),
without a trailing dot. A host is what a browser finds after ``scheme://``
(``urllib.parse.urlsplit``, with ``\\`` read as ``/`` in web URLs, percent escapes and
ideographic full stops decoded): a URL without one (``example.com/page``, ``mailto:``),
an empty or null URL, or one that does not parse (``http://[::1``) has no host; such
rows are counted and kept.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa

from tasks.errors import InputError
from tasks.store import storage
from tasks.store.storage import S3Settings

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$")


def domain(raw: str, where: str) -> str:
    """A blocklist entry as compared: lower-cased, without a leading ``*.`` or ``.``
    and a trailing ``.``; refused, naming ``where``, unless it is a domain name."""
    name = raw.strip().lower()
    name = name.removeprefix("*.").removeprefix(".").removesuffix(".")
    try:
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        name = ""
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InputError(f"{where}: {raw!r} is not a domain name (say blocked.com)")
    return name


def read_domains(text: str, where: str) -> frozenset[str]:
    """A blocklist file's domains: one a line; blank lines and ``#`` comments skipped."""
    found = set()
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            found.add(domain(entry, f"{where}, line {number}"))
    return frozenset(found)


# Full stops IDNA reads as "." (ideographic, fullwidth, halfwidth).
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
# Schemes whose URLs a browser reads with "\\" as "/" (the WHATWG URL standard).
_SPECIAL = ("http", "https", "ws", "wss", "ftp")


def host(url: str | None) -> str | None:
    """The URL's host as a browser finds it, lower-cased, percent-decoded, IDN as
    punycode, without a trailing dot (None: it has none)."""
    if not url:
        return None
    url = url.strip().lstrip("\ufeff").strip()
    if url.split(":", 1)[0].lower() in _SPECIAL:
        url = url.replace("\\", "/")
    try:
        found = urlsplit(url).hostname
    except ValueError:
        return None
    if not found:
        return None
    found = unquote(found).translate(_DOTS).lower().rstrip(".")
    if not found.isascii():
        try:
            found = found.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return found or None


def blocked_by(name: str, domains: frozenset[str]) -> str | None:
    """The blocked domain ``name`` is or is under (the widest), else None."""
    labels = name.split(".")
    for at in range(len(labels) - 1, -1, -1):
        suffix = ".".join(labels[at:])
        if suffix in domains:
            return suffix
    return None


def judge(urls: pa.Array, domains: frozenset[str]) -> tuple[np.ndarray, list[str | None], int]:
    """Per row: whether its host is blocked, the blocked domain (None if not), and how
    many rows have no host (kept)."""
    hosts: dict[str | None, str | None] = {}
    matched: list[str | None] = []
    without = 0
    for url in urls.to_pylist():
        name = host(url) if isinstance(url, str) else None
        if name is None:
            without += 1
            matched.append(None)
            continue
        if name not in hosts:
            hosts[name] = blocked_by(name, domains)
        matched.append(hosts[name])
    return np.array([m is not None for m in matched], bool), matched, without


def blocklist(given: tuple[str, ...] | str, s3: S3Settings | None) -> tuple[frozenset[str], dict]:
    """The blocked domains (a list, or the URI of a file of them, read as ``s3`` says)
    and what the manifest records of them: where they came from, how many, a digest."""
    if isinstance(given, str):
        loc = storage.resolve(given, s3)
        try:
            with storage.explained(loc, "read"):
                raw = storage.read_bytes(loc)
        except OSError as exc:
            raise InputError(
                f"filters.url.block_domains: cannot read {loc.uri} ({exc}); a string is the "
                "URI of a file of domains, a list is the domains themselves"
            ) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"filters.url.block_domains {loc.uri}: not UTF-8 ({exc})") from None
        domains = read_domains(text, f"filters.url.block_domains {loc.uri}")
        source = loc.uri
    else:
        domains = frozenset(domain(name, "filters.url.block_domains") for name in given)
        source = "the list given"
    if not domains:
        raise InputError(f"filters.url.block_domains ({source}) holds no domain")
    listed = "\n".join(sorted(domains)).encode()
    return domains, {
        "block_domains": source,
        "domains": len(domains),
        "sha256": hashlib.sha256(listed).hexdigest(),
    }


def as_table(domains: frozenset[str]) -> pa.Table:
    """The domains as a table (one column, ``domain``), as the run stages them."""
    return pa.table({"domain": pa.array(sorted(domains), pa.string())})


def from_table(table: pa.Table) -> frozenset[str]:
    """The domains of a staged table."""
    return frozenset(table.column("domain").to_pylist())
