"""The dedup step's pure functions: order keys, parameters, grouping, survivors (the
per-row digests and sketches: test_dedup_sketch.py)."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from benchmarks.dedup_quality import group_files
from tasks.errors import InputError
from tasks.steps.dedup import minhash as dedup
from tasks.steps.dedup import sketch


def digests_of(texts) -> pa.Array:
    return sketch.sketch(pa.array(texts, pa.string())).digest_array()


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
    digests = digests_of(["a", None, "b", "a", "b"])
    words = dedup.digest_words(pa.chunked_array([digests.slice(1)]))
    assert [w.tobytes() for w in words] == [d for d in digests.to_pylist()[1:] if d is not None]
    assert words[0].tobytes() != words[1].tobytes() and (words[0] == words[2]).all()


def near_duplicates(
    tmp_path, files: list[list[str | None]], params
) -> dict[tuple[int, int], tuple[int, int]]:
    """Each removed row's survivor ((file, row) both) when near dedup runs on ``files``:
    passes 1 and 2 of the step, in this process."""
    from tasks.steps.dedup import grouping

    root, names, sources = group_files(tmp_path, files, params, grouping.Shards(2, 3))
    found = grouping.find_duplicates(
        root, names, sources, params, grouping.Shards(2, 3), lambda fn, specs: list(map(fn, specs))
    )
    return {
        dedup.key_position(int(k)): dedup.key_position(int(s))
        for k, s in zip(found.removed, found.survivor, strict=True)
    }


def test_band_rows_go_to_their_shard_and_a_files_repeats_have_none(tmp_path) -> None:
    import pyarrow.parquet as pq

    from tasks.steps.dedup import grouping

    params = dedup.MinHashParams()
    texts = ["a b c d e f", None, "", "g h i j k l m", "a b c d e f"]
    shards = grouping.Shards(3, 7)
    _, (name,), _ = group_files(tmp_path, [texts], params, shards)
    bands = pq.ParquetFile(tmp_path / grouping.BANDS / name)
    assert bands.num_row_groups == 7
    found = sketch.sketch(pa.array(texts), params.shingle, params.num_perm, params.bands)
    every = []
    for s in range(7):
        rows = bands.read_row_group(s)
        assert all(b % 7 == s for b in rows.column("bucket").to_pylist())
        keys, buckets = rows.column("key").to_pylist(), rows.column("bucket").to_pylist()
        every += list(zip(keys, buckets, strict=True))
    # Rows without words have no bands, nor has the repeat (row 4) of row 0.
    expected = [(k, int(b)) for k in (0, 3) for b in found.bands[k]]
    assert sorted(every) == sorted(expected)
    digests = pq.ParquetFile(tmp_path / grouping.DIGESTS / name)
    assert digests.num_row_groups == 3
    rows = digests.read().to_pylist()
    assert sorted((r["key"], r["first"]) for r in rows) == [(0, 0), (3, 3), (4, 0)]


def test_a_files_repeats_are_settled_within_it() -> None:
    """Each copy of a text in a file points at the file's first copy of it; only those
    first copies are grouped across files, so a group of many copies puts one row per
    file into its digest's shard."""
    from tasks.steps.dedup.grouping import in_file_firsts

    texts = ["a", "b", "a", "a", "c", "b", "a", "d", "c"] * 100
    keys = dedup.order_keys(3, 0, len(texts))
    local = in_file_firsts(keys, dedup.digest_words(digests_of(texts)))
    first = {t: int(keys[texts.index(t)]) for t in "abcd"}
    assert local.tolist() == [first[t] for t in texts]


def test_repeats_and_grouped_first_copies_settle_to_the_smallest_key_of_a_text(
    tmp_path,
) -> None:
    """Two files, each in two shards: the repeats within each file, and the files' first
    copies grouped together, settle every removed key to the smallest key with its text
    across files, as a dict of groups says."""
    from tasks.steps.dedup import grouping

    rng = np.random.default_rng(8)
    files, reference = [], {}
    for number in (0, 1):
        texts = [f"t{v}" for v in rng.integers(0, 40, 300)]
        files.append(texts)
        for key, text in zip(dedup.order_keys(number, 0, 300).tolist(), texts, strict=True):
            reference.setdefault(text, []).append(key)
    root, names, _ = group_files(tmp_path, files, None, grouping.Shards(2))
    uris = tuple(root.child(grouping.DIGESTS).child(n).uri for n in names)
    pairs = [grouping.digest_pairs(grouping.ShardTask(uris, s)) for s in (0, 1)]
    first, removed = (np.concatenate(parts) for parts in zip(*pairs, strict=True))
    survivor = grouping._settle(first, removed)
    expected = {k: min(g) for g in reference.values() for k in g if k != min(g)}
    assert dict(zip(removed.tolist(), survivor.tolist(), strict=True)) == expected


