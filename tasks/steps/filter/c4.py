"""Filter ``c4`` (``C4QualityFilter``, ``split_paragraph=True``):
datatrove walks the lines (``str.splitlines``, stripped) and *drops* lines with a
word longer than ``max_word_length`` (1000), lines not ending in ``. ? ! " '`` or
ending in ``...`` (``filter_no_terminal_punct``; FineWeb's pipeline turns it off),
lines with fewer than ``min_words_per_line`` (3) words (blank lines too), lines
mentioning ``javascript`` and lines with a cookie/terms-of-use phrase
(``filter_policy``), after removing ``[1]``/``[edit]``/``[citation needed]``
citations (``remove_citations``); it rejects the document on the rules below and
otherwise keeps it *with those lines removed*: the kept lines (stripped, citations
removed) joined by newlines, stripped. So do we: that text is what ``fineweb``
judges and what ``Verdicts.text`` holds (the step writes it for kept rows with
``keep_rewritten_text``). Rules:
lorem_ipsum        a line that survives the long-word, punctuation and word-count
                   checks contains "lorem ipsum" (case-insensitive).
curly_bracket      such a line, not a javascript line, contains ``{``.
too_few_sentences  the kept lines hold fewer than ``min_num_sentences`` (5) sentences.
datatrove reports whichever of lorem ipsum / curly bracket occurs on the earlier
line; we report lorem_ipsum first when both fire. Sentences: datatrove uses spaCy's
sentencizer; we count 1 per non-blank kept line plus 1 per terminal punctuation
mark followed by whitespace and then a non-punctuation character (dot runs like
``...`` do not end sentences, as in spaCy; abbreviations like ``e.g. x`` do here).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.steps.filter import lines
from tasks.steps.filter.batch import Batch, Rule, replaced, row_lists
from tasks.steps.filter.charsets import CITATION_PATTERN
from tasks.steps.filter.options import C4


def _c4_lines(b: Batch, o: C4) -> dict[str, object]:
    """C4's decisions on every line of the batch (computed once per batch and settings):
    which lines count for lorem ipsum and ``{``, which it keeps, and the lines themselves
    as it keeps them (stripped, citations removed)."""
    key = ("c4", o)
    if key in b.shared:
        return b.shared[key]
    found = b.lines
    line = found.strings(stripped=True)
    marks = lines.c4_marks(found.data, found.stripped)
    long_word = np.zeros(len(line), dtype=bool)
    if o.max_word_length is not None:
        long_word = found.longest > o.max_word_length
    if o.remove_citations:
        cited = np.flatnonzero(marks & lines.CITED)
        if len(cited):
            # Only a line with a [ can hold a citation: those are asked again once
            # their citations are removed.
            done = pc.replace_substring_regex(
                line.take(pa.array(cited)), pattern=CITATION_PATTERN, replacement=""
            )
            marks[cited] = lines.c4_marks_of(done)
            line = replaced(line, [(cited, done)])
    answered = {
        name: (marks & bit) != 0
        for name, bit in (
            ("ends", lines.END_PUNCT),
            ("dots", lines.END_DOTS),
            ("lorem", lines.LOREM),
            ("js", lines.JAVASCRIPT),
            ("curly", lines.CURLY),
            ("policy", lines.POLICY),
        )
    }
    eligible = ~long_word
    if o.filter_no_terminal_punct:
        eligible &= answered["ends"] & ~answered["dots"]
    if o.min_words_per_line is not None:
        eligible &= found.chunks >= o.min_words_per_line
    lorem, curly = answered["lorem"], answered["curly"]
    js = answered["js"] if o.filter_javascript else None
    kept = eligible.copy()
    if js is not None:
        kept &= ~js
    if o.filter_policy:
        kept &= ~answered["policy"]
    result = {
        "lorem": b.per_line(eligible & lorem) > 0,
        "curly": b.per_line(eligible & curly & (~js if js is not None else True)) > 0,
        "line": line,
        "kept": kept,
    }
    b.shared[key] = result
    return result


def c4_text(b: Batch, o: C4) -> pa.Array:
    """Per row, its text as datatrove's C4QualityFilter leaves it: the lines it keeps
    (stripped, citations removed) joined by newlines, stripped."""
    key = ("c4 text", o)
    if key not in b.shared:
        found = _c4_lines(b, o)
        kept = found["kept"]
        line = found["line"]
        lines = row_lists(line.filter(pa.array(kept)), b.lines.row[kept], b.n)
        newline = pa.scalar("\n", line.type)
        b.shared[key] = pc.utf8_trim_whitespace(pc.binary_join(lines, newline))
    return b.shared[key]


def c4_rules(o: C4) -> list[tuple[str, Rule]]:
    def sentences(b: Batch) -> np.ndarray:
        found = _c4_lines(b, o)
        return b.per_line(_sentences_of(found["line"], found["kept"]))

    rules: list[tuple[str, Rule]] = []
    if o.filter_lorem_ipsum:
        rules.append(("lorem_ipsum", lambda b: _c4_lines(b, o)["lorem"]))
    if o.filter_curly_bracket:
        rules.append(("curly_bracket", lambda b: _c4_lines(b, o)["curly"]))
    if o.min_num_sentences is not None:
        limit = o.min_num_sentences
        rules.append(("too_few_sentences", lambda b: sentences(b) < limit))
    return rules


def _sentences_of(line: pa.Array, kept: np.ndarray) -> np.ndarray:
    """Per line, its sentences if it is kept (else 0)."""
    counts = np.zeros(len(line))
    if kept.any():
        counts[kept] = lines.sentences(line.filter(pa.array(kept)))
    return counts
