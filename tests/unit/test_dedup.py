"""The dedup step's pure functions: digests, shingles, MinHash, bands, survivors."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from tasks.errors import InputError
from tasks.steps.dedup import minhash as dedup

WORDS = [f"w{i}" for i in range(5000)]


def text_of(words: list[str]) -> str:
    return " ".join(words)


def planted_pair(rng: random.Random, length: int, keep: float) -> tuple[str, str]:
    """Two texts where the second replaces about ``1 - keep`` of the first's words."""
    first = [rng.choice(WORDS) for _ in range(length)]
    second = [w if rng.random() < keep else rng.choice(WORDS) for w in first]
    return text_of(first), text_of(second)


def test_order_keys_sort_by_file_then_row() -> None:
    keys = np.concatenate([dedup.order_keys(1, 0, 3), dedup.order_keys(0, 5, 2)])
    assert [dedup.key_position(int(k)) for k in sorted(keys)] == [
        (0, 5),
        (0, 6),
        (1, 0),
        (1, 1),
        (1, 2),
    ]


def test_exact_digests_equal_only_for_equal_text() -> None:
    digests = dedup.exact_digests(pa.array(["a b", "a b", "a  b", "", None, "한국어", " \t\n "]))
    values = digests.to_pylist()
    assert digests.type == pa.binary(dedup.EXACT_DIGEST_BYTES)
    assert values[0] == values[1]
    assert len({values[0], values[2], values[5]}) == 3
    # Blank texts (empty, null, whitespace only) have no digest: nobody's duplicates.
    assert values[3] is None and values[4] is None and values[6] is None


def test_shingles_match_the_python_reference() -> None:
    texts = ["a b c d e f g", "a b", "", "  x\ty\n z  ", "a b c d e f g"]
    words, offsets = dedup.word_hashes(pa.array(texts))
    hashes, shingle_offsets = dedup.shingle_hashes(words, offsets, 3)
    counts = np.diff(shingle_offsets).tolist()
    assert counts == [5, 1, 0, 1, 5]
    # Same words in the same order: same hashes; the first row's shingles are distinct.
    first = hashes[shingle_offsets[0] : shingle_offsets[1]]
    last = hashes[shingle_offsets[4] : shingle_offsets[5]]
    assert first.tolist() == last.tolist() and len(set(first.tolist())) == 5


def test_identical_texts_have_identical_signatures_and_bands() -> None:
    params = dedup.MinHashParams(num_perm=64, bands=8)
    rng = random.Random(1)
    base = text_of([rng.choice(WORDS) for _ in range(200)])
    sig = dedup.signatures(pa.array([base, base, "", None]), params)
    assert sig.shape == (4, 64) and sig.dtype == np.uint32
    assert (sig[0] == sig[1]).all()
    assert dedup.has_words(sig).tolist() == [True, True, False, False]
    bands = dedup.band_hashes(sig, params)
    assert bands.shape == (4, 8) and (bands[0] == bands[1]).all()


def test_estimates_follow_exact_jaccard() -> None:
    """The MinHash estimate stays within four standard errors of the exact value."""
    params = dedup.MinHashParams(num_perm=256, bands=32)
    rng = random.Random(7)
    pairs = [planted_pair(rng, 300, keep) for keep in (0.99, 0.95, 0.9, 0.8, 0.6, 0.3)]
    sig = dedup.signatures(pa.array([t for pair in pairs for t in pair]), params)
    for i, (a, b) in enumerate(pairs):
        exact = dedup.jaccard(a, b, params.shingle)
        estimate = float(dedup.estimated_similarity(sig[2 * i], sig[2 * i + 1]))
        error = (exact * (1 - exact) / params.num_perm) ** 0.5
        assert abs(estimate - exact) <= 4 * error + 1e-9, (exact, estimate)


def test_signatures_do_not_depend_on_batching_or_chunking() -> None:
    params = dedup.MinHashParams(num_perm=32, bands=4)
    rng = random.Random(3)
    texts = [text_of([rng.choice(WORDS) for _ in range(rng.randint(0, 60))]) for _ in range(50)]
    whole = dedup.signatures(pa.array(texts), params)
    small_chunks = dedup.signatures(pa.array(texts), params, chunk=7)
    halves = np.vstack(
        [
            dedup.signatures(pa.array(texts[:20]), params),
            dedup.signatures(pa.array(texts[20:]), params),
        ]
    )
    chunked = dedup.signatures(pa.chunked_array([texts[:13], texts[13:]]), params)
    assert (whole == small_chunks).all() and (whole == halves).all() and (whole == chunked).all()