def test_runs_of_wide_values_match_a_dict_including_values_sharing_their_top_bits() -> None:
    """Random 64-bit values (the packed sort's path), some repeated, and some that agree
    in every bit the packed sort keeps but differ below: those are no pair."""
    rng = np.random.default_rng(11)
    values = rng.integers(0, 2**63, 20_000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    values[100:200] = values[:100]  # repeats
    values[300:400] = values[:100] ^ np.uint64(1)  # same top bits, other values
    values[400:450] = values[:50] ^ np.uint64(1)  # and repeats of those
    keys = rng.permutation(20_000).astype(np.int64)
    first, paired = dedup.first_of_runs([values], keys)
    groups: dict[int, list[int]] = {}
    for value, key in zip(values.tolist(), keys.tolist(), strict=True):
        groups.setdefault(value, []).append(key)
    expected = {k: min(g) for g in groups.values() for k in g if k != min(g)}
    assert dict(zip(paired.tolist(), first.tolist(), strict=True)) == expected
    assert len(expected) == 150


def test_distinct_short_texts_are_never_near_duplicates(tmp_path) -> None:
    """Issue 33: of 7,000 distinct random texts of 1 to 6 and 8 words, near dedup removed
    380 (none of 6 or more words) as duplicates of unrelated texts: a row of fewer words
    than a shingle is one shingle, and two such rows filled one bin each with 8 bits of
    its minimum, equal by chance for one pair in 32,640. Here 1,000 of each length from
    1 to 8 words, in two files: every row is kept."""
    rng = random.Random(33)
    texts: list[str] = []
    for length in range(1, 9):
        made: set[str] = set()
        while len(made) < 1000:
            made.add(text_of([rng.choice(WORDS) for _ in range(length)]))
        texts += sorted(made)
    rng.shuffle(texts)
    assert near_duplicates(tmp_path, [texts[:4000], texts[4000:]], dedup.MinHashParams()) == {}


def constructed_pair(rng: random.Random, number: int) -> tuple[str, str]:
    """Two texts on words of their own whose shingles overlap by construction, a little
    or a lot: one and a longer or shorter one with the same start, a window moved
    along, or words replaced; from 1 word to 300."""
    count = rng.choice([rng.randint(1, 12), rng.randint(13, 60), rng.randint(100, 300)])
    words = [f"p{number}w{i}" for i in range(count + 300)]
    first = words[:count]
    reach = rng.choice([3, max(count // 2, 1)])
    kind = rng.randrange(3)
    if kind == 0:  # nested shingles: J = (shorter - 4) / (longer - 4) past 5 words
        second = words[: max(1, count + rng.randint(-reach, reach))]
    elif kind == 1:  # a window moved along
        shift = rng.randint(1, reach)
        second = words[shift : shift + count]
    else:  # words replaced
        replaced = set(rng.sample(range(count), min(count, rng.randint(1, reach))))
        second = [f"p{number}x{i}" if i in replaced else w for i, w in enumerate(first)]
    return text_of(first), text_of(second)


def test_pairs_below_the_threshold_less_a_margin_are_never_merged_and_close_ones_are(
    tmp_path,
) -> None:
    """1,500 constructed pairs at every length (each pair's words its own): a pair whose
    exact Jaccard similarity is below threshold - 0.2 is never merged, one at 0.9 or
    more always is, and no row is merged with another pair's."""
    params = dedup.MinHashParams()
    rng = random.Random(7)
    pairs = [constructed_pair(rng, n) for n in range(1500)]
    similar = np.array([dedup.jaccard(a, b, params.shingle) for a, b in pairs])
    texts = [t for pair in pairs for t in pair]
    found = near_duplicates(tmp_path, [texts[:1500], texts[1500:]], params)
    removed = np.zeros(len(pairs), bool)
    for (file, row), survivor in found.items():
        at = file * 1500 + row
        assert at % 2 == 1 and survivor == divmod(at - 1, 1500), (texts[at], survivor)
        removed[at // 2] = True
    low, high = similar < params.threshold - 0.2, similar >= 0.9
    # Rows of at most 35 words have at most 31 shingles: listed, compared exactly.
    short = np.array([len(a.split()) <= 35 for a, _ in pairs])
    copies = np.array([a == b for a, b in pairs])
    assert (low & short).sum() > 300 and (high & short & ~copies).sum() > 20
    assert (low & ~short).sum() > 100 and (high & ~short).sum() > 200
    assert not removed[low].any()
    assert removed[high].all()


def test_one_word_and_blank_texts(tmp_path) -> None:
    """3,000 distinct one-word texts are all kept; a one-word text with other spacing is
    a near duplicate of it (the same one shingle), a copy an exact one; blank rows (empty,
    whitespace, null) are never duplicates, not even of each other."""
    texts = [*WORDS[:3000], "", None, " ", "\t\n", "w1", "w2 ", "\u3000w3", "", None, " "]
    found = near_duplicates(tmp_path, [texts], dedup.MinHashParams())
    assert found == {(0, 3004): (0, 1), (0, 3005): (0, 2), (0, 3006): (0, 3)}
    tags = sketch.sketch(pa.array(["", None, " ", "w2", "w2 "]), 5, 128).tags
    assert not tags[:3].any()  # an all-zero sketch: no bands, similar to nothing
    assert float(sketch.similarity(tags[0], tags[1])) == 0.0
    assert float(sketch.similarity(tags[0], tags[3])) == 0.0
    assert float(sketch.similarity(tags[3], tags[4])) == 1.0
