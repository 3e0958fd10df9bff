"""English words as spaCy's blank "en" tokenizer gives them to datatrove: each case's
expected split was taken from spaCy 3.8 (the bench group runs it beside ours on real
documents, `make bench --phases filter`)."""

from __future__ import annotations

import functools

import pyarrow as pa
import pytest

from tasks.steps.filter.batch import Batch

SPACY = [
    ("Use and/or the MIT license.", ["Use", "and/or", "the", "MIT", "license", "."]),
    (
        "See https://github.com/python/x/actions?query=workflow%3Atests for more.",
        ["See", "https://github.com/python/x/actions?query=workflow%3Atests", "for", "more", "."],
    ),
    ("mail me at foo.bar@example.com now", ["mail", "me", "at", "foo.bar@example.com", "now"]),
    (
        "He's here, isn't he? I'm sure we'd go.",
        ["He", "'s", "here", ",", "is", "n't", "he", "?", "I", "'m", "sure", "we", "'d", "go", "."],
    ),
    (
        "3.5 1,000 $5 10% (a) [b] {c} a-b a--b a_b x/y 1/2",
        [
            "3.5",
            "1,000",
            "$",
            "5",
            "10",
            "%",
            "(",
            "a",
            ")",
            "[",
            "b",
            "]",
            "{",
            "c",
            "}",
            "a",
            "-",
            "b",
            "a",
            "--",
            "b",
            "a_b",
            "x",
            "/",
            "y",
            "1/2",
        ],
    ),
    (
        "----- ~~~~ ==== **** |PyPI| x=1 a+b foo.py 1.2.3 v1.2 COVID-19 3-4",
        [
            "-----",
            "~~~~",
            "=",
            "=",
            "=",
            "=",
            "*",
            "*",
            "*",
            "*",
            "|PyPI|",
            "x=1",
            "a+b",
            "foo.py",
            "1.2.3",
            "v1.2",
            "COVID-19",
            "3",
            "-",
            "4",
        ],
    ),
    (
        "__init__ e.g. U.S. end... ok…",
        ["_", "_", "init", "_", "_", "e.g.", "U.S.", "end", "...", "ok", "…"],
    ),
    (
        "\"quoted\" 'single' cars' Bob's",
        ['"', "quoted", '"', "'", "single", "'", "cars", "'", "Bob", "'s"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), SPACY)
def test_words_split_as_spacy_splits_them(text, expected):
    assert Batch(pa.array([text])).words.values.to_pylist() == expected


def test_known_difference_a_suffix_run_is_cut_into_single_marks():
    """spaCy keeps "):" as one suffix token (it is in its list as a pair); here a suffix
    run is cut mark by mark. Documented in tasks/steps/filter/words.py."""
    assert Batch(pa.array(["foo():"])).words.values.to_pylist() == ["foo", "(", ")", ":"]


def test_words_keep_their_rows():
    batch = Batch(pa.array(["a-b c", None, "", "(x) y."]))
    assert batch.words.values.to_pylist() == ["a", "-", "b", "c", "(", "x", ")", "y", "."]
    assert batch.words.count.tolist() == [4, 0, 0, 5]


# How docs/filters.md says contractions, URLs, e-mail addresses and initialisms split.
DOCUMENTED = [
    ("I don't think she'll go.", ["I", "do", "n't", "think", "she", "'ll", "go", "."]),
    ("Read https://example.com/a?b=c now.", ["Read", "https://example.com/a?b=c", "now", "."]),
    ("Write to a.b@example.org today", ["Write", "to", "a.b@example.org", "today"]),
    ("The U.S. army, e.g. here.", ["The", "U.S.", "army", ",", "e.g.", "here", "."]),
]


@pytest.mark.parametrize(("text", "expected"), DOCUMENTED)
def test_contractions_split_urls_and_initialisms_stay_whole(text, expected):
    assert Batch(pa.array([text])).words.values.to_pylist() == expected


@functools.cache
def _spacy_english():
    import spacy  # the bench group, which make test installs

    return spacy.blank("en")


@pytest.mark.parametrize(("text", "expected"), [*SPACY, *DOCUMENTED])
def test_the_expected_splits_are_spacys(text, expected):
    """The expectations above are spaCy's own."""
    tokens = [token.text for token in _spacy_english()(text) if token.text.strip()]
    assert tokens == expected


def test_known_difference_titles_lose_their_period():
    """spaCy's exception table keeps "Mr." whole; here it is "Mr" and "." (documented in
    tasks/steps/filter/words.py)."""
    assert Batch(pa.array(["Mr. Smith"])).words.values.to_pylist() == ["Mr", ".", "Smith"]


# Pieces that exercise every rule: dots and ellipses, quotes and contractions, each
# infix mark, prefixes and suffixes of several scripts, URLs, e-mail addresses,
# initialisms, letters, digits and marks of other scripts, emoji, and whitespace that
# is and is not Python's.
_PIECES = [
    "a", "B", "é", "e\u0301", "한", "中", "1", "٣", "²", "ǅ", "ß", "Ⅻ", "🙂", "\u200b",
    ".", "..", "…", "'", "’", "n't", "N'T", "'s", "'re", "'LL", "'d", "-", "--", "---",
    "—", "——", "–", "~", ":", "<", ">", "=", "/", ",", "+", "*", "^", "(", ")", "[", "]",
    "{", "}", '"', "“", "”", "$", "€", "£", "%", "#", "&", "_", "!", "?", "¿", ";", "«",
    "»", "「", "」", "§", "·", "。", "http://", "https://x.y/", "www.", "@", "a@b.c",
    "U.S.", "e.g.", "i.E.", "and/or", "and", "or", "x", "y", " ", "\t", "\n", "\u00a0",
    "\u3000", "\u2028", "\x1c",
]  # fmt: skip


def split_whitespace(texts: pa.Array):
    """Python's ``str.split()`` with Arrow (its kernel also yields empty pieces at the
    ends): the chunks the regex passes split, as a :class:`batch.Split`."""
    import pyarrow.compute as pc

    from tasks.steps.filter.batch import Split, as_numpy

    split = Split(pc.utf8_split_whitespace(texts), len(texts))
    nonempty = as_numpy(pc.utf8_length(split.values)) > 0
    return split if nonempty.all() else split.only(nonempty)


@pytest.mark.parametrize("seed", range(3))
def test_the_compiled_split_is_the_regex_passes(seed):
    """tasks/steps/filter/split.py against words.spacy_like, the same rules as RE2
    passes: the same words, rows, characters, letters and non-symbol words as RE2 sees
    them, and hashes equal exactly for equal words."""
    import random

    import numpy as np
    import pyarrow.compute as pc

    from tasks.steps.filter import split
    from tasks.steps.filter.batch import Split
    from tasks.steps.filter.charsets import NON_SYMBOL_PATTERN
    from tasks.steps.filter.words import spacy_like

    rng = random.Random(seed)
    texts = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 25))) for _ in range(20_000)]
    texts += [None, "", "   ", "x" * 5000 + ",y", "word " * 2000]
    array = pa.array(texts, pa.string())
    chunks = split_whitespace(pc.fill_null(array, ""))
    pieces = split_whitespace(spacy_like(chunks.values))
    expected = Split.of(
        pieces.values,
        chunks.row[pieces.row],
        np.bincount(chunks.row[pieces.row], minlength=len(texts)),
    )
    found = split.split(array)
    values, row, count, chars = found.values, found.row, found.count, found.chars
    hashes, letter, non_symbol = found.hashes, found.letter, found.non_symbol
    assert values.to_pylist() == expected.values.to_pylist()
    assert row.tolist() == expected.row.tolist()
    assert count.tolist() == expected.count.tolist()
    assert chars.tolist() == pc.utf8_length(values).to_pylist()
    assert letter.tolist() == pc.match_substring_regex(values, r"\p{L}").to_pylist()
    assert non_symbol.tolist() == pc.match_substring_regex(values, NON_SYMBOL_PATTERN).to_pylist()
    pairs = set(zip(values.to_pylist(), hashes.tolist(), strict=True))  # a hash per word
    assert len(pairs) == len({word for word, _ in pairs}) == len({h for _, h in pairs})


