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
