"""Views of a batch the rules share: words, lines and paragraphs split once per batch,
each word's hash (for :mod:`ngrams`), and per-batch memos."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.steps.filter import language as lid
from tasks.steps.filter.charsets import NON_SYMBOL_PATTERN
from tasks.steps.filter.lines import Lines, Marks, lines, marks
from tasks.steps.filter.split import Words, distinct_of, hashes, row_totals, split


def as_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


class Split:
    """A list array flattened: its values, each value's row, and per-row counts."""

    def __init__(self, lists: pa.Array, n_rows: int) -> None:
        self._values: pa.Array | Callable[[], pa.Array] = lists.flatten()
        self.row = as_numpy(pc.list_parent_indices(lists)).astype(np.int64)
        self.n_rows = n_rows
        self.count = as_numpy(pc.list_value_length(lists)).astype(np.int64)

    @classmethod
    def of(
        cls, values: pa.Array | Callable[[], pa.Array], row: np.ndarray, count: np.ndarray
    ) -> Split:
        """A split of values already flattened in row order (or what makes them, called
        when they are first needed), with their rows and the count of each row."""
        split = cls.__new__(cls)
        split._values, split.row, split.n_rows, split.count = values, row, len(count), count
        return split

    @property
    def values(self) -> pa.Array:
        if callable(self._values):
            self._values = self._values()
        return self._values

    def per_row(self, weights: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Sum of ``weights`` (bool or numbers) over each row's values, optionally masked."""
        w = weights.astype(np.float64)
        if where is not None:
            w = w * where
        return np.bincount(self.row, weights=w, minlength=self.n_rows)

    def only(self, keep: np.ndarray) -> Split:
        """The same split with only the values where ``keep`` is true."""
        return _regroup(self.values.filter(pa.array(keep)), self.row[keep], self.n_rows)


def row_lists(values: pa.Array, row: np.ndarray, n_rows: int) -> pa.Array:
    """Values in row order, with each one's row, as a list array of ``n_rows`` rows."""
    offsets = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=n_rows))])
    if offsets[-1] < 2**31:
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)
    return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), values)


def replaced(values: pa.Array, parts: list[tuple[np.ndarray, pa.Array]]) -> pa.Array:
    """``values`` with, for each part, its rows replaced by its values (in their order)."""
    index = np.arange(len(values))
    pieces, at = [values], len(values)
    for rows, new in parts:
        index[rows] = np.arange(at, at + len(rows))
        pieces.append(new.cast(values.type))
        at += len(rows)
    return pa.concat_arrays(pieces).take(pa.array(index))


def _regroup(values: pa.Array, row: np.ndarray, n_rows: int) -> Split:
    """Values in row order, with each one's row, as a split of ``n_rows`` rows."""
    return Split(row_lists(values, row, n_rows), n_rows)


def first_seen(keys: np.ndarray) -> np.ndarray:
    """True where ``keys[i]`` occurs for the first time (in order)."""
    first = np.zeros(len(keys), dtype=bool)
    if len(keys):
        _, index = np.unique(keys, return_index=True)
        first[index] = True
    return first


def duplicates(values: pa.Array, row: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many values repeat an earlier value of the row, and their characters."""
    if len(values) == 0:
        zeros = np.zeros(n_rows)
        return zeros, zeros
    codes = as_numpy(pc.dictionary_encode(values).indices).astype(np.int64)
    repeat = ~first_seen(row * (int(codes.max()) + 1) + codes)
    chars = as_numpy(pc.utf8_length(values)).astype(np.float64)
    return (
        np.bincount(row, weights=repeat.astype(np.float64), minlength=n_rows),
        np.bincount(row, weights=chars * repeat, minlength=n_rows),
    )


def above(num: np.ndarray, den: np.ndarray, limit: float) -> np.ndarray:
    """num / den > limit, False where den is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (den > 0) & (num / np.where(den > 0, den, 1) > limit)


def below(num: np.ndarray, den: np.ndarray, limit: float) -> np.ndarray:
    """num / den < limit, False where den is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (den > 0) & (num / np.where(den > 0, den, 1) < limit)


class Batch:
    """The texts of a batch and the splits the rules share, computed once when needed."""

    def __init__(self, texts: pa.Array, words: str = "default") -> None:
        self.text = pc.fill_null(texts, "")
        self.n = len(texts)
        self.split_words = words
        self.shared: dict[object, object] = {}  # results several rules use (see memo)

    @cached_property
    def marks(self) -> Marks:
        """Per row: its ``#``, ``...``, ``…`` and line breaks, counted in one pass."""
        return marks(self.text)

    @cached_property
    def length(self) -> np.ndarray:
        return as_numpy(pc.utf8_length(self.text)).astype(np.float64)

    @property
    def newlines(self) -> np.ndarray:
        return self.marks.breaks

    @cached_property
    def _words(self) -> Words:
        """The batch's words (Kiwi's morphemes, or :mod:`split`'s), with what is known
        of each one."""
        return kiwi_words(self.text) if self.split_words == "kiwi" else split(self.text)

    @cached_property
    def words(self) -> Split:
        words = self._words
        return Split.of(lambda: words.values, words.row, words.count)

    def distinct_words(self, wanted: Sequence[str]) -> np.ndarray:
        """Per row: how many distinct words of ``wanted`` it has."""
        return distinct_of(self._words, list(wanted), self.n)

    @cached_property
    def word_totals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: its words with a letter, its non-symbol words and their characters."""
        return row_totals(self._words, self.n)

    @property
    def word_length(self) -> np.ndarray:
        return self._words.chars

    @property
    def word_hash(self) -> np.ndarray:
        """Per flattened word: a 64-bit hash, equal for equal words."""
        return self._words.hashes

    @cached_property
    def lines(self) -> Lines:
        """Lines as Python's ``str.splitlines`` (a trailing empty piece is not a line)."""
        return lines(self.text)

    def per_line(self, weights: np.ndarray) -> np.ndarray:
        """Sum of ``weights`` (bool or numbers, one per line) over each row's lines."""
        return np.bincount(self.lines.row, weights=weights.astype(np.float64), minlength=self.n)

    @cached_property
    def word_end(self) -> np.ndarray:
        """Characters of the words before each flattened word (and after the last)."""
        return np.concatenate([[0], np.cumsum(self.word_length)])


def kiwi_words(texts: pa.Array) -> Words:
    """Korean words as FineWeb-2 splits them (Kiwi's morphemes), with what :mod:`split`
    gives of each word, found here by RE2 and Arrow."""
    lists = lid.kiwi_words(texts)
    values = lists.flatten()
    return Words(
        as_numpy(pc.list_parent_indices(lists)).astype(np.int64),
        as_numpy(pc.list_value_length(lists)).astype(np.int64),
        as_numpy(pc.utf8_length(values)).astype(np.int64),
        hashes(values),
        as_numpy(pc.match_substring_regex(values, r"\p{L}")).astype(bool),
        as_numpy(pc.match_substring_regex(values, NON_SYMBOL_PATTERN)).astype(bool),
        lambda: values,
    )


Rule = Callable[[Batch], np.ndarray]


def memo(part: Callable[[Batch], object]) -> Callable[[Batch], object]:
    """Share a per-batch computation between rules: it is stored on the batch itself."""

    def run(b: Batch) -> object:
        if part not in b.shared:
            b.shared[part] = part(b)
        return b.shared[part]

    return run
