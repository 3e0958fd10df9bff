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

from tasks.steps.filter.charsets import C4_POLICY_PHRASES
from tasks.steps.filter.split import LOWER_ASCII, SPACE, _copied, _hash, flags
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


# What C4 asks of a stripped line (:func:`c4_marks`).
CITED, END_PUNCT, END_DOTS, CURLY, LOREM, JAVASCRIPT, POLICY, FOLDED = (1 << k for k in range(8))
# Phrases looked for in the lower-cased line, and the mark each one sets.
_PHRASES = (
    (b"lorem ipsum", LOREM),
    (b"javascript", JAVASCRIPT),
    *((phrase.encode(), POLICY) for phrase in C4_POLICY_PHRASES),
)


def _phrase_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    phrases = np.zeros((len(_PHRASES), max(len(p) for p, _ in _PHRASES)), np.uint8)
    sizes = np.array([len(p) for p, _ in _PHRASES], np.int64)
    sets = np.array([mark for _, mark in _PHRASES], np.int64)
    starting = np.zeros(256, np.int64)  # per first byte: the phrases that start with it
    for k, (phrase, _) in enumerate(_PHRASES):
        phrases[k, : len(phrase)] = np.frombuffer(phrase, np.uint8)
        starting[phrase[0]] |= 1 << k
    return phrases, sizes, sets, starting


@numba.njit(cache=True)
def _c4_marks(
    data: np.ndarray,
    spans: np.ndarray,
    table: np.ndarray,
    phrases: np.ndarray,
    sizes: np.ndarray,
    sets: np.ndarray,
    starting: np.ndarray,
) -> np.ndarray:
    out = np.zeros(spans.shape[1], np.int64)
    for line in range(spans.shape[1]):
        a, b = spans[0, line], spans[1, line]
        found = 0
        if b > a:
            last = data[b - 1]
            if last in (0x2E, 0x3F, 0x21, 0x22, 0x27):  # . ? ! " '
                found |= END_PUNCT
            if b - a >= 3 and data[b - 3] == 0x2E and data[b - 2] == 0x2E and last == 0x2E:
                found |= END_DOTS
        i = a
        while i < b:
            byte = data[i]
            if byte >= 0x80:
                cp, size = _decode(data, i)
                if table[cp] & LOWER_ASCII:
                    found |= FOLDED
                i += size
                continue
            if byte == 0x5B:
                found |= CITED
            elif byte == 0x7B:
                found |= CURLY
            low = byte | 0x20 if 0x41 <= byte <= 0x5A else byte
            candidates = starting[low]
            k = 0
            while candidates:
                if candidates & 1 and not found & sets[k] and i + sizes[k] <= b:
                    j = 1
                    while j < sizes[k]:
                        c = data[i + j]
                        if (c | 0x20 if 0x41 <= c <= 0x5A else c) != phrases[k, j]:
                            break
                        j += 1
                    if j == sizes[k]:
                        found |= sets[k]
                candidates >>= 1
                k += 1
            i += 1
        out[line] = found
    return out


def c4_marks(found: Lines) -> np.ndarray:
    """Per line (stripped), C4's questions as bits: holds ``[`` (CITED), ends with one
    of ``. ? ! " '`` (END_PUNCT) or ``...`` (END_DOTS), holds ``{`` (CURLY), and, lower
    case, ``lorem ipsum`` (LOREM), ``javascript`` (JAVASCRIPT) or a policy phrase
    (POLICY). FOLDED: the line holds a character that Arrow's ``utf8_lower`` makes
    ASCII (the Kelvin sign makes a ``k``): those three are then Arrow's to answer."""
    return _c4_marks(found.data, found.stripped, flags(), *_phrase_table())


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


@numba.njit(cache=True)
def _marks(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per text (columns): its ``#``, its ``...`` (counted left to right without
    overlap, as Arrow's ``count_substring``), its ``…`` and its ``\\n``."""
    out = np.zeros((4, len(offsets) - 1), np.float64)
    for r in range(len(offsets) - 1):
        i, end = offsets[r], offsets[r + 1]
        hashes = dots = ellipses = breaks = 0
        while i < end:
            byte = data[i]
            if byte == 0x23:
                hashes += 1
            elif byte == 0x0A:
                breaks += 1
            elif byte == 0x2E and i + 2 < end and data[i + 1] == 0x2E and data[i + 2] == 0x2E:
                dots += 1
                i += 3
                continue
            elif byte == 0xE2 and i + 2 < end and data[i + 1] == 0x80 and data[i + 2] == 0xA6:
                ellipses += 1
            i += 1
        out[0, r], out[1, r], out[2, r], out[3, r] = hashes, dots, ellipses, breaks
    return out


class Marks(NamedTuple):
    """Per text: how many ``#``, ``...`` (without overlap), ``…`` and ``\\n`` it holds."""

    hashes: np.ndarray
    dots: np.ndarray
    ellipses: np.ndarray
    breaks: np.ndarray


def marks(texts: pa.Array) -> Marks:
    """The marks of each text (a string array without nulls), as :class:`Marks`."""
    data, offsets = string_buffers(texts)
    return Marks(*_marks(data, offsets.astype(np.int64)))


def holds(texts: pa.Array, byte: int) -> bool:
    """Whether any text holds this byte (an ASCII character)."""
    data, offsets = string_buffers(texts)
    if len(offsets) < 2:
        return False
    return bool((data[int(offsets[0]) : int(offsets[-1])] == byte).any())


def repeated(texts: pa.Array, breaks: int, strip: bool) -> tuple[np.ndarray, ...]:
    """Per text: its pieces (``re.split(r"\\n{breaks,}", text)``, of ``text.strip()``
    with ``strip``), how many repeat an earlier piece of it, and their characters."""
    data, offsets = string_buffers(texts)
    found = _repeated(data, offsets.astype(np.int64), flags(), breaks, strip)
    return found[0], found[1], found[2]
