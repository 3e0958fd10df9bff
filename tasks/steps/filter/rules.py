"""Heuristic quality-filter rules of HF datatrove and FineWeb-2, computed per Arrow batch.

A pure kernel: pyarrow, numpy and pydantic (and the language models of
:mod:`tasks.steps.filter.language`). ``evaluate(texts, options)`` returns, for every
row, its language, the first failing rule (``<filter>.<rule>``, null when kept), for
every rule the mask of the rows it fails on regardless of the other rules, and the text
as C4 leaves it (``Verdicts.text``).

Reference: datatrove ``src/datatrove/pipeline/filters/`` (commit a649de7, 2026-08; 0.10)
and its ``examples/fineweb.py``, FineWeb-2's ``fineweb-2-pipeline.py`` and
``configs/kor_Hang.yml``. Our own implementation; datatrove is not a dependency. A
threshold set to ``None`` turns its rule off.

The chain
    FineWeb's: ``language``, ``gopher_repetition``, ``gopher_quality``, ``c4``,
    ``fineweb``; a rejected row's reason is the first rule it fails in that order (and
    within a filter, in datatrove's order). As in datatrove's pipeline, every filter
    judges the text as it comes in, except ``fineweb``: datatrove's C4QualityFilter
    removes the lines it does not keep from the documents it passes, so with ``c4`` on
    for a row's language, the ``fineweb`` rules judge those lines (``Verdicts.text``).
    Line breaks ``\\r\\n`` and ``\\r`` are judged as ``\\n`` (datatrove would see a ``\\r``
    at the end of every line: no line would end with a full stop); the input is left
    as it is.

Long documents
    A batch is judged in slices of at most ``MAX_JUDGED_BYTES`` (4 MiB) of text, a
    longer document alone: the rules' arrays take about 60 bytes per byte of text. Such
    a document is judged on its first ``MAX_JUDGED_BYTES`` (up to the last line break in
    them; without one, the last space or character): every rule sees only that start,
    except ``gopher_quality.word_count``, which counts the words of the whole document,
    a slice at a time (English of 4 MiB has some 700,000 words, so its start settles
    ``max_doc_words``). Its text is not rewritten (``Verdicts.text`` holds the input).

Languages
    With ``language`` on, each row's language comes from fastText's lid.176 model,
    reading the whole text, or its first ``prefix_chars`` characters if set (the
    model's cost grows with the text; on the bench's documents 2,000 characters gave
    the whole text's language for all, but moved the probability across ``min_score``
    for about 10%).
    Without ``keep``, it is the most likely language, and ``language.low_score`` fires
    when the model's probability for it is below ``min_score`` (0.65, datatrove's
    ``language_threshold``; it keeps scores above it, we keep scores at or above it).
    With ``keep``, as datatrove's ``LanguageFilter(languages=...)``, a row is kept when
    any language of ``keep`` scores at least ``min_score``, not only the most likely
    one: its language is then the likeliest such language, with its probability;
    otherwise its language is the most likely one, ``language.not_kept`` fires when that
    is not in ``keep`` and ``language.low_score`` when its probability is below
    ``min_score`` (datatrove drops both without a reason; its metadata names the most
    likely language even for a row it keeps for another). With ``keep`` and no
    ``min_score``, only the most likely language counts. With ``language`` off, every
    row is ``assume_language``. A row is then judged by the rule sets of its language:
    an entry of ``language_rules`` (by default ``ko``: FineWeb-2's Korean, see
    ``KOREAN``); else for ``en`` the four top-level rule sets (datatrove's English
    defaults); else the top-level rule sets without ``gopher_quality.stop_words``, the
    one rule that rests on an English word list. Scripts written without spaces
    (Chinese, Japanese, Thai) have one "word" per run of letters here: give them an
    entry in ``language_rules`` with the word rules off (or ``language.keep`` without
    them). Korean words are Kiwi's morphemes (``words="kiwi"``), as FineWeb-2's; at
    0.25-0.45 MB/s per core (measured here) Kiwi is the slowest part of the step, so
    ``words="default"`` is there for corpora where that matters.

Words (``words="default"``)
    datatrove splits English with spaCy's blank ``en`` tokenizer; :mod:`words` applies
    its prefix, suffix and infix rules in a few RE2 passes (contractions split off as
    ``do n't``; URLs, e-mail addresses, initialisms like ``U.S.`` and ``|PyPI|``-like
    chunks stay whole; what its exception table does differently is listed there). On
    537 README, licence and documentation files the verdicts agree with datatrove's for
    99.6-100 % of documents per filter, and FineWeb's chain gives the same verdict and
    first failing rule for 99.6 % (``make bench``, ``benchmarks/filter_compare.py``).

Deliberate differences besides the tokenizer, line breaks and long documents:
    * A threshold of 0 is a real threshold (datatrove's ``if threshold and ...`` turns a
      0 off); ``None`` turns a rule off. C4's ``-1`` sentinels are ``None`` here.
    * A ratio whose denominator is 0 (no words, no lines, empty text) does not fire;
      datatrove raises ``ZeroDivisionError`` there.
    * Duplicated 5..10-grams compare word tuples; datatrove compares the words joined
      without a separator, so it also matches e.g. ("ab", "c") with ("a", "bc").
    * Null texts are evaluated as empty strings: there is nothing to keep, and under
      the default options an empty text fails ``gopher_repetition.empty`` (and
      ``gopher_quality.word_count``, ``fineweb.empty``); with every filter off it is
      kept like any other row.
    * Every rule is judged on every row (``fired``), also after an earlier one failed;
      ``fineweb`` judges C4's text also for rows C4 rejects.
    * Only the n of datatrove's defaults exist (top 2..4, duplicated 5..10).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.steps.filter import language as lid
from tasks.steps.filter import lines
from tasks.steps.filter.batch import Batch, Rule, as_numpy, replaced
from tasks.steps.filter.c4 import c4_rules, c4_text
from tasks.steps.filter.fineweb import fineweb_rules
from tasks.steps.filter.gopher_quality import gopher_quality_rules
from tasks.steps.filter.gopher_repetition import gopher_repetition_rules
from tasks.steps.filter.options import FilterOptions, LanguageID, RuleSets

# FineWeb's order: datatrove's FineWeb pipeline runs LanguageFilter, GopherRepetitionFilter,
# GopherQualityFilter, C4QualityFilter, FineWebQualityFilter.
_FILTERS: tuple[tuple[str, Callable[[object], list[tuple[str, Rule]]]], ...] = (
    ("gopher_repetition", gopher_repetition_rules),
    ("gopher_quality", gopher_quality_rules),
    ("c4", c4_rules),
    ("fineweb", fineweb_rules),
)
LANGUAGE_RULES = ("language.not_kept", "language.low_score")
OTHER = "*"  # the group of rows whose language has no rule sets of its own (nor is English)


def _rules_of(sets: RuleSets) -> list[tuple[str, str, Rule]]:
    """The enabled rules of these rule sets as (filter, ``<filter>.<rule>``, function),
    in verdict order."""
    out: list[tuple[str, str, Rule]] = []
    for filter_name, build in _FILTERS:
        settings = getattr(sets, filter_name)
        if settings is not None:
            out.extend(
                (filter_name, f"{filter_name}.{name}", rule) for name, rule in build(settings)
            )
    return out


# Every rule in verdict order: the defaults turn each one on.
_ORDER = [name for _, name, _ in _rules_of(RuleSets())]


def _languages_judged(options: FilterOptions) -> list[str]:
    """Languages whose rule sets can apply: English, any other, and each listed one."""
    if options.language is None:
        return [options.assume_language]
    return ["en", OTHER, *options.own_rules()]


def rule_names(options: FilterOptions) -> list[str]:
    """The names ``evaluate`` reports for these options, in verdict order."""
    used = {
        name
        for language in _languages_judged(options)
        for _, name, _ in _rules_of(options.rules_for(language))
    }
    lid = options.language
    language = []
    if lid is not None:
        on = (lid.keep is not None, lid.min_score is not None)
        language = [name for name, enabled in zip(LANGUAGE_RULES, on, strict=True) if enabled]
    return language + [name for name in _ORDER if name in used]


@dataclasses.dataclass(frozen=True)
class Verdicts:
    """The verdicts on one batch.

    ``reason``: per row, null if kept, else the first failing rule's name.
    ``fired``: per rule name, the bool mask of rows that rule fails on by itself.
    ``language``/``score``: per row, the language it was judged as and the model's
    probability for it (null scores when identification is off).
    ``text``: per row, the text as the rules leave it (C4's kept lines, for the rows C4
    judges; the input text, unchanged, for the others), or None when that is the input
    for every row.
    """

    reason: pa.Array
    fired: dict[str, np.ndarray]
    language: pa.Array
    score: pa.Array
    text: pa.Array | None = None

    @property
    def keep(self) -> np.ndarray:
        return as_numpy(pc.is_null(self.reason))


def _as_strings(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], texts.type)
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise TypeError(f"texts must be strings, got {texts.type}")
    return texts


# Text judged at once, at most: the rules' arrays peak at about 60 bytes per byte of
# text (measured by make bench's filter phase), so a batch is judged in slices of at most
# this many bytes of text, and a longer document alone, on its first this many bytes
# (``_long_document``).
MAX_JUDGED_BYTES = 4 * 2**20


def _in_pieces(texts: pa.Array, sizes: np.ndarray, options: FilterOptions) -> Verdicts:
    """``evaluate`` on consecutive slices of at most ``MAX_JUDGED_BYTES`` each (a longer
    row is a slice of its own), joined."""
    cuts, total = [0], 0
    for row, size in enumerate(sizes.tolist()):
        if total and total + size > MAX_JUDGED_BYTES:
            cuts.append(row)
            total = 0
        total += size
    cuts.append(len(texts))
    slices = [texts.slice(a, b - a) for a, b in itertools.pairwise(cuts)]
    parts = [evaluate(piece, options) for piece in slices]
    text = None
    if any(p.text is not None for p in parts):
        text = pa.concat_arrays(
            [p.text if p.text is not None else s for p, s in zip(parts, slices, strict=True)]
        )
    return Verdicts(
        pa.concat_arrays([p.reason for p in parts]),
        {name: np.concatenate([p.fired[name] for p in parts]) for name in parts[0].fired},
        pa.concat_arrays([p.language for p in parts]),
        pa.concat_arrays([p.score for p in parts]),
        text,
    )


def _row_bytes(texts: pa.Array) -> memoryview:
    """The UTF-8 bytes of a one-row string array, without a copy."""
    offset_type = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    _, offsets, data = texts.buffers()
    start, end = np.frombuffer(offsets, dtype=offset_type)[texts.offset : texts.offset + 2]
    return memoryview(data)[int(start) : int(end)]


def _cut(data: memoryview, start: int, size: int) -> int:
    """Where a piece of at most ``size`` bytes from ``start`` ends: before its last line
    break, else its last space or tab, else its last whole character."""
    end = start + size
    if end >= len(data):
        return len(data)
    window = bytes(data[start:end])
    for separator in (b"\n", b" ", b"\t"):
        at = window.rfind(separator)
        if at > 0:
            return start + at
    while data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte: inside a character
        end -= 1
    return end


def _non_symbol_words(texts: pa.Array, words: str) -> np.ndarray:
    """Per text, its non-symbol words (gopher_quality's word count)."""
    batch = Batch(texts, words)
    return batch.word_totals[1]


def _long_document(texts: pa.Array, options: FilterOptions) -> Verdicts:
    """One document over ``MAX_JUDGED_BYTES``: every rule judges its first
    ``MAX_JUDGED_BYTES`` (up to the last line break in them), but ``word_count`` counts
    the words of the whole document, a piece at a time (the first pieces often settle it)."""
    data = _row_bytes(texts)
    cut = _cut(data, 0, MAX_JUDGED_BYTES)
    prefix = _judge(pa.array([bytes(data[:cut]).decode()], texts.type), options)
    fired = dict(prefix.fired)
    sets = options.rules_for(prefix.language[0].as_py())
    gopher = sets.gopher_quality
    name = "gopher_quality.word_count"
    if gopher is not None and (gopher.min_doc_words, gopher.max_doc_words) != (None, None):
        least, most = gopher.min_doc_words, gopher.max_doc_words
        count, start, end = 0, 0, cut
        while True:
            piece = pa.array([_unix_newlines_str(bytes(data[start:end]).decode())])
            count += int(_non_symbol_words(piece, sets.words)[0])
            if end == len(data) or (most is not None and count > most):
                break
            if most is None and (least is None or count >= least):
                break
            start, end = end, _cut(data, end, MAX_JUDGED_BYTES)
        fired[name] = np.array(
            [(least is not None and count < least) or (most is not None and count > most)]
        )
    return Verdicts(
        _first_failing(rule_names(options), fired, 1), fired, prefix.language, prefix.score
    )


def _unix_newlines_str(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _unix_newlines(texts: pa.Array) -> pa.Array:
    """The texts with ``\\r\\n`` and lone ``\\r`` as ``\\n`` (the same array if none has one)."""
    if not lines.holds(texts, 0x0D):
        return texts
    return pc.replace_substring_regex(texts, pattern=r"\r\n?", replacement="\n")


def _language_of(texts: pa.Array, o: LanguageID) -> tuple[pa.Array, np.ndarray]:
    """Per text, the language it is judged as and the model's probability for it.

    datatrove's LanguageFilter keeps a row when any wanted language scores above the
    threshold: with ``keep`` and ``min_score``, a row's language is the most likely
    language of ``keep`` scoring at least ``min_score``, else the most likely language.
    """
    if o.keep is None or o.min_score is None:
        return lid.identify(texts, o.prefix_chars)
    # Probabilities add up to 1, so at most 1 / min_score languages reach it.
    k = -1 if o.min_score == 0 else min(lid.LABELS, int(1 / o.min_score) + 1)
    wanted = set(o.keep)
    labels, scores = [], np.empty(len(texts), dtype=np.float32)
    for row, (codes, probabilities) in enumerate(lid.top_languages(texts, k, o.prefix_chars)):
        probabilities = np.asarray(probabilities, dtype=np.float32)
        at = next(
            (
                i
                for i, code in enumerate(codes)
                if code in wanted and probabilities[i] >= o.min_score
            ),
            0,
        )
        labels.append(codes[at])
        scores[row] = probabilities[at]
    return pa.array(labels, pa.string()), scores


def _first_failing(names: list[str], fired: dict[str, np.ndarray], n: int) -> pa.Array:
    """Per row, the first rule of ``names`` that fails it (null if none)."""
    if not names or n == 0:
        return pa.nulls(n, pa.string())
    stacked = np.stack([fired[name] for name in names])
    failed = stacked.any(axis=0)
    first = stacked.argmax(axis=0)
    return pc.take(pa.array(names, pa.string()), pa.array(first, pa.int64(), mask=~failed))


def _judge(texts: pa.Array, options: FilterOptions) -> Verdicts:
    """``evaluate`` on texts judged at once."""
    n = len(texts)
    judged = _unix_newlines(texts)
    names = rule_names(options)
    fired = {name: np.zeros(n, dtype=bool) for name in names}
    if options.language is not None:
        language, probability = _language_of(judged, options.language)
        score = pa.array(probability, pa.float32())
        if options.language.keep is not None:
            kept = pa.array(options.language.keep, pa.string())
            fired["language.not_kept"] = ~as_numpy(pc.is_in(language, value_set=kept))
        if options.language.min_score is not None:
            fired["language.low_score"] = probability < options.language.min_score
    else:
        language = pa.array([options.assume_language] * n, pa.string())
        score = pa.nulls(n, pa.float32())
    # Rows of the same rule sets are judged together: one sub-batch per language
    # with rules of its own, one for English, one for all the others.
    known = set(options.own_rules()) | {"en"}
    groups = as_numpy(language).astype(str)
    groups = np.where(np.isin(groups, list(known)), groups, OTHER)
    rewritten: list[tuple[np.ndarray, pa.Array]] = []
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        sets = options.rules_for(str(group))
        sub = judged if len(rows) == n else judged.take(pa.array(rows))
        batch = Batch(sub, sets.words)
        after_c4 = batch
        if sets.c4 is not None:
            # datatrove's C4QualityFilter removes the lines it does not keep, and
            # FineWebQualityFilter, after it, judges what is left.
            after_c4 = Batch(c4_text(batch, sets.c4), sets.words)
            original = texts if len(rows) == n else texts.take(pa.array(rows))
            changed = as_numpy(pc.fill_null(pc.not_equal(after_c4.text, original), False))
            if changed.any():
                rewritten.append((rows[changed], after_c4.text.filter(pa.array(changed))))
        for filter_name, name, rule in _rules_of(sets):
            target = after_c4 if filter_name == "fineweb" else batch
            fired[name][rows] = np.asarray(rule(target), dtype=bool)
    text = None
    if rewritten:
        text = replaced(texts, rewritten)
    return Verdicts(_first_failing(names, fired, n), fired, language, score, text)


def evaluate(texts: pa.Array | pa.ChunkedArray, options: FilterOptions) -> Verdicts:
    """Every enabled rule over a batch of texts (null texts count as empty strings).

    Each row is judged by the rule sets of its language (identified, or
    ``assume_language``); a rule that does not apply to a row's language does not fire.
    Line breaks ``\\r\\n`` and ``\\r`` are judged as ``\\n``; ``texts`` is not changed.
    """
    texts = _as_strings(texts)
    n = len(texts)
    sizes = as_numpy(pc.fill_null(pc.binary_length(texts), 0)).astype(np.int64)
    if n > 1 and sizes.sum() > MAX_JUDGED_BYTES:
        return _in_pieces(texts, sizes, options)
    if n == 1 and sizes[0] > MAX_JUDGED_BYTES:
        return _long_document(texts, options)
    return _judge(texts, options)
