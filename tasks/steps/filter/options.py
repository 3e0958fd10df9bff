"""The filter step's options: each rule set's thresholds (None turns a rule off), the
language settings, and the Korean rule sets of FineWeb-2."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from tasks.steps.filter.charsets import ENGLISH_STOP_WORDS
from tasks.steps.filter.pii import PII

_MODEL = ConfigDict(extra="forbid", frozen=True)


def _ratio(default: float | None, what: str) -> object:
    return Field(default, ge=0.0, le=1.0, description=what)


def _count(default: int | None, what: str) -> object:
    return Field(default, ge=0, description=what)


class GopherQuality(BaseModel):
    """Thresholds of datatrove's ``GopherQualityFilter``."""

    model_config = _MODEL

    min_doc_words: int | None = _count(50, "datatrove min_doc_words: fewest non-symbol words")
    max_doc_words: int | None = _count(100_000, "datatrove max_doc_words: most non-symbol words")
    min_avg_word_length: float | None = Field(
        3, ge=0, description="datatrove min_avg_word_length: lowest mean non-symbol word length"
    )
    max_avg_word_length: float | None = Field(
        10, ge=0, description="datatrove max_avg_word_length: highest mean non-symbol word length"
    )
    max_symbol_word_ratio: float | None = _ratio(
        0.1, "datatrove max_symbol_word_ratio: most '#' (and, apart, ellipses) per word"
    )
    max_bullet_lines_ratio: float | None = _ratio(
        0.9, "datatrove max_bullet_lines_ratio: most lines starting with a bullet"
    )
    max_ellipsis_lines_ratio: float | None = _ratio(
        0.3, "datatrove max_ellipsis_lines_ratio: most lines ending with an ellipsis"
    )
    min_alpha_words_ratio: float | None = _ratio(
        0.8, "datatrove max_non_alpha_words_ratio: fewest words with a letter, per word"
    )
    min_stop_words: int | None = _count(2, "datatrove min_stop_words: fewest distinct stop words")
    stop_words: tuple[str, ...] = Field(
        ENGLISH_STOP_WORDS, description="datatrove stop_words: the stop words (case-sensitive)"
    )


class GopherRepetition(BaseModel):
    """Thresholds of datatrove's ``GopherRepetitionFilter``."""

    model_config = _MODEL

    max_dup_para_frac: float | None = _ratio(
        0.3, "datatrove dup_para_frac: most repeated paragraphs per paragraph"
    )
    max_dup_para_char_frac: float | None = _ratio(
        0.2, "datatrove dup_para_char_frac: most repeated-paragraph characters per character"
    )
    max_dup_line_frac: float | None = _ratio(
        0.3, "datatrove dup_line_frac: most repeated lines per line"
    )
    max_dup_line_char_frac: float | None = _ratio(
        0.2, "datatrove dup_line_char_frac: most repeated-line characters per character"
    )
    max_top_2_gram_frac: float | None = _ratio(0.20, "datatrove top_n_grams (2, 0.2)")
    max_top_3_gram_frac: float | None = _ratio(0.18, "datatrove top_n_grams (3, 0.18)")
    max_top_4_gram_frac: float | None = _ratio(0.16, "datatrove top_n_grams (4, 0.16)")
    max_dup_5_gram_frac: float | None = _ratio(0.15, "datatrove dup_n_grams (5, 0.15)")
    max_dup_6_gram_frac: float | None = _ratio(0.14, "datatrove dup_n_grams (6, 0.14)")
    max_dup_7_gram_frac: float | None = _ratio(0.13, "datatrove dup_n_grams (7, 0.13)")
    max_dup_8_gram_frac: float | None = _ratio(0.12, "datatrove dup_n_grams (8, 0.12)")
    max_dup_9_gram_frac: float | None = _ratio(0.11, "datatrove dup_n_grams (9, 0.11)")
    max_dup_10_gram_frac: float | None = _ratio(0.10, "datatrove dup_n_grams (10, 0.1)")


class C4(BaseModel):
    """Settings of datatrove's ``C4QualityFilter`` (``split_paragraph=True``)."""

    model_config = _MODEL

    remove_citations: bool = Field(
        True, description="datatrove remove_citations: drop [1], [edit] before line checks"
    )
    filter_no_terminal_punct: bool = Field(
        True, description="datatrove filter_no_terminal_punct: ignore lines without end mark"
    )
    min_num_sentences: int | None = _count(
        5, "datatrove min_num_sentences (-1 there is None here): fewest sentences kept"
    )
    min_words_per_line: int | None = _count(
        3, "datatrove min_words_per_line (-1 there is None here): ignore shorter lines"
    )
    max_word_length: int | None = _count(
        1000, "datatrove max_word_length (-1 there is None here): ignore lines with longer words"
    )
    filter_lorem_ipsum: bool = Field(
        True, description="datatrove filter_lorem_ipsum: reject on 'lorem ipsum'"
    )
    filter_javascript: bool = Field(
        True, description="datatrove filter_javascript: ignore lines mentioning javascript"
    )
    filter_curly_bracket: bool = Field(
        True, description="datatrove filter_curly_bracket: reject on '{'"
    )
    filter_policy: bool = Field(
        True, description="datatrove filter_policy: ignore cookie / terms-of-use lines"
    )


