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


def test_duplicates_copy_earlier_rows_and_leave_the_others_as_they_were():
    rows = 3 * synth.CHUNK_ROWS
    before = pa.concat_tables(synth.generate_rows(3, 0, rows, 200)).column("text").to_pylist()
    mixed = pa.concat_tables(synth.generate_rows(3, 0, rows, 200, 0.3))
    after = mixed.column("text").to_pylist()
    copies = 0
    for chunk in range(3):
        plan = synth.planted(3, chunk, 0.3)
        base = chunk * synth.CHUNK_ROWS
        assert (plan.source < plan.copy).all() and not np.isin(plan.source, plan.copy).any()
        for row, source, near in zip(plan.copy, plan.source, plan.near, strict=True):
            copy, original = after[base + row], before[base + source]
            if near:  # the last letter changed, nothing else
                diff = [k for k, (a, b) in enumerate(zip(copy, original, strict=True)) if a != b]
                assert diff == [len(original.rstrip(" ")) - 1]
            else:
                assert copy == original
        copies += len(plan.copy)
    untouched = [i for i in range(rows) if after[i] == before[i]]
    assert len(untouched) == rows - copies  # every other row is the same bytes
    assert 0.25 < copies / rows < 0.35
    assert sum(synth.copies_in(3, 0, rows, 0.3)) == copies


def test_duplicates_do_not_depend_on_the_split():
    whole = pa.concat_tables(synth.generate_rows(5, 0, 10_000, 50, 0.2))
    parts = [synth.generate_rows(5, a, b, 50, 0.2) for a, b in synth.split_rows(10_000, 7)]
    assert pa.concat_tables([t for part in parts for t in part]) == whole
    counted = [synth.copies_in(5, a, b, 0.2) for a, b in synth.split_rows(10_000, 7)]
    assert tuple(map(sum, zip(*counted, strict=True))) == synth.copies_in(5, 0, 10_000, 0.2)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_a_duplicate_share_outside_0_to_1_is_refused_by_name(bad):
    with pytest.raises(InputError, match="duplicates"):
        synth.check_parameters(10, 1, 10, 0, bad)


def test_near_copies_are_above_near_dedups_threshold():
    """Generated 1,000-character rows have about 20 words (9 to 30): a changed last
    letter moves one 5-word shingle, at or above the default threshold of 0.8 from 13
    words, as the generate flow documents."""
    from tasks.steps.dedup.minhash import MinHashParams, jaccard

    texts = pa.concat_tables(synth.generate_rows(1, 0, 2000, 1000, 0.3)).column("text")
    texts = texts.to_pylist()
    plan = synth.planted(1, 0, 0.3)
    near = [(c, s) for c, s, n in zip(plan.copy, plan.source, plan.near, strict=True) if n]
    near = [(c, s) for c, s in near if c < 2000]
    assert len(near) > 200
    threshold = MinHashParams().threshold
    long_enough = [(c, s) for c, s in near if len(texts[s].split()) >= 13]
    assert len(long_enough) > 0.9 * len(near)
    assert all(threshold <= jaccard(texts[c], texts[s], 5) < 1 for c, s in long_enough)
