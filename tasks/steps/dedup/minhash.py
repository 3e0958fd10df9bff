"""Exact and near-duplicate detection, as pure functions over Arrow arrays.

Every row has an *order key*: the index of its file in manifest order in the high 32
bits, its row number within that file in the low 32. Of a group of duplicates the row
with the smallest key survives, so the survivor depends only on the input's order,
never on how the work was split across tasks or nodes.

* Exact duplicates share a 16-byte BLAKE2b digest of their text's UTF-8 bytes.
* Near duplicates are found with MinHash and locality-sensitive hashing over word
  n-grams (shingles): each row gets ``num_perm`` minimum hash values, cut into
  ``bands`` bands; rows that agree on all the values of any band are candidates, and a
  candidate pair is a duplicate when the share of equal values of the two signatures
  (the estimate of their Jaccard similarity) reaches the threshold.

Everything here is deterministic: words are hashed with BLAKE2b, never Python's
per-process salted ``hash``, and the permutations come from a fixed seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.errors import InputError

ROW_BITS = 32
EXACT_DIGEST_BYTES = 16
MAX_HASH = np.uint32(0xFFFFFFFF)

# 64-bit odd multipliers (from SplitMix64 and FNV-1a) for mixing and combining hashes.
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_COMBINE = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class MinHashParams:
    """How near duplicates are found; see the module docstring."""

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
        """The chance two rows of this Jaccard similarity share at least one band."""
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


def blank_texts(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which rows' text is null, empty or only whitespace: after the seed's cleaning
    that is every CJK-only, emoji-only or punctuation-only text. Such rows say nothing
    about each other, so they are never each other's duplicates."""
    trimmed = pc.utf8_trim_whitespace(text)
    blank = pc.fill_null(pc.equal(pc.binary_length(trimmed), 0), True)
    return np.asarray(blank, dtype=bool)


