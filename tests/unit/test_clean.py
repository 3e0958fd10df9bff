"""The vectorised cleaning equals the seed's Python function, character for character."""

import random
import sys

import pyarrow as pa
import pytest

from tasks.errors import InputError
from tasks.steps.preprocess.clean import (
    PYTHON_WHITESPACE,
    clean_array,
    clean_ascii,
    clean_batch,
    clean_text,
)

# Arrow strings are UTF-8, which cannot hold lone surrogates; every other code point of
# planes 0 and 1 is checked.
CODE_POINTS = [c for c in range(0x20000) if not 0xD800 <= c <= 0xDFFF]


def test_seed_docstring_example():
    assert clean_array(pa.array(["Hello, World!!! 2026 @Ray_Data#"])).to_pylist() == [
        "hello world 2026 raydata"
    ]


def test_every_code_point_of_planes_0_and_1_matches_python_re():
    chars = [chr(c) for c in CODE_POINTS]
    # Each code point alone, and between an upper-case letter and a digit.
    texts = chars + [f"A{c}9" for c in chars]
    got = clean_array(pa.array(texts, pa.string())).to_pylist()
    expected = [clean_text(t) for t in texts]
    mismatches = [
        (hex(ord(t[0] if len(t) == 1 else t[1])), g, e)
        for t, g, e in zip(texts, got, expected, strict=True)
        if g != e
    ]
    assert mismatches == []


def test_random_strings_match_python_re():
    rng = random.Random(1234)
    pools = [
        [chr(c) for c in CODE_POINTS],
        list("가나다라힣각ㄱㅏ"),  # syllables kept, jamo removed
        list(PYTHON_WHITESPACE),
        [chr(c) for c in range(0x20, 0x7F)],
        list("ÄÖÜßİıΣσς\u0130\u1e9e"),  # case mappings outside ASCII
    ]
    texts = []
    for _ in range(3000):
        n = rng.randrange(0, 80)
        texts.append("".join(rng.choice(rng.choice(pools)) for _ in range(n)))
    got = clean_array(pa.array(texts)).to_pylist()
    assert got == [clean_text(t) for t in texts]


ASCII = [chr(c) for c in range(128)]


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_ascii_fast_path_matches_python_re_for_every_ascii_character(kind):
    texts = ASCII + [f"A{c}9" for c in ASCII] + ["".join(ASCII)]
    array = pa.array(texts, kind)
    fast = clean_ascii(array)
    assert fast is not None and fast.type == kind
    assert fast.to_pylist() == [clean_text(t) for t in texts]


@pytest.mark.parametrize("removable", [False, True])
def test_ascii_fast_path_on_random_slices_with_nulls(removable):
    rng = random.Random(99)
    pool = ASCII if removable else list("abcXYZ019 \t\n\x1c")
    texts = [
        None if rng.random() < 0.1 else "".join(rng.choices(pool, k=rng.randrange(0, 40)))
        for _ in range(2000)
    ]
    array = pa.array(texts)
    for lo, hi in [(0, 2000), (3, 1999), (17, 18), (1000, 1000)]:
        part = array.slice(lo, hi - lo)
        fast = clean_ascii(part)
        expected = [None if t is None else clean_text(t) for t in texts[lo:hi]]
        assert fast is None if hi == lo else fast.to_pylist() == expected
        assert clean_array(part).to_pylist() == expected


def test_non_ascii_arrays_leave_the_fast_path_with_the_same_results():
    array = pa.array(["Abc!", "한글 ok?", None])
    assert clean_ascii(array) is None
    chunked = pa.chunked_array([["Hello, World!"], ["가나다 ABC!"], [None, "x_y"]])
    assert clean_array(chunked).to_pylist() == ["hello world", "가나다 abc", None, "xy"]


def test_python_whitespace_is_what_re_calls_whitespace():
    import re

    assert {chr(c) for c in CODE_POINTS if re.fullmatch(r"\s", chr(c))} == set(PYTHON_WHITESPACE)
    assert "\u3000" in PYTHON_WHITESPACE and "\x1c" in PYTHON_WHITESPACE
    assert sys.maxunicode == 0x10FFFF


def test_nulls_stay_null_and_empty_stays_empty():
    assert clean_array(pa.array([None, "", "!!", "A b"])).to_pylist() == [None, "", "", "a b"]


@pytest.mark.parametrize(
    "array",
    [
        pa.array(["Ab!", None], pa.large_string()),
        pa.array(["Ab!", None]).dictionary_encode(),
        pa.array(["Ab!", None], pa.string_view()),
        pa.chunked_array([["Ab!"], [None]]),
    ],
)
def test_clean_batch_accepts_every_string_layout(array):
    table = clean_batch(pa.table({"id": [1, 2], "text": array}))
    assert table.column_names == ["id", "text", "cleaned_text"]
    assert table["cleaned_text"].to_pylist() == ["ab", None]


def test_clean_batch_keeps_every_column():
    batch = pa.record_batch({"id": [7], "text": ["X-Y"], "label": ["wiki"], "extra": [1.5]})
    assert clean_batch(batch).to_pylist() == [
        {"id": 7, "text": "X-Y", "label": "wiki", "extra": 1.5, "cleaned_text": "xy"}
    ]


def test_missing_text_column_is_named():
    with pytest.raises(
        InputError, match=r"part-1\.parquet: no 'text' column \(columns: id, body\)"
    ):
        clean_batch(pa.table({"id": [1], "body": ["x"]}), where="part-1.parquet")


def test_non_string_text_is_named():
    with pytest.raises(InputError, match="column 'text' has type int64"):
        clean_batch(pa.table({"text": [1, 2]}), where="f.parquet")


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_non_ascii_slices_with_nulls_match_python_re(kind):
    """The compiled pass over UTF-8 bytes, on slices (offsets not from zero) with nulls."""
    rng = random.Random(77)
    pool = [*"가힣각ㄱ AÄß\u3000\u00a0\u2028!9z", "\U0001f600", "\u200b"]
    texts = [
        None if rng.random() < 0.1 else "".join(rng.choice(pool) for _ in range(rng.randrange(9)))
        for _ in range(500)
    ]
    array = pa.array(texts, kind)
    for start, stop in ((0, 500), (3, 200), (250, 251), (499, 500)):
        part = array.slice(start, stop - start)
        expected = [None if t is None else clean_text(t) for t in texts[start:stop]]
        assert clean_array(part).to_pylist() == expected
