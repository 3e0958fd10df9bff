"""Per-row digests and one-permutation MinHash sketches, compiled with Numba.

One pass over a batch's UTF-8 buffer gives every row:

* an **exact digest**: 128 bits from two multiply-xor lanes over the row's bytes, eight
  at a time, with its length mixed in. Not cryptographic: texts crafted to collide
  could be taken for copies (so could any non-cryptographic hash's); two unrelated
  texts collide with a chance far below 2^-64.
* its **words** (runs between Python's ``str.isspace`` characters, as ``str.split()``
  splits them) hashed eight bytes at a time, and its **shingles** (runs of
  ``shingle`` consecutive words; a row with fewer words has one shingle of them all).
* a **one-permutation MinHash sketch** (Li, Owen and Zhang, 2012): each shingle's
  64-bit hash picks one of ``bins`` bins and competes for its minimum, so a row costs
  one hash per shingle however many values its sketch has, where classic MinHash costs
  one per shingle and value. Each bin keeps 8 bits of its minimum's hash (b-bit
  MinHash, Li and König, 2010): 1..255, and 0 for a bin no shingle fell into.

Two sketches are compared over the bins either row filled (:func:`similarity`): the
share of them where both hold the same value estimates the Jaccard similarity of the
two rows' shingles, without the noise that filling empty bins would add. For LSH
banding every bin needs a value, so the band keys fill each empty bin from the first
filled bin of a fixed random sequence of bins (optimal densification, Shrivastava,
2017), the same sequence for every row, so two similar rows fill alike.

Everything is deterministic: fixed constants and seeds, no per-process salt, the same
bytes on any machine (little-endian reads are explicit).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.steps.preprocess.clean import string_buffers

U64 = np.uint64
EMPTY32 = np.uint32(0xFFFFFFFF)
DIGEST_BYTES = 16
# Bins an empty bin tries, in its fixed sequence, before it walks to the next filled bin
# (reached only by rows with a handful of shingles).
DENSIFY_TRIES = 64
# Odd 64-bit constants (golden ratio, xxHash's primes, SplitMix64's finaliser).
_P1 = U64(0x9E3779B97F4A7C15)
_P2 = U64(0xC2B2AE3D27D4EB4F)
_P3 = U64(0x165667B19E3779F9)
_M1 = U64(0xBF58476D1CE4E5B9)
_M2 = U64(0x94D049BB133111EB)
_DIGEST_SEED = U64(0x27D4EB2F165667C5)

# Byte classes: 1 is ASCII whitespace for str.isspace (\t \n \v \f \r, \x1c-\x1f and
# space); 2 may start a multi-byte one (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028,
# U+2029, U+202F, U+205F, U+3000), checked by :func:`_space`.
_CLASS = np.zeros(256, np.int64)
_CLASS[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20]] = 1
_CLASS[[0xC2, 0xE1, 0xE2, 0xE3]] = 2


@numba.njit(cache=True)
def _mix(v: np.uint64) -> np.uint64:
    """SplitMix64's finaliser: every input bit reaches every output bit."""
    v = (v ^ (v >> U64(30))) * _M1
    v = (v ^ (v >> U64(27))) * _M2
    return v ^ (v >> U64(31))


@numba.njit(cache=True)
def _space(data: np.ndarray, i: int, end: int) -> int:
    """Bytes of the multi-byte whitespace character at ``i`` (0: none)."""
    lead = data[i]
    if lead == 0xC2:
        if i + 1 < end and (data[i + 1] == 0x85 or data[i + 1] == 0xA0):
            return 2
        return 0
    if i + 2 >= end:
        return 0
    a, b = data[i + 1], data[i + 2]
    if lead == 0xE1:
        return 3 if a == 0x9A and b == 0x80 else 0
    if lead == 0xE3:
        return 3 if a == 0x80 and b == 0x80 else 0
    if a == 0x80 and ((0x80 <= b <= 0x8A) or b == 0xA8 or b == 0xA9 or b == 0xAF):
        return 3
    if a == 0x81 and b == 0x9F:
        return 3
    return 0


@numba.njit(cache=True)
def _digest(data: np.ndarray, start: int, end: int) -> tuple[np.uint64, np.uint64]:
    """Two 64-bit lanes over the bytes, eight at a time, with the length."""
    h1 = _DIGEST_SEED ^ (U64(end - start) * _P1)
    h2 = h1 ^ _P3
    i = start
    while i + 8 <= end:
        w = U64(0)
        for k in range(8):
            w |= U64(data[i + k]) << U64(8 * k)
        h1 = (h1 ^ w) * _P1
        h1 ^= h1 >> U64(29)
        h2 = (h2 + w) * _P2
        h2 ^= h2 >> U64(31)
        i += 8
    w = U64(0)
    k = 0
    while i < end:
        w |= U64(data[i]) << U64(8 * k)
        i += 1
        k += 1
    return _mix(h1 ^ w), _mix(h2 + w * _P2)