class FineWeb(BaseModel):
    """Thresholds of datatrove's ``FineWebQualityFilter``."""

    model_config = _MODEL

    line_punct_thr: float | None = _ratio(
        0.12, "datatrove line_punct_thr: fewest lines ending in terminal punctuation, per line"
    )
    line_punct_exclude_zero: bool = Field(
        False, description="datatrove line_punct_exclude_zero: keep docs with no such line"
    )
    stop_chars: tuple[str, ...] | None = Field(
        None, description="datatrove stop_chars: line endings that count (None: terminal marks)"
    )
    short_line_thr: float | None = _ratio(
        0.67, "datatrove short_line_thr: most short lines per line"
    )
    short_line_length: int = Field(
        30, ge=0, description="datatrove short_line_length: longest 'short' line, in characters"
    )
    char_duplicates_ratio: float | None = _ratio(
        0.01, "datatrove char_duplicates_ratio: most repeated-line characters per character"
    )
    new_line_ratio: float | None = _ratio(0.3, "datatrove new_line_ratio: most newlines per word")


class RuleSets(BaseModel):
    """The four heuristic filters: each its thresholds, or None to turn it off."""

    model_config = _MODEL

    gopher_quality: GopherQuality | None = GopherQuality()
    gopher_repetition: GopherRepetition | None = GopherRepetition()
    c4: C4 | None = C4()
    fineweb: FineWeb | None = FineWeb()


class LanguageRules(RuleSets):
    """The rule sets for one language, and how its words are split."""

    words: Literal["default", "kiwi"] = Field(
        "default",
        description="kiwi: Korean morphemes (Kiwi), as FineWeb-2; default: the regex "
        "approximation of spaCy's English tokenizer (see the rules module)",
    )


LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]


class LanguageID(BaseModel):
    """Language identification (fastText lid.176) and which languages to keep."""

    model_config = _MODEL

    keep: tuple[LanguageCode, ...] | None = Field(
        None,
        min_length=1,
        description="datatrove languages: the codes to keep (ISO 639-1, else lid.176's "
        "3-letter code); a row is kept when any of them scores at least min_score; null "
        "keeps every language",
    )
    min_score: float | None = _ratio(
        0.65,
        "datatrove language_threshold: lowest probability of the row's language (with "
        "keep: of one of the kept languages)",
    )
    prefix_chars: int | None = Field(
        None,
        ge=1,
        description="characters of each text's start the model reads; null reads the "
        "whole text, as datatrove. fastText's cost grows with the text: the first 2,000 "
        "gave the whole text's language for every bench document, 3.4x faster, but the "
        "probability moved across min_score for about 10% of them (docs/performance.md)",
    )


class Benchmark(BaseModel):
    """An evaluation set documents must not share an n-gram with."""

    model_config = _MODEL

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]*$")] = Field(
        description="its rule is decontaminate.<name> (lower case, digits and _)"
    )
    uri: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="its items: a JSON Lines or Parquet file, folder or glob, local or s3://"
    )
    columns: tuple[Annotated[str, StringConstraints(min_length=1)], ...] = Field(
        min_length=1,
        description="the columns joined with a space into one item (question, answer, "
        "choices; a list column's values are joined too)",
    )
    input_format: Literal["auto", "parquet", "json"] = Field(
        "auto", description="parquet, json, or auto to tell by the file names"
    )


class Decontaminate(BaseModel):
    """Reject documents sharing a word n-gram with an evaluation set (GPT-3's test)."""

    model_config = _MODEL

    benchmarks: tuple[Benchmark, ...] = Field(
        min_length=1,
        max_length=64,
        description="the evaluation sets (at most 64); a row sharing n-grams with several "
        "is rejected as the first's and fires each one's rule",
    )
    ngram: int = Field(
        13,
        ge=1,
        le=1000,
        description="words in an n-gram (13 as in GPT-3's report), after lower-casing, "
        "folding diacritics, removing punctuation, symbols and format characters and "
        "splitting on whitespace",
    )

    @field_validator("benchmarks")
    @classmethod
    def _distinct_names(cls, given: tuple[Benchmark, ...]) -> tuple[Benchmark, ...]:
        names = [b.name for b in given]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"benchmark names must differ: {', '.join(twice)} given twice")
        return given


