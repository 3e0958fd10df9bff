"""The repeated n-gram kernel (tasks/steps/filter/ngrams.py) against plain Python: Gopher's
top n-gram (Counter.most_common, first seen wins a tie) and datatrove's greedy scan of
duplicated n-grams, on rows of every size, empty ones and one far longer than the rest."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from tasks.steps.filter import ngrams


def top_reference(words: list[str], n: int) -> float:
    if len(words) < n:
        return float("nan")
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, count = grams.most_common(1)[0]
    return count * (sum(map(len, gram)) + n - 1)


def duplicated_reference(words: list[str], n: int) -> float:
    seen, total, at = set(), 0, 0
    while at <= len(words) - n:
        gram = tuple(words[at : at + n])
        if gram in seen:
            total += sum(map(len, gram))
            at += n
        else:
            seen.add(gram)
            at += 1
    return total


def kernel(rows: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's inputs as a batch has them: a hash per (row, word), cumulated chars."""
    codes: dict[tuple[int, str], int] = {}
    hashes = [codes.setdefault((r, w), len(codes)) for r, row in enumerate(rows) for w in row]
    lengths = [len(w) for row in rows for w in row]
    starts = np.concatenate([[0], np.cumsum([len(row) for row in rows])]).astype(np.int64)
    ends = np.concatenate([[0], np.cumsum(lengths)]).astype(np.float64)
    # Any 64-bit values serve, equal for equal words of a row (mixed, as batch.py does).
    mixed = np.array(hashes, np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(12345)
    return ngrams.repetition(mixed, ends, starts)


@pytest.mark.parametrize("seed", range(4))
def test_the_kernel_is_the_plain_python_counts(seed):
    rng = random.Random(seed)
    vocabulary = ["a", "bb", "ccc", "dddd", "é", "한국어", "🙂", "e\u0301"]
    rows: list[list[str]] = []
    for _ in range(60):
        length = rng.choice([0, 1, 2, 4, 5, 9, 10, 11, 30, 200])
        kinds = rng.randint(1, len(vocabulary))  # few kinds: many repeats and ties
        rows.append([rng.choice(vocabulary[:kinds]) for _ in range(length)])
    # One row far longer than the rest, made of a repeated passage: the table grows.
    passage = [rng.choice(vocabulary) for _ in range(40)]
    rows.append(passage * 300 + [rng.choice(vocabulary) for _ in range(5000)])
    top, duplicated = kernel(rows)
    for r, words in enumerate(rows):
        for j, n in enumerate(ngrams.TOP):
            np.testing.assert_equal(top[j, r], top_reference(words, n), err_msg=f"top {n} {r}")
        for j, n in enumerate(ngrams.DUPLICATED):
            assert duplicated[j, r] == duplicated_reference(words, n), (n, r)


@pytest.mark.parametrize("seed", range(3))
def test_prose_like_rows_where_few_ngrams_repeat(seed):
    """Many kinds of words (Zipf-like), with passages copied within a row: the kernel asks
    about an n-gram only where the (n-1)-gram repeats, and that set shrinks to a few words
    here. Copies overlap, abut and end a row."""
    rng = random.Random(seed)
    vocabulary = [f"w{i}" * (1 + i % 3) for i in range(500)]
    weights = [1 / (i + 1) for i in range(len(vocabulary))]
    rows: list[list[str]] = []
    for _ in range(40):
        row = rng.choices(vocabulary, weights, k=rng.choice([3, 12, 80, 400]))
        for _ in range(rng.randint(0, 4)):
            size = rng.randint(1, 14)
            source = rng.randrange(len(row))
            piece = row[source : source + size]
            at = rng.choice([len(row), source + rng.randint(0, size), rng.randrange(len(row))])
            row[at:at] = piece
        rows.append(row)
    top, duplicated = kernel(rows)
    for r, words in enumerate(rows):
        for j, n in enumerate(ngrams.TOP):
            np.testing.assert_equal(top[j, r], top_reference(words, n), err_msg=f"top {n} {r}")
        for j, n in enumerate(ngrams.DUPLICATED):
            assert duplicated[j, r] == duplicated_reference(words, n), (n, r)


def test_a_tie_goes_to_the_ngram_seen_first():
    # "aa b" and "c d" both twice: "c d" reaches two first, "aa b" was seen first.
    words = ["aa", "b", "c", "d", "c", "d", "aa", "b"]
    top, _ = kernel([words])
    assert top[0, 0] == top_reference(words, 2) == 2 * len("aa b")


def test_words_whose_hashes_differ_in_the_top_bit_only_make_different_ngrams():
    """Was a defect: an n-gram's key summed its words' hashes times a prime, so (a, b)
    and (a + 2**63, b + 2**63) had one key and counted as the same bigram."""
    top = 1 << 63
    hashes = np.array([1, 2, 1 | top, 2 | top], np.uint64)  # a b A B: four words
    ends = np.arange(5, dtype=np.float64)  # one character each
    found, _ = ngrams.repetition(hashes, ends, np.array([0, 4], np.int64))
    assert found[0, 0] == 3  # every bigram once: "a b" is 3 characters