def test_the_compiled_split_reads_large_strings_and_slices():
    from tasks.steps.filter import split

    texts = pa.array(["skip me", "Hello, world... (U.S.) don't", None, "x-ray"], pa.large_string())
    found = split.split(texts.slice(1))
    values, row, count = found.values, found.row, found.count
    assert values.to_pylist() == [
        "Hello",
        ",",
        "world",
        "...",
        "(",
        "U.S.",
        ")",
        "do",
        "n't",
        "x",
        "-",
        "ray",
    ]
    assert row.tolist() == [0] * 9 + [2] * 3 and count.tolist() == [9, 0, 3]


def test_the_compiled_split_grows_its_space_for_many_words_and_long_chunks():
    """More words than a quarter of the bytes, and a chunk long enough to outgrow the
    initial work space, mid-batch: the same words as the regex passes."""

    from tasks.steps.filter import split
    from tasks.steps.filter.words import spacy_like

    texts = pa.array(["ok", "a b " * 5000, "x-y," * 3000 + " end.", "(U.S.)" * 500, "fin"])
    chunks = split_whitespace(texts)
    pieces = split_whitespace(spacy_like(chunks.values))
    found = split.split(texts)
    values, row = found.values, found.row
    assert values.to_pylist() == pieces.values.to_pylist()
    assert row.tolist() == chunks.row[pieces.row].tolist()