def test_signatures_are_the_same_in_another_process() -> None:
    """No per-process salt (Python's hash) leaks into a signature."""
    code = (
        "import json, pyarrow as pa; from tasks.steps.dedup import minhash as dedup; "
        "s = dedup.signatures(pa.array(['one two three four five six', 'a b']), "
        "dedup.MinHashParams(num_perm=16, bands=4)); print(json.dumps(s.tolist()))"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    here = dedup.signatures(
        pa.array(["one two three four five six", "a b"]), dedup.MinHashParams(num_perm=16, bands=4)
    )
    assert json.loads(runs[0]) == json.loads(runs[1]) == here.tolist()


def test_candidate_probability_is_the_banding_curve() -> None:
    params = dedup.MinHashParams(num_perm=128, bands=16)
    assert params.rows_per_band == 8
    assert params.candidate_probability(1.0) == 1.0
    assert params.candidate_probability(0.9) > 0.99 > params.candidate_probability(0.5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"threshold": 0.0}, "threshold must be in (0, 1]"),
        ({"threshold": 1.5}, "threshold must be in (0, 1]"),
        ({"shingle": 0}, "shingle must be at least 1"),
        ({"num_perm": 0, "bands": 1}, "num_perm must be at least 1"),
        ({"num_perm": 128, "bands": 10}, "bands must divide num_perm (128)"),
    ],
)
def test_bad_parameters_are_named(fields: dict, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dedup.MinHashParams(**fields)


def test_the_smallest_connected_key_survives() -> None:
    # 9-5 and 5-3 chain: 3 survives for both; 7-8 alone: 7 survives; 1 has no duplicate.
    keys, survivors = dedup.survivors(np.array([[9, 5], [5, 3], [8, 7], [1, 1]]))
    assert dict(zip(keys.tolist(), survivors.tolist(), strict=True)) == {9: 3, 5: 3, 8: 7}
    assert [len(a) for a in dedup.survivors(np.empty((0, 2), np.int64))] == [0, 0]


def test_runs_pair_every_key_with_the_smallest_key_sharing_its_values() -> None:
    rng = np.random.default_rng(3)
    hi, lo = rng.integers(0, 3, 500, dtype=np.uint64), rng.integers(0, 4, 500, dtype=np.uint64)
    keys = rng.permutation(np.arange(-50, 450, dtype=np.int64))
    first, paired = dedup.first_of_runs([hi, lo], keys)
    groups: dict[tuple[int, int], list[int]] = {}
    for h, low, key in zip(hi.tolist(), lo.tolist(), keys.tolist(), strict=True):
        groups.setdefault((h, low), []).append(key)
    expected = {k: min(g) for g in groups.values() for k in g if k != min(g)}
    assert dict(zip(paired.tolist(), first.tolist(), strict=True)) == expected
    assert len(paired) == len(expected)  # each key once
    empty = dedup.first_of_runs([np.array([], np.uint64)], np.array([], np.int64))
    assert [len(a) for a in empty] == [0, 0]


def test_digest_words_are_the_digests_bytes_and_skip_nulls() -> None:
    digests = dedup.exact_digests(pa.array(["a", None, "b", "a", "b"]))
    words = dedup.digest_words(pa.chunked_array([digests.slice(1)]))
    assert [w.tobytes() for w in words] == [d for d in digests.to_pylist()[1:] if d is not None]
    assert words[0].tobytes() != words[1].tobytes() and (words[0] == words[2]).all()


def test_a_grouping_round_explodes_only_its_bands_into_their_shards() -> None:
    from tasks.steps.dedup.grouping import _band_rows
    from tasks.steps.dedup.step import signature_table

    params = dedup.MinHashParams()
    texts = pa.array(["a b c d e f", None, "", "g h i j k l m"])
    table = signature_table(texts, np.arange(10, 14, dtype=np.int64), params)
    rows = _band_rows(7, slice(4, 8))(table)
    bands = dedup.band_hashes(dedup.signatures(texts, params), params)
    # Rows without words have no bands; the others give bands 4-7, in order.
    assert rows.column("key").to_pylist() == [10] * 4 + [13] * 4
    expected = np.concatenate([bands[0, 4:8], bands[3, 4:8]])
    assert rows.column("bucket").to_pylist() == expected.tolist()
    assert rows.column("shard").to_pylist() == (expected % np.uint64(7)).tolist()


def test_a_files_repeats_are_settled_within_it() -> None:
    """Each copy of a text in a file points at the file's first copy of it; only those
    first copies are grouped across files, so a group of many copies puts one row per
    file into its digest's shard."""
    from tasks.steps.dedup.grouping import file_digests

    texts = pa.array(["a", "b", "a", "a", "c", "b", None, "a", "d", "c"] * 100)
    keys = dedup.order_keys(3, 0, len(texts))
    rows = file_digests(pa.table({"key": keys, "digest": dedup.exact_digests(texts)}), 7)
    assert rows.num_rows == 900  # the null text has no digest
    local = dict(zip(rows["key"].to_pylist(), rows["local"].to_pylist(), strict=True))
    first = {t: int(keys[texts.to_pylist().index(t)]) for t in "abcd"}
    for key, text in zip(keys.tolist(), texts.to_pylist(), strict=True):
        if text is not None:
            assert local[key] == first[text]
    assert sorted(k for k, v in local.items() if k == v) == sorted(first.values())


def test_repeats_and_grouped_first_copies_settle_to_the_smallest_key_of_a_text() -> None:
    """Two files: the repeats within each file, and the files' first copies grouped
    together, settle every removed key to the smallest key with its text across files,
    as a dict of groups says."""
    from tasks.steps.dedup.grouping import _settle, file_digests

    rng = np.random.default_rng(8)
    tables, reference = [], {}
    for file in (0, 1):
        texts = [f"t{v}" for v in rng.integers(0, 40, 300)]
        keys = dedup.order_keys(file, 0, len(texts))
        digests = dedup.exact_digests(pa.array(texts))
        tables.append(file_digests(pa.table({"key": keys, "digest": digests}), 5))
        for key, text in zip(keys.tolist(), texts, strict=True):
            reference.setdefault(text, []).append(key)
    rows = pa.concat_tables(tables)
    key, local = np.asarray(rows["key"]), np.asarray(rows["local"])
    repeat = local != key
    values = [np.asarray(rows[c])[~repeat] for c in ("hi", "lo")]
    first, grouped = dedup.first_of_runs(values, key[~repeat])
    removed = np.concatenate([key[repeat], grouped])
    survivor = _settle(np.concatenate([local[repeat], first]), removed)
    expected = {k: min(g) for g in reference.values() for k in g if k != min(g)}
    assert dict(zip(removed.tolist(), survivor.tolist(), strict=True)) == expected
