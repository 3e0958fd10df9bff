"""Per-row digests and one-permutation MinHash sketches, compiled with Numba.

One pass over a batch's UTF-8 buffer gives every row:

* an **exact digest**: 128 bits from two multiply-xor lanes over the row's bytes, eight
  at a time, with its length mixed in. Not cryptographic: texts crafted to collide
  could be taken for copies (so could any non-cryptographic hash's); two unrelated
  texts collide with a chance far below 2^-64.
* its **words** (runs between Python's ``str.isspace`` characters, as ``str.split()``
  splits them) hashed eight bytes at a time, and its **shingles** (runs of
  ``shingle`` consecutive words; a row with fewer words has one shingle of them all),
  each a 32-bit value.
* a **one-permutation MinHash sketch** (Li, Owen and Zhang, 2012): each shingle's value
  picks one of ``bins`` bins (by its top bits) and competes for its minimum, so a row
  costs one hash per shingle however many values its sketch has, where classic MinHash
  costs one per shingle and value.

A sketch is ``bins`` bytes, in one of two forms:

* **listed**, for a row of at most :func:`listed_capacity` distinct shingles (31 with
  128 bins: texts of up to 35 words with 5-word shingles): byte 0 is 0, byte 1 their
  number, and from byte 4 their values, ascending. Two listed rows are compared on
  their shingles themselves: the exact Jaccard similarity (up to 32-bit collisions).
  Bins cannot judge so few shingles (issue 33): a row of one shingle fills one bin, so
  two unrelated ones that agree there by chance look identical, and a shingle that
  loses its bin to another of its row is not seen at all.
* **dense**, for any longer row: bin ``j`` holds 7 bits of a minimum, fingerprinted
  with ``j`` (1..127, independent from bin to bin), and ``OWN`` (128) if the row filled
  the bin itself. An empty bin borrows the minimum of the first filled bin in a fixed
  random sequence of bins (optimal densification, Shrivastava, 2017), the same sequence
  for every row: two rows agree on a bin with the chance of their Jaccard similarity,
  and only by chance (one time in 127 a bin) when they borrow different minima.

:func:`similarity` compares a dense sketch (a listed one expanded to its dense form)
over the bins either row filled itself, the share of them where both hold the same
fingerprint, without the noise that borrowed bins would add. The band keys hash the
dense sketch's bytes, borrowed bins included (LSH needs a value in every bin), so even
a row of one shingle gets 16 bands that an unrelated row shares only by chance.

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

from tasks.steps.text import string_buffers

U64 = np.uint64
EMPTY32 = np.uint32(0xFFFFFFFF)
DIGEST_BYTES = 16
# Bins an empty bin tries, in its fixed sequence, before it walks to the next filled bin
# (reached only by rows with a handful of shingles).
DENSIFY_TRIES = 64
# A dense sketch's mark of a bin the row filled itself (the low 7 bits: a fingerprint).
OWN = np.uint8(0x80)
# Listed shingles at most, whatever the bins: checking a shingle against those listed
# costs that many comparisons.
MAX_LISTED = 63
# Odd 64-bit constants (golden ratio, xxHash's primes, SplitMix64's finaliser).
_P1 = U64(0x9E3779B97F4A7C15)
_P2 = U64(0xC2B2AE3D27D4EB4F)
_P3 = U64(0x165667B19E3779F9)
_M1 = U64(0xBF58476D1CE4E5B9)
_M2 = U64(0x94D049BB133111EB)
_DIGEST_SEED = U64(0x27D4EB2F165667C5)
_FINGERPRINT_SEED = U64(0x85EBCA77C2B2AE63)
_TRIES_SEED = U64(0x2545F4914F6CDD1D)

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
def _shingle_value(ring: np.ndarray, first: int, count: int, seed: np.uint64) -> np.uint32:
    """``count`` words of ``ring`` from ``first`` (in order) hashed into one shingle's
    32-bit value (never ``EMPTY32``, the empty bin's mark)."""
    c = seed
    q = first
    for _ in range(count):
        c = (c ^ ring[q]) * _P3
        q += 1
        if q == len(ring):
            q = 0
    v = np.uint32(_mix(c) >> U64(32))
    return v if v != EMPTY32 else np.uint32(EMPTY32 - 1)


@numba.njit(cache=True)
def _list_value(v: np.uint32, listed: np.ndarray, n: int) -> int:
    """List a shingle's value unless it is among the ``n`` listed already; returns how
    many are listed (one more than ``len(listed)`` once there are more)."""
    if n > len(listed):
        return n
    for q in range(n):
        if listed[q] == v:
            return n
    if n < len(listed):
        listed[n] = v
    return n + 1


@numba.njit(cache=True)
def _scan(
    data: np.ndarray,
    start: int,
    end: int,
    shingle: int,
    seed: np.uint64,
    classes: np.ndarray,
    ring: np.ndarray,
    mins: np.ndarray,
    listed: np.ndarray,
    distinct: bool,
) -> tuple[int, int]:
    """One row's words and shingles: each shingle's value kept where it is its bin's
    minimum in ``mins`` (the row's ``bins`` values; none: exact mode, which stops at the
    first word) and the first ``len(listed)`` values listed as they come, returning
    (words, shingles); or, ``distinct``, only each value listed once while there are at
    most ``len(listed)`` (``mins`` left alone), returning (words, how many: one more
    than ``len(listed)`` when there are more)."""
    bins = len(mins)
    room = len(listed)
    count = 0
    n = 0
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
            return 1, 0
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
        if count < shingle:
            continue
        # The ring holds the last ``shingle`` words, from slot. (The value is kept here,
        # not in a function: a call taking the arrays cost a quarter of the sketch's time.)
        v = _shingle_value(ring, slot, shingle, seed)
        if distinct:
            n = _list_value(v, listed, n)
        else:
            b = (U64(v) * U64(bins)) >> U64(32)
            if v < mins[b]:
                mins[b] = v
            if n < room:
                listed[n] = v
            n += 1
    # Fewer words than a shingle: one shingle of them all, kept as in the loop (written
    # out again: a helper, even one Numba inlines, measured 25% slower).
    if 0 < count < shingle:
        v = _shingle_value(ring, 0, count, seed)
        if distinct:
            n = _list_value(v, listed, n)
        else:
            b = (U64(v) * U64(bins)) >> U64(32)
            if v < mins[b]:
                mins[b] = v
            if n < room:
                listed[n] = v
            n += 1
    return count, n


@numba.njit(cache=True)
def _sketch(
    data: np.ndarray,
    offsets: np.ndarray,
    shingle: int,
    bins: int,
    seed: np.uint64,
    classes: np.ndarray,
    cap: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: digest lanes, word count, bin minima, and its shingles' values if it has
    at most ``cap`` distinct ones (``counts``: how many are listed, repeats perhaps
    among them; one more than ``cap``: more, and 0: no words). With ``bins`` 0, digests
    only, and the word count is 1 for any row with a word."""
    rows = len(offsets) - 1
    digests = np.zeros((rows, 2), np.uint64)
    words = np.zeros(rows, np.int64)
    mins = np.full((rows, bins), EMPTY32, np.uint32)
    listed = np.zeros((rows, cap), np.uint32)
    counts = np.zeros(rows, np.int64)
    ring = np.zeros(max(shingle, 1), np.uint64)
    for row in range(rows):
        start, end = offsets[row], offsets[row + 1]
        digests[row, 0], digests[row, 1] = _digest(data, start, end)
        words[row], shingles = _scan(
            data, start, end, shingle, seed, classes, ring, mins[row], listed[row], False
        )
        if bins == 0 or words[row] == 0:
            continue
        counts[row] = min(shingles, cap + 1)  # listed as they came, repeats too
        if shingles <= cap:
            continue
        # More shingles than the list holds: a second look at the words, for distinct
        # ones, only where they filled at most ``cap`` bins (repetitive rows).
        filled = 0
        for j in range(bins):
            if mins[row, j] != EMPTY32:
                filled += 1
        if filled <= cap:
            _, counts[row] = _scan(
                data, start, end, shingle, seed, classes, ring, mins[row], listed[row], True
            )
    return digests, words, mins, listed, counts


@numba.njit(cache=True)
def _fingerprint(value: np.uint32, j: int) -> np.uint8:
    """Bin ``j``'s 7 bits (1..127) of a shingle's value: independent from bin to bin."""
    v = _mix(((U64(value) << U64(32)) | U64(j)) ^ _FINGERPRINT_SEED)
    return np.uint8(1 + (((v >> U64(32)) * U64(127)) >> U64(32)))


@numba.njit(cache=True)
def _densify(mins: np.ndarray, out: np.ndarray, tries: np.ndarray) -> None:
    """One row's bin minima as its dense sketch in ``out`` (all zero: no shingle): a
    filled bin holds ``OWN`` and its minimum's fingerprint, an empty bin the fingerprint
    of the minimum of the first filled bin in its sequence ``tries[bin]`` (or after it,
    walking right), so two rows agree there only when they borrow the same minimum."""
    bins = len(mins)
    filled = 0
    for j in range(bins):
        if mins[j] != EMPTY32:
            filled += 1
    if filled == 0:
        out[:] = 0
        return
    for j in range(bins):
        if mins[j] != EMPTY32:
            out[j] = OWN | _fingerprint(mins[j], j)
            continue
        source = -1
        for t in range(tries.shape[1]):
            if mins[tries[j, t]] != EMPTY32:
                source = np.int64(tries[j, t])
                break
        if source < 0:
            source = j
            while mins[source] == EMPTY32:
                source = source + 1 if source + 1 < bins else 0
        out[j] = _fingerprint(mins[source], j)


@numba.njit(cache=True)
def _listed_value(row: np.ndarray, i: int) -> np.uint32:
    """The ``i``-th shingle value of a listed sketch (little-endian from byte 4)."""
    at = 4 + 4 * i
    return np.uint32(
        U64(row[at])
        | (U64(row[at + 1]) << U64(8))
        | (U64(row[at + 2]) << U64(16))
        | (U64(row[at + 3]) << U64(24))
    )


@numba.njit(cache=True)
def _expand(row: np.ndarray, out: np.ndarray, mins: np.ndarray, tries: np.ndarray) -> None:
    """A listed sketch as the dense sketch its shingles give (``mins``: scratch)."""
    bins = len(out)
    mins[:] = EMPTY32
    for i in range(row[1]):
        h = _listed_value(row, i)
        b = np.int64((U64(h) * U64(bins)) >> U64(32))
        if h < mins[b]:
            mins[b] = h
    _densify(mins, out, tries)


@numba.njit(cache=True)
def _stored(
    mins: np.ndarray, listed: np.ndarray, counts: np.ndarray, tries: np.ndarray
) -> np.ndarray:
    """Each row's sketch as stored: listed for at most ``listed.shape[1]`` distinct
    shingles (byte 0: 0, byte 1: their number, from byte 4: their values ascending, 32
    bits each), dense otherwise, all zero for a row without words."""
    rows, bins = mins.shape
    cap = listed.shape[1]
    out = np.zeros((rows, bins), np.uint8)
    values = np.zeros(max(cap, 1), np.uint32)
    for row in range(rows):
        n = counts[row]
        if n == 0:
            continue
        if n > cap:
            _densify(mins[row], out[row], tries)
            continue
        # Ascending, each once: an insertion sort of a few values, no allocation.
        kept = 0
        for i in range(n):
            v = listed[row, i]
            at = kept
            while at > 0 and values[at - 1] > v:
                at -= 1
            if at > 0 and values[at - 1] == v:
                continue
            for q in range(kept, at, -1):
                values[q] = values[q - 1]
            values[at] = v
            kept += 1
        out[row, 1] = kept
        for i in range(kept):
            for k in range(4):
                out[row, 4 + 4 * i + k] = np.uint8(
                    (values[i] >> np.uint32(8 * k)) & np.uint32(0xFF)
                )
    return out


@numba.njit(cache=True)
def _densified(tags: np.ndarray, tries: np.ndarray) -> np.ndarray:
    """:func:`densified`."""
    out = tags.copy()
    mins = np.empty(tags.shape[1], np.uint32)
    for row in range(tags.shape[0]):
        if tags[row, 0] == 0:
            _expand(tags[row], out[row], mins, tries)
    return out


@numba.njit(cache=True)
def _band_keys(tags: np.ndarray, bands: int, seed: np.uint64, tries: np.ndarray) -> np.ndarray:
    """One key per band of each row's dense sketch (a listed one expanded first); zero
    for a row without words."""
    rows, bins = tags.shape
    per_band = bins // bands
    keys = np.zeros((rows, bands), np.uint64)
    dense = np.zeros(bins, np.uint8)
    mins = np.empty(bins, np.uint32)
    for row in range(rows):
        own = tags[row]
        if own[0] == 0:
            if own[1] == 0:
                continue
            _expand(own, dense, mins, tries)
            own = dense
        for band in range(bands):
            c = seed ^ U64(band)
            for q in range(per_band):
                c = (c ^ U64(own[band * per_band + q])) * _P3
            keys[row, band] = _mix(c)
    return keys


@numba.njit(cache=True)
def _similarity(a: np.ndarray, b: np.ndarray, tries: np.ndarray) -> np.ndarray:
    """:func:`similarity` over rows of equal shape."""
    rows, bins = a.shape
    out = np.zeros(rows, np.float64)
    dense_a = np.zeros(bins, np.uint8)
    dense_b = np.zeros(bins, np.uint8)
    mins = np.empty(bins, np.uint32)
    for row in range(rows):
        x, y = a[row], b[row]
        if x[0] == 0 and y[0] == 0:  # both listed (or blank): the exact share
            nx, ny = np.int64(x[1]), np.int64(y[1])
            if nx == 0 or ny == 0:
                continue
            i = j = both = 0
            while i < nx and j < ny:
                u, v = _listed_value(x, i), _listed_value(y, j)
                if u == v:
                    both += 1
                    i += 1
                    j += 1
                elif u < v:
                    i += 1
                else:
                    j += 1
            out[row] = both / (nx + ny - both)
            continue
        if x[0] == 0:
            _expand(x, dense_a, mins, tries)
            x = dense_a
        if y[0] == 0:
            _expand(y, dense_b, mins, tries)
            y = dense_b
        either = 0
        same = 0
        for j in range(bins):
            if (x[j] | y[j]) & OWN:
                either += 1
                if x[j] == y[j]:
                    same += 1
        if either:
            out[row] = same / either
    return out


@functools.cache
def _tries(bins: int) -> np.ndarray:
    """Each bin's fixed sequence of bins to borrow from (``DENSIFY_TRIES`` of them)."""
    bin_ = np.arange(bins, dtype=U64)[:, None]
    attempt = np.arange(DENSIFY_TRIES, dtype=U64)[None, :]
    v = (_TRIES_SEED ^ (bin_ << U64(32)) ^ attempt) * _P1
    v = (v ^ (v >> U64(30))) * _M1
    v = (v ^ (v >> U64(27))) * _M2
    v ^= v >> U64(31)
    # uint16: a bin's whole sequence stays in the CPU's first cache
    return (((v >> U64(32)) * U64(bins)) >> U64(32)).astype(np.uint16)


def listed_capacity(bins: int) -> int:
    """The most distinct shingles a sketch of ``bins`` bytes lists (32 bits each after a
    4-byte head): 31 with 128 bins."""
    return max(0, min((bins - 4) // 4, MAX_LISTED))


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
    word, and in near mode its sketch (``bins`` bytes, listed or dense; all zero for a
    row without words) and band keys."""

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
    cap = listed_capacity(bins)
    digests, words, mins, listed, counts = _sketch(
        data, offsets, shingle, bins, U64(seed), _CLASS, cap
    )
    if not bins:
        return Sketches(digests, words > 0)
    tags = _stored(mins, listed, counts, _tries(bins))
    return Sketches(digests, words > 0, tags, band_keys(tags, bands, seed) if bands else None)


def band_keys(tags: np.ndarray, bands: int, seed: int) -> np.ndarray:
    """One 64-bit key per row and band of the rows' dense sketches, shape (rows, bands):
    zero for a row without words."""
    tags = np.ascontiguousarray(tags, dtype=np.uint8)
    return _band_keys(tags, bands, U64(seed), _tries(tags.shape[1]))


def densified(tags: np.ndarray) -> np.ndarray:
    """Sketches in their dense form, the one band keys hash: a listed sketch expanded to
    the dense sketch its shingles give (a row without words stays all zero)."""
    tags = np.ascontiguousarray(tags, dtype=np.uint8)
    return _densified(tags, _tries(tags.shape[1]))


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of rows of sketches ``a`` and ``b`` (broadcast): for
    two listed sketches the exact share of shared shingles; otherwise, of the bins either
    row filled itself (``OWN``), the share where both hold the same fingerprint. 0 when
    either row has no words. Two different minima share their 7 bits one time in 127,
    which lifts the estimate by at most (1 - J) / 127."""
    a, b = np.broadcast_arrays(np.asarray(a, np.uint8), np.asarray(b, np.uint8))
    shape, bins = a.shape[:-1], a.shape[-1]
    found = _similarity(
        np.ascontiguousarray(a.reshape(-1, bins)),
        np.ascontiguousarray(b.reshape(-1, bins)),
        _tries(bins),
    )
    return found.reshape(shape)


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