@numba.njit(cache=True)
def _add_shingle(
    mins: np.ndarray, row: int, ring: np.ndarray, first: int, count: int, bins: int, seed: np.uint64
) -> None:
    """Hash ``count`` words of ``ring`` from ``first`` (in order) into one shingle, and
    keep its value where it is its bin's minimum."""
    c = seed
    q = first
    for _ in range(count):
        c = (c ^ ring[q]) * _P3
        q += 1
        if q == len(ring):
            q = 0
    c = _mix(c)
    b = np.int64(((c >> U64(32)) * U64(bins)) >> U64(32))
    v = np.uint32(c & U64(0xFFFFFFFF))
    if v < mins[row, b]:
        mins[row, b] = v


@numba.njit(cache=True)
def _sketch(
    data: np.ndarray,
    offsets: np.ndarray,
    shingle: int,
    bins: int,
    seed: np.uint64,
    classes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: digest lanes, word count and bin minima (``bins`` 0: digests only, and
    the word count is 1 for any row with a word)."""
    rows = len(offsets) - 1
    digests = np.zeros((rows, 2), np.uint64)
    words = np.zeros(rows, np.int64)
    mins = np.full((rows, max(bins, 1)), EMPTY32, np.uint32)
    ring = np.zeros(max(shingle, 1), np.uint64)
    for row in range(rows):
        start, end = offsets[row], offsets[row + 1]
        digests[row, 0], digests[row, 1] = _digest(data, start, end)
        count = 0
        slot = 0
        i = start
        while i < end:
            kind = classes[data[i]]
            if kind == 1:
                i += 1
                continue
            if kind == 2:
                step = _space(data, i, end)
                if step:
                    i += step
                    continue
            if bins == 0:  # exact mode: a word exists, which is all it asks
                count = 1
                break
            # A word from i: its bytes folded in eight at a time.
            h = U64(0)
            w = U64(0)
            k = 0
            j = i
            while j < end:
                kind = classes[data[j]]
                if kind == 1 or (kind == 2 and _space(data, j, end) > 0):
                    break
                w |= U64(data[j]) << U64(8 * k)
                k += 1
                if k == 8:
                    h = (h ^ w) * _P1
                    h ^= h >> U64(32)
                    w = U64(0)
                    k = 0
                j += 1
            ring[slot] = _mix((h ^ w) * _P2 + U64(j - i))
            slot = slot + 1 if slot + 1 < shingle else 0
            i = j
            count += 1
            if count >= shingle:  # the ring holds the last ``shingle`` words, from slot
                _add_shingle(mins, row, ring, slot, shingle, bins, seed)
        if bins and 0 < count < shingle:
            _add_shingle(mins, row, ring, 0, count, bins, seed)
        words[row] = count
    return digests, words, mins


@numba.njit(cache=True)
def _tags(mins: np.ndarray) -> np.ndarray:
    """Bin minima as 8-bit values: 1..255 from the minimum's hash, 0 for an empty bin."""
    rows, bins = mins.shape
    tags = np.zeros((rows, bins), np.uint8)
    for row in range(rows):
        for j in range(bins):
            v = mins[row, j]
            if v != EMPTY32:
                tags[row, j] = np.uint8(1 + ((U64(v) * _P1) >> U64(56)) % U64(255))
    return tags


@numba.njit(cache=True)
def _band_keys(tags: np.ndarray, bands: int, seed: np.uint64, tries: np.ndarray) -> np.ndarray:
    """Band keys of densified sketches: an empty bin takes the value of the first filled
    bin in its sequence ``tries[bin]`` (or after it, walking right), tagged with that
    bin, so that two rows agree there only when they borrow the same bin's value."""
    rows, bins = tags.shape
    per_band = bins // bands
    keys = np.zeros((rows, bands), np.uint64)
    dense = np.zeros(bins, np.uint64)
    for row in range(rows):
        own = tags[row]
        filled = 0
        for j in range(bins):
            if own[j] != 0:
                filled += 1
        if filled == 0:
            continue
        for j in range(bins):
            if own[j] != 0:
                dense[j] = U64(own[j])
                continue
            source = -1
            if filled < bins:
                for t in range(tries.shape[1]):
                    if own[tries[j, t]] != 0:
                        source = np.int64(tries[j, t])
                        break
            if source < 0:
                source = j
                while own[source] == 0:
                    source = source + 1 if source + 1 < bins else 0
            dense[j] = U64(own[source]) | (U64(source + 1) << U64(8))
        for band in range(bands):
            c = seed ^ U64(band)
            for q in range(per_band):
                c = (c ^ dense[band * per_band + q]) * _P3
            keys[row, band] = _mix(c)
    return keys


@functools.cache
def _tries(bins: int, seed: int) -> np.ndarray:
    """Each bin's fixed sequence of bins to borrow from (``DENSIFY_TRIES`` of them)."""
    bin_ = np.arange(bins, dtype=U64)[:, None]
    attempt = np.arange(DENSIFY_TRIES, dtype=U64)[None, :]
    v = (U64(seed) ^ (bin_ << U64(32)) ^ attempt) * _P1
    v = (v ^ (v >> U64(30))) * _M1
    v = (v ^ (v >> U64(27))) * _M2
    v ^= v >> U64(31)
    # uint16: a bin's whole sequence stays in the CPU's first cache
    return (((v >> U64(32)) * U64(bins)) >> U64(32)).astype(np.uint16)


def _buffers(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A string array's UTF-8 bytes and int64 offsets into them (nulls as "")."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks() if text.num_chunks != 1 else text.chunk(0)
    if text.null_count:
        text = pc.fill_null(text, "")
    data, offsets = string_buffers(text)
    return data, offsets.astype(np.int64)


@dataclass(frozen=True)
class Sketches:
    """One batch's sketches: per row its digest (two uint64 lanes), whether it has a
    word, and in near mode its 8-bit bin values (0: empty) and band keys."""

    digests: np.ndarray
    has_words: np.ndarray
    tags: np.ndarray | None = None
    bands: np.ndarray | None = None

    def digest_array(self) -> pa.Array:
        """The digests as 16-byte values; null for a row without words (blank)."""
        raw = pa.py_buffer(np.ascontiguousarray(self.digests).astype("<u8").tobytes())
        validity = pa.array(self.has_words, pa.bool_()).buffers()[1]
        return pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(DIGEST_BYTES), len(self.has_words), [validity, raw]
        )


def sketch(
    text: pa.Array | pa.ChunkedArray,
    shingle: int = 5,
    bins: int = 0,
    bands: int = 0,
    seed: int = 0,
) -> Sketches:
    """Digests of every row, and with ``bins`` its sketch (and with ``bands`` its band
    keys). Rows are independent: any split of the rows gives the same values."""
    data, offsets = _buffers(text)
    digests, words, mins = _sketch(data, offsets, shingle, bins, U64(seed), _CLASS)
    if not bins:
        return Sketches(digests, words > 0)
    tags = _tags(mins)
    return Sketches(digests, words > 0, tags, band_keys(tags, bands, seed) if bands else None)


def band_keys(tags: np.ndarray, bands: int, seed: int) -> np.ndarray:
    """One 64-bit key per row and band of densified sketches, shape (rows, bands)."""
    tags = np.ascontiguousarray(tags, dtype=np.uint8)
    return _band_keys(tags, bands, U64(seed), _tries(tags.shape[1], seed))


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of rows of sketches ``a`` and ``b``: of the bins
    either row filled, the share where both hold the same value (0 when neither has
    any). Two different minima share their 8 bits one time in 255, which lifts the
    estimate by at most (1 - J) / 255."""
    a, b = np.asarray(a), np.asarray(b)
    either = ((a != 0) | (b != 0)).sum(axis=-1)
    same = ((a == b) & (a != 0)).sum(axis=-1)
    return np.where(either > 0, same / np.maximum(either, 1), 0.0)


def sketch_array(tags: np.ndarray) -> pa.Array:
    """Sketches (rows of 8-bit values) as a fixed-size binary column."""
    tags = np.ascontiguousarray(tags, dtype=np.uint8)
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(tags.shape[1]), tags.shape[0], [None, pa.py_buffer(tags.tobytes())]
    )


def tags_from(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A fixed-size binary column of sketches back as rows of 8-bit values."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    width = column.type.byte_width
    if len(column) == 0:
        return np.zeros((0, width), np.uint8)
    raw = np.frombuffer(column.buffers()[1], np.uint8)
    return raw[column.offset * width : (column.offset + len(column)) * width].reshape(-1, width)
