"""Filter ``fineweb`` (``FineWebQualityFilter``), on C4's text when ``c4`` is on: lines are
``text.split("\\n")`` without the blank ones.
empty              no non-blank line.
line_punct_ratio   fraction of lines ending with a terminal punctuation mark
                   (``stop_chars``, default datatrove's ``TERMINAL_PUNCTUATION``)
                   < ``line_punct_thr`` (0.12), unless it is 0 and
                   ``line_punct_exclude_zero`` (False).
short_line_ratio   fraction of lines of at most ``short_line_length`` (30)
                   characters > ``short_line_thr`` (0.67).
char_dup_ratio     characters of lines repeating an earlier line / characters of the
                   text without newlines > ``char_duplicates_ratio`` (0.01).
list_ratio         newlines / words > ``new_line_ratio`` (0.3).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.steps.filter.batch import (
    Batch,
    Rule,
    Split,
    above,
    as_numpy,
    below,
    duplicates,
    memo,
)
from tasks.steps.filter.charsets import TERMINAL_PUNCTUATION
from tasks.steps.filter.lines import chunk_counts
from tasks.steps.filter.options import FineWeb


def fineweb_rules(o: FineWeb) -> list[tuple[str, Rule]]:
    stop_chars = TERMINAL_PUNCTUATION if o.stop_chars is None else o.stop_chars
    # Escape every character so the alternation is literal for RE2.
    ending = (
        "(?:" + "|".join("".join(f"\\x{{{ord(c):X}}}" for c in s) for s in stop_chars) + ")$"
        if stop_chars
        else None
    )

    def lines(b: Batch) -> Split:
        split = Split(pc.split_pattern(b.text, "\n"), b.n)
        return split.only(as_numpy(pc.not_equal(pc.utf8_trim_whitespace(split.values), "")))

    shared = memo(lambda b: (lines(b),))

    def empty(b: Batch) -> np.ndarray:
        return shared(b)[0].count == 0

    def line_punct_ratio(b: Batch) -> np.ndarray:
        split = shared(b)[0]
        if ending is None:
            ends = np.zeros(len(split.values), dtype=bool)
        else:
            ends = as_numpy(pc.match_substring_regex(split.values, ending))
        hits = split.per_row(ends)
        fired = below(hits, split.count, o.line_punct_thr)
        if o.line_punct_exclude_zero:
            fired &= hits > 0
        return fired

    def short_line_ratio(b: Batch) -> np.ndarray:
        split = shared(b)[0]
        short = as_numpy(pc.utf8_length(split.values)) <= o.short_line_length
        return above(split.per_row(short), split.count, o.short_line_thr)

    def char_dup_ratio(b: Batch) -> np.ndarray:
        split = shared(b)[0]
        _, chars = duplicates(split.values, split.row, b.n)
        return above(chars, b.length - b.newlines, o.char_duplicates_ratio)

    def list_ratio(b: Batch) -> np.ndarray:
        if "words" in b.__dict__ or b.split_words != "default":
            return above(b.newlines, b.words.count.astype(np.float64), o.new_line_ratio)
        # Not split into words yet (C4's text): every whitespace-separated chunk holds a
        # word at least, so only the rows where the chunks leave the ratio above the
        # limit are split.
        chunks = chunk_counts(b.text)
        fired = above(b.newlines, chunks, o.new_line_ratio)
        rows = np.flatnonzero(fired)
        if len(rows):
            words = Batch(b.text.take(pa.array(rows)), b.split_words).words.count
            fired[rows] = above(b.newlines[rows], words.astype(np.float64), o.new_line_ratio)
        return fired

    rules: list[tuple[str, Rule | None]] = [
        ("empty", empty),
        ("line_punct_ratio", line_punct_ratio if o.line_punct_thr is not None else None),
        ("short_line_ratio", short_line_ratio if o.short_line_thr is not None else None),
        ("char_dup_ratio", char_dup_ratio if o.char_duplicates_ratio is not None else None),
        ("list_ratio", list_ratio if o.new_line_ratio is not None else None),
    ]
    return [(name, rule) for name, rule in rules if rule is not None]
