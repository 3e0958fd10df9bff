"""Per-row digests and one-permutation MinHash sketches (tasks/steps/dedup/sketch.py),
checked against a plain-Python reference of the same definitions: words as Python's
``str.split()`` gives them, every byte of a row in its digest."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from tasks.steps.dedup import minhash as dedup
from tasks.steps.dedup import sketch

MASK = (1 << 64) - 1
P1, P2, P3 = int(sketch._P1), int(sketch._P2), int(sketch._P3)
M1, M2, DIGEST_SEED = int(sketch._M1), int(sketch._M2), int(sketch._DIGEST_SEED)
EMPTY = 0xFFFFFFFF
WORDS = [f"w{i}" for i in range(5000)]
# Every character str.isspace() accepts, ASCII and not.
SPACES = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]


def mix(v: int) -> int:
    v = ((v ^ (v >> 30)) * M1) & MASK
    v = ((v ^ (v >> 27)) * M2) & MASK
    return v ^ (v >> 31)


def folded(data: bytes) -> tuple[int, int]:
    """The eight-byte little-endian words of ``data`` folded as the kernel folds a word:
    (hash of the full words, the last partial word)."""
    h = 0
    for start in range(0, len(data) - len(data) % 8, 8):
        h = ((h ^ int.from_bytes(data[start : start + 8], "little")) * P1) & MASK
        h ^= h >> 32
    return h, int.from_bytes(data[len(data) - len(data) % 8 :], "little")


def word_hash(word: str) -> int:
    data = word.encode()
    h, tail = folded(data)
    return mix((((h ^ tail) * P2) + len(data)) & MASK)


def reference_digest(text: str) -> tuple[int, int]:
    data = text.encode()
    h1 = DIGEST_SEED ^ ((len(data) * P1) & MASK)
    h2 = h1 ^ P3
    full = len(data) - len(data) % 8
    for start in range(0, full, 8):
        w = int.from_bytes(data[start : start + 8], "little")
        h1 = ((h1 ^ w) * P1) & MASK
        h1 ^= h1 >> 29
        h2 = ((h2 + w) * P2) & MASK
        h2 ^= h2 >> 31
    tail = int.from_bytes(data[full:], "little")
    return mix(h1 ^ tail), mix((h2 + tail * P2) & MASK)


def reference_mins(text: str, shingle: int, bins: int, seed: int) -> list[int]:
    hashes = [word_hash(w) for w in text.split()]
    if 0 < len(hashes) < shingle:
        runs = [hashes]
    else:
        runs = [hashes[i : i + shingle] for i in range(len(hashes) - shingle + 1)]
    mins = [EMPTY] * bins
    for run in runs:
        c = seed
        for h in run:
            c = ((c ^ h) * P3) & MASK
        c = mix(c)
        at = ((c >> 32) * bins) >> 32
        mins[at] = min(mins[at], c & 0xFFFFFFFF)
    return mins


def reference_tags(mins: list[int]) -> list[int]:
    return [0 if v == EMPTY else 1 + (((v * P1) & MASK) >> 56) % 255 for v in mins]


def texts_of_every_kind(rng: random.Random) -> list[str | None]:
    """Texts that exercise the splitting: each kind of whitespace, words of every length
    around the eight-byte fold, Korean, blank and null rows, fewer words than a shingle."""
    texts: list[str | None] = [None, "", " \t\n ", "\u3000\u00a0", "one", "a b", "a  b"]
    texts += [f"left{space}right and more words here" for space in SPACES]
    texts += ["x" * n + " " + "y" * (n + 1) for n in range(1, 20)]
    texts += ["대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고"]
    texts += ["\u200bnot a space\u200b \x00 \x7f \x85end"]  # ZWSP and NUL are no whitespace
    for _ in range(20):
        texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40))))
    return texts


def test_the_kernel_computes_the_reference_definitions() -> None:
    texts = texts_of_every_kind(random.Random(4))
    for shingle, bins in ((5, 128), (1, 32), (3, 7)):
        found = sketch.sketch(pa.array(texts, pa.string()), shingle, bins, seed=11)
        for row, text in enumerate(texts):
            value = text or ""
            assert tuple(found.digests[row].tolist()) == reference_digest(value), repr(text)
            assert found.has_words[row] == bool(value.split()), repr(text)
            expected = reference_tags(reference_mins(value, shingle, bins, 11))
            assert found.tags[row].tolist() == expected, (repr(text), shingle, bins)


def test_digests_are_equal_only_for_equal_text_and_null_for_blank_rows() -> None:
    texts = ["a b", "a b", "a  b", "", None, "한국어", " \t\n ", "b a", "a b "]
    values = sketch.sketch(pa.array(texts)).digest_array().to_pylist()
    assert values[0] == values[1]
    others = [values[i] for i in (0, 2, 5, 7, 8)]
    assert len(set(others)) == len(others)
    assert values[3] is None and values[4] is None and values[6] is None
    assert all(len(v) == dedup.EXACT_DIGEST_BYTES for v in others)


def test_results_do_not_depend_on_the_batch_its_slicing_or_the_string_type() -> None:
    rng = random.Random(3)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 60))) for _ in range(50)]
    texts[7] = None

    def run(array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = sketch.sketch(array, 5, 64, 8, seed=2)
        return found.digests, found.tags, found.bands

    whole = run(pa.array(texts))
    pieces = [
        run(pa.array(texts, pa.large_string())),
        run(pa.chunked_array([texts[:13], texts[13:]])),
        run(pa.array(["ignored"] * 5 + texts).slice(5)),
    ]
    halves = [run(pa.array(texts[:20])), run(pa.array(texts[20:]))]
    pieces.append(tuple(np.concatenate(parts) for parts in zip(*halves, strict=True)))
    for other in pieces:
        for mine, theirs in zip(whole, other, strict=True):
            assert np.array_equal(mine, theirs)


def test_sketches_are_the_same_in_another_process() -> None:
    """No per-process salt (Python's hash) leaks into a digest, sketch or band."""
    code = (
        "import json, pyarrow as pa; from tasks.steps.dedup import sketch; "
        "s = sketch.sketch(pa.array(['one two three four five six', 'a b']), 5, 16, 4, 3); "
        "print(json.dumps([s.digests.tolist(), s.tags.tolist(), s.bands.tolist()]))"
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
    here = sketch.sketch(pa.array(["one two three four five six", "a b"]), 5, 16, 4, 3)
    expected = [here.digests.tolist(), here.tags.tolist(), here.bands.tolist()]
    assert json.loads(runs[0]) == json.loads(runs[1]) == expected


def planted_pair(rng: random.Random, length: int, keep: float) -> tuple[str, str]:
    """Two texts where the second replaces about ``1 - keep`` of the first's words."""
    first = [rng.choice(WORDS) for _ in range(length)]
    second = [w if rng.random() < keep else rng.choice(WORDS) for w in first]
    return " ".join(first), " ".join(second)


def test_estimates_follow_exact_jaccard() -> None:
    """The estimate over the bins either row filled stays within four standard errors
    of the exact value (as for that many independent MinHash values, which it beats:
    bins are drawn without replacement)."""
    rng = random.Random(7)
    pairs = [planted_pair(rng, 300, keep) for keep in (0.99, 0.95, 0.9, 0.8, 0.6, 0.3) * 5]
    found = sketch.sketch(pa.array([t for pair in pairs for t in pair]), 5, 256)
    for i, (a, b) in enumerate(pairs):
        exact = dedup.jaccard(a, b, 5)
        estimate = float(sketch.similarity(found.tags[2 * i], found.tags[2 * i + 1]))
        either = int(((found.tags[2 * i] != 0) | (found.tags[2 * i + 1] != 0)).sum())
        error = (exact * (1 - exact) / either) ** 0.5
        assert abs(estimate - exact) <= 4 * error + 2 / either, (exact, estimate)


@pytest.mark.parametrize("words", [(100, 250), (12, 30)])
def test_bands_and_estimates_find_similar_pairs_and_only_them(words) -> None:
    """The defaults on pairs of about the seed's 1 KB of real words, and on short rows
    whose sketches are mostly empty bins (filled only by densification for the bands):
    pairs at 0.85 or more are candidates in some band and verified at the threshold;
    pairs below 0.6 never pass."""
    params = dedup.MinHashParams()
    rng = random.Random(5)
    pairs = []
    for _ in range(600):
        target = rng.uniform(0.3, 1.0)
        rate = 1 - (2 * target / (1 + target)) ** (1 / 5)  # words kept for that Jaccard
        pairs.append(planted_pair(rng, rng.randint(*words), 1 - rate))
    found = sketch.sketch(
        pa.array([t for pair in pairs for t in pair]),
        params.shingle,
        params.num_perm,
        params.bands,
        params.seed,
    )
    exact = np.array([dedup.jaccard(a, b, params.shingle) for a, b in pairs])
    candidate = (found.bands[0::2] == found.bands[1::2]).any(axis=1)
    verified = sketch.similarity(found.tags[0::2], found.tags[1::2]) >= params.threshold
    high, low = exact >= params.threshold + 0.05, exact < params.threshold - 0.2
    assert high.sum() > 50 and low.sum() > 50
    assert (candidate & verified)[high].mean() >= 0.99
    assert not verified[low].any()


def test_densification_fills_alike_and_leaves_rows_without_words_alone() -> None:
    tags = np.zeros((4, 16), np.uint8)
    tags[0, [2, 9]] = [5, 7]
    tags[1, [2, 9]] = [5, 7]  # the same filled bins: the same bands
    tags[2, [2, 9]] = [5, 8]  # one value differs
    keys = sketch.band_keys(tags, 4, seed=0)
    assert (keys[0] == keys[1]).all() and (keys[0] != keys[2]).any()
    assert (keys[3] == 0).all()  # no words, no bands (and the step drops the row)
    full = np.arange(1, 17, dtype=np.uint8)[None, :]
    changed = full.copy()
    changed[0, 0] = 99  # a full sketch borrows nothing: one value moves one band only
    both = sketch.band_keys(np.vstack([full, changed]), 4, seed=0)
    assert (both[0] != both[1]).sum() == 1


def test_sketch_columns_round_trip() -> None:
    tags = np.arange(24, dtype=np.uint8).reshape(3, 8)
    column = sketch.sketch_array(tags)
    assert column.type == pa.binary(8)
    assert np.array_equal(sketch.tags_from(column), tags)
    assert np.array_equal(sketch.tags_from(pa.chunked_array([column.slice(1)])), tags[1:])
