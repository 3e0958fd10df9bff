"""Filter ``gopher_quality`` (``GopherQualityFilter``), rules in datatrove's order:
word_count         fewer than ``min_doc_words`` (50) or more than ``max_doc_words``
                   (100000) non-symbol words (words with a character outside
                   datatrove's punctuation set).
mean_word_length   mean length of the non-symbol words below ``min_avg_word_length``
                   (3) or above ``max_avg_word_length`` (10).
hash_ratio         count of ``#`` / words > ``max_symbol_word_ratio`` (0.1).
ellipsis_ratio     count of ``...`` and ``…`` / words > ``max_symbol_word_ratio``.
bullet_lines       fraction of lines starting (after leading blanks) with ``•`` or
                   ``-`` > ``max_bullet_lines_ratio`` (0.9).
ellipsis_lines     fraction of lines ending (before trailing blanks) with ``...`` or
                   ``…`` > ``max_ellipsis_lines_ratio`` (0.3). Lines as ``str.splitlines``.
alpha_words        fraction of words with a letter < ``min_alpha_words_ratio`` (0.8;
                   datatrove's misnamed ``max_non_alpha_words_ratio``).
stop_words         fewer than ``min_stop_words`` (2) distinct words of ``stop_words``
                   (the, be, to, of, and, that, have, with; case-sensitive).
"""

from __future__ import annotations

import numpy as np

from tasks.steps.filter.batch import Batch, Rule, above, below
from tasks.steps.filter.options import GopherQuality


def gopher_quality_rules(o: GopherQuality) -> list[tuple[str, Rule]]:
    def word_count(b: Batch) -> np.ndarray:
        _, n, _ = b.word_totals
        fired = np.zeros(b.n, dtype=bool)
        if o.min_doc_words is not None:
            fired |= n < o.min_doc_words
        if o.max_doc_words is not None:
            fired |= n > o.max_doc_words
        return fired

    def mean_word_length(b: Batch) -> np.ndarray:
        _, n, total = b.word_totals
        fired = np.zeros(b.n, dtype=bool)
        if o.min_avg_word_length is not None:
            fired |= below(total, n, o.min_avg_word_length)
        if o.max_avg_word_length is not None:
            fired |= above(total, n, o.max_avg_word_length)
        return fired

    def hash_ratio(b: Batch) -> np.ndarray:
        return above(b.marks.hashes, b.words.count, o.max_symbol_word_ratio)

    def ellipsis_ratio(b: Batch) -> np.ndarray:
        ellipses = b.marks.dots + b.marks.ellipses
        return above(ellipses, b.words.count, o.max_symbol_word_ratio)

    def bullet_lines(b: Batch) -> np.ndarray:
        return above(b.per_line(b.lines.bullet), b.lines.count, o.max_bullet_lines_ratio)

    def ellipsis_lines(b: Batch) -> np.ndarray:
        return above(b.per_line(b.lines.ellipsis), b.lines.count, o.max_ellipsis_lines_ratio)

    def alpha_words(b: Batch) -> np.ndarray:
        letters, _, _ = b.word_totals
        return below(letters, b.words.count, o.min_alpha_words_ratio)

    def stop_words(b: Batch) -> np.ndarray:
        # Words are told by their 64-bit hashes (as the n-gram rules tell them).
        return b.distinct_words(o.stop_words) < o.min_stop_words

    rules: list[tuple[str, Rule | None]] = [
        ("word_count", word_count if (o.min_doc_words, o.max_doc_words) != (None, None) else None),
        (
            "mean_word_length",
            mean_word_length
            if (o.min_avg_word_length, o.max_avg_word_length) != (None, None)
            else None,
        ),
        ("hash_ratio", hash_ratio if o.max_symbol_word_ratio is not None else None),
        ("ellipsis_ratio", ellipsis_ratio if o.max_symbol_word_ratio is not None else None),
        ("bullet_lines", bullet_lines if o.max_bullet_lines_ratio is not None else None),
        ("ellipsis_lines", ellipsis_lines if o.max_ellipsis_lines_ratio is not None else None),
        ("alpha_words", alpha_words if o.min_alpha_words_ratio is not None else None),
        ("stop_words", stop_words if o.min_stop_words is not None else None),
    ]
    return [(name, rule) for name, rule in rules if rule is not None]
