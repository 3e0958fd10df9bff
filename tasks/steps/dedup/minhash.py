"""Exact and near-duplicate detection: parameters, order keys and grouping, as pure
functions over NumPy and Arrow arrays (the per-row hashing is :mod:`.sketch`).

Every row has an *order key*: the index of its file in manifest order in the high 32
bits, its row number within that file in the low 32. Of a group of duplicates the row
with the smallest key survives, so the survivor depends only on the input's order,
never on how the work was split across tasks or nodes.

* Exact duplicates share a 16-byte digest of their text's UTF-8 bytes.
* Near duplicates are found with one-permutation MinHash and locality-sensitive
  hashing over word n-grams (shingles): each row gets a sketch of ``num_perm`` bytes
  (a row of few shingles lists them instead), densified and cut into ``bands`` bands;
  rows that agree on all the values of any band are candidates, and a candidate pair
  is a duplicate when its Jaccard similarity (exact for two rows of few shingles,
  estimated otherwise: :func:`tasks.steps.dedup.sketch.similarity`) reaches the
  threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tasks.errors import InputError

ROW_BITS = 32
EXACT_DIGEST_BYTES = 16
# How rows are digested and sketched (tasks/steps/dedup/sketch.py), recorded in every
# output's manifest: an ``against`` dataset sketched otherwise cannot be compared with.
# v1: 8-bit minima, empty bins 0 (a row of one shingle filled one bin: issue 33); v2:
# rows of few shingles listed, the others densified with 7-bit fingerprints per bin.
SKETCH = "oph7-listed-v2"


@dataclass(frozen=True)
class MinHashParams:
    """How near duplicates are found; see the module docstring. ``num_perm`` is the
    number of one-permutation bins (a byte each) per row, kept in the name MinHash
    tools give it."""

    threshold: float = 0.8
    shingle: int = 5
    num_perm: int = 128
    bands: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise InputError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.shingle < 1:
            raise InputError(f"shingle must be at least 1 word, got {self.shingle}")
        if self.num_perm < 1:
            raise InputError(f"num_perm must be at least 1, got {self.num_perm}")
        if self.bands < 1 or self.num_perm % self.bands:
            raise InputError(
                f"bands must divide num_perm ({self.num_perm}) into equal bands, got {self.bands}"
            )

    @property
    def rows_per_band(self) -> int:
        return self.num_perm // self.bands

    def candidate_probability(self, similarity: float) -> float:
        """The chance two rows of this Jaccard similarity share at least one band, as
        for independent values (densified one-permutation bins come close to it)."""
        return 1.0 - (1.0 - similarity**self.rows_per_band) ** self.bands


def order_keys(file_index: int, first_row: int, num_rows: int) -> np.ndarray:
    """Order keys of ``num_rows`` rows of file ``file_index`` from row ``first_row``."""
    if first_row < 0 or first_row + num_rows > 1 << ROW_BITS:
        raise InputError(f"file {file_index}: rows beyond {1 << ROW_BITS} cannot be keyed")
    rows = np.arange(first_row, first_row + num_rows, dtype=np.int64)
    return (np.int64(file_index) << np.int64(ROW_BITS)) | rows


def key_position(key: int) -> tuple[int, int]:
    """``(file index, row)`` of an order key."""
    return key >> ROW_BITS, key & ((1 << ROW_BITS) - 1)


def jaccard(a: str, b: str, shingle: int) -> float:
    """Exact Jaccard similarity of two texts' word shingles (the reference)."""

    def shingles(text: str) -> set[tuple[str, ...]]:
        words = text.split()
        if 0 < len(words) < shingle:
            return {tuple(words)}
        return {tuple(words[i : i + shingle]) for i in range(len(words) - shingle + 1)}

    left, right = shingles(a), shingles(b)
    if not left and not right:
        return 0.0
    return len(left & right) / len(left | right)


def digest_words(digests: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The non-null 16-byte digests as rows of two uint64 words, for sorting in NumPy."""
    if isinstance(digests, pa.ChunkedArray):
        digests = digests.combine_chunks()
    digests = digests.drop_null()
    raw = np.frombuffer(digests.buffers()[1], dtype=np.uint64)
    words = EXACT_DIGEST_BYTES // 8
    return raw[digests.offset * words : (digests.offset + len(digests)) * words].reshape(-1, words)


# Rows a packed sort handles: their index fits in the low bits of a 64-bit sort key.
_INDEX_BITS = 22


def first_of_runs(values: list[np.ndarray], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows that share all of ``values`` with another row, paired with the smallest key
    among them: ``(first, key)`` for every key but the smallest of each such group.

    Vectorised, so a shard of millions of rows costs a few calls, not one per group.
    Rows whose first value is unique are found first with one sort of 64-bit values
    (that value's top bits and the row's index packed together), far cheaper than a
    sort of several columns; only the rest (duplicates, mostly) get the full sort.
    """
    values = [np.asarray(v, dtype=np.uint64) for v in values]
    keys = np.asarray(keys)
    if 0 < len(keys) < 1 << _INDEX_BITS:
        bits = np.uint64(_INDEX_BITS)
        packed = np.sort((values[0] >> bits << bits) | np.arange(len(keys), dtype=np.uint64))
        prefix = packed >> bits
        shared = np.zeros(len(keys), dtype=bool)
        shared[1:] = prefix[1:] == prefix[:-1]
        shared[:-1] |= shared[1:]
        chosen = (packed[shared] & np.uint64((1 << _INDEX_BITS) - 1)).astype(np.int64)
        values, keys = [v[chosen] for v in values], keys[chosen]
    order = np.lexsort((keys, *reversed(values)))
    ordered = [v[order] for v in values]
    keys = keys[order]
    starts = np.ones(len(keys), dtype=bool)
    for column in ordered:
        starts[1:] &= column[1:] == column[:-1]
    starts[1:] = ~starts[1:]
    first = keys[np.flatnonzero(starts)][np.cumsum(starts) - 1]
    # The same key twice in one group (two bands of one row hashing alike) is no pair.
    pair = first != keys
    return first[pair], keys[pair]


def find_sorted(sorted_keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` is in ``sorted_keys``: ``(positions, found)``; a position
    where ``found`` is False is in range but means nothing."""
    wanted = np.asarray(wanted)
    if not len(sorted_keys):
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
    at = np.minimum(np.searchsorted(sorted_keys, wanted), len(sorted_keys) - 1)
    return at, sorted_keys[at] == wanted


def survivors(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key of the duplicate ``pairs`` (an (n, 2) array of keys) that is not the
    smallest of its connected group, that smallest key: ``(keys, survivors)``, sorted by
    key. Groups are connected components, so A~B and B~C put A, B and C in one group
    even when A and C are not similar (as datatrove's and NeMo Curator's are)."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if not len(pairs):
        return np.array([], np.int64), np.array([], np.int64)
    keys, index = np.unique(pairs, return_inverse=True)
    index = index.reshape(-1, 2)
    graph = coo_array(
        (np.ones(len(index), dtype=np.int8), (index[:, 0], index[:, 1])),
        shape=(len(keys), len(keys)),
    )
    _, label = connected_components(graph, directed=False)
    smallest = np.full(label.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, label, keys)
    survivor = smallest[label]
    moved = survivor != keys
    return keys[moved], survivor[moved]
