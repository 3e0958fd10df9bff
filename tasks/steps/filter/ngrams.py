"""Gopher's repeated word n-grams, per document, in one compiled pass over word hashes.

Each row's words are its stretch of a batch's flattened words (``starts``), each given
as a 64-bit hash (equal words of a row hash equal, :attr:`Batch.word_hash`) and its
characters (``ends``: the characters of the words before each one, cumulated). Per row
and per n, a hash table of the row's n-grams (open addressing, sized to the row) does
what a sort of the batch's n-grams did: no per-n sort, memory a table as large as the
longest row's n-grams. :func:`repetition` gives, per row:

- for n = 2, 3, 4 (:data:`TOP`), the characters of the row's most frequent n-gram
  (its words joined by spaces) times its count; a tie goes to the n-gram seen first, as
  ``Counter.most_common`` has it; NaN for a row of fewer than n words (datatrove skips
  the rule there).
- for n = 5 to 10 (:data:`DUPLICATED`), datatrove's greedy scan: from the first
  word on, an n-gram seen before in the row adds its characters (without spaces) and
  the scan jumps n words; else it is remembered and the scan moves one word.

n-grams compare by a hash of their word hashes (each mixed before it is combined): two
different n-grams of one row collide with probability about 2**-64.
"""

from __future__ import annotations

import numba
import numpy as np

TOP = (2, 3, 4)
DUPLICATED = (5, 6, 7, 8, 9, 10)
_EMPTY = np.uint64(0)  # a slot's key when free: n-gram hashes are made odd, never 0
_PRIME = np.uint64(0x100000001B3)


@numba.njit(cache=True, inline="always")
def mix(x: np.uint64) -> np.uint64:
    """splitmix64's finaliser: every bit of ``x`` moves every bit of the result."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True)
def _capacity(longest: int) -> int:
    size = 16
    while size < 2 * longest:
        size *= 2
    return size


@numba.njit(cache=True)
def _top(
    grams: np.ndarray,
    ends: np.ndarray,
    starts: np.ndarray,
    n: int,
    keys: np.ndarray,
    counts: np.ndarray,
    firsts: np.ndarray,
    used: np.ndarray,
    out: np.ndarray,
) -> None:
    """Row by row, the top n-gram's characters times its count (``grams[at]``: the hash
    of the n-gram starting at word ``at``)."""
    mask = len(keys) - 1
    for r in range(len(starts) - 1):
        lo, hi = starts[r], starts[r + 1]
        if hi - lo < n:
            continue
        filled = 0
        best_count, best_first = 0, 0
        for at in range(lo, hi - n + 1):
            h = grams[at]
            slot = np.int64(h & np.uint64(mask))
            while keys[slot] != _EMPTY and keys[slot] != h:
                slot = (slot + 1) & mask
            if keys[slot] == _EMPTY:
                keys[slot] = h
                counts[slot] = 0
                firsts[slot] = at
                used[filled] = slot
                filled += 1
            counts[slot] += 1
            c, f = counts[slot], firsts[slot]
            if c > best_count or (c == best_count and f < best_first):
                best_count, best_first = c, f
        out[r] = best_count * (ends[best_first + n] - ends[best_first] + (n - 1))
        for k in range(filled):
            keys[used[k]] = _EMPTY


@numba.njit(cache=True)
def _duplicated(
    grams: np.ndarray,
    ends: np.ndarray,
    starts: np.ndarray,
    n: int,
    keys: np.ndarray,
    used: np.ndarray,
    out: np.ndarray,
) -> None:
    """Row by row, the characters datatrove's greedy scan counts as duplicated."""
    mask = len(keys) - 1
    for r in range(len(starts) - 1):
        lo, hi = starts[r], starts[r + 1]
        filled, total, at = 0, 0.0, lo
        while at <= hi - n:
            h = grams[at]
            slot = np.int64(h & np.uint64(mask))
            while keys[slot] != _EMPTY and keys[slot] != h:
                slot = (slot + 1) & mask
            if keys[slot] == h:
                total += ends[at + n] - ends[at]
                at += n
            else:
                keys[slot] = h
                used[filled] = slot
                filled += 1
                at += 1
        out[r] = total
        for k in range(filled):
            keys[used[k]] = _EMPTY


@numba.njit(cache=True)
def repetition(
    hashes: np.ndarray, ends: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per n of :data:`TOP` and row, the top n-gram's characters times its count (NaN
    where the row has fewer than n words); per n of :data:`DUPLICATED` and row, the
    characters of duplicated n-grams. The n-grams' hashes are built one word at a time
    (the n-gram at a word from the (n-1)-gram there), one pass over the words per n."""
    rows, total = len(starts) - 1, len(hashes)
    top = np.full((len(TOP), rows), np.nan)
    duplicated = np.zeros((len(DUPLICATED), rows))
    longest = 0
    for r in range(rows):
        longest = max(longest, starts[r + 1] - starts[r])
    size = _capacity(longest)
    keys = np.zeros(size, np.uint64)
    counts = np.zeros(size, np.int64)
    firsts = np.zeros(size, np.int64)
    used = np.empty(size, np.int64)
    # Each word's hash mixed first: n-grams of words whose hashes differ by a pattern
    # (say, in the top bit only) would otherwise sum to the same key.
    grams = np.empty(total, np.uint64)
    for at in range(total):
        grams[at] = mix(hashes[at])
    for n in range(2, DUPLICATED[-1] + 1):
        # Past a row's end a hash mixes in the next row's words: never read there.
        for at in range(total - n + 1):
            grams[at] = mix(grams[at] * _PRIME + hashes[at + n - 1]) | np.uint64(1)
        if n <= TOP[-1]:
            _top(grams, ends, starts, n, keys, counts, firsts, used, top[n - TOP[0]])
        else:
            _duplicated(grams, ends, starts, n, keys, used, duplicated[n - DUPLICATED[0]])
    return top, duplicated
