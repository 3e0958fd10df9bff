"""What the data looked like: counts gathered while a part is cleaned, and merged per run.

Everything here is cheap next to the cleaning itself: byte counts come from the offsets,
and characters are counted only for text that is not pure ASCII (where they differ).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.steps.preprocess.clean import CLEANED_COLUMN

# The counters one part reports; a run's are their sums (labels: summed per label).
COUNTS = ("rows", "null_texts", "text_bytes", "text_chars", "cleaned_chars")


def _size(column: pa.Array | pa.ChunkedArray) -> tuple[int, int]:
    """(bytes, characters) of the UTF-8 strings in ``column``; nulls count as empty."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    total_bytes = total_chars = 0
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        size = pc.sum(pc.binary_length(chunk)).as_py() or 0
        data = chunk.buffers()[2]
        ascii_only = data is None or size == 0 or _is_ascii(chunk)
        total_bytes += size
        total_chars += size if ascii_only else pc.sum(pc.utf8_length(chunk)).as_py() or 0
    return total_bytes, total_chars


def _is_ascii(chunk: pa.Array) -> bool:
    width = np.int32 if chunk.type == pa.string() else np.int64
    offsets = np.frombuffer(chunk.buffers()[1], width)[chunk.offset : chunk.offset + len(chunk) + 1]
    data = np.frombuffer(chunk.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    return data.size == 0 or int(data.max()) < 128


def part_quality(table: pa.Table, text_column: str = "text") -> dict[str, Any]:
    """Counts for one cleaned table (input columns plus ``cleaned_text``)."""
    text_bytes, text_chars = _size(table.column(text_column))
    _, cleaned_chars = _size(table.column(CLEANED_COLUMN))
    labels: dict[str, int] = {}
    if "label" in table.column_names:
        counts = pc.value_counts(table.column("label"))
        for value, count in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        ):
            key = "null" if value is None else str(value)
            labels[key] = labels.get(key, 0) + count
    return {
        "rows": table.num_rows,
        "null_texts": table.column(text_column).null_count,
        "text_bytes": text_bytes,
        "text_chars": text_chars,
        "cleaned_chars": cleaned_chars,
        "labels": labels,
    }


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of ``part_quality`` results (an empty run has all zeros)."""
    total: dict[str, Any] = {key: sum(p[key] for p in parts) for key in COUNTS}
    labels: Counter[str] = Counter()
    for part in parts:
        labels.update(part["labels"])
    total["labels"] = dict(sorted(labels.items()))
    return total


def describe(stats: dict[str, Any]) -> dict[str, float | None]:
    """Means and shares a person reads: characters per text before and after, removed share."""
    texts = stats["rows"] - stats["null_texts"]
    before, after = stats["text_chars"], stats["cleaned_chars"]
    return {
        "mean_chars_before": before / texts if texts else None,
        "mean_chars_after": after / texts if texts else None,
        "removed_share": 1 - after / before if before else None,
    }


def quality_table(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Data-quality rows for a preprocess run: labels, null texts, lengths, removed share."""
    described = describe(stats)

    def fixed(value: float | None, digits: int) -> Any:
        return "n/a" if value is None else round(value, digits)

    rows: list[dict[str, Any]] = [
        {"metric": "rows", "value": stats["rows"]},
        {"metric": "null texts", "value": stats["null_texts"]},
        {
            "metric": "mean text length before (chars)",
            "value": fixed(described["mean_chars_before"], 1),
        },
        {
            "metric": "mean text length after (chars)",
            "value": fixed(described["mean_chars_after"], 1),
        },
        {"metric": "share of characters removed", "value": fixed(described["removed_share"], 4)},
    ]
    rows += [
        {"metric": f"rows with label {label}", "value": n} for label, n in stats["labels"].items()
    ]
    return rows
