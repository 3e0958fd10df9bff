"""The pipeline with the filter step: between preprocess and dedup, and on a corpus of
the user's read through input_uri with {date}, on a real local Ray and Prefect server."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.pipeline import pipeline
from tasks.errors import InputError
from tests.helpers import assert_committed, jsonl_bytes
from tests.integration.test_filter import english
from tests.unit.test_filter_language import constitution_chapters

pytestmark = pytest.mark.usefixtures("flows_env")


def test_the_pipeline_runs_the_filter_between_preprocess_and_dedup(tmp_path):
    """The default rules reject the generated random letters, every row with its reason;
    dedup then commits an empty dataset rather than failing the night."""
    bucket = tmp_path / "bucket"
    steps = [{"preprocess": {}}, {"filter": {}}, {"dedup": {"mode": "near"}}]
    out = pipeline(str(bucket), num_rows=300, num_files=2, text_length=200, steps=steps)
    assert out == f"file://{bucket}/deduped"
    stats = assert_committed(bucket / "filtered")["filters"]
    assert (stats["kept"], stats["rejected"]) == (0, 300)
    assert assert_committed(bucket / "deduped")["num_rows"] == 0
    assert pq.read_table(bucket / "deduped").num_rows == 0
    # The filter judges the raw text, which preprocess then no longer keeps: refused
    # before anything is written.
    without_text = [{"preprocess": {"keep_text": False}}, {"filter": {}}]
    with pytest.raises(InputError, match=r"steps\[2\] \(filter\) reads column\(s\) text"):
        pipeline(str(bucket / "x"), num_rows=10, num_files=1, steps=without_text)
    assert not (bucket / "x").exists()
    # The URL blocklist reads a URL column the generated rows do not have: refused alike.
    with_urls = [{"preprocess": {}}, {"filter": {"filters": {"url": {"block_domains": ["a.com"]}}}}]
    with pytest.raises(InputError, match=r"steps\[2\] \(filter\) reads column\(s\) url"):
        pipeline(str(bucket / "y"), num_rows=10, num_files=1, steps=with_urls)
    assert not (bucket / "y").exists()


def test_the_pipeline_reads_a_corpus_for_the_runs_date(tmp_path):
    """input_uri with {date}: each run reads its own date's drop (compressed JSON Lines
    with a column of its own), nothing is generated, and the filter and near dedup run."""
    drops = tmp_path / "incoming"
    chapters = constitution_chapters()
    for day, seed in (("2026-03-01", 1), ("2026-03-02", 2)):
        rows = [
            {"doc": f"{day}-{i}", "body": english(seed * 100 + i) if i % 2 else chapters[i // 2]}
            for i in range(12)
        ]
        rows.append(dict(rows[0]))  # an exact copy for dedup to remove
        path = drops / f"dt={day}" / "part-0.jsonl.zst"
        path.parent.mkdir(parents=True)
        with pa.CompressedOutputStream(str(path), "zstd") as out:
            out.write(jsonl_bytes(rows))
    bucket = tmp_path / "bucket"
    out = pipeline(
        str(bucket),
        input_uri=f"{drops}/dt={{date}}/*.jsonl.zst",
        run_date="2026-03-02",
        steps=[
            {"preprocess": {"text_column": "body"}},
            {"filter": {"text_column": "body"}},
            {"dedup": {"mode": "near"}},
        ],
    )
    assert out == f"file://{bucket}/deduped/dt=2026-03-02"
    assert not (bucket / "raw").exists()
    cleaned = assert_committed(bucket / "preprocessed" / "dt=2026-03-02")
    assert cleaned["parameters"]["input_uri"].endswith("/incoming/dt=2026-03-02/*.jsonl.zst")
    assert cleaned["parameters"]["text_column"] == "body"
    filtered = assert_committed(bucket / "filtered" / "dt=2026-03-02")["filters"]
    assert filtered["rows_in"] == 13 and {"en", "ko"} <= set(filtered["languages"])
    deduped_at = bucket / "deduped" / "dt=2026-03-02"
    deduped_from = assert_committed(deduped_at)["parameters"]["input_uri"]
    assert deduped_from == f"file://{bucket}/filtered/dt=2026-03-02"  # dedup reads filtered
    deduped = pq.read_table(deduped_at).to_pylist()
    assert {r["doc"][:10] for r in deduped} == {"2026-03-02"}
    assert len(deduped) == filtered["kept"] - 1  # the copy of row 0 is gone

    with pytest.raises(InputError, match="daily"):
        pipeline(str(bucket), input_uri=f"{drops}/dt={{date}}")
    with pytest.raises(InputError, match="not with input_uri"):
        pipeline(str(bucket), num_rows=10, num_files=1, input_uri=str(drops))
    with pytest.raises(InputError, match="num_rows and num_files"):
        pipeline(str(bucket))
