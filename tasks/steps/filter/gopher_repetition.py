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

from tasks.steps.filter import lines, ngrams
from tasks.steps.filter.batch import Batch, Rule, above, memo
from tasks.steps.filter.options import GopherRepetition


def _repetition(b: Batch) -> dict[int, np.ndarray]:
    """Per n, each row's top n-gram figure (n of ``ngrams.TOP``) or duplicated n-gram
    characters (``ngrams.DUPLICATED``), from one pass of :func:`ngrams.repetition`."""
    key = "ngrams"
    if key not in b.shared:
        starts = np.concatenate([[0], np.cumsum(b.words.count)]).astype(np.int64)
        top, duplicated = ngrams.repetition(b.word_hash, b.word_end.astype(np.float64), starts)
        b.shared[key] = {
            **dict(zip(ngrams.TOP, top, strict=True)),
            **dict(zip(ngrams.DUPLICATED, duplicated, strict=True)),
        }
    return b.shared[key]


def gopher_repetition_rules(o: GopherRepetition) -> list[tuple[str, Rule]]:
    def paragraphs(b: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        count, repeats, chars = lines.repeated(b.text, breaks=2, strip=True)
        return repeats, chars, count

    def text_lines(b: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        count, repeats, chars = lines.repeated(b.text, breaks=1, strip=False)
        return repeats, chars, count

    def fraction(part: Callable, limit: float) -> Rule:
        return lambda b: above(part(b)[0], part(b)[2], limit)

    def char_fraction(part: Callable, limit: float) -> Rule:
        return lambda b: above(part(b)[1], b.length, limit)

    def top(n: int, limit: float) -> Rule:
        def rule(b: Batch) -> np.ndarray:
            chars = _repetition(b)[n]
            return ~np.isnan(chars) & above(np.nan_to_num(chars), b.length, limit)

        return rule

    def dup(n: int, limit: float) -> Rule:
        def rule(b: Batch) -> np.ndarray:
            return above(_repetition(b)[n], b.length, limit)

        return rule

    rules: list[tuple[str, Rule]] = [("empty", lambda b: b.length == 0)]
    for name, part, unit, limit in (
        ("dup_para_frac", paragraphs, fraction, o.max_dup_para_frac),
        ("dup_para_char_frac", paragraphs, char_fraction, o.max_dup_para_char_frac),
        ("dup_line_frac", text_lines, fraction, o.max_dup_line_frac),
        ("dup_line_char_frac", text_lines, char_fraction, o.max_dup_line_char_frac),
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
