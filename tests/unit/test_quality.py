"""Counts gathered while cleaning, and the tables built from them, against plain Python."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from tasks.orchestration import summary
from tasks.steps.preprocess import counters as quality
from tasks.steps.preprocess.clean import clean_batch, clean_text
from tasks.steps.skeleton import total

POOL = list("가힣ㄱ ") + list("AbZz09 \t!?ÄéΣ😀")


def table(n: int, seed: int, text_type: pa.DataType | None = None) -> pa.Table:
    rng = random.Random(seed)
    texts = [
        None if rng.random() < 0.1 else "".join(rng.choice(POOL) for _ in range(rng.randrange(40)))
        for _ in range(n)
    ]
    labels = [rng.choice([0, 1, None]) for _ in range(n)]
    text = pa.array(texts, text_type or pa.string())
    return pa.table({"id": list(range(n)), "text": text, "label": labels})


def expected(texts: list[str | None], labels: list) -> dict:
    present = [t for t in texts if t is not None]
    counts: dict[str, int] = {}
    for label in labels:
        key = "null" if label is None else str(label)
        counts[key] = counts.get(key, 0) + 1
    return {
        "rows": len(texts),
        "null_texts": len(texts) - len(present),
        "text_bytes": sum(len(t.encode()) for t in present),
        "text_chars": sum(len(t) for t in present),
        "cleaned_chars": sum(len(clean_text(t)) for t in present),
        "labels": dict(sorted(counts.items())),
    }


@pytest.mark.parametrize("text_type", [pa.string(), pa.large_string()])
def test_counts_match_python_for_mixed_and_ascii_text(text_type):
    mixed = table(500, 1, text_type)
    ascii_only = pa.table(
        {"text": pa.array(["Hello, World!", None, "ok"], text_type), "label": [1, 1, 0]}
    )
    for raw in (mixed, ascii_only, mixed.slice(17, 100)):
        got = quality.part_quality(clean_batch(raw)).stats()
        assert got == expected(raw.column("text").to_pylist(), raw.column("label").to_pylist())


def test_merging_batches_equals_counting_the_whole():
    whole = table(300, 2)
    batches = [quality.part_quality(clean_batch(b)) for b in whole.to_batches(max_chunksize=64)]
    summed = total(batches, quality.Quality()).stats()
    assert summed == quality.part_quality(clean_batch(whole)).stats()
    assert total([], quality.Quality()).stats() == {
        **{key: 0 for key in ("rows", "null_texts", "text_bytes", "text_chars", "cleaned_chars")},
        "labels": {},
    }


def test_description_and_quality_table():
    stats = {
        "rows": 4,
        "null_texts": 1,
        "text_bytes": 30,
        "text_chars": 30,
        "cleaned_chars": 24,
        "labels": {"0": 3, "1": 1},
    }
    assert quality.describe(stats) == {
        "mean_chars_before": 10.0,
        "mean_chars_after": 8.0,
        "removed_share": pytest.approx(0.2),
    }
    rows = {r["metric"]: r["value"] for r in quality.quality_table(stats)}
    assert rows["null texts"] == 1
    assert rows["share of characters removed"] == 0.2
    assert rows["rows with label 0"] == 3
    empty = quality.describe({**stats, "rows": 1, "text_chars": 0, "cleaned_chars": 0})
    assert empty == {"mean_chars_before": None, "mean_chars_after": None, "removed_share": None}


def test_node_table_sums_per_node_type():
    manifest = {
        "execution": {
            "nodes": [
                {
                    "type": "Intel",
                    "cpus": 4,
                    "parts": 2,
                    "rows": 20,
                    "bytes": 20e6,
                    "task_seconds": 4,
                },
                {
                    "type": "Intel",
                    "cpus": 4,
                    "parts": 1,
                    "rows": 10,
                    "bytes": 10e6,
                    "task_seconds": 1,
                },
                {
                    "type": "Graviton",
                    "cpus": 8,
                    "parts": 1,
                    "rows": 5,
                    "bytes": 5e6,
                    "task_seconds": 0,
                },
            ]
        }
    }
    rows = {r["node type"]: r for r in summary.node_table(manifest)}
    assert rows["Intel"] == {
        "node type": "Intel",
        "nodes": 2,
        "CPUs": 8,
        "parts": 3,
        "rows": 30,
        "text MB": 30.0,
        "MB/s per task": 6.0,
    }
    assert rows["Graviton"]["MB/s per task"] == "n/a"
