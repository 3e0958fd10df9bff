"""Lines and paragraphs, in compiled passes over a batch's UTF-8 bytes.

:func:`lines` finds each text's lines as Python's ``str.splitlines`` does, with what the
rules ask of a line: where it is, where it is once stripped, its whitespace-separated
chunks and the longest one, and whether it starts with a bullet or ends with an
ellipsis. :func:`repeated` splits each text on runs of line breaks (as ``re.split``) and
counts the pieces that repeat an earlier piece of the same text. Whitespace is what
Arrow's whitespace split and trim take for it (``split.flags``, the same as Python's
``str.isspace`` for every code point).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import pyarrow as pa

from tasks.steps.filter.split import SPACE, _copied, _hash, flags
from tasks.steps.text import string_buffers

BULLET, ELLIPSIS = 1, 2  # a line's flags: starts with • or -; ends with ... or …


@numba.njit(cache=True, inline="always")
def _decode(data: np.ndarray, i: int) -> tuple[int, int]:
    """The code point at byte ``i`` of valid UTF-8 and its size in bytes."""
    byte = data[i]
    if byte < 0x80:
        return byte, 1
    if byte < 0xE0:
        return ((byte & 0x1F) << 6) | (data[i + 1] & 0x3F), 2
    if byte < 0xF0:
        return ((byte & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F), 3
    return (
        ((byte & 0x07) << 18)
        | ((data[i + 1] & 0x3F) << 12)
        | ((data[i + 2] & 0x3F) << 6)
        | (data[i + 3] & 0x3F),
        4,
    )


@numba.njit(cache=True, inline="always")
def _breaks_line(cp: int) -> bool:
    """``str.splitlines``'s line boundaries (``\\r\\n`` is one, handled by the caller)."""
    return (
        cp == 0x0A
        or cp == 0x0D
        or cp == 0x0B
        or cp == 0x0C
        or (0x1C <= cp <= 0x1E)
        or cp == 0x85
        or cp == 0x2028
        or cp == 0x2029
    )


@numba.njit(cache=True)
def _lines(data: np.ndarray, offsets: np.ndarray, table: np.ndarray, out: np.ndarray) -> int:
    """Each text's lines into ``out`` (one column a line; rows: text, start, end,
    stripped start, stripped end, chunks, longest chunk's characters, flags) while they
    fit; returns how many there are."""
    count = 0
    for r in range(len(offsets) - 1):
        i, end = offsets[r], offsets[r + 1]
        while i < end:
            start, first, last = i, -1, -1
            chunks = longest = run = 0
            first_cp = 0
            broke = False
            while i < end:
                cp, size = _decode(data, i)
                if _breaks_line(cp):
                    broke = True
                    break
                if table[cp] & SPACE:
                    run = 0
                else:
                    if run == 0:
                        chunks += 1
                    run += 1
                    longest = max(longest, run)
                    if first < 0:
                        first, first_cp = i, cp
                    last = i + size
                i += size
            stop = i
            if broke:
                i += 2 if data[i] == 0x0D and i + 1 < end and data[i + 1] == 0x0A else size
            if count < out.shape[1]:
                flag = 0
                if first_cp == 0x2022 or first_cp == 0x2D:
                    flag |= BULLET
                if (
                    last - first >= 3
                    and first >= 0
                    and (
                        (
                            data[last - 3] == 0x2E
                            and data[last - 2] == 0x2E
                            and data[last - 1] == 0x2E
                        )
                        or (
                            data[last - 3] == 0xE2
                            and data[last - 2] == 0x80
                            and data[last - 1] == 0xA6
                        )
                    )
                ):
                    flag |= ELLIPSIS
                if first < 0:
                    first = last = start
                out[0, count] = r
                out[1, count] = start
                out[2, count] = stop
                out[3, count] = first
                out[4, count] = last
                out[5, count] = chunks
                out[6, count] = longest
                out[7, count] = flag
            count += 1
    return count


class Lines(NamedTuple):
    """A batch's lines (``str.splitlines``): per line its text's row, its byte span and
    stripped span, its whitespace-separated chunks, the longest one's characters, and
    whether it starts with a bullet (``•``, ``-``) or ends with an ellipsis (``...``,
    ``…``) once stripped; per text its number of lines."""

    row: np.ndarray
    spans: np.ndarray  # (2, lines): start and end byte
    stripped: np.ndarray  # (2, lines)
    chunks: np.ndarray
    longest: np.ndarray
    bullet: np.ndarray
    ellipsis: np.ndarray
    count: np.ndarray
    data: np.ndarray

    def strings(self, stripped: bool = False) -> pa.Array:
        """The lines as a string array (stripped, or as they are)."""
        offsets, values = _copied(self.data, self.stripped if stripped else self.spans)
        return pa.Array.from_buffers(
            pa.large_string() if offsets[-1] >= 2**31 else pa.string(),
            len(self.row),
            [None, pa.py_buffer(_narrowed(offsets)), pa.py_buffer(values)],
        )