class URLBlocklist(BaseModel):
    """Reject documents whose URL's host is a blocked domain or under one."""

    model_config = _MODEL

    block_domains: tuple[str, ...] | Annotated[str, StringConstraints(min_length=1)] = Field(
        description="the blocked domains (blocked.com also blocks www.blocked.com), or the "
        "URI of a text file (local or s3://) with one a line; # starts a comment"
    )
    url_column: Annotated[str, StringConstraints(min_length=1)] = Field(
        "url", description="the column holding each document's URL"
    )

    @field_validator("block_domains")
    @classmethod
    def _domains(cls, given: tuple[str, ...] | str) -> tuple[str, ...] | str:
        if isinstance(given, str):
            return given  # a file's URI, read when the step starts
        from tasks.steps.filter.urls import domain

        return tuple(domain(name, "block_domains") for name in given)


KOREAN_STOP_WORDS = (
    "의", "다", "이", "는", "에", "을", "한", "년", "하", "은", "를",
    "했", "고", "에서", "가", "있", "으로", "인", "월", "로", "되",
)  # fmt: skip

# FineWeb-2's Korean (kor_Hang): its per-language thresholds, and its choices for every
# language (no C4 rules, short lines allowed, duplicated-line characters up to 10%,
# paragraph and line-character repetition off). Its language_score (0.842) is for
# GlotLID and is not carried over to lid.176's probabilities.
KOREAN = LanguageRules(
    words="kiwi",
    gopher_quality=GopherQuality(
        min_avg_word_length=1,
        max_avg_word_length=6,
        min_alpha_words_ratio=0.791,
        stop_words=KOREAN_STOP_WORDS,
    ),
    gopher_repetition=GopherRepetition(
        max_dup_para_frac=None,
        max_dup_para_char_frac=None,
        max_dup_line_char_frac=None,
        max_dup_line_frac=0.374,
        max_top_2_gram_frac=0.282,
        max_top_3_gram_frac=0.228,
        max_top_4_gram_frac=0.185,
        max_dup_5_gram_frac=0.201,
        max_dup_6_gram_frac=0.184,
        max_dup_7_gram_frac=0.168,
        max_dup_8_gram_frac=0.154,
        max_dup_9_gram_frac=0.14,
        max_dup_10_gram_frac=0.127,
    ),
    c4=None,
    fineweb=FineWeb(
        short_line_thr=None,
        char_duplicates_ratio=0.1,
        line_punct_thr=0.062,
        new_line_ratio=0.196,
    ),
)


DEFAULT_LANGUAGE_RULES: dict[str, LanguageRules] = {"ko": KOREAN}


class FilterOptions(RuleSets):
    """Which filters run (None turns one off) and their thresholds.

    The four rule sets' thresholds are for English; languages without an entry in
    ``language_rules`` get them without the word-list rule (stop words).
    """

    language: LanguageID | None = LanguageID()
    pii: PII | None = None
    url: URLBlocklist | None = Field(
        None, description="reject rows whose URL's host is blocked (url.blocked_domain)"
    )
    decontaminate: Decontaminate | None = Field(
        None,
        description="reject rows sharing a word n-gram with an evaluation set "
        "(decontaminate.<benchmark>)",
    )
    assume_language: LanguageCode = Field(
        "en", description="the language of every row when language identification is off"
    )
    language_rules: dict[LanguageCode, LanguageRules | None] = Field(
        default_factory=lambda: dict(DEFAULT_LANGUAGE_RULES),
        description="rule sets of their own, per language code, each replacing that "
        "language's whole entry; added to the defaults (ko: FineWeb-2's Korean); null "
        "removes a default",
    )
    keep_rewritten_text: bool = Field(
        False,
        description="write kept rows' text as C4 leaves it (its dropped lines removed, as "
        "datatrove's C4QualityFilter does) instead of the input text",
    )

    @field_validator("language_rules")
    @classmethod
    def _over_the_defaults(
        cls, given: dict[str, LanguageRules | None]
    ) -> dict[str, LanguageRules | None]:
        # A null entry stays (it is what removes a default), so that the options dumped
        # into a manifest validate back to the same options.
        return {**DEFAULT_LANGUAGE_RULES, **given}

    def own_rules(self) -> dict[str, LanguageRules]:
        """The languages with rule sets of their own (the entries that are not null)."""
        return {code: rules for code, rules in self.language_rules.items() if rules is not None}

    def rules_for(self, language: str) -> LanguageRules:
        """The rule sets a row in ``language`` is judged by."""
        own = self.language_rules.get(language)
        if own is not None:
            return own
        sets = {name: getattr(self, name) for name in RuleSets.model_fields}
        if language != "en" and sets["gopher_quality"] is not None:
            # The stop words are English; other languages have no list of their own.
            sets["gopher_quality"] = sets["gopher_quality"].model_copy(
                update={"min_stop_words": None}
            )
        return LanguageRules(**sets)
