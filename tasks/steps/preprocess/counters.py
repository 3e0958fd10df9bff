"""What the data looked like: counts gathered while a part is cleaned, and merged per run.

Everything here is cheap next to the cleaning itself: byte counts come from the offsets,
and characters are counted only for text that is not pure ASCII (where they differ).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.steps.preprocess.clean import CLEANED_COLUMN
from tasks.steps.skeleton import Counts


@dataclass(frozen=True)
class Quality(Counts):
    """What a cleaned batch, part or run held; a run's is the sum of its parts'."""

    rows: int = 0
    null_texts: int = 0
    text_bytes: int = 0
    text_chars: int = 0
    cleaned_chars: int = 0
    labels: dict[str, int] = field(default_factory=dict)

    def stats(self) -> dict[str, Any]:
        """As the manifest records it (labels sorted)."""
        return {**dataclasses.asdict(self), "labels": dict(sorted(self.labels.items()))}


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


def part_quality(table: pa.Table, text_column: str = "text") -> Quality:
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
    return Quality(
        table.num_rows,
        table.column(text_column).null_count,
        text_bytes,
        text_chars,
        cleaned_chars,
        labels,
    )


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
