"""Megatron's indexed dataset, the format Megatron-LM and NeMo train from: a ``.bin``
of token ids, one sequence after another, and an ``.idx`` describing them.

The ``.idx`` is, in little-endian order: the magic ``b"MMIDIDX\\x00\\x00"``; the version
(uint64, 1); the token dtype's code (uint8); the number of sequences and the number of
document indices (uint64 each); every sequence's length in tokens (int32); every
sequence's byte offset in the ``.bin`` (int64); and the document indices (int64): 0, then
for each document the number of sequences up to its end. Here each document is one
sequence, so they are 0, 1, ..., n.

Pure functions of arrays and bytes; writing them to storage is the step's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
# Megatron's dtype codes (megatron.core.datasets.indexed_dataset.DType).
DTYPE_CODES: dict[np.dtype, int] = {
    np.dtype(np.uint8): 1,
    np.dtype(np.int8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.int64): 5,
    np.dtype(np.float64): 6,
    np.dtype(np.float32): 7,
    np.dtype(np.uint16): 8,
}
# Megatron stores ids in uint16 for vocabularies under this size, int32 otherwise.
UINT16_VOCABULARY = 65500
_HEADER = struct.Struct("<9sQBQQ")
HEADER_BYTES = _HEADER.size


def lengths_at(first: int) -> int:
    """The byte offset in an ``.idx`` of document ``first``'s length (int32 each)."""
    return HEADER_BYTES + 4 * first


def token_dtype(vocab_size: int) -> np.dtype:
    """The dtype Megatron picks for token ids of a vocabulary of ``vocab_size``."""
    if vocab_size < 1:
        raise ValueError(f"a vocabulary has at least one token, got {vocab_size}")
    return np.dtype(np.uint16 if vocab_size < UINT16_VOCABULARY else np.int32)


@dataclass(frozen=True)
class Shard:
    """One shard's two files: ``bin`` (the tokens) and ``idx`` (their index)."""

    bin: bytes
    idx: bytes
    documents: int
    tokens: int


def as_ids(tokens: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Token ids as the ``.bin`` holds them (``dtype``, little-endian); a ValueError if
    one does not fit."""
    dtype = np.dtype(dtype)
    ids = np.asarray(tokens)
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(dtype).max):
        raise ValueError(f"token ids {ids.min()}..{ids.max()} do not fit {dtype.name}")
    return ids.astype(dtype.newbyteorder("<"), copy=False)


def token_bytes(tokens: np.ndarray, dtype: np.dtype) -> bytes:
    """Token ids as the ``.bin`` holds them; a ValueError if one does not fit ``dtype``."""
    return as_ids(tokens, dtype).tobytes()


def index_bytes(lengths: np.ndarray, dtype: np.dtype) -> bytes:
    """The ``.idx`` of documents of ``lengths`` tokens each, stored one after another as
    ``dtype`` in the ``.bin``."""
    dtype = np.dtype(dtype)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or (lengths < 0).any():
        raise ValueError("lengths must be a flat array of counts")
    if lengths.size and lengths.max() > np.iinfo(np.int32).max:
        raise ValueError("a document longer than 2**31 - 1 tokens does not fit the index")
    count = len(lengths)
    pointers = np.zeros(count, dtype=np.int64)
    np.cumsum(lengths[:-1] * dtype.itemsize, out=pointers[1:])
    return b"".join(
        (
            _HEADER.pack(MAGIC, VERSION, DTYPE_CODES[dtype], count, count + 1),
            lengths.astype("<i4").tobytes(),
            pointers.astype("<i8").tobytes(),
            np.arange(count + 1, dtype="<i8").tobytes(),
        )
    )


def shard(tokens: np.ndarray, lengths: np.ndarray, dtype: np.dtype) -> Shard:
    """The ``.bin`` and ``.idx`` of documents given as all their ``tokens`` one after
    another and each one's length in tokens (``lengths``, in order)."""
    total = int(np.asarray(lengths, dtype=np.int64).sum())
    if total != len(tokens):
        raise ValueError(f"lengths add up to {total}, not the {len(tokens)} tokens")
    return Shard(token_bytes(tokens, dtype), index_bytes(lengths, dtype), len(lengths), len(tokens))
