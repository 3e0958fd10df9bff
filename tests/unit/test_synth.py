"""Generated rows: the seed's schema, alphabet and labels; reproducible by seed."""

import numpy as np
import pyarrow as pa
import pytest

from tasks.errors import InputError
from tasks.steps.generate import synth


def rows(seed, start, stop, text_length=50):
    return pa.concat_tables(list(synth.generate_rows(seed, start, stop, text_length)))


def test_schema_ids_lengths_alphabet_labels():
    table = rows(0, 0, 10_000, text_length=37)
    assert table.schema == synth.SCHEMA
    assert table["id"].to_pylist() == list(range(10_000))
    texts = table["text"].to_pylist()
    assert {len(t) for t in texts} == {37}
    assert set("".join(texts)) == set(synth.ALPHABET)
    assert set(table["label"].to_pylist()) == set(synth.LABELS)


def test_same_seed_same_rows_regardless_of_file_split():
    whole = rows(7, 0, 10_000)
    for num_files in (1, 3, 7):
        parts = [rows(7, a, b) for a, b in synth.split_rows(10_000, num_files)]
        assert pa.concat_tables(parts).equals(whole)


def test_other_seed_other_text():
    assert rows(1, 0, 100)["text"] != rows(2, 0, 100)["text"]


def test_character_and_label_frequencies_are_uniform():
    table = rows(3, 0, 40_000, text_length=100)
    text = np.frombuffer("".join(table["text"].to_pylist()).encode(), dtype=np.uint8)
    counts = np.bincount(text, minlength=128)[[ord(c) for c in synth.ALPHABET]]
    expected = len(text) / len(synth.ALPHABET)
    assert np.all(np.abs(counts - expected) < 0.02 * expected)
    labels = pa.compute.value_counts(table["label"]).to_pylist()
    assert all(abs(v["counts"] - 10_000) < 500 for v in labels)


def test_random_text_has_exactly_the_size_asked_for():
    rng = np.random.default_rng(5)
    for size in [0, 1, 7, 64, 1000, 4096 * 3 + 1]:
        text = synth.random_text(rng, size)
        assert len(text) == size
        assert set(text.decode("ascii")) <= set(synth.ALPHABET)


def test_split_rows_covers_everything_once():
    ranges = synth.split_rows(10, 3)
    assert ranges == [(0, 3), (3, 6), (6, 10)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_rows": 0}, "num_rows must be at least 1"),
        ({"num_files": 0}, "num_files must be at least 1"),
        ({"num_rows": 2, "num_files": 3}, r"num_files \(3\) must not exceed num_rows \(2\)"),
        ({"text_length": -1}, "text_length must be >= 0"),
        ({"seed": -5}, "seed must be >= 0"),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    params = {"num_rows": 10, "num_files": 2, "text_length": 10, "seed": 0, **kwargs}
    with pytest.raises(InputError, match=message):
        synth.check_parameters(**params)
