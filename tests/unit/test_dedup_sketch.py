"""Per-row digests and one-permutation MinHash sketches (tasks/steps/dedup/sketch.py),
checked against a plain-Python reference of the same definitions: words as Python's
``str.split()`` gives them, every byte of a row in its digest, a row of few shingles
listed, any other densified."""

from __future__ import annotations

import functools
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
FINGERPRINT_SEED, TRIES_SEED = int(sketch._FINGERPRINT_SEED), int(sketch._TRIES_SEED)
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


def reference_values(text: str, shingle: int, seed: int) -> list[int]:
    """Each shingle's 32-bit value (a row with fewer words has one shingle of them all)."""
    hashes = [word_hash(w) for w in text.split()]
    if 0 < len(hashes) < shingle:
        runs = [hashes]
    else:
        runs = [hashes[i : i + shingle] for i in range(len(hashes) - shingle + 1)]
    values = []
    for run in runs:
        c = seed
        for h in run:
            c = ((c ^ h) * P3) & MASK
        v = mix(c) >> 32
        values.append(v if v != EMPTY else EMPTY - 1)
    return values


@functools.cache
def tries(bins: int) -> list[list[int]]:
    """Each bin's sequence of 64 bins to borrow from."""
    return [
        [(((mix((TRIES_SEED ^ (j << 32) ^ t) * P1 & MASK)) >> 32) * bins) >> 32 for t in range(64)]
        for j in range(bins)
    ]


def fingerprint(value: int, j: int) -> int:
    return 1 + (((mix(((value << 32) | j) ^ FINGERPRINT_SEED) >> 32) * 127) >> 32)


def reference_dense(values: list[int], bins: int) -> list[int]:
    """Bin minima (a value's bin: its top bits), a filled bin as 128 + its minimum's
    fingerprint, an empty one the fingerprint of the first filled bin in its sequence
    (or the next filled bin to its right)."""
    mins = [EMPTY] * bins
    for v in values:
        at = (v * bins) >> 32
        mins[at] = min(mins[at], v)
    if all(m == EMPTY for m in mins):
        return [0] * bins
    out = []
    for j in range(bins):
        if mins[j] != EMPTY:
            out.append(128 + fingerprint(mins[j], j))
            continue
        source = next((t for t in tries(bins)[j] if mins[t] != EMPTY), None)
        if source is None:
            source = next((j + d) % bins for d in range(bins) if mins[(j + d) % bins] != EMPTY)
        out.append(fingerprint(mins[source], j))
    return out


def reference_sketch(text: str, shingle: int, bins: int, seed: int) -> list[int]:
    """A row of at most (bins - 4) // 4 distinct shingles (63 at most) lists them: 0, their
    number, two zero bytes, their values ascending (4 bytes each, little-endian)."""
    values = reference_values(text, shingle, seed)
    distinct = sorted(set(values))
    if 0 < len(distinct) <= min((bins - 4) // 4, 63):
        listed = [0, len(distinct), 0, 0]
        for v in distinct:
            listed += list(v.to_bytes(4, "little"))
        return listed + [0] * (bins - len(listed))
    return reference_dense(values, bins)


def texts_of_every_kind(rng: random.Random) -> list[str | None]:
    """Texts that exercise the splitting: each kind of whitespace, words of every length
    around the eight-byte fold, Korean, blank and null rows, fewer words than a shingle."""
    texts: list[str | None] = [None, "", " \t\n ", "\u3000\u00a0", "one", "a b", "a  b"]
    texts += [f"left{space}right and more words here" for space in SPACES]
    texts += ["x" * n + " " + "y" * (n + 1) for n in range(1, 20)]
    texts += ["대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고"]
    texts += ["\u200bnot a space\u200b \x00 \x7f \x85end"]  # ZWSP and NUL are no whitespace
    texts += ["ha " * 300, "ha ho " * 40]  # long, and few distinct shingles
    for _ in range(20):
        texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40))))
    for words in (34, 35, 36, 37, 200):  # 30 to 33 shingles: listed or not with 128 bins
        texts.append(" ".join(rng.choice(WORDS) for _ in range(words)))
    return texts


