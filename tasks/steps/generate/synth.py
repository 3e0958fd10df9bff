"""Synthetic text rows, as in the seed: ``id``, ~1 KB ``text``, ``label``.

Rows are generated straight into Arrow buffers, in fixed-size chunks whose random
stream depends only on ``(seed, chunk index)``: the same seed gives the same rows
however the dataset is split into files.

Characters are uniform over the seed's alphabet of 53, like its ``np.random.choice``.
They come from raw random bytes by rejection: a byte ``b < 212`` (4 x 53) becomes
``ALPHABET[b % 53]`` and larger bytes are dropped, all in one ``bytes.translate`` pass,
which runs several times faster than drawing bounded integers per character.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tasks.errors import InputError

ALPHABET = string.ascii_letters + " "
LABELS = ("news", "blog", "forum", "wiki")
SCHEMA = pa.schema([("id", pa.int64()), ("text", pa.string()), ("label", pa.string())])

# Rows per random chunk. Part of the data's identity: changing it changes the data.
CHUNK_ROWS = 4096
# Bumped whenever the same parameters start producing different rows; kept in manifests.
GENERATOR_VERSION = 2

_ACCEPTED = len(ALPHABET) * (256 // len(ALPHABET))  # bytes below this map uniformly
_TO_SYMBOL = bytes(ord(ALPHABET[b % len(ALPHABET)]) if b < _ACCEPTED else 0 for b in range(256))
_REJECTED = bytes(range(_ACCEPTED, 256))
_LABELS_ARRAY = pa.array(LABELS, pa.string())
# Offsets of a pa.string() array are int32, so one chunk must stay under 2 GiB.
_MAX_CHUNK_BYTES = 2**31 - 1
# The longest text a row can have: a chunk of rows must fit one Arrow string buffer.
MAX_TEXT_LENGTH = _MAX_CHUNK_BYTES // CHUNK_ROWS


def check_parameters(
    num_rows: int, num_files: int, text_length: int, seed: int, duplicates: float = 0.0
) -> None:
    """Reject parameters that cannot describe a dataset, naming the parameter."""
    if not 0 <= duplicates < 1:
        raise InputError(f"duplicates must be at least 0 and below 1, got {duplicates}")
    if num_rows < 1:
        raise InputError(f"num_rows must be at least 1, got {num_rows}")
    if num_files < 1:
        raise InputError(f"num_files must be at least 1, got {num_files}")
    if num_files > num_rows:
        raise InputError(f"num_files ({num_files}) must not exceed num_rows ({num_rows})")
    if text_length < 0:
        raise InputError(f"text_length must be >= 0, got {text_length}")
    if CHUNK_ROWS * text_length > _MAX_CHUNK_BYTES:
        raise InputError(
            f"text_length {text_length} is too large (max {_MAX_CHUNK_BYTES // CHUNK_ROWS})"
        )
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}")


def split_rows(num_rows: int, num_files: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` row ranges, one per file, sizes differing by <= 1."""
    return [(i * num_rows // num_files, (i + 1) * num_rows // num_files) for i in range(num_files)]


def generate_chunk(seed: int, chunk: int, text_length: int, duplicates: float = 0.0) -> pa.Table:
    """All rows of chunk number ``chunk``: ids ``chunk*CHUNK_ROWS`` onwards, with
    ``duplicates`` of them (on average) copies of earlier rows (:func:`planted`)."""
    rng = np.random.default_rng([seed, chunk])
    labels = rng.integers(0, len(LABELS), size=CHUNK_ROWS, dtype=np.int8)
    data = random_text(rng, CHUNK_ROWS * text_length)
    if duplicates > 0 and text_length > 0:
        data = _copy_rows(data, text_length, planted(seed, chunk, duplicates))
    offsets = np.arange(0, (CHUNK_ROWS + 1) * text_length, text_length, dtype=np.int32)
    text = pa.StringArray.from_buffers(CHUNK_ROWS, pa.py_buffer(offsets), pa.py_buffer(data))
    first = chunk * CHUNK_ROWS
    ids = pa.array(np.arange(first, first + CHUNK_ROWS, dtype=np.int64))
    return pa.Table.from_arrays([ids, text, _LABELS_ARRAY.take(pa.array(labels))], schema=SCHEMA)


@dataclass(frozen=True)
class Planted:
    """The copies of one chunk: each copy's row, its source row (an earlier row that is
    no copy), whether it is a near copy, and how far along the alphabet a near copy's
    last letter moves (1 to 51: never to itself)."""

    copy: np.ndarray
    source: np.ndarray
    near: np.ndarray
    shift: np.ndarray


# A near copy has its last letter changed: in the generator's long words (about 20 in
# 1,000 characters) that moves one five-word shingle, a Jaccard similarity of
# (n - 5) / (n - 3) for n words, at least 0.8 from 13 words.
_LETTERS = np.frombuffer(string.ascii_letters.encode(), dtype=np.uint8)
_LETTER_INDEX = np.zeros(256, dtype=np.int64)
_LETTER_INDEX[_LETTERS] = np.arange(len(_LETTERS))


def planted(seed: int, chunk: int, duplicates: float) -> Planted:
    """Which rows of a chunk are copies, of which rows, exact or near: drawn from a
    stream of their own (``[seed, chunk, 1]``), so the rows that are not copies are the
    same bytes whatever ``duplicates`` is, and any split of the rows gets the same."""
    rng = np.random.default_rng([seed, chunk, 1])
    is_copy = rng.random(CHUNK_ROWS) < duplicates
    is_copy[0] = False  # a chunk's first row has nothing earlier to copy
    copy, originals = np.flatnonzero(is_copy), np.flatnonzero(~is_copy)
    earlier = np.searchsorted(originals, copy)  # originals before each copy (at least 1)
    source = originals[(rng.random(len(copy)) * earlier).astype(np.int64)]
    near = rng.random(len(copy)) < 0.5  # half exact, half near
    shift = rng.integers(1, len(_LETTERS), size=len(copy))
    return Planted(copy, source, near, shift)


def _copy_rows(data: bytes, text_length: int, plan: Planted) -> bytes:
    """The chunk's text with each copy's row replaced by its source's, a near copy's
    last letter (its last character if it has none) then changed."""
    rows = np.frombuffer(data, dtype=np.uint8).reshape(CHUNK_ROWS, text_length).copy()
    rows[plan.copy] = rows[plan.source]
    near = plan.copy[plan.near]
    if len(near):
        text = rows[near]
        letters = text != ord(" ")
        last = text_length - 1 - np.argmax(letters[:, ::-1], axis=1)
        last = np.where(letters.any(axis=1), last, text_length - 1)
        old = _LETTER_INDEX[text[np.arange(len(near)), last]]  # a space counts as "a"
        rows[near, last] = _LETTERS[(old + plan.shift[plan.near]) % len(_LETTERS)]
    return rows.tobytes()


def random_text(rng: np.random.Generator, size: int) -> bytes:
    """``size`` characters drawn uniformly from ``ALPHABET``, as ASCII bytes."""
    pieces: list[bytes] = []
    missing = size
    while missing > 0:
        # Draw ~2% more than the expected need (plus a little), so one round nearly
        # always suffices; the stream stays a pure function of the generator's state.
        words = (missing * 256 // _ACCEPTED * 102 // 100 + 64) // 8
        raw = rng.integers(0, 2**64 - 1, size=words, dtype="<u8", endpoint=True).tobytes()
        piece = raw.translate(_TO_SYMBOL, _REJECTED)[:missing]
        pieces.append(piece)
        missing -= len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def chunks_of(start: int, stop: int) -> range:
    """The chunk numbers that rows ``start`` to ``stop - 1`` touch."""
    return range(start // CHUNK_ROWS, (stop - 1) // CHUNK_ROWS + 1 if stop > start else 0)


def copies_in(seed: int, start: int, stop: int, duplicates: float) -> tuple[int, int]:
    """How many of rows ``start`` to ``stop - 1`` are exact and near copies."""
    exact = near = 0
    if duplicates > 0:
        for chunk in chunks_of(start, stop):
            plan = planted(seed, chunk, duplicates)
            ids = chunk * CHUNK_ROWS + plan.copy
            inside = (ids >= start) & (ids < stop)
            near += int((inside & plan.near).sum())
            exact += int((inside & ~plan.near).sum())
    return exact, near


def generate_rows(
    seed: int, start: int, stop: int, text_length: int, duplicates: float = 0.0
) -> Iterator[pa.Table]:
    """Rows with ids ``start`` to ``stop - 1``, one table per chunk they touch."""
    for chunk in chunks_of(start, stop):
        table = generate_chunk(seed, chunk, text_length, duplicates)
        first = chunk * CHUNK_ROWS
        lo, hi = max(start, first) - first, min(stop, first + CHUNK_ROWS) - first
        yield table.slice(lo, hi - lo)