def exact_digests(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A 16-byte BLAKE2b digest of each row's text; a blank text (:func:`blank_texts`)
    gets a null digest, so it is nobody's exact duplicate."""
    blank = blank_texts(text)
    digests = [
        None
        if is_blank
        else hashlib.blake2b(value.encode(), digest_size=EXACT_DIGEST_BYTES).digest()
        for value, is_blank in zip(text.to_pylist(), blank.tolist(), strict=True)
    ]
    return pa.array(digests, pa.binary(EXACT_DIGEST_BYTES))


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: spreads every input bit over the whole 64-bit output."""
    values = values ^ (values >> np.uint64(30))
    values = values * _MIX_1
    values = values ^ (values >> np.uint64(27))
    values = values * _MIX_2
    return values ^ (values >> np.uint64(31))


def word_hashes(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's words (split on Unicode whitespace) as 64-bit hashes.

    Returns the hashes of all rows' words, flat, and offsets: row ``i``'s words are
    ``hashes[offsets[i]:offsets[i + 1]]``. Each distinct word is hashed once per call.
    """
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    words = pc.utf8_split_whitespace(text.fill_null(""))
    offsets = np.asarray(words.offsets, dtype=np.int64) - words.offsets[0].as_py()
    flat = words.flatten()
    # Leading, trailing and repeated whitespace split off empty words: drop them, as
    # Python's str.split() does.
    kept = np.asarray(pc.greater(pc.binary_length(flat), 0), dtype=bool)
    kept_before = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(kept, out=kept_before[1:])
    offsets = kept_before[offsets]
    encoded = pc.dictionary_encode(flat.filter(pa.array(kept)))
    unique = [
        int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        for word in encoded.dictionary.to_pylist()
    ]
    indices = np.asarray(encoded.indices, dtype=np.int64)
    return np.asarray(unique, dtype=np.uint64)[indices], offsets


def shingle_hashes(
    words: np.ndarray, offsets: np.ndarray, shingle: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of each row's runs of ``shingle`` consecutive words.

    A row with fewer words than ``shingle`` (but at least one) has one shingle, all of
    its words; a row without words has none. Returns flat hashes and per-row offsets,
    as :func:`word_hashes` does.
    """
    lengths = np.diff(offsets)
    counts = np.where(lengths >= shingle, lengths - shingle + 1, np.minimum(lengths, 1))
    shingle_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=shingle_offsets[1:])
    total = int(shingle_offsets[-1])
    # Where each shingle starts among the words, and how many words it has.
    within = np.arange(total, dtype=np.int64) - np.repeat(shingle_offsets[:-1], counts)
    starts = np.repeat(offsets[:-1], counts) + within
    sizes = np.repeat(np.minimum(lengths, shingle), counts)
    combined = np.zeros(total, dtype=np.uint64)
    for j in range(shingle):
        used = j < sizes
        word = words[np.where(used, starts + j, 0)] if len(words) else combined
        combined = np.where(used, (combined ^ word) * _COMBINE, combined)
    return _mix(combined), shingle_offsets


def _permutations(params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    """``num_perm`` multiply-shift hash functions: odd multipliers and offsets."""
    random = np.random.default_rng(params.seed)
    multipliers = random.integers(0, 2**63, params.num_perm, dtype=np.uint64) * np.uint64(2)
    multipliers |= np.uint64(1)
    offsets = random.integers(0, 2**63, params.num_perm, dtype=np.uint64)
    return multipliers, offsets


def signatures(
    text: pa.Array | pa.ChunkedArray, params: MinHashParams, chunk: int = 1 << 16
) -> np.ndarray:
    """MinHash signatures, one row of ``num_perm`` uint32 values per text.

    A text without words gets all values ``MAX_HASH``: :func:`has_words` tells them
    apart, and they are never near duplicates of anything. Shingles are hashed
    ``chunk`` at a time, so memory stays bounded by the batch.
    """
    words, offsets = word_hashes(text)
    hashes, shingle_offsets = shingle_hashes(words, offsets, params.shingle)
    rows = len(shingle_offsets) - 1
    result = np.full((rows, params.num_perm), MAX_HASH, dtype=np.uint32)
    multipliers, adds = _permutations(params)
    owner = np.repeat(np.arange(rows, dtype=np.int64), np.diff(shingle_offsets))
    shift = np.uint64(32)
    for start in range(0, len(hashes), chunk):
        part, owners = hashes[start : start + chunk], owner[start : start + chunk]
        values = ((part[:, None] * multipliers[None, :] + adds[None, :]) >> shift).astype(np.uint32)
        # Shingles come grouped by row; a row may straddle two chunks.
        firsts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        rows_here = owners[firsts]
        result[rows_here] = np.minimum(result[rows_here], np.minimum.reduceat(values, firsts))
    return result


def has_words(signature_rows: np.ndarray) -> np.ndarray:
    """Which rows' signatures come from at least one shingle."""
    return (signature_rows != MAX_HASH).any(axis=1)


def band_hashes(signature_rows: np.ndarray, params: MinHashParams) -> np.ndarray:
    """One 64-bit hash per row and band of its signature: shape (rows, bands)."""
    rows = signature_rows.shape[0]
    banded = signature_rows.reshape(rows, params.bands, params.rows_per_band).astype(np.uint64)
    combined = np.full((rows, params.bands), params.seed, dtype=np.uint64)
    for j in range(params.rows_per_band):
        combined = (combined ^ banded[:, :, j]) * _COMBINE
    # The band's index is part of its hash: equal values in different bands never meet.
    return _mix(combined ^ np.arange(params.bands, dtype=np.uint64)[None, :])


def estimated_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The MinHash estimate of the Jaccard similarity of rows of ``a`` and ``b``."""
    return (np.asarray(a) == np.asarray(b)).mean(axis=-1)


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


def first_of_runs(values: list[np.ndarray], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows that share all of ``values`` with another row, paired with the smallest key
    among them: ``(first, key)`` for every key but the smallest of each such group.

    Vectorised (one sort), so a shard of millions of rows costs one call, not one per
    group.
    """
    order = np.lexsort((keys, *reversed(values)))
    ordered = [np.asarray(v)[order] for v in values]
    keys = np.asarray(keys)[order]
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
