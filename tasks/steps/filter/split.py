"""Words as :mod:`tasks.steps.filter.words` splits them, in one compiled pass over a
batch's UTF-8 bytes: each word's place in its text, its row, its characters and a
64-bit hash of its bytes.

The rules are those of :func:`words.spacy_like` (spaCy's prefixes, suffixes and infixes),
applied to each whitespace-free chunk of a text as the RE2 passes there apply them: the
prefix run, an initialism at the start of the rest, the suffix run found from the
chunk's end, the infix passes over the core (each a leftmost, non-overlapping scan; the
ones that consume a neighbour run twice), then spaCy's ``and/or``. Every word is a
contiguous piece of its text, so a word is its byte span, and its text is copied once.

Which characters are letters, digits, marks, prefixes, suffixes and whitespace is read
from Arrow's own RE2 and whitespace split for every code point (:func:`flags`, once per
process, about a second), so the two splitters agree wherever RE2's Unicode tables and
Python's differ.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.steps.filter import words
from tasks.steps.filter.charsets import PUNCTUATION_PATTERN, TERMINAL_PATTERN
from tasks.steps.filter.ngrams import mix
from tasks.steps.text import string_buffers

# Flag bits of a code point (PUNCT: datatrove's punctuation; UNICODE_P: RE2's \p{P};
# TERMINAL: datatrove's sentence terminals).
L, N, M, LL, LU, PREFIX, SUFFIX, SPACE, PUNCT = 1, 2, 4, 8, 16, 32, 64, 128, 256
UNICODE_P, TERMINAL = 512, 1024

_DOT, _ELLIPSIS, _APOS, _RIGHT_QUOTE = 0x2E, 0x2026, 0x27, 0x2019
_SPACE_CP = 0x20  # what an inserted space holds
LETTER, NON_SYMBOL = 1, 2  # what a word holds: a letter; a character not punctuation


@functools.cache
def flags() -> np.ndarray:
    """Per code point (0 to 0x10FFFF), its flag bits, as Arrow's RE2 and whitespace
    split see it (surrogates have none)."""
    points = np.r_[0:0xD800, 0xE000:0x110000]
    data = "".join(map(chr, points.tolist())).encode()
    sizes = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    chars = pa.StringArray.from_buffers(len(points), pa.py_buffer(offsets), pa.py_buffer(data))
    out = np.zeros(0x110000, np.uint16)
    for bit, pattern in (
        (L, r"\p{L}"),
        (N, r"\p{N}"),
        (M, r"\p{M}"),
        (LL, r"\p{Ll}"),
        (LU, r"\p{Lu}"),
        (PREFIX, f"[{words._PREFIX}]"),
        (SUFFIX, f"[{words._SUFFIX}]"),
        (PUNCT, PUNCTUATION_PATTERN),
        (UNICODE_P, r"\p{P}"),
        (TERMINAL, TERMINAL_PATTERN),
    ):
        found = pc.match_substring_regex(chars, f"^{pattern}$").to_numpy(zero_copy_only=False)
        out[points[np.asarray(found, bool)]] |= bit
    # Whitespace as Arrow's split on it (what the RE2 passes' chunks are cut by).
    joined = pc.binary_join_element_wise("a", chars, "b", "")
    pieces = np.asarray(pc.list_value_length(pc.utf8_split_whitespace(joined)))
    out[points[pieces == 2]] |= SPACE
    return out


@numba.njit(cache=True)
def _is(table: np.ndarray, cp: int, bit: int) -> bool:
    # No guard for cp < 0: with one (``cp >= 0 and ...``) the infix passes ran 6x slower.
    return (table[cp] & bit) != 0


@numba.njit(cache=True)
def _dots_end(cps: np.ndarray, j: int, end: int) -> int:
    """Where a run of 2 or more periods at ``j`` ends (``j`` if there is none)."""
    if j + 1 >= end or cps[j] != _DOT or cps[j + 1] != _DOT:
        return j
    k = j + 2
    while k < end and cps[k] == _DOT:
        k += 1
    return k


@numba.njit(cache=True)
def _contraction_at(cps: np.ndarray, j: int, end: int) -> int:
    """The length of ``words._CONTRACTION`` matched at ``j`` (0: none)."""
    if j + 3 <= end:
        a, b, c = cps[j], cps[j + 1], cps[j + 2]
        quote = b in (_APOS, _RIGHT_QUOTE)
        if quote and ((a == 0x6E and c == 0x74) or (a == 0x4E and c == 0x54)):  # n't N'T
            return 3
    if j + 2 <= end and (cps[j] == _APOS or cps[j] == _RIGHT_QUOTE):
        a = cps[j + 1]
        if j + 3 <= end:
            b = cps[j + 2]
            if (a == 0x72 and b == 0x65) or (a == 0x52 and b == 0x45):  # re RE
                return 3
            if (a == 0x76 and b == 0x65) or (a == 0x56 and b == 0x45):  # ve VE
                return 3
            if (a == 0x6C and b == 0x6C) or (a == 0x4C and b == 0x4C):  # ll LL
                return 3
        if a in (0x73, 0x53, 0x6D, 0x4D, 0x64, 0x44):  # s S m M d D
            return 2
    return 0


@numba.njit(cache=True)
def _contraction_before(cps: np.ndarray, e: int, start: int) -> int:
    """The length of a contraction ending at ``e`` as the reversed suffix regex finds it
    (its alternatives in their order), not reaching before ``start`` (0: none)."""
    if e - 3 >= start:
        a, b, c = cps[e - 3], cps[e - 2], cps[e - 1]
        if (b in (_APOS, _RIGHT_QUOTE)) and (
            (a == 0x6E and c == 0x74) or (a == 0x4E and c == 0x54)
        ):
            return 3
    if e - 2 >= start:
        last = cps[e - 1]
        if last in (0x73, 0x53, 0x6D, 0x4D, 0x64, 0x44):  # s S m M d D
            q = cps[e - 2]
            if q in (_APOS, _RIGHT_QUOTE):
                return 2
            return 0
        if e - 3 >= start:
            pair_ok = (
                (cps[e - 2] == 0x72 and last == 0x65)
                or (cps[e - 2] == 0x52 and last == 0x45)
                or (cps[e - 2] == 0x76 and last == 0x65)
                or (cps[e - 2] == 0x56 and last == 0x45)
                or (cps[e - 2] == 0x6C and last == 0x6C)
                or (cps[e - 2] == 0x4C and last == 0x4C)
            )
            q = cps[e - 3]
            if pair_ok and (q in (_APOS, _RIGHT_QUOTE)):
                return 3
    return 0


@numba.njit(cache=True)
def _pass(work: np.ndarray, now: int, n: int, kind: int, table: np.ndarray) -> tuple[int, bool]:
    """One infix pass of ``words._INFIXES`` (``kind`` 0 to 4) over the first ``n`` code
    points of ``work[now]`` into ``work[1 - now]``, spaces inserted around what it
    matches (their place -1); returns the new length, and whether a second pass could
    match more. (Indexed, not sliced: a view made per call costs reference counting.)"""
    i = o = 0
    nxt = 1 - now
    again = False
    while i < n:
        c = work[now, 0, i]
        matched = 0  # characters matched from i; the mark is work[now, 0, i + 1 : i + matched - 1]
        if kind == 0:
            run = _dots_end(work[now, 0], i, n) - i
            if not run and c == _ELLIPSIS:
                run = 1
            if run:
                work[nxt, 0, o] = _SPACE_CP
                work[nxt, 1, o] = -1
                o += 1
                for k in range(run):
                    work[nxt, 0, o] = work[now, 0, i + k]
                    work[nxt, 1, o] = work[now, 1, i + k]
                    o += 1
                work[nxt, 0, o] = _SPACE_CP
                work[nxt, 1, o] = -1
                o += 1
                i += run
                continue
        elif kind == 1:
            if _is(table, c, L | N) and i + 2 < n:
                # The marks in the regex's order: ---, --, ——, —, –, -, then one of ~:<>=/.
                mark = work[now, 0, i + 1]
                size = 0
                if mark == 0x2D:
                    size = (
                        3
                        if i + 3 < n and work[now, 0, i + 2] == 0x2D and work[now, 0, i + 3] == 0x2D
                        else 0
                    )
                    if size and not (i + 4 < n and _is(table, work[now, 0, i + 4], L)):
                        size = 0
                    if not size and i + 2 < n and work[now, 0, i + 2] == 0x2D:
                        size = 2 if i + 3 < n and _is(table, work[now, 0, i + 3], L) else 0
                    if not size:
                        size = 1
                elif mark == 0x2014:
                    two = (
                        i + 3 < n
                        and work[now, 0, i + 2] == 0x2014
                        and _is(table, work[now, 0, i + 3], L)
                    )
                    size = 2 if two else 1
                elif mark == 0x2013 or mark in (0x7E, 0x3A, 0x3C, 0x3E, 0x3D, 0x2F):
                    size = 1
                if size and i + 1 + size < n and _is(table, work[now, 0, i + 1 + size], L):
                    matched = size + 2
        elif kind == 2:
            if (
                i + 2 < n
                and _is(table, c, L)
                and work[now, 0, i + 1] == 0x2C
                and _is(table, work[now, 0, i + 2], L)
            ):
                matched = 3
        elif kind == 3:
            if i + 2 < n and _is(table, c, N):
                mark = work[now, 0, i + 1]
                if mark == 0x2B or mark == 0x2D or mark == 0x2A or mark == 0x5E:  # + - * ^
                    after = work[now, 0, i + 2]
                    if _is(table, after, N) or after == 0x2D:
                        matched = 3
        else:
            if (
                i + 2 < n
                and _is(table, c, LL)
                and work[now, 0, i + 1] == _DOT
                and _is(table, work[now, 0, i + 2], LU)
            ):
                matched = 3
        if matched:
            work[nxt, 0, o] = c
            work[nxt, 1, o] = work[now, 1, i]
            work[nxt, 0, o + 1] = _SPACE_CP
            work[nxt, 1, o + 1] = -1
            o += 2
            for k in range(1, matched - 1):
                work[nxt, 0, o] = work[now, 0, i + k]
                work[nxt, 1, o] = work[now, 1, i + k]
                o += 1
            work[nxt, 0, o] = _SPACE_CP
            work[nxt, 1, o] = -1
            work[nxt, 0, o + 1] = work[now, 0, i + matched - 1]
            work[nxt, 1, o + 1] = work[now, 1, i + matched - 1]
            o += 2
            i += matched
            # A second pass (kinds 1 and 3) can only match where a match's last
            # character starts one: before one of the kind's marks.
            if i < n and not again:
                mark = work[now, 0, i]
                if kind == 1:
                    again = mark in (0x2D, 0x2013, 0x2014, 0x7E, 0x3A, 0x3C, 0x3E, 0x3D, 0x2F)
                else:
                    again = mark in (0x2B, 0x2D, 0x2A, 0x5E)
        else:
            work[nxt, 0, o] = c
            work[nxt, 1, o] = work[now, 1, i]
            o += 1
            i += 1
    return o, again


@numba.njit(cache=True)
def _and_or(cps: np.ndarray, src: np.ndarray, n: int) -> int:
    """spaCy's one exception: ``and / or`` back to ``and/or``; returns the new length."""
    o = i = 0
    while i < n:
        if (
            i + 8 <= n
            and cps[i] == 0x61 and cps[i + 1] == 0x6E and cps[i + 2] == 0x64
            and cps[i + 3] == _SPACE_CP and cps[i + 4] == 0x2F and cps[i + 5] == _SPACE_CP
            and cps[i + 6] == 0x6F and cps[i + 7] == 0x72
        ):  # fmt: skip
            for k in (0, 1, 2, 4, 6, 7):
                cps[o] = cps[i + k]
                src[o] = src[i + k]
                o += 1
            i += 8
        else:
            cps[o] = cps[i]
            src[o] = src[i]
            o += 1
            i += 1
    return o


