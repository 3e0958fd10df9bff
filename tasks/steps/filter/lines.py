"""Lines and paragraphs, in compiled passes over a batch's UTF-8 bytes.

:func:`lines` finds each text's lines as Python's ``str.splitlines`` does, with what the
rules ask of a line: where it is, where it is once stripped, its whitespace-separated
chunks and the longest one, and whether it starts with a bullet or ends with an
ellipsis; :func:`c4_marks`, what C4 asks of a stripped line. :func:`repeated` splits
each text on runs of line breaks (as ``re.split``) and counts the pieces that repeat an
earlier piece of the same text; :func:`marks` counts the marks Gopher's ratios count;
:func:`sentences` counts C4's sentences of a kept line and :func:`chunk_counts` a text's
whitespace-separated chunks (FineWeb's words of C4's text). Whitespace is what Arrow's
whitespace split and trim take for it (``split.flags``, the same as Python's
``str.isspace`` for every code point). The tests compare each with Python's string
methods, Python's ``re`` or Arrow's kernels.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numba
import numpy as np
import pyarrow as pa

from tasks.steps.filter.charsets import C4_POLICY_PHRASES
from tasks.steps.filter.split import (
    SPACE,
    TERMINAL,
    UNICODE_P,
    decode,
    flags,
    hash_bytes,
    span_strings,
)
from tasks.steps.text import string_buffers

BULLET, ELLIPSIS = 1, 2  # a line's flags: starts with • or -; ends with ... or …


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
def _lines(
    data: np.ndarray,
    offsets: np.ndarray,
    table: np.ndarray,
    row: np.ndarray,
    spans: np.ndarray,
    chunks: np.ndarray,
    longest: np.ndarray,
    marks: np.ndarray,
) -> int:
    """Each text's lines (per line: its text, its start and end, stripped start and end,
    whitespace chunks, longest chunk's characters, BULLET and ELLIPSIS) into the arrays
    (as many as :func:`_count` counts); returns how many."""
    # Per ASCII byte: 2 breaks a line, 1 is whitespace, 0 neither (most bytes are
    # ASCII: they skip the decoding and the tests).
    ascii = np.zeros(128, np.uint8)
    for cp in range(128):
        ascii[cp] = 2 if _breaks_line(cp) else 1 if table[cp] & SPACE else 0
    count = 0
    for r in range(len(offsets) - 1):
        i, end = offsets[r], offsets[r + 1]
        while i < end:
            start, first, last = i, -1, -1
            words = most = run = 0
            first_cp = 0
            broke = False
            while i < end:
                cp = data[i]
                if cp < 0x80:
                    size, kind = 1, ascii[cp]
                else:
                    cp, size = decode(data, i)
                    kind = 2 if _breaks_line(cp) else 1 if table[cp] & SPACE else 0
                if kind == 2:
                    broke = True
                    break
                if kind:
                    most = max(most, run)
                    run = 0
                else:
                    if run == 0:
                        words += 1
                    run += 1
                    if first < 0:
                        first, first_cp = i, cp
                    last = i + size
                i += size
            most = max(most, run)
            stop = i
            if broke:
                i += 2 if data[i] == 0x0D and i + 1 < end and data[i + 1] == 0x0A else size
            flag = 0
            if first_cp == 0x2022 or first_cp == 0x2D:
                flag |= BULLET
            if last - first >= 3 and first >= 0:
                a, b, c = data[last - 3], data[last - 2], data[last - 1]
                if (a == 0x2E and b == 0x2E and c == 0x2E) or (
                    a == 0xE2 and b == 0x80 and c == 0xA6
                ):
                    flag |= ELLIPSIS
            if first < 0:
                first = last = start
            row[count] = r
            spans[0, count] = start
            spans[1, count] = stop
            spans[2, count] = first
            spans[3, count] = last
            chunks[count] = words
            longest[count] = most
            marks[count] = flag
            count += 1
    return count


class Lines(NamedTuple):
    """A batch's lines (``str.splitlines``): per line its text's row, its byte span and
    stripped span, its whitespace-separated chunks, the longest one's characters, and
    whether it starts with a bullet (``•``, ``-``) or ends with an ellipsis (``...``,
    ``…``) once stripped; per text its number of lines. About 41 bytes a line."""

    row: np.ndarray
    spans: np.ndarray  # (4, lines): start and end byte, stripped start and end
    chunks: np.ndarray
    longest: np.ndarray
    marks: np.ndarray  # BULLET, ELLIPSIS
    count: np.ndarray
    data: np.ndarray

    @property
    def stripped(self) -> np.ndarray:
        return self.spans[2:]

    @property
    def bullet(self) -> np.ndarray:
        return (self.marks & BULLET) != 0

    @property
    def ellipsis(self) -> np.ndarray:
        return (self.marks & ELLIPSIS) != 0

    def strings(self, stripped: bool = False) -> pa.Array:
        """The lines as a string array (stripped, or as they are)."""
        return span_strings(self.data, self.spans[2:] if stripped else self.spans[:2])


@numba.njit(cache=True)
def _count(data: np.ndarray, offsets: np.ndarray) -> int:
    """How many lines the texts have (``str.splitlines``), from their bytes alone."""
    count = 0
    for r in range(len(offsets) - 1):
        a, b = offsets[r], offsets[r + 1]
        # Branch-free sums over a view of the text, which vectorise: a break per
        # \n \v \f \r \x1c-\x1e, NEL, LS and PS, and \r\n as one.
        text = data[a:b]
        for i in range(len(text)):
            byte = text[i]
            count += ((byte >= 0x0A) & (byte <= 0x0D)) | ((byte >= 0x1C) & (byte <= 0x1E))
        for i in range(len(text) - 1):
            count += (text[i] == 0xC2) & (text[i + 1] == 0x85)
            count -= (text[i] == 0x0D) & (text[i + 1] == 0x0A)
        for i in range(len(text) - 2):
            separator = (text[i + 2] == 0xA8) | (text[i + 2] == 0xA9)
            count += (text[i] == 0xE2) & (text[i + 1] == 0x80) & separator
        # The last piece is a line unless it is empty.
        if b > a:
            last = data[b - 1]
            ends = (0x0A <= last <= 0x0D) or (0x1C <= last <= 0x1E)
            ends |= b - a >= 2 and data[b - 2] == 0xC2 and last == 0x85
            ends |= (
                b - a >= 3
                and data[b - 3] == 0xE2
                and data[b - 2] == 0x80
                and (last == 0xA8 or last == 0xA9)
            )
            count += not ends
    return count


def lines(texts: pa.Array) -> Lines:
    """The lines of each text (a string array without nulls), as :class:`Lines`: counted
    first, then found into arrays of that size."""
    data, offsets = string_buffers(texts)
    offsets = offsets.astype(np.int64)
    table = flags()
    n = _count(data, offsets)
    row, spans = np.empty(n, np.int64), np.empty((4, n), np.int64)
    chunks, longest = np.empty(n, np.int32), np.empty(n, np.int32)
    marks = np.empty(n, np.uint8)
    _lines(data, offsets, table, row, spans, chunks, longest, marks)
    return Lines(row, spans, chunks, longest, marks, np.bincount(row, minlength=len(texts)), data)


# What C4 asks of a stripped line (:func:`c4_marks`).
CITED, END_PUNCT, END_DOTS, CURLY, LOREM, JAVASCRIPT, POLICY = (1 << k for k in range(7))
# Phrases looked for in the lower-cased line, and the mark each one sets.
_PHRASES = (
    (b"lorem ipsum", LOREM),
    (b"javascript", JAVASCRIPT),
    *((phrase.encode(), POLICY) for phrase in C4_POLICY_PHRASES),
)
_KELVIN = 0x212A  # the one character str.lower() makes an ASCII letter that can end one


def _window(chars: bytes) -> int:
    """The 32-bit window :func:`_c4_marks` holds after these four (lower-case) bytes."""
    return int.from_bytes(chars[:4], "big")


def _bucket(window: int) -> int:
    """Where a window falls in the 4096 bits of the phrase filter (as the kernel has it)."""
    return ((window * 0x9E3779B1) & 0xFFFFFFFF) >> 20


@functools.cache
def _phrase_table() -> tuple[np.ndarray, ...]:
    phrases = np.zeros((len(_PHRASES), max(len(p) for p, _ in _PHRASES)), np.uint8)
    sizes = np.array([len(p) for p, _ in _PHRASES], np.int64)
    sets = np.array([mark for _, mark in _PHRASES], np.int64)
    starting = np.zeros(256, np.int64)  # per first byte: the phrases that start with it
    # A bit per bucket of a phrase's first four bytes: a window outside them is no
    # phrase's start (1 in about 600 windows falls in one of the few set buckets).
    buckets = np.zeros(4096, np.bool_)
    for k, (phrase, _) in enumerate(_PHRASES):
        phrases[k, : len(phrase)] = np.frombuffer(phrase, np.uint8)
        starting[phrase[0]] |= 1 << k
        buckets[_bucket(_window(phrase))] = True
    # What str.lower() makes of each ASCII byte (bytes past ASCII: 0xFF, in no phrase).
    lower = np.full(256, 0xFF, np.uint8)
    lower[:128] = np.frombuffer(bytes(range(128)).lower(), np.uint8)
    return phrases, sizes, sets, starting, buckets, lower


@numba.njit(cache=True, inline="always")
def _folded(data: np.ndarray, i: int) -> tuple[int, int]:
    """The byte ``str.lower()`` makes of the character at ``i`` where that is ASCII
    (else 0xFF, which no phrase holds), and the character's size."""
    byte = data[i]
    if byte < 0x80:
        return (byte | 0x20 if 0x41 <= byte <= 0x5A else byte), 1
    cp, size = decode(data, i)
    return (0x6B if cp == _KELVIN else 0xFF), size


