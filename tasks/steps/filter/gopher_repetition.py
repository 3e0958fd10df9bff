"""Filter ``gopher_repetition`` (``GopherRepetitionFilter``, Gopher paper table A1):
empty               the text is empty.
dup_para_frac / dup_para_char_frac  paragraphs (the stripped text split on 2+
    newlines) that repeat an earlier one: their count / paragraphs > 0.3, their
    characters / text length > 0.2.
dup_line_frac / dup_line_char_frac  the same for lines (split on 1+ newlines, not
    stripped): > 0.3 and > 0.2.
top_2_gram, top_3_gram, top_4_gram  characters of the most frequent word n-gram
    (words joined by spaces) times its count / text length > 0.20, 0.18, 0.16. On a
    tie the n-gram seen first counts, as with ``Counter.most_common``.
dup_5_gram ... dup_10_gram  characters of repeated word n-grams found by datatrove's
    greedy scan (a repeat adds its length without spaces and skips n words) / text
    length > 0.15, 0.14, 0.13, 0.12, 0.11, 0.10.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow.compute as pc

from tasks.steps.filter.batch import (
    Batch,
    Grams,
    Rule,
    Split,
    above,
    duplicates,
    group_grams,
    memo,
)
from tasks.steps.filter.options import GopherRepetition


def _top_ngram_chars(b: Batch, n: int) -> np.ndarray:
    """Per row: characters of its most frequent n-gram (joined by spaces) times its count.

    Ties go to the n-gram whose first occurrence is earliest (``Counter.most_common``).
    Rows with fewer than n words get NaN (datatrove skips the rule for them).
    """
    out = np.full(b.n, np.nan)
    grams = _memo_grams(b, n)
    if len(grams.pos) == 0:
        return out
    # Per row the largest (count, -start): both packed in one integer, maxed per row.
    packed = (grams.count.astype(np.int64) << 32) | (0xFFFFFFFF - grams.start)
    best = np.full(b.n, -1, dtype=np.int64)
    np.maximum.at(best, grams.row, packed)
    has = best >= 0
    count = best[has] >> 32
    start = 0xFFFFFFFF - (best[has] & 0xFFFFFFFF)
    gram_chars = b.word_end[start + n] - b.word_end[start] + (n - 1)
    out[has] = count * gram_chars
    return out


def _memo_grams(b: Batch, n: int) -> Grams:
    key = ("grams", n)
    if key not in b.shared:
        b.shared[key] = group_grams(b, n)
    return b.shared[key]


def _greedy_dup_chars(pos: list[int], ids: list[int], chars: list[int], n: int) -> int:
    """datatrove's scan over one document's n-grams, given only those that have an
    equal n-gram elsewhere in it (``pos``, in order, with their ids and characters).

    The scan visits every position, remembers each new n-gram, and on a repeat counts it
    and skips the next n-1 positions (never remembered). An n-gram without an equal one
    can neither be counted nor make another one count, so only the skips it may fall
    into matter, which ``skip_to`` keeps. Sequential by nature, so a Python loop, run
    only on rows that can fail and only over their repeated n-grams.
    """
    seen: set[int] = set()
    total, skip_to = 0, 0
    for p, g, c in zip(pos, ids, chars, strict=True):
        if p < skip_to:
            continue
        if g in seen:
            total += c
            skip_to = p + n
        else:
            seen.add(g)
    return total


def _dup_ngram_fired(b: Batch, n: int, limit: float) -> np.ndarray:
    """datatrove's duplicated n-gram fraction above ``limit``, per row.

    An n-gram equal to an earlier one of its row starts n-4 5-grams that each equal an
    earlier 5-gram: the characters of the n-grams starting such runs bound the greedy
    scan's count from above, and only rows that bound lets through are scanned. One
    grouping of 5-grams serves every n.
    """
    fired = np.zeros(b.n, dtype=bool)
    grams = _memo_grams(b, 5)
    row = b.words.row
    total = len(row)
    repeated = np.zeros(total + n, dtype=bool)
    repeated[grams.pos[~grams.first]] = True
    starts = repeated[: total - n + 1].copy() if total >= n else np.zeros(0, dtype=bool)
    for k in range(1, n - 4):
        starts &= repeated[k : k + len(starts)]
    at = np.flatnonzero(starts)
    at = at[row[at] == row[at + n - 1]]  # the n-gram lies in its row
    chars = b.word_end[at + n] - b.word_end[at]  # joined without spaces
    bound = np.bincount(row[at], weights=chars, minlength=b.n)
    candidates = np.flatnonzero(above(bound, b.length, limit))
    if len(candidates) == 0:
        return fired
    hashes, valid = b.ngram_hash(n)
    multi = np.zeros(total, dtype=bool)
    multi[grams.pos[grams.multi]] = True  # an n-gram with an equal has its 5-gram too
    pos = np.flatnonzero(multi[: len(hashes)] & valid)
    bounds = np.searchsorted(row[pos], np.stack([candidates, candidates + 1]))
    for r, lo, hi in zip(candidates, bounds[0], bounds[1], strict=True):
        p = pos[lo:hi]
        chars = b.word_end[p + n] - b.word_end[p]
        total_chars = _greedy_dup_chars(p.tolist(), hashes[p].tolist(), chars.tolist(), n)
        fired[r] = total_chars / b.length[r] > limit
    return fired


def gopher_repetition_rules(o: GopherRepetition) -> list[tuple[str, Rule]]:
    def paragraphs(b: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        split = Split(pc.split_pattern_regex(pc.utf8_trim_whitespace(b.text), r"\n{2,}"), b.n)
        return (*duplicates(split.values, split.row, b.n), split.count)

    def lines(b: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        split = Split(pc.split_pattern_regex(b.text, r"\n+"), b.n)
        return (*duplicates(split.values, split.row, b.n), split.count)

    def fraction(part: Callable, limit: float) -> Rule:
        return lambda b: above(part(b)[0], part(b)[2], limit)

    def char_fraction(part: Callable, limit: float) -> Rule:
        return lambda b: above(part(b)[1], b.length, limit)

    def top(n: int, limit: float) -> Rule:
        def rule(b: Batch) -> np.ndarray:
            chars = _top_ngram_chars(b, n)
            return ~np.isnan(chars) & above(np.nan_to_num(chars), b.length, limit)

        return rule

    def dup(n: int, limit: float) -> Rule:
        return lambda b: _dup_ngram_fired(b, n, limit)

    rules: list[tuple[str, Rule]] = [("empty", lambda b: b.length == 0)]
    for name, part, unit, limit in (
        ("dup_para_frac", paragraphs, fraction, o.max_dup_para_frac),
        ("dup_para_char_frac", paragraphs, char_fraction, o.max_dup_para_char_frac),
        ("dup_line_frac", lines, fraction, o.max_dup_line_frac),
        ("dup_line_char_frac", lines, char_fraction, o.max_dup_line_char_frac),
    ):
        if limit is not None:
            rules.append((name, unit(memo(part), limit)))
    for n in (2, 3, 4):
        limit = getattr(o, f"max_top_{n}_gram_frac")
        if limit is not None:
            rules.append((f"top_{n}_gram", top(n, limit)))
    for n in range(5, 11):
        limit = getattr(o, f"max_dup_{n}_gram_frac")
        if limit is not None:
            rules.append((f"dup_{n}_gram", dup(n, limit)))
    return rules
