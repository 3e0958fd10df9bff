"""Filter ``decontaminate``: documents that share a word n-gram with an evaluation set.

A model trained on its evaluation questions scores falsely high; GPT-3's report removed
training documents sharing a 13-word n-gram with a benchmark item, and datatrove
(``NGramsDecontFilter``) and dolma do the same. Here:

Normalisation
    Each character folds to its compatibility decomposition without combining marks,
    lower-cased, where that is one character (``É``, ``e`` plus U+0301 and fullwidth
    ``Ｅ`` are all ``e``); punctuation, symbols, marks and format characters (``\\p{P}``,
    ``\\p{S}``, ``\\p{M}``, ``\\p{Cf}``: a soft hyphen, a zero-width space) are removed;
    what whitespace separates is a word. "Don't stop-now!" is ``dont stopnow``. Items
    and documents go through the same compiled pass, so they meet on equal terms.
    Scripts written without spaces (Chinese, Japanese, Thai) have one word per run of
    letters: a sentence is a word, so their items rarely reach 13 words.
Items
    A benchmark is a JSON Lines or Parquet file, folder or glob (local or S3); each row's
    ``columns`` are joined with a space into one item (a list column's values too), so
    an n-gram may span a question and its answer. An item of fewer than ``ngram`` words
    has no n-gram and cannot match (the index counts such items).
Index
    Each distinct n-gram is a 64-bit hash of its words' hashes (a polynomial), with a
    bit for each benchmark that holds it (at most 64 benchmarks; a byte each for up to
    8), sorted, plus a directory of its top bits (8 bytes a bucket, at most 2**22): 9
    bytes an n-gram and the directory. It is built once per run, written to the run's
    staging folder as Parquet and read by each part from there (the route any node of a
    cluster has); each worker process keeps the last one it read.
Matching
    A document's n-grams are hashed as its words stream by (memory: the last n words)
    and looked up in the index. Every benchmark one of them is in fires; the document
    is rejected as the first of those in the order given, and the first n-gram it
    shares with that one, normalised, is recorded with the row. Two different n-grams
    share a hash with probability about 2**-64 per pair.
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
from tasks.store import inputs, storage
from tasks.store.storage import Location, S3Settings

if TYPE_CHECKING:
    from tasks.steps.filter.options import Benchmark, Decontaminate

_REMOVED, _SEPARATES = 1, 2  # what a code point is to the normalisation (else: a word's)
_PRIME = np.uint64(0x100000001B3)
_BASE = np.uint64(0x9E3779B97F4A7C15)  # the n-gram hash's polynomial base (odd)
MAX_DIRECTORY_BITS = 22


@functools.cache
def _table() -> tuple[np.ndarray, np.ndarray]:
    """Per code point: its class (removed, separates, else a word's) and what it folds
    to: its compatibility decomposition without combining marks (``é`` and ``e`` plus
    U+0301 both ``e``, fullwidth ``Ａ`` ``A``), lower-cased, where that is one
    character (else its lower case, where that is one, else itself)."""
    table = flags()
    points = np.r_[0:0xD800, 0xE000:0x110000]
    data = "".join(map(chr, points.tolist())).encode()
    sizes = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    chars = pa.StringArray.from_buffers(len(points), pa.py_buffer(offsets), pa.py_buffer(data))

    def matching(pattern: str) -> np.ndarray:
        return points[np.asarray(pc.match_substring_regex(chars, f"^{pattern}$"), bool)]

    kind = np.zeros(0x110000, np.uint8)
    # Symbols, marks (diacritics, once decomposed) and format characters (zero-width
    # space, soft hyphen, joiners) go; punctuation too.
    for pattern in (r"\p{S}", r"\p{M}", r"\p{Cf}"):
        kind[matching(pattern)] = _REMOVED
    kind[(table & UNICODE_P) != 0] = _REMOVED
    kind[(table & SPACE) != 0] = _SEPARATES
    folded = pc.utf8_lower(pc.utf8_normalize(chars, "NFKD"))
    folded = pc.replace_substring_regex(folded, r"\p{M}", "")
    lower = np.arange(0x110000, dtype=np.int32)
    changed = np.flatnonzero(~np.asarray(pc.equal(folded, chars), bool))
    alone = pc.utf8_lower(chars)
    for at, fold, low in zip(
        changed.tolist(),
        folded.take(changed).to_pylist(),
        alone.take(changed).to_pylist(),
        strict=True,
    ):
        one = fold if len(fold) == 1 else low if len(low) == 1 else None
        if one is not None:
            lower[points[at]] = ord(one)
    return kind, lower


@numba.njit(cache=True, inline="always")
def _next_word(
    data: np.ndarray, i: int, b: int, kind: np.ndarray, lower: np.ndarray
) -> tuple[np.uint64, int, int, int]:
    """The next word at or after byte ``i`` (before ``b``): its hash (FNV-1a of its
    folded code points without the removed ones, mixed), first and end byte (-1: none
    left), and where the search goes on."""
    h, first, last = np.uint64(0xCBF29CE484222325), -1, -1
    while i < b:
        byte = data[i]
        if byte < 0x80:
            cp, size = np.int64(byte), 1
        else:
            cp, size = decode(data, i)
        what = kind[cp]
        if what == 0:
            h = (h ^ np.uint64(lower[cp])) * _PRIME
            if first < 0:
                first = i
            last = i + size
        elif what == _SEPARATES and first >= 0:
            return mix(h), first, last, i + size
        i += size
    return mix(h), first, last, i


@numba.njit(cache=True)
def _row_words(
    data: np.ndarray,
    a: int,
    b: int,
    kind: np.ndarray,
    lower: np.ndarray,
    hashes: np.ndarray,
    spans: np.ndarray,
    count: int,
) -> int:
    """The words of bytes ``a`` to ``b`` from word ``count`` on: each one's hash, first
    and end byte (:func:`_next_word`). Returns the count reached (the arrays hold a
    word per two bytes, and one)."""
    i = a
    while True:
        h, first, last, i = _next_word(data, i, b, kind, lower)
        if first < 0:
            return count
        hashes[count] = h
        spans[0, count] = first
        spans[1, count] = last
        count += 1


@numba.njit(cache=True)
def _power(n: int) -> np.uint64:
    out = np.uint64(1)
    for _ in range(n):
        out *= _BASE
    return out


@numba.njit(cache=True)
def _ngram_keys(
    data: np.ndarray, offsets: np.ndarray, kind: np.ndarray, lower: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every n-gram's key (a polynomial of its words' hashes, mixed) of each text, and
    each text's words."""
    longest = 0
    for r in range(len(offsets) - 1):
        longest = max(longest, offsets[r + 1] - offsets[r])
    hashes = np.empty(longest // 2 + 1, np.uint64)
    spans = np.empty((2, longest // 2 + 1), np.int64)
    words = np.zeros(len(offsets) - 1, np.int64)
    total = 0
    for r in range(len(offsets) - 1):
        words[r] = _row_words(data, offsets[r], offsets[r + 1], kind, lower, hashes, spans, 0)
        total += max(words[r] - n + 1, 0)
    keys = np.empty(total, np.uint64)
    top = _power(n - 1)
    k = 0
    for r in range(len(offsets) - 1):
        _row_words(data, offsets[r], offsets[r + 1], kind, lower, hashes, spans, 0)
        rolling = np.uint64(0)
        for w in range(words[r]):
            if w >= n:
                rolling -= hashes[w - n] * top
            rolling = rolling * _BASE + hashes[w]
            if w >= n - 1:
                keys[k] = mix(rolling)
                k += 1
    return keys, words


@numba.njit(cache=True, inline="always")
def _owners_of(
    key: np.uint64, keys: np.ndarray, owners: np.ndarray, directory: np.ndarray, shift: int
) -> np.uint64:
    """The benchmarks (bits) that hold the n-gram ``key`` (0: none)."""
    bucket = np.int64(key >> np.uint64(shift))
    lo, hi = directory[bucket], directory[bucket + 1]
    end = hi
    while lo < hi:  # a binary search in the bucket
        mid = (lo + hi) // 2
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < end and keys[lo] == key:
        return np.uint64(owners[lo])
    return np.uint64(0)


@numba.njit(cache=True)
def _row_matches(
    data: np.ndarray,
    a: int,
    b: int,
    kind: np.ndarray,
    lower: np.ndarray,
    n: int,
    keys: np.ndarray,
    owners: np.ndarray,
    directory: np.ndarray,
    shift: int,
    ring: np.ndarray,
    starts: np.ndarray,
    want: np.uint64,
) -> tuple[np.uint64, np.uint64, int, int]:
    """The n-grams of bytes ``a`` to ``b`` looked up as the words stream by (the last n
    words' hashes in ``ring``, their first bytes in ``starts``, the oldest at ``head``):
    the benchmarks any of them is in, and the benchmarks, first and end byte of the
    first that is in one (with ``want``: the first in one of those; the scan stops)."""
    top = _power(n - 1)
    rolling, found, first_bits = np.uint64(0), np.uint64(0), np.uint64(0)
    first_at = first_end = -1
    count = head = 0
    i = a
    while True:
        word, first, last, i = _next_word(data, i, b, kind, lower)
        if first < 0:
            break
        if count >= n:
            rolling -= ring[head] * top
        rolling = rolling * _BASE + word
        ring[head] = word
        starts[head] = first
        head = head + 1 if head + 1 < n else 0
        count += 1
        if count >= n:
            bits = _owners_of(mix(rolling), keys, owners, directory, shift)
            if bits and (not want or bits & want):
                if not found:
                    first_bits = bits
                    first_at, first_end = starts[head], last
                found |= bits
                if want:
                    break
    return found, first_bits, first_at, first_end


@numba.njit(cache=True)
def _matches(
    data: np.ndarray,
    offsets: np.ndarray,
    kind: np.ndarray,
    lower: np.ndarray,
    n: int,
    keys: np.ndarray,
    owners: np.ndarray,
    directory: np.ndarray,
    shift: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the benchmarks (bits) any of its n-grams is in, and the first and end
    byte of its first n-gram in the lowest of them. Memory: the last n words."""
    rows = len(offsets) - 1
    found = np.zeros(rows, np.uint64)
    spans = np.full((2, rows), -1, np.int64)
    ring, starts = np.empty(n, np.uint64), np.empty(n, np.int64)
    for r in range(rows):
        a, b = offsets[r], offsets[r + 1]
        want = np.uint64(0)  # first: every benchmark, and the first n-gram of any
        while True:
            bits, first_bits, at, end = _row_matches(
                data, a, b, kind, lower, n, keys, owners, directory, shift, ring, starts, want
            )
            if not want:
                found[r] = bits
            lowest = found[r] & (~found[r] + np.uint64(1))
            if first_bits & lowest or not found[r]:
                break
            want = lowest  # a later n-gram is the lowest's: scan again for its first
        spans[0, r], spans[1, r] = at, end
    return found, spans


def _strings(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    texts = pc.fill_null(texts, "")
    return texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts


def normalised(text: str) -> str:
    """A text as the n-grams see it: its words folded (lower case, no diacritics), with
    no punctuation, symbols or format characters, one space apart."""
    data = np.frombuffer(text.encode(), np.uint8)
    kind, lower = _table()
    hashes = np.empty(len(data) // 2 + 1, np.uint64)
    spans = np.empty((2, len(data) // 2 + 1), np.int64)
    count = _row_words(data, 0, len(data), kind, lower, hashes, spans, 0)
    out = []
    for first, last in spans[:, :count].T.tolist():
        chars = bytes(data[first:last]).decode()
        out.append("".join(chr(lower[ord(c)]) for c in chars if kind[ord(c)] == 0))
    return " ".join(out)


def _owner_type(benchmarks: int) -> type:
    """The narrowest unsigned integer with a bit per benchmark."""
    for kind in (np.uint8, np.uint16, np.uint32, np.uint64):
        if benchmarks <= np.iinfo(kind).bits:
            return kind
    raise ValueError(f"at most 64 benchmarks, got {benchmarks}")


@dataclass(frozen=True)
class Index:
    """The n-grams of the benchmarks: sorted keys, each one's benchmarks (a bit per
    position in ``names``), and a directory of the keys' top bits for the lookups."""

    names: tuple[str, ...]
    ngram: int
    keys: np.ndarray  # uint64, sorted, distinct
    owners: np.ndarray  # the narrowest unsigned integers with a bit per benchmark

    @functools.cached_property
    def _directory(self) -> tuple[np.ndarray, int]:
        bits = int(min(max(np.ceil(np.log2(max(len(self.keys), 2))), 1), MAX_DIRECTORY_BITS))
        shift = 64 - bits
        edges = np.arange(2**bits, dtype=np.uint64)
        # Bucket b holds the keys whose top bits are b: [b << shift, (b + 1) << shift).
        bounds = np.searchsorted(self.keys, np.left_shift(edges, np.uint64(shift)), side="left")
        directory = np.concatenate([bounds, [len(self.keys)]]).astype(np.int64)
        return directory, shift

    @property
    def nbytes(self) -> int:
        """Bytes the index takes in memory: keys, owners and directory."""
        return self.keys.nbytes + self.owners.nbytes + self._directory[0].nbytes

    def matches(self, texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[str | None]]:
        """Per text: the benchmarks (bits by position in ``names``) any of its n-grams
        is in, and the first n-gram of the first of them, normalised (None: none)."""
        texts = _strings(texts)
        data, offsets = string_buffers(texts)
        kind, lower = _table()
        directory, shift = self._directory
        found, spans = _matches(
            data, offsets.astype(np.int64), kind, lower, self.ngram, self.keys, self.owners,
            directory, shift,
        )  # fmt: skip
        grams: list[str | None] = [None] * len(found)
        for row in np.flatnonzero(found).tolist():
            first, last = int(spans[0, row]), int(spans[1, row])
            grams[row] = normalised(bytes(data[first:last]).decode())
        return found, grams


def ngram_keys(texts: pa.Array | pa.ChunkedArray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The keys of every n-gram of these texts (with repeats), and each text's words."""
    data, offsets = string_buffers(_strings(texts))
    kind, lower = _table()
    return _ngram_keys(data, offsets.astype(np.int64), kind, lower, n)


def build(names: list[str], keys_per_benchmark: list[np.ndarray], n: int) -> Index:
    """The index of these benchmarks' n-gram keys: each distinct key once, with a bit
    for every benchmark that holds it."""
    kind = _owner_type(len(names))
    keys = np.concatenate([np.zeros(0, np.uint64), *keys_per_benchmark])
    owners = np.concatenate(
        [np.zeros(0, kind)]
        + [np.full(len(k), 1 << at, kind) for at, k in enumerate(keys_per_benchmark)]
    )
    order = np.argsort(keys, kind="stable")
    keys, owners = keys[order], owners[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, int)
    merged = np.bitwise_or.reduceat(owners, starts) if len(keys) else owners
    return Index(tuple(names), n, keys[starts], merged.astype(kind))


def digest(index: Index) -> str:
    """A SHA-256 of the index's keys and owners (its identity in a manifest)."""
    h = hashlib.sha256()
    h.update(index.keys.tobytes())
    h.update(index.owners.tobytes())
    return h.hexdigest()


def _column_text(column: pa.ChunkedArray, where: str) -> pa.Array:
    """A column of a benchmark as text: strings as they are, a list's values (nulls
    left out) joined by a space, numbers and the like as Arrow writes them; nulls empty."""
    column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    kind = column.type
    try:
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            values = pc.fill_null(column.values.cast(pa.string()), "")
            column = pc.binary_join(type(column).from_arrays(column.offsets, values), " ")
        elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            column = column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InputError(f"{where} holds {kind}, which is not text") from None
    return pc.fill_null(column, "")


def items(benchmark: Benchmark, s3: S3Settings | None) -> Iterator[tuple[str, pa.Array]]:
    """A benchmark's items, a batch at a time, with the file each came from: each row's
    ``columns`` joined by a space."""
    where = f"filters.decontaminate benchmark {benchmark.name}"
    try:
        found = inputs.discover(benchmark.uri, benchmark.input_format, s3)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    for file in found.files:
        inspected = reading.inspect_input(reading.InputSpec(file.loc, found.format))
        if not inspected.num_rows:
            continue
        missing = [c for c in benchmark.columns if c not in inspected.schema.names]
        if missing:
            raise InputError(
                f"{where}: {file.loc.uri} has no column {', '.join(map(repr, missing))} "
                f"(columns: {', '.join(inspected.schema.names)})"
            )
        for table in reading.iter_slice(found.format, file.loc, 8192, inspected.schema):
            parts = [
                _column_text(table.column(c), f"{where}: column {c!r} of {file.loc.uri}")
                for c in benchmark.columns
            ]
            joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, " ")
            yield file.loc.uri, joined


def roots(options: Decontaminate, s3: S3Settings | None) -> list[Location]:
    """Where each benchmark is read from (for the step's check that none is in its
    output)."""
    return [storage.resolve(storage.split_glob(b.uri)[0], s3) for b in options.benchmarks]


def index_of(options: Decontaminate, s3: S3Settings | None) -> tuple[Index, dict]:
    """The index of the benchmarks' n-grams, and what the manifest records of it: per
    benchmark where it is read from, its files, items, the items too short to match
    and its n-grams; the index's n-grams, bytes and digest."""
    per_benchmark, described = [], []
    for benchmark in options.benchmarks:
        keys, files, count, short = [], set(), 0, 0
        for uri, texts in items(benchmark, s3):
            files.add(uri)
            found, words = ngram_keys(texts, options.ngram)
            keys.append(np.unique(found))
            count += len(texts)
            short += int((words < options.ngram).sum())
        where = f"filters.decontaminate benchmark {benchmark.name} ({benchmark.uri})"
        if not count:
            raise InputError(f"{where} has no items")
        distinct = np.unique(np.concatenate(keys))
        if not len(distinct):
            raise InputError(
                f"{where}: none of its {count} items has {options.ngram} words, so nothing "
                "can match it; lower ngram or check its columns"
            )
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
    owners = np.asarray(table.column("owner").combine_chunks()).astype(_owner_type(len(names)))
    return Index(names, int(meta[b"ngram"]), keys, owners)