@numba.njit(cache=True)
def _c4_marks(
    data: np.ndarray,
    spans: np.ndarray,
    phrases: np.ndarray,
    sizes: np.ndarray,
    sets: np.ndarray,
    starting: np.ndarray,
    buckets: np.ndarray,
    lower: np.ndarray,
) -> np.ndarray:
    out = np.zeros(spans.shape[1], np.uint8)
    for line in range(spans.shape[1]):
        a, b = spans[0, line], spans[1, line]
        found = 0
        if b > a:
            last = data[b - 1]
            if last in (0x2E, 0x3F, 0x21, 0x22, 0x27):  # . ? ! " '
                found |= END_PUNCT
            if b - a >= 3 and data[b - 3] == 0x2E and data[b - 2] == 0x2E and last == 0x2E:
                found |= END_DOTS
        # The last four characters lower-cased (``window``), and where the first of
        # them starts (``back``): a phrase can start only where they are one's first
        # four. Every phrase starts with ASCII, and none has a character that
        # lower-cases to ASCII but the Kelvin sign's k.
        # (A window that falls in a phrase's bucket only has its bytes compared: a
        # call at any place finds only what is there.)
        window = np.uint64(0xFFFFFFFF)
        back0 = back1 = back2 = back3 = a
        i = a
        while i < b:
            byte = data[i]
            if byte < 0x80:
                low, size = lower[byte], 1
                if byte == 0x5B:
                    found |= CITED
                elif byte == 0x7B:
                    found |= CURLY
            else:
                low, size = _folded(data, i)
            window = ((window << np.uint64(8)) | np.uint64(low)) & np.uint64(0xFFFFFFFF)
            back0, back1, back2, back3 = back1, back2, back3, i
            mixed = (window * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
            if buckets[mixed >> np.uint64(20)]:
                candidates = starting[lower[data[back0]]]
                if candidates:
                    found = _phrases_at(data, back0 + 1, b, candidates, found, phrases, sizes, sets)
            i += size
        out[line] = found
    return out


@numba.njit(cache=True)
def _phrases_at(
    data: np.ndarray,
    i: int,
    b: int,
    candidates: int,
    found: int,
    phrases: np.ndarray,
    sizes: np.ndarray,
    sets: np.ndarray,
) -> int:
    """``found`` with the marks of the ``candidates`` phrases whose rest (all but the
    first byte) is at ``data[i:b]`` once lower-cased. (Apart from the scan: kept in it,
    it made the scan of every other byte 4x slower.)"""
    k = 0
    while candidates:
        if candidates & 1 and not found & sets[k]:
            j, at = 1, i
            while j < sizes[k] and at < b:
                c, step = _folded(data, at)
                if c != phrases[k, j]:
                    break
                j += 1
                at += step
            if j == sizes[k]:
                found |= sets[k]
        candidates >>= 1
        k += 1
    return found


def c4_marks(data: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Per stripped line (``data[spans[0]:spans[1]]``), C4's questions as bits: holds
    ``[`` (CITED), ends with one of ``. ? ! " '`` (END_PUNCT) or ``...`` (END_DOTS),
    holds ``{`` (CURLY), and, lower-cased as ``str.lower()`` does (as datatrove), holds
    ``lorem ipsum`` (LOREM), ``javascript`` (JAVASCRIPT) or a policy phrase (POLICY)."""
    return _c4_marks(data, spans, *_phrase_table())


def c4_marks_of(strings: pa.Array) -> np.ndarray:
    """:func:`c4_marks` of each string of an array (stripped lines, without nulls)."""
    data, offsets = string_buffers(strings)
    offsets = offsets.astype(np.int64)
    return c4_marks(data, np.stack([offsets[:-1], offsets[1:]]))


@numba.njit(cache=True)
def _same(data: np.ndarray, a: int, b: int, size: int) -> bool:
    """Whether ``data[a:a + size]`` and ``data[b:b + size]`` are the same bytes."""
    k = 0
    while k < size and data[a + k] == data[b + k]:
        k += 1
    return k == size


@numba.njit(cache=True)
def _pieces(data: np.ndarray, a: int, b: int, breaks: int, bounds: np.ndarray) -> int:
    """The pieces of ``data[a:b]`` split on runs of at least ``breaks`` ``\\n``: where
    each starts and ends into ``bounds`` (room for a piece per ``\\n``, and one);
    returns how many."""
    pieces, i, start = 0, a, a
    while i < b:
        if data[i] == 0x0A:
            j = i + 1
            while j < b and data[j] == 0x0A:
                j += 1
            if j - i >= breaks:
                bounds[2 * pieces] = start
                bounds[2 * pieces + 1] = i
                pieces += 1
                start = j
            i = j
        else:
            i += 1
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
    bounds = np.empty(0, np.int64)
    for r in range(len(offsets) - 1):
        a, b = offsets[r], offsets[r + 1]
        if strip:
            while a < b:
                cp, size = decode(data, a)
                if not table[cp] & SPACE:
                    break
                a += size
            while b > a:
                k = b - 1
                while data[k] & 0xC0 == 0x80:
                    k -= 1
                cp, _ = decode(data, k)
                if not table[cp] & SPACE:
                    break
                b = k
        # Piece p is bounds[2p] to bounds[2p + 1] (where the run of breaks after it
        # starts): at most a piece per \n, and one, counted over a view of the text
        # (a loop over a view vectorises; over offsets into the buffer, not).
        text = data[a:b]
        most = 1
        for k in range(len(text)):
            most += text[k] == 0x0A
        if 2 * most > len(bounds):
            bounds = np.empty(4 * most, np.int64)
        pieces = _pieces(data, a, b, breaks, bounds)
        # An open-addressing table of the pieces seen, by hash, compared byte by byte.
        size = 1
        while size < 2 * pieces:
            size *= 2
        slots = np.full(size, -1, np.int64)
        keys = np.empty(pieces, np.uint64)
        repeats = chars = 0.0
        for p in range(pieces):
            first, last = bounds[2 * p], bounds[2 * p + 1]
            h = hash_bytes(data, first, last)
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
                piece = data[first:last]
                for k in range(len(piece)):
                    chars += (piece[k] & 0xC0) != 0x80
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
        a, end = offsets[r], offsets[r + 1]
        # Sums without branches over a view of the text (LLVM vectorises those, not
        # loops over offsets into the whole buffer). Where no run of dots is longer
        # than three, each "..." is one; only a text with a longer run is walked.
        text = data[a:end]
        hashes = breaks = ellipses = dots = longer = 0
        for i in range(len(text)):
            hashes += text[i] == 0x23
        for i in range(len(text)):
            breaks += text[i] == 0x0A
        for i in range(len(text) - 2):
            ellipses += (text[i] == 0xE2) & (text[i + 1] == 0x80) & (text[i + 2] == 0xA6)
        for i in range(len(text) - 2):
            dots += (text[i] == 0x2E) & (text[i + 1] == 0x2E) & (text[i + 2] == 0x2E)
        for i in range(len(text) - 3):
            longer += (text[i] == 0x2E) & (text[i + 3] == 0x2E)
        if dots and longer:
            dots, i = 0, 0
            while i + 2 < len(text):
                if text[i] == 0x2E and text[i + 1] == 0x2E and text[i + 2] == 0x2E:
                    dots += 1
                    i += 3
                else:
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


@numba.njit(cache=True)
def _chunk_counts(data: np.ndarray, offsets: np.ndarray, table: np.ndarray) -> np.ndarray:
    out = np.zeros(len(offsets) - 1, np.float64)
    for r in range(len(offsets) - 1):
        i, end = offsets[r], offsets[r + 1]
        chunks, inside = 0, False
        while i < end:
            cp, size = decode(data, i)
            i += size
            space = (table[cp] & SPACE) != 0
            chunks += not space and not inside
            inside = not space
        out[r] = chunks
    return out


def chunk_counts(texts: pa.Array) -> np.ndarray:
    """Per text (a string array without nulls): its whitespace-separated chunks, as
    ``len(text.split())``."""
    data, offsets = string_buffers(texts)
    return _chunk_counts(data, offsets.astype(np.int64), flags())


@numba.njit(cache=True, inline="always")
def _re2_blank(cp: int) -> bool:  # RE2's \s: [\t\n\f\r ]
    return cp == 0x20 or cp == 0x09 or cp == 0x0A or cp == 0x0C or cp == 0x0D


@numba.njit(cache=True)
def _sentences(data: np.ndarray, offsets: np.ndarray, table: np.ndarray) -> np.ndarray:
    out = np.zeros(len(offsets) - 1, np.float64)
    for r in range(len(offsets) - 1):
        i, end = offsets[r], offsets[r + 1]
        breaks, nonblank = 0, False
        while i < end:
            if data[i] == 0x2E and i + 1 < end and data[i + 1] == 0x2E:
                while i < end and data[i] == 0x2E:  # a run of dots: no terminal
                    i += 1
                nonblank = True
                continue
            cp, size = decode(data, i)
            i += size
            if not _re2_blank(cp):
                nonblank = True
            if not table[cp] & TERMINAL:
                continue
            # The run of punctuation and blanks after a terminal: a break if it ends in
            # a blank and something else follows (the regex takes that too). If not,
            # no terminal inside the run makes one either.
            last_blank = False
            while i < end:
                cp, size = decode(data, i)
                if not (table[cp] & UNICODE_P or _re2_blank(cp)):
                    break
                last_blank = _re2_blank(cp)
                i += size
            if i < end and last_blank:
                breaks += 1
                i += size
        out[r] = 1 + breaks if nonblank else 0
    return out


def sentences(strings: pa.Array) -> np.ndarray:
    """Per string (C4's kept lines, without nulls): 1 if it holds a character that is not
    RE2's ``\\s``, plus its sentence breaks: the matches of
    ``charsets.SENTENCE_BREAK_PATTERN`` once runs of 2+ dots are one ``…`` (spaCy takes
    a dot run for one token that ends no sentence)."""
    data, offsets = string_buffers(strings)
    return _sentences(data, offsets.astype(np.int64), flags())
