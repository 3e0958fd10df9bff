"""The seed's text cleaning, vectorised over Arrow arrays with identical results.

The seed runs ``re.sub(r"[^가-힣a-zA-Z0-9\\s]", "", text).lower()`` per row. Here the same
character class runs through RE2 on whole Arrow arrays. Two details make that exact:

* Python's ``\\s`` on ``str`` is every character for which ``str.isspace()`` is true,
  while RE2's ``\\s`` is ASCII only, so the class spells out Python's set explicitly.
* Every character the class keeps is either an ASCII letter or has no case mapping,
  so ``str.lower()`` of the result equals an ASCII-only lower-casing.

``tests/test_clean.py`` checks this against Python's ``re`` for every code point.
"""

from __future__ import annotations

import re
import sys

import pyarrow as pa
import pyarrow.compute as pc

from tasks.errors import InputError

SEED_PATTERN = r"[^가-힣a-zA-Z0-9\s]"
CLEANED_COLUMN = "cleaned_text"

_SEED_REGEX = re.compile(SEED_PATTERN)
PYTHON_WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
RE2_PATTERN = (
    "[^\\x{AC00}-\\x{D7A3}a-zA-Z0-9"
    + "".join(f"\\x{{{ord(c):X}}}" for c in PYTHON_WHITESPACE)
    + "]+"
)

STRING_TYPES = (pa.string(), pa.large_string())


def clean_text(text: str) -> str:
    """The seed's function, row by row: the reference the fast path must match."""
    return _SEED_REGEX.sub("", text).lower()


def clean_array(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``clean_text`` over a string array; nulls stay null."""
    removed = pc.replace_substring_regex(text, pattern=RE2_PATTERN, replacement="")
    return pc.ascii_lower(removed)


def _is_text_type(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return kind.value_type in STRING_TYPES
    return kind in STRING_TYPES or pa.types.is_string_view(kind) or pa.types.is_null(kind)


def check_input_schema(schema: pa.Schema, where: str) -> None:
    """Raise naming ``where`` unless ``schema`` has a string ``text`` and no ``cleaned_text``."""
    if "text" not in schema.names:
        raise InputError(
            f"{where}: no 'text' column (columns: {', '.join(schema.names) or 'none'})"
        )
    if CLEANED_COLUMN in schema.names:
        raise InputError(f"{where}: already has a '{CLEANED_COLUMN}' column")
    kind = schema.field("text").type
    if not _is_text_type(kind):
        raise InputError(f"{where}: column 'text' has type {kind}, expected a string type")


def text_as_string(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A checked ``text`` column in a layout the cleaning kernels take."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return column.cast(kind.value_type)
    if pa.types.is_string_view(kind) or pa.types.is_null(kind):
        return column.cast(pa.string())
    return column


def clean_batch(batch: pa.RecordBatch | pa.Table, where: str = "input") -> pa.Table:
    """Every column of ``batch`` plus ``cleaned_text``, computed from ``text``."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    check_input_schema(table.schema, where)
    text = text_as_string(table.column("text"))
    return table.append_column(CLEANED_COLUMN, clean_array(text))
