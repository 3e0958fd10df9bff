"""Filter ``decontaminate``: documents that share a word n-gram with an evaluation set.

A model trained on its evaluation questions scores falsely high; GPT-3's report removed
training documents sharing a 13-word n-gram with a benchmark item, and datatrove
(``NGramsDecontFilter``) and dolma do the same. Here:

Normalisation
    Text is lower-cased (Unicode's simple case mapping, one character for one), its
    punctuation and symbols (``\\p{P}``, ``\\p{S}``) are removed, and what whitespace
    separates is a word: "Don't stop-now!" is the words ``dont stopnow``. Items and
    documents go through the same compiled pass, so they meet on equal terms.
Items
    A benchmark is a JSON Lines or Parquet file, folder or glob (local or S3); each row's
    ``columns`` are joined with a space into one item, so an n-gram may span a question
    and its answer. An item of fewer than ``ngram`` words has no n-gram: it cannot match
    (the index counts such items).
Index
    Each distinct n-gram is a 64-bit hash (of its words' hashes) with the first benchmark,
    in the order given, that holds it: 10 bytes an n-gram, sorted, plus a directory of
    its top bits (8 bytes a bucket, at most 2**22). It is built once per run, written to
    the run's staging folder as Parquet and read by each part from there (the route any
    node of a cluster has); each worker process keeps the last one it read.
Matching
    A document's n-grams are hashed as its words stream by and looked up in the index;
    the first that matches rejects the document with ``decontaminate.<benchmark>``, and
    its words, normalised, are recorded with the row. Two different n-grams share a hash
    with probability about 2**-64 per pair.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.errors import InputError
from tasks.steps import reading
from tasks.steps.filter.ngrams import mix
from tasks.steps.filter.split import SPACE, UNICODE_P, decode, flags
from tasks.steps.text import string_buffers
from tasks.store import inputs
from tasks.store.storage import S3Settings

if TYPE_CHECKING:
    from tasks.steps.filter.options import Benchmark, Decontaminate

_REMOVED, _SEPARATES = 1, 2  # what a code point is to the normalisation (else: a word's)
_PRIME = np.uint64(0x100000001B3)
_BASE = np.uint64(0x9E3779B97F4A7C15)  # the n-gram hash's polynomial base (odd)
MAX_DIRECTORY_BITS = 22


@functools.cache
def _table() -> tuple[np.ndarray, np.ndarray]:
    """Per code point: its class (removed, separates, else a word's) and its lower case
    (Arrow's ``utf8_lower``, where that is one character)."""
    table = flags()
    points = np.r_[0:0xD800, 0xE000:0x110000]
    data = "".join(map(chr, points.tolist())).encode()
    sizes = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    chars = pa.StringArray.from_buffers(len(points), pa.py_buffer(offsets), pa.py_buffer(data))
    symbol = np.asarray(pc.match_substring_regex(chars, r"^\p{S}$"), bool)
    kind = np.zeros(0x110000, np.uint8)
    kind[points[symbol]] = _REMOVED
    kind[(table & UNICODE_P) != 0] = _REMOVED
    kind[(table & SPACE) != 0] = _SEPARATES
    lowered = pc.utf8_lower(chars)
    changed = np.flatnonzero(~np.asarray(pc.equal(lowered, chars), bool))
    lower = np.arange(0x110000, dtype=np.int32)
    for at, low in zip(changed.tolist(), lowered.take(changed).to_pylist(), strict=True):
        if len(low) == 1:  # (a few lower-case to two characters: kept as they are)
            lower[points[at]] = ord(low)
    return kind, lower


@numba.njit(cache=True)
def _words(
    data: np.ndarray, offsets: np.ndarray, kind: np.ndarray, lower: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The normalised words of each text: per word, its hash (FNV-1a of its lower-cased
    code points without the removed ones, mixed) and its first and end byte; per text,
    where its words start (``starts``, one more than texts)."""
    most = 1
    for r in range(len(offsets) - 1):
        most += (offsets[r + 1] - offsets[r] + 1) // 2  # a word, then a separator
    hashes = np.empty(most, np.uint64)
    spans = np.empty((2, most), np.int64)
    starts = np.empty(len(offsets), np.int64)
    count = 0
    for r in range(len(offsets) - 1):
        starts[r] = count
        i, end = offsets[r], offsets[r + 1]
        h, first, last = np.uint64(0xCBF29CE484222325), -1, -1
        while i <= end:
            if i < end:
                byte = data[i]
                if byte < 0x80:
                    cp, size = np.int64(byte), 1
                else:
                    cp, size = decode(data, i)
                what = kind[cp]
            else:
                what, size = _SEPARATES, 1  # the text's end ends its last word
            if what == _SEPARATES:
                if first >= 0:
                    hashes[count] = mix(h)
                    spans[0, count] = first
                    spans[1, count] = last
                    count += 1
                h, first = np.uint64(0xCBF29CE484222325), -1
            elif what == 0:
                c = lower[cp]
                h = (h ^ np.uint64(c)) * _PRIME
                if first < 0:
                    first = i
                last = i + size
            i += size
    starts[len(offsets) - 1] = count
    return hashes[:count], spans[:, :count], starts


@numba.njit(cache=True)
def _power(n: int) -> np.uint64:
    out = np.uint64(1)
    for _ in range(n):
        out *= _BASE
    return out


@numba.njit(cache=True)
def _ngram_keys(hashes: np.ndarray, starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every n-gram's key (a polynomial of its words' hashes, mixed) and its text's row."""
    total = 0
    for r in range(len(starts) - 1):
        total += max(starts[r + 1] - starts[r] - n + 1, 0)
    keys = np.empty(total, np.uint64)
    rows = np.empty(total, np.int64)
    top = _power(n - 1)
    k = 0
    for r in range(len(starts) - 1):
        rolling = np.uint64(0)
        for w in range(starts[r], starts[r + 1]):
            if w - starts[r] >= n:
                rolling -= hashes[w - n] * top
            rolling = rolling * _BASE + hashes[w]
            if w - starts[r] >= n - 1:
                keys[k] = mix(rolling)
                rows[k] = r
                k += 1
    return keys, rows


@numba.njit(cache=True)
def _first_matches(
    hashes: np.ndarray,
    starts: np.ndarray,
    n: int,
    keys: np.ndarray,
    owners: np.ndarray,
    directory: np.ndarray,
    shift: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the benchmark of its first n-gram in the index (-1: none) and the word
    that n-gram starts at."""
    rows = len(starts) - 1
    owner = np.full(rows, -1, np.int64)
    at = np.full(rows, -1, np.int64)
    top = _power(n - 1)
    for r in range(rows):
        rolling = np.uint64(0)
        for w in range(starts[r], starts[r + 1]):
            if w - starts[r] >= n:
                rolling -= hashes[w - n] * top
            rolling = rolling * _BASE + hashes[w]
            if w - starts[r] < n - 1:
                continue
            key = mix(rolling)
            bucket = np.int64(key >> np.uint64(shift))
            lo, hi = directory[bucket], directory[bucket + 1]
            while lo < hi:  # a binary search in the bucket
                mid = (lo + hi) // 2
                if keys[mid] < key:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < directory[bucket + 1] and keys[lo] == key:
                owner[r] = owners[lo]
                at[r] = w - n + 1
                break
    return owner, at


def words(texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_words` of a string array (nulls: no words)."""
    texts = pc.fill_null(texts, "")
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    data, offsets = string_buffers(texts)
    kind, lower = _table()
    return _words(data, offsets.astype(np.int64), kind, lower)


def normalised(text: str) -> str:
    """A text as the n-grams see it: its words, lower-cased, without punctuation and
    symbols, one space apart."""
    array = pa.array([text], pa.string())
    _, spans, _ = words(array)
    kind, lower = _table()
    out = []
    for first, last in spans.T.tolist():
        chars = text.encode()[first:last].decode()
        out.append("".join(chr(lower[ord(c)]) for c in chars if kind[ord(c)] == 0))
    return " ".join(out)


@dataclass(frozen=True)
class Index:
    """The n-grams of the benchmarks: sorted keys, each one's benchmark (its position in
    ``names``), and a directory of the keys' top bits for the lookups."""

    names: tuple[str, ...]
    ngram: int
    keys: np.ndarray  # uint64, sorted, distinct
    owners: np.ndarray  # uint16

    @functools.cached_property
    def _directory(self) -> tuple[np.ndarray, int]:
        bits = int(min(max(np.ceil(np.log2(max(len(self.keys), 2))), 1), MAX_DIRECTORY_BITS))
        shift = 64 - bits
        edges = np.arange(2**bits + 1, dtype=np.uint64)
        # Bucket b holds the keys whose top bits are b: [b << shift, (b + 1) << shift).
        bounds = np.searchsorted(
            self.keys, np.left_shift(edges[:-1], np.uint64(shift)), side="left"
        )
        directory = np.concatenate([bounds, [len(self.keys)]]).astype(np.int64)
        return directory, shift

    @property
    def nbytes(self) -> int:
        """Bytes the index takes in memory: keys, owners and directory."""
        return self.keys.nbytes + self.owners.nbytes + self._directory[0].nbytes

    def matches(self, texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[str | None]]:
        """Per text: the benchmark (position in ``names``) of its first n-gram in the
        index, -1 for none, and that n-gram's words normalised (None for none)."""
        texts = pc.fill_null(texts, "")
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        hashes, spans, starts = words(texts)
        directory, shift = self._directory
        owner, at = _first_matches(
            hashes, starts, self.ngram, self.keys, self.owners.astype(np.int64), directory, shift
        )
        found: list[str | None] = [None] * len(owner)
        if (owner >= 0).any():
            data, _ = string_buffers(texts)
            for row in np.flatnonzero(owner >= 0).tolist():
                first = int(spans[0, at[row]])
                last = int(spans[1, at[row] + self.ngram - 1])
                found[row] = normalised(bytes(data[first:last]).decode())
        return owner, found


def ngram_keys(texts: pa.Array, n: int) -> np.ndarray:
    """The keys of every n-gram of these texts (with repeats)."""
    hashes, _, starts = words(texts)
    keys, _ = _ngram_keys(hashes, starts, n)
    return keys


def build(names: list[str], keys_per_benchmark: list[np.ndarray], n: int) -> Index:
    """The index of these benchmarks' n-gram keys: each distinct key once, owned by the
    first benchmark that holds it."""
    keys = np.concatenate([np.zeros(0, np.uint64), *keys_per_benchmark])
    owners = np.concatenate(
        [np.zeros(0, np.uint16)]
        + [np.full(len(k), at, np.uint16) for at, k in enumerate(keys_per_benchmark)]
    )
    # Sorted by key, then owner: the first of each key is its first benchmark.
    order = np.lexsort((owners, keys))
    keys, owners = keys[order], owners[order]
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    return Index(tuple(names), n, keys[first], owners[first])


def digest(index: Index) -> str:
    """A SHA-256 of the index's keys and owners (its identity in a manifest)."""
    h = hashlib.sha256()
    h.update(index.keys.tobytes())
    h.update(index.owners.tobytes())
    return h.hexdigest()


def _column_text(column: pa.ChunkedArray, where: str) -> pa.Array:
    """A column of a benchmark as text: strings as they are, a list's values joined by a
    space, numbers and the like as Arrow writes them; nulls as empty."""
    column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    kind = column.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        column = pc.binary_join(column.cast(pa.list_(pa.string())), " ")
    elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        try:
            column = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(f"{where} holds {kind}, which is not text") from None
    return pc.fill_null(column, "")


def items(benchmark: Benchmark, s3: S3Settings | None) -> Iterator[tuple[str, pa.Array]]:
    """A benchmark's items, a batch at a time, with the file each came from: each row's
    ``columns`` joined by a space."""
    found = inputs.discover(benchmark.uri, "auto", s3)
    for file in found.files:
        inspected = reading.inspect_input(reading.InputSpec(file.loc, found.format))
        if not inspected.num_rows:
            continue
        missing = [c for c in benchmark.columns if c not in inspected.schema.names]
        if missing:
            raise InputError(
                f"benchmark {benchmark.name}: {file.loc.uri} has no column "
                f"{', '.join(map(repr, missing))} (columns: {', '.join(inspected.schema.names)})"
            )
        for table in reading.iter_slice(found.format, file.loc, 8192, inspected.schema):
            parts = [
                _column_text(table.column(c), f"benchmark {benchmark.name}: column {c!r}")
                for c in benchmark.columns
            ]
            joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, " ")
            yield file.loc.uri, joined


def index_of(options: Decontaminate, s3: S3Settings | None) -> tuple[Index, dict]:
    """The index of the benchmarks' n-grams, and what the manifest records of it: per
    benchmark where it is read from, its files, items, the items too short to match
    and its n-grams; the index's n-grams, bytes and digest."""
    per_benchmark, described = [], []
    for benchmark in options.benchmarks:
        keys, files, count, short = [], set(), 0, 0
        for uri, texts in items(benchmark, s3):
            files.add(uri)
            hashes, _, starts = words(texts)
            found, _ = _ngram_keys(hashes, starts, options.ngram)
            keys.append(np.unique(found))
            count += len(texts)
            short += int((np.diff(starts) < options.ngram).sum())
        if not count:
            raise InputError(f"benchmark {benchmark.name}: {benchmark.uri} has no items")
        distinct = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.uint64)
        per_benchmark.append(distinct)
        described.append(
            {
                "name": benchmark.name,
                "uri": benchmark.uri,
                "columns": list(benchmark.columns),
                "files": sorted(files),
                "items": count,
                "items_too_short": short,
                "ngrams": len(distinct),
            }
        )
    index = build([b.name for b in options.benchmarks], per_benchmark, options.ngram)
    return index, {
        "ngram": options.ngram,
        "benchmarks": described,
        "ngrams": len(index.keys),
        "index_bytes": index.nbytes,
        "sha256": digest(index),
    }


def as_table(index: Index) -> pa.Table:
    """The index as the run stages it: keys and owners, its names and n in the schema."""
    meta = {b"names": "\n".join(index.names).encode(), b"ngram": str(index.ngram).encode()}
    table = pa.table({"key": pa.array(index.keys, pa.uint64()), "owner": index.owners})
    return table.replace_schema_metadata(meta)


def from_table(table: pa.Table) -> Index:
    """The index of a staged table."""
    meta = table.schema.metadata
    names = tuple(meta[b"names"].decode().split("\n"))
    keys = np.asarray(table.column("key").combine_chunks()).astype(np.uint64)
    owners = np.asarray(table.column("owner").combine_chunks()).astype(np.uint16)
    return Index(names, int(meta[b"ngram"]), keys, owners)
