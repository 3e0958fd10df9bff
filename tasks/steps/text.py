"""What every step that reads text shares: which Arrow types hold text, a text
column's check (named by file and column), its layout for the kernels, and a string
array's buffers without a copy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tasks.errors import InputError

STRING_TYPES = (pa.string(), pa.large_string())


def string_buffers(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string or large string array's offsets (its own width, this slice's rows) and
    the whole UTF-8 data buffer they point into, without a copy."""
    if text.type not in STRING_TYPES:
        raise TypeError(f"expected a string array, got {text.type}")
    width = np.int32 if text.type == pa.string() else np.int64
    _, offsets_buffer, data = text.buffers()
    offsets = np.frombuffer(offsets_buffer, width)[text.offset : text.offset + len(text) + 1]
    # An array of only empty strings may have no data buffer.
    return (np.zeros(0, np.uint8) if data is None else np.frombuffer(data, np.uint8)), offsets


def is_text_type(kind: pa.DataType) -> bool:
    """Whether a column of this type holds text the steps read (strings of any layout)."""
    if pa.types.is_dictionary(kind):
        return kind.value_type in STRING_TYPES
    return kind in STRING_TYPES or pa.types.is_string_view(kind) or pa.types.is_null(kind)


def check_text_column(schema: pa.Schema, where: str, text_column: str = "text") -> None:
    """Raise naming ``where`` unless ``schema`` has ``text_column`` of a string type."""
    if text_column not in schema.names:
        raise InputError(
            f"{where}: no {text_column!r} column (columns: {', '.join(schema.names) or 'none'});"
            " set text_column to the column that holds the text"
        )
    kind = schema.field(text_column).type
    if not is_text_type(kind):
        raise InputError(f"{where}: column {text_column!r} has type {kind}, expected a string type")


def text_as_string(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A checked text column in a layout the cleaning kernels take."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return column.cast(kind.value_type)
    if pa.types.is_string_view(kind) or pa.types.is_null(kind):
        return column.cast(pa.string())
    return column