@numba.njit(cache=True)
def _word_class(c: int) -> bool:  # RE2's \w: ASCII letters, digits and _
    return (0x30 <= c <= 0x39) or (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A) or c == 0x5F


@numba.njit(cache=True)
def _is_url(cps: np.ndarray, n: int) -> bool:
    """``words._URL`` over ``cps[:n]``: a scheme's ``://`` or ``www.`` then a non-space
    character, or an e-mail address."""
    if n == 0:
        return False
    c0 = cps[0]
    if (0x41 <= c0 <= 0x5A) or (0x61 <= c0 <= 0x7A):
        k = 1
        while k < n:
            c = cps[k]
            if (_word_class(c) and c != 0x5F) or c == 0x2B or c == 0x2E or c == 0x2D:
                k += 1
            else:
                break
        scheme = k + 3 < n and cps[k] == 0x3A and cps[k + 1] == 0x2F and cps[k + 2] == 0x2F
        if scheme and cps[k + 3] != _SPACE_CP:
            return True
    www = n > 4 and cps[0] == 0x77 and cps[1] == 0x77 and cps[2] == 0x77 and cps[3] == _DOT
    if www and cps[4] != _SPACE_CP:
        return True
    at = 0
    while at < n and (_word_class(cps[at]) or cps[at] in (0x2E, 0x2B, 0x2D)):
        at += 1
    if at == 0 or at >= n or cps[at] != 0x40:
        return False
    labels, size = 0, 0
    for k in range(at + 1, n):
        c = cps[k]
        if _word_class(c) or c == 0x2D:
            size += 1
        elif c == _DOT and size > 0:
            labels += 1
            size = 0
        else:
            return False
    return size > 0 and labels >= 1