def test_the_kernel_computes_the_reference_definitions() -> None:
    texts = texts_of_every_kind(random.Random(4))
    assert [sketch.listed_capacity(b) for b in (128, 32, 7, 1024)] == [31, 7, 0, 63]
    for shingle, bins in ((5, 128), (1, 32), (3, 7)):
        found = sketch.sketch(pa.array(texts, pa.string()), shingle, bins, seed=11)
        for row, text in enumerate(texts):
            value = text or ""
            assert tuple(found.digests[row].tolist()) == reference_digest(value), repr(text)
            assert found.has_words[row] == bool(value.split()), repr(text)
            expected = reference_sketch(value, shingle, bins, 11)
            assert found.tags[row].tolist() == expected, (repr(text), shingle, bins)
            values = reference_values(value, shingle, 11)
            dense = reference_dense(values, bins)
            assert sketch.densified(found.tags[row : row + 1])[0].tolist() == dense


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
        either = int(((found.tags[2 * i] | found.tags[2 * i + 1]) & sketch.OWN != 0).sum())
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
    texts = ["a b c d e f g", "a  b c\td e f g", "a b c d e f x", "", "a"]
    found = sketch.sketch(pa.array(texts), 5, 16, 4)
    dense = sketch.densified(found.tags)
    # The same shingles (the spaces differ): the same sketch and bands.
    assert (found.tags[0] == found.tags[1]).all() and (found.bands[0] == found.bands[1]).all()
    assert (found.bands[0] != found.bands[2]).any()
    assert (found.bands[3] == 0).all() and (dense[3] == 0).all()  # no words, no bands
    assert (dense[[0, 2, 4]] != 0).all()  # every bin of a row with words has a value
    assert np.array_equal(sketch.band_keys(dense, 4, 0), found.bands)  # listed or not
    full = (np.arange(1, 17, dtype=np.uint8) | sketch.OWN)[None, :]
    changed = full.copy()
    changed[0, 0] ^= 1  # a full sketch borrows nothing: one value moves one band only
    both = sketch.band_keys(np.vstack([full, changed]), 4, seed=0)
    assert (both[0] != both[1]).sum() == 1


def listed_row(values: list[int], bins: int = 128) -> np.ndarray:
    """A listed sketch of these shingle values."""
    row = [0, len(values), 0, 0]
    for v in sorted(values):
        row += list(v.to_bytes(4, "little"))
    return np.array(row + [0] * (bins - len(row)), np.uint8)


def test_borrowed_bins_agree_only_when_they_borrow_the_same_minimum() -> None:
    """Two rows of one shingle each, in the same bin (the old sketch's case of issue 33:
    one filled bin, 8 bits of its minimum, equal one time in 255): their dense sketches
    agree on about one bin in 127, so no band of theirs matches; one shingle beside
    another in its bin that it loses to is seen by the listed form."""
    same_bin = [listed_row([0x12345678]), listed_row([0x12345679])]
    dense = sketch.densified(np.vstack(same_bin))
    assert (dense[0] & sketch.OWN).sum() == sketch.OWN  # one own bin each: the same one
    assert (dense[0] == dense[1]).mean() < 0.05
    keys = sketch.band_keys(np.vstack(same_bin), 16, 0)
    assert not (keys[0] == keys[1]).any()
    assert float(sketch.similarity(same_bin[0], same_bin[1])) == 0.0
    # {s} and {s, t}, t in s's bin and above it: densified alike, listed apart (J = 1/2).
    alone, hidden = listed_row([0x12345678]), listed_row([0x12345678, 0x12345700])
    assert np.array_equal(*sketch.densified(np.vstack([alone, hidden])))
    assert float(sketch.similarity(alone, hidden)) == 0.5


def test_sketch_columns_round_trip() -> None:
    tags = np.arange(24, dtype=np.uint8).reshape(3, 8)
    column = sketch.sketch_array(tags)
    assert column.type == pa.binary(8)
    assert np.array_equal(sketch.tags_from(column), tags)
    assert np.array_equal(sketch.tags_from(pa.chunked_array([column.slice(1)])), tags[1:])
