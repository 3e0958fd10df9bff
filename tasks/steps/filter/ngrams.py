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
def _count(
    grams: np.ndarray, m: int, keys: np.ndarray, counts: np.ndarray, slots: np.ndarray
) -> None:
    """Count the first ``m`` hashes of ``grams`` into the (empty) table ``keys`` (of a
    power of two slots); ``slots[k]`` is where the k-th went."""
    mask = len(keys) - 1
    for k in range(m):
        h = grams[k]
        slot = np.int64(h & np.uint64(mask))
        while keys[slot] != _EMPTY and keys[slot] != h:
            slot = (slot + 1) & mask
        if keys[slot] == _EMPTY:
            keys[slot] = h
            counts[slot] = 0
        counts[slot] += 1
        slots[k] = slot


@numba.njit(cache=True)
def _duplicated(
    grams: np.ndarray,
    at: np.ndarray,
    m: int,
    n: int,
    ends: np.ndarray,
    keys: np.ndarray,
    used: np.ndarray,
) -> float:
    """datatrove's greedy scan, over the n-grams at words ``at[:m]`` (ascending) only: the
    row's other n-grams occur once, so the scan would remember them and move one word,
    and no later n-gram can match them."""
    mask = len(keys) - 1
    total, free, filled = 0.0, 0, 0
    for k in range(m):
        if at[k] < free:  # inside a repeat the scan jumped over
            continue
        h = grams[k]
        slot = np.int64(h & np.uint64(mask))
        while keys[slot] != _EMPTY and keys[slot] != h:
            slot = (slot + 1) & mask
        if keys[slot] == h:
            total += ends[at[k] + n] - ends[at[k]]
            free = at[k] + n
        else:
            keys[slot] = h
            used[filled] = slot
            filled += 1
    for k in range(filled):
        keys[used[k]] = _EMPTY
    return total


@numba.njit(cache=True)
def repetition(
    hashes: np.ndarray, ends: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per n of :data:`TOP` and row, the top n-gram's characters times its count (NaN
    where the row has fewer than n words); per n of :data:`DUPLICATED` and row, the
    characters of duplicated n-grams.

    Row by row, n from 2 up: an n-gram can only repeat where the (n-1)-gram it starts
    with repeats, so each n hashes, counts and scans only the words whose (n-1)-gram
    repeated (all words for n = 2). In prose that set shrinks fast, and n = 5 to 10 cost
    little. An n-gram's hash is built from the (n-1)-gram's at the same word."""
    rows = len(starts) - 1
    top = np.full((len(TOP), rows), np.nan)
    duplicated = np.zeros((len(DUPLICATED), rows))
    longest = 0
    for r in range(rows):
        longest = max(longest, starts[r + 1] - starts[r])
    size = _capacity(longest)
    keys = np.zeros(size, np.uint64)
    counts = np.zeros(size, np.int64)
    slots = np.empty(longest, np.int64)
    at = np.empty(longest, np.int64)  # the words whose n-grams are still asked about
    grams = np.empty(longest, np.uint64)  # and their n-grams' hashes
    for r in range(rows):
        lo, hi = starts[r], starts[r + 1]
        m = hi - lo
        for k in range(m):
            at[k] = lo + k
            # Mixed first: words whose hashes differ by a pattern (say, in the top bit
            # only) would otherwise make n-grams of one key.
            grams[k] = mix(hashes[lo + k])
        for n in range(2, DUPLICATED[-1] + 1):
            kept = 0
            for k in range(m):
                if at[k] + n > hi:  # ascending: so are the rest
                    break
                at[kept] = at[k]
                grams[kept] = mix(grams[k] * _PRIME + hashes[at[k] + n - 1]) | np.uint64(1)
                kept += 1
            # A table for these n-grams alone: a short row's stays in cache.
            table = keys[: _capacity(kept)]
            _count(grams, kept, table, counts, slots)
            # If every n-gram occurs once, the top one is the first (Counter's tie rule).
            best_count, best = 1, lo
            m = 0
            for k in range(kept):
                c = counts[slots[k]]
                if c > 1:
                    if c > best_count:  # ascending words: the first seen wins a tie
                        best_count, best = c, at[k]
                    at[m] = at[k]
                    grams[m] = grams[k]
                    m += 1
            for k in range(kept):
                table[slots[k]] = _EMPTY
            if n <= TOP[-1]:
                if hi - lo >= n:
                    top[n - TOP[0], r] = best_count * (ends[best + n] - ends[best] + (n - 1))
            else:
                duplicated[n - DUPLICATED[0], r] = _duplicated(
                    grams, at, m, n, ends, keys[: _capacity(m)], slots
                )
    return top, duplicated