@numba.njit(cache=True, inline="always")
def hash_bytes(data: np.ndarray, first: int, last: int) -> np.uint64:
    """A 64-bit hash of ``data[first:last]``, eight bytes a step, mixed
    (:func:`ngrams.mix`). For one length up to 8 bytes, a bijection: two such words of
    one length never collide."""
    h = np.uint64(last - first) * np.uint64(0x9E3779B97F4A7C15)
    k = first
    while k + 8 < last:
        word = np.uint64(0)
        for j in range(8):
            word |= np.uint64(data[k + j]) << np.uint64(8 * j)
        h = (h ^ word) * np.uint64(0x100000001B3)
        h ^= h >> np.uint64(29)
        k += 8
    word = np.uint64(0)
    for j in range(last - k):
        word |= np.uint64(data[k + j]) << np.uint64(8 * j)
    return mix(h ^ word)


@numba.njit(cache=True, inline="always")
def decode(data: np.ndarray, i: int) -> tuple[int, int]:
    """The code point at byte ``i`` of valid UTF-8 and its size in bytes (a code point
    past U+10FFFF, only from bytes that are not UTF-8, is read as U+10FFFF: the flag
    table ends there)."""
    byte = data[i]
    if byte < 0x80:
        return byte, 1
    if byte < 0xE0:
        return ((byte & 0x1F) << 6) | (data[i + 1] & 0x3F), 2
    if byte < 0xF0:
        return ((byte & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F), 3
    cp = (
        ((byte & 0x07) << 18)
        | ((data[i + 1] & 0x3F) << 12)
        | ((data[i + 2] & 0x3F) << 6)
        | (data[i + 3] & 0x3F)
    )
    return min(cp, 0x10FFFF), 4


@numba.njit(cache=True, inline="always")
def _record(
    first: int, last: int, row: int, chars: int, kinds: int, data: np.ndarray,
    found: np.ndarray, count: int,
) -> int:  # fmt: skip
    """Record the word of bytes ``first`` to ``last`` (its row, characters, hash of its
    bytes; its LETTER and NON_SYMBOL ``kinds``) as word ``count``; returns the next
    count."""
    found[0, count] = first
    found[1, count] = last
    found[2, count] = row
    found[3, count] = chars
    found[4, count] = np.int64(hash_bytes(data, first, last))
    found[5, count] = kinds
    return count + 1


@numba.njit(cache=True, inline="always")
def _emit(
    begin: int,
    end: int,
    row: int,
    pos: np.ndarray,
    data: np.ndarray,
    found: np.ndarray,
    count: int,
    cps: np.ndarray,
    table: np.ndarray,
) -> int:
    """:func:`_record` the word of code points ``begin`` to ``end``: whether it has a
    letter, and a character that is not punctuation, read from the table."""
    kinds = 0
    for k in range(begin, end):
        f = table[cps[k]]
        if f & L:
            kinds |= LETTER
        if not f & PUNCT:
            kinds |= NON_SYMBOL
    return _record(pos[begin], pos[end], row, end - begin, kinds, data, found, count)


@numba.njit(cache=True)
def _chunk(
    cps: np.ndarray,
    pos: np.ndarray,
    a: int,
    b: int,
    row: int,
    data: np.ndarray,
    table: np.ndarray,
    found: np.ndarray,
    count: int,
    work: np.ndarray,
) -> int:
    """The words of the whitespace-free chunk ``cps[a:b]``, as ``words.spacy_like``
    (:func:`_rows` splits the plain chunks itself)."""
    # The prefix run: runs of 2+ dots and prefix characters, each a word.
    i = a
    while i < b:
        j = _dots_end(cps, i, b)
        if j > i:
            count = _emit(i, j, row, pos, data, found, count, cps, table)
            i = j
        elif _is(table, cps[i], PREFIX):
            count = _emit(i, i + 1, row, pos, data, found, count, cps, table)
            i += 1
        else:
            break
    if i == b:
        return count
    # An initialism at the start of the rest (2+ of letter and period) is kept whole.
    pairs, j = 0, i
    while j + 1 < b and _is(table, cps[j], L) and cps[j + 1] == _DOT:
        pairs += 1
        j += 2
    initialism = i + 2 * pairs if pairs >= 2 else -1
    # The suffix run, from the end, not into the initialism.
    stop = initialism if initialism >= 0 else i
    e = b
    while e > stop:
        size = _contraction_before(cps, e, stop)
        if size:
            e -= size
        elif cps[e - 1] == _DOT and e - 2 >= stop and cps[e - 2] == _DOT:
            while e > stop and cps[e - 1] == _DOT:
                e -= 1
        elif _is(table, cps[e - 1], SUFFIX) or cps[e - 1] == _DOT:
            e -= 1
        else:
            break
    # The core, with the space the initialism gets after it, through the infix passes.
    # A pass runs only where the core has what it matches: its mark between the kinds
    # of character it needs, told from the core's own neighbours (a pass only inserts
    # spaces, so it never makes a match for a later one).
    n = present = 0
    before = back = _SPACE_CP  # the two code points before this one in the core
    for k in range(i, e):
        if k == initialism:
            work[0, 0, n] = _SPACE_CP
            work[0, 1, n] = -1
            n += 1
            before, back = _SPACE_CP, before
        c = cps[k]
        work[0, 0, n] = c
        work[0, 1, n] = k
        n += 1
        if c == _ELLIPSIS or (c == _DOT and before == _DOT):
            present |= 1  # ..., …
        infix = c in (0x2D, 0x2013, 0x2014, 0x7E, 0x3A, 0x3C, 0x3E, 0x3D, 0x2F)
        if infix and _is(table, before, L | N):
            present |= 2  # a-, a—, a~, a:, a<, a>, a=, a/ (what follows: the pass)
        if before == 0x2C and _is(table, c, L) and _is(table, back, L):
            present |= 4  # a,b
        operator = before in (0x2B, 0x2D, 0x2A, 0x5E) and _is(table, back, N)
        if operator and (c == 0x2D or _is(table, c, N)):
            present |= 8  # 1+2, 1-2, 1*-
        if before == _DOT and _is(table, c, LU) and _is(table, back, LL):
            present |= 16  # a.B
        before, back = c, before
    if initialism == e:
        work[0, 0, n] = _SPACE_CP
        work[0, 1, n] = -1
        n += 1
    # The passes go back and forth between the two halves of ``work`` (by index: an
    # array variable swapped in a loop costs Numba reference counting on every pass).
    now = 0
    if present and not _is_url(work[0, 0], n):
        for kind, times in ((0, 1), (1, 2), (2, 1), (3, 2), (4, 1)):
            if present & (1 << kind):
                for _ in range(times):
                    done, again = _pass(work, now, n, kind, table)
                    if done == n:  # no match (a match inserts spaces): nor a second time
                        break
                    n, now = done, 1 - now
                    if not again:
                        break
        n = _and_or(work[now, 0], work[now, 1], n)
    # Words: runs of the text's own characters (inserted spaces cut them).
    k = 0
    while k < n:
        if work[now, 1, k] < 0:
            k += 1
            continue
        first = work[now, 1, k]
        while k < n and work[now, 1, k] >= 0:
            k += 1
        count = _emit(first, work[now, 1, k - 1] + 1, row, pos, data, found, count, cps, table)
    # The suffix run, a word per unit: runs of 2+ dots, contractions, characters.
    j = e
    while j < b:
        stop = _dots_end(cps, j, b)
        if stop == j:
            size = _contraction_at(cps, j, b)
            stop = j + (size if size else 1)
        count = _emit(j, stop, row, pos, data, found, count, cps, table)
        j = stop
    return count


@numba.njit(cache=True, inline="always")
def _at(data: np.ndarray, i: int) -> tuple[int, int]:
    """:func:`decode` with ASCII first (most bytes)."""
    byte = data[i]
    if byte < 0x80:
        return np.int64(byte), 1
    return decode(data, i)


@numba.njit(cache=True, inline="always")
def _kinds(f: int) -> int:
    """What a word of one character of flags ``f`` holds: LETTER, NON_SYMBOL."""
    return (LETTER if f & L else 0) | (0 if f & PUNCT else NON_SYMBOL)


@numba.njit(cache=True)
def _each(
    data: np.ndarray, a: int, b: int, row: int, table: np.ndarray, found: np.ndarray, count: int
) -> int:
    """Record each character of bytes ``a`` to ``b`` as a word."""
    while a < b:
        c, size = _at(data, a)
        count = _record(a, a + size, row, 1, _kinds(table[c]), data, found, count)
        a += size
    return count


@numba.njit(cache=True)
def _rows(
    data: np.ndarray,
    offsets: np.ndarray,
    table: np.ndarray,
    cps: np.ndarray,
    pos: np.ndarray,
    found: np.ndarray,
    work: np.ndarray,
    first_row: int,
    count: int,
) -> tuple[int, int, int, int]:
    """The words of rows ``first_row`` on into ``found`` from word ``count``; returns the row and
    word count reached, and, if it stopped early (a chunk outgrew ``found`` or the work
    space), the rows ``found`` and the cells ``work`` need for it (else 0 and 0): the
    caller grows them and goes on from that row."""
    for r in range(first_row, len(offsets) - 1):
        i, end, first_word = offsets[r], offsets[r + 1], count
        while i < end:
            c, size = _at(data, i)
            if _is(table, c, SPACE):
                i += size
                continue
            # Most chunks are letters, digits and marks between prefix and suffix
            # characters: "word", "(word", "word.)", "##". Those are split here, as the
            # rules would, from the bytes as they are scanned: such a core has no infix
            # mark, and no contraction or initialism can form; only a run of dots in
            # the suffixes would be one word. (Byte places: core, end_core.)
            start, chars, before = i, 0, -1
            core = end_core = -1
            core_at = end_at = 0  # their characters from the chunk's start
            simple, letters, flags_first = True, 0, table[c]
            while i < end:
                c, size = _at(data, i)
                f = table[c]
                if f & SPACE:
                    break
                if f & (L | N | M):
                    letters |= f & L
                    if core < 0:
                        core, core_at = i, chars
                    elif end_core >= 0:
                        simple = False
                elif core < 0:
                    simple &= (f & PREFIX) != 0
                else:
                    if end_core < 0:
                        end_core, end_at = i, chars
                    simple &= (f & SUFFIX) != 0 or (c == _DOT and before != _DOT)
                before = c
                chars += 1
                i += size
            # A chunk has at most a word per character, and its core at most 5 cells.
            if count + chars > found.shape[1] or 5 * chars + 8 > work.shape[2]:
                return r, first_word, count + chars, 5 * chars + 8
            if chars == 1:  # one character is one word, whatever it is
                count = _record(start, i, r, 1, _kinds(flags_first), data, found, count)
            elif simple:  # (prefix characters only: a word each)
                if core < 0:
                    core, core_at = i, chars
                if end_core < 0:
                    end_core, end_at = i, chars
                count = _each(data, start, core, r, table, found, count)
                if core < end_core:  # letters, digits and marks: none is punctuation
                    kinds = NON_SYMBOL | (LETTER if letters else 0)
                    count = _record(core, end_core, r, end_at - core_at, kinds, data, found, count)
                count = _each(data, end_core, i, r, table, found, count)
            else:
                # The rules, over the chunk's code points and their byte places.
                at, n = start, 0
                while at < i:
                    pos[n] = at
                    cps[n], size = decode(data, at)
                    at += size
                    n += 1
                pos[n] = i
                count = _chunk(cps, pos, 0, n, r, data, table, found, count, work)
    return len(offsets) - 1, count, 0, 0


def _split(data: np.ndarray, offsets: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per word (rows in order): its first and end byte, row, characters, hash and kind.

    Memory: room for a chunk's code points and their byte positions (12 bytes a
    character, sized to the longest row: only a chunk the rules take apart is decoded
    there), the words (48 bytes each), and work space for the longest such chunk (up to
    60 bytes a character): never a multiple of the batch.
    """
    longest = int(np.diff(offsets).max()) if len(offsets) > 1 else 0
    cps = np.empty(longest + 1, np.int32)
    pos = np.empty(longest + 1, np.int64)
    # One row per field (contiguous: the fields are handed out as they are).
    found = np.empty((6, (int(offsets[-1]) - int(offsets[0])) // 4 + 16), np.int64)
    cells, row, count = 1024, 0, 0
    while row < len(offsets) - 1:
        # Code points and their places in the row: int32 holds both (a row is at most
        # 2**31 bytes, one string array's limit).
        work = np.empty((2, 2, cells), np.int32)  # two of (code points, places)
        row, count, words, need = _rows(data, offsets, table, cps, pos, found, work, row, count)
        if words > found.shape[1]:
            grown = np.empty((6, max(words, 2 * found.shape[1])), np.int64)
            grown[:, :count] = found[:, :count]
            found = grown
        cells = max(cells, need + need // 2)
    return found[:, :count]


@numba.njit(cache=True)
def copied(data: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of the words ``found[0]`` to ``found[1]``, one after another, and their
    offsets."""
    offsets = np.empty(found.shape[1] + 1, np.int64)
    offsets[0] = 0
    for w in range(found.shape[1]):
        offsets[w + 1] = offsets[w] + found[1, w] - found[0, w]
    out = np.empty(offsets[-1], np.uint8)
    for w in range(found.shape[1]):
        out[offsets[w] : offsets[w + 1]] = data[found[0, w] : found[1, w]]
    return offsets, out


def span_strings(data: np.ndarray, spans: np.ndarray) -> pa.Array:
    """The spans ``data[spans[0]:spans[1]]`` as a string array (large if over 2 GiB)."""
    offsets, values = copied(data, spans)
    large = offsets[-1] >= 2**31
    return pa.Array.from_buffers(
        pa.large_string() if large else pa.string(),
        spans.shape[1],
        [None, pa.py_buffer(offsets if large else offsets.astype(np.int32)), pa.py_buffer(values)],
    )


@dataclasses.dataclass(frozen=True)
class Words:
    """A batch's words: each word's row, each row's word count, and per word its
    characters, its 64-bit hash (equal words hash equal, anywhere: :func:`hashes`),
    whether it has a letter (``\\p{L}``) and whether it has a character that is not
    punctuation (datatrove's non-symbol words); the words themselves as strings
    (``values``) are made when first asked for: most rules need only the hashes."""

    row: np.ndarray
    count: np.ndarray
    chars: np.ndarray
    hashes: np.ndarray
    letter: np.ndarray
    non_symbol: np.ndarray
    strings: Callable[[], pa.Array] = dataclasses.field(repr=False, compare=False)

    @functools.cached_property
    def values(self) -> pa.Array:
        return self.strings()


def split(texts: pa.Array) -> Words:
    """The words of each text (nulls: none), as :class:`Words`."""
    texts = pc.fill_null(texts, "")
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    data, offsets = string_buffers(texts)
    if len(offsets) > 1 and int(np.diff(offsets).max()) >= 2**31:
        raise ValueError("a text of 2**31 bytes or more: split it first")
    found = _split(data, offsets.astype(np.int64), flags())
    return Words(
        found[2],
        np.bincount(found[2], minlength=len(texts)).astype(np.int64),
        found[3],
        found[4].view(np.uint64),
        (found[5] & LETTER) != 0,
        (found[5] & NON_SYMBOL) != 0,
        lambda: span_strings(data, found[:2]),
    )


@numba.njit(cache=True)
def _row_totals(
    row: np.ndarray, letter: np.ndarray, non_symbol: np.ndarray, chars: np.ndarray, rows: int
) -> np.ndarray:
    out = np.zeros((3, rows), np.float64)
    for w in range(len(row)):
        r = row[w]
        out[0, r] += letter[w]
        if non_symbol[w]:
            out[1, r] += 1
            out[2, r] += chars[w]
    return out


@numba.njit(cache=True)
def _distinct_of(row: np.ndarray, hashes: np.ndarray, wanted: np.ndarray, rows: int) -> np.ndarray:
    # The wanted hashes in an open-addressing table (index + 1; 0 is free), 1/4 full:
    # a word not wanted, most of them, costs one probe.
    size = 16
    while size < 4 * len(wanted):
        size *= 2
    slots = np.zeros(size, np.int64)
    for k in range(len(wanted)):
        at = np.int64(wanted[k] & np.uint64(size - 1))
        while slots[at]:
            at = (at + 1) & (size - 1)
        slots[at] = k + 1
    seen = np.zeros((rows, len(wanted)), np.bool_)
    out = np.zeros(rows, np.int64)
    for w in range(len(row)):
        h = hashes[w]
        at = np.int64(h & np.uint64(size - 1))
        while slots[at] and wanted[slots[at] - 1] != h:
            at = (at + 1) & (size - 1)
        k = slots[at] - 1
        if k >= 0 and not seen[row[w], k]:
            seen[row[w], k] = True
            out[row[w]] += 1
    return out


def distinct_of(words: Words, wanted: list[str], rows: int) -> np.ndarray:
    """Per row: how many distinct words of ``wanted`` it has (told by hash)."""
    return _distinct_of(
        words.row, words.hashes, np.unique(hashes(pa.array(wanted, pa.string()))), rows
    )


def row_totals(words: Words, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: its words with a letter, its non-symbol words and their characters."""
    found = _row_totals(words.row, words.letter, words.non_symbol, words.chars, rows)
    return found[0], found[1], found[2]


@numba.njit(cache=True)
def _hashes(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    out = np.empty(len(offsets) - 1, np.uint64)
    for i in range(len(out)):
        out[i] = hash_bytes(data, offsets[i], offsets[i + 1])
    return out


def hashes(strings: pa.Array) -> np.ndarray:
    """Per string, the hash :func:`split` gives a word of the same bytes (nulls: "")."""
    data, offsets = string_buffers(pc.fill_null(strings, ""))
    return _hashes(data, offsets.astype(np.int64))