def _narrowed(offsets: np.ndarray) -> np.ndarray:
    return offsets if offsets[-1] >= 2**31 else offsets.astype(np.int32)


def lines(texts: pa.Array) -> Lines:
    """The lines of each text (a string array without nulls), as :class:`Lines`."""
    data, offsets = string_buffers(texts)
    offsets = offsets.astype(np.int64)
    out = np.empty((8, len(texts) + (int(offsets[-1]) - int(offsets[0])) // 16), np.int64)
    n = _lines(data, offsets, flags(), out)
    if n > out.shape[1]:
        out = np.empty((8, n), np.int64)
        _lines(data, offsets, flags(), out)
    out = out[:, :n]
    return Lines(
        out[0],
        out[1:3],
        out[3:5],
        out[5],
        out[6],
        (out[7] & BULLET) != 0,
        (out[7] & ELLIPSIS) != 0,
        np.bincount(out[0], minlength=len(texts)),
        data,
    )


@numba.njit(cache=True)
def _same(data: np.ndarray, a: int, b: int, size: int) -> bool:
    """Whether ``data[a:a + size]`` and ``data[b:b + size]`` are the same bytes."""
    k = 0
    while k < size and data[a + k] == data[b + k]:
        k += 1
    return k == size


@numba.njit(cache=True)
def _pieces(data: np.ndarray, a: int, b: int, breaks: int, bounds: np.ndarray) -> int:
    """The pieces of ``data[a:b]`` split on runs of at least ``breaks`` ``\\n``: their
    number, and where each starts and ends into ``bounds`` (if it has room)."""
    pieces, i, start = 0, a, a
    while i < b:
        if data[i] == 0x0A:
            j = i
            while j < b and data[j] == 0x0A:
                j += 1
            if j - i >= breaks:
                if len(bounds):
                    bounds[2 * pieces] = start
                    bounds[2 * pieces + 1] = i
                pieces += 1
                start = j
            i = j
        else:
            i += 1
    if len(bounds):
        bounds[2 * pieces] = start
        bounds[2 * pieces + 1] = b
    return pieces + 1


@numba.njit(cache=True)
def _repeated(
    data: np.ndarray, offsets: np.ndarray, table: np.ndarray, breaks: int, strip: bool
) -> np.ndarray:
    """Per text (rows of the result): its pieces, split on runs of at least ``breaks``
    ``\\n``; those equal to an earlier piece of the text; their characters."""
    out = np.zeros((3, len(offsets) - 1), np.float64)
    for r in range(len(offsets) - 1):
        a, b = offsets[r], offsets[r + 1]
        if strip:
            while a < b:
                cp, size = _decode(data, a)
                if not table[cp] & SPACE:
                    break
                a += size
            while b > a:
                k = b - 1
                while data[k] & 0xC0 == 0x80:
                    k -= 1
                cp, _ = _decode(data, k)
                if not table[cp] & SPACE:
                    break
                b = k
        # Piece p is bounds[2p] to bounds[2p + 1] (where the run of breaks after it
        # starts). Counted first: an array grown in the loop costs Numba reference
        # counting on every pass.
        pieces = _pieces(data, a, b, breaks, np.empty(0, np.int64))
        bounds = np.empty(2 * pieces, np.int64)
        _pieces(data, a, b, breaks, bounds)
        # An open-addressing table of the pieces seen, by hash, compared byte by byte.
        size = 1
        while size < 2 * pieces:
            size *= 2
        slots = np.full(size, -1, np.int64)
        keys = np.empty(pieces, np.uint64)
        repeats = chars = 0.0
        for p in range(pieces):
            first, last = bounds[2 * p], bounds[2 * p + 1]
            h = _hash(data, first, last)
            keys[p] = h
            at = np.int64(h & np.uint64(size - 1))
            seen = False
            while slots[at] >= 0:
                q = slots[at]
                other = bounds[2 * q]
                size_q = bounds[2 * q + 1] - other
                if keys[q] == h and size_q == last - first and _same(data, other, first, size_q):
                    seen = True
                    break
                at = (at + 1) & (size - 1)
            if seen:
                repeats += 1
                for k in range(first, last):
                    chars += (data[k] & 0xC0) != 0x80
            else:
                slots[at] = p
        out[0, r] = pieces
        out[1, r] = repeats
        out[2, r] = chars
    return out


def repeated(texts: pa.Array, breaks: int, strip: bool) -> tuple[np.ndarray, ...]:
    """Per text: its pieces (``re.split(r"\\n{breaks,}", text)``, of ``text.strip()``
    with ``strip``), how many repeat an earlier piece of it, and their characters."""
    data, offsets = string_buffers(texts)
    found = _repeated(data, offsets.astype(np.int64), flags(), breaks, strip)
    return found[0], found[1], found[2]
