"""A real day's corpus drop, two dates of it, through ``pipeline/corpus``'s steps
(preprocess, the quality filters with PII redaction, near dedup against earlier dates):
plain, gzip and zstd JSON Lines, empty shards, null, empty and blank texts, a 40 MB
document among ordinary ones, CRLF twins of LF documents, PII beside numbers that only
look like it, and a second day repeating part of the first. Every row is kept or
rejected exactly once, and every reader sees exactly the committed rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest

from flows.pipeline import pipeline
from tasks.steps.filter.options import FilterOptions
from tasks.store.dataset import read_dataset
from tests.helpers import assert_committed, companion_path
from tests.integration.test_companions import seen_by_readers
from tests.integration.test_filter import english
from tests.unit.test_filter_language import constitution_chapters

pytestmark = pytest.mark.usefixtures("flows_env")
DAYS = ("2026-04-01", "2026-04-02")
CONTACT = "\nWrite to kim.minsu+news@mail.example.co.kr or call 010-1234-5678 today."
LOOKALIKES = (
    "\nThe kernel is version 5.15.0.91, see section 1.2.3.4 of the manual, ISBN 0198526636."
    "\nOrder 1701151234567 shipped with barcode 8801234567893 to 37.0212345678, 126.9779692."
)
BIG_BYTES = 40 * 2**20


def big_document() -> str:
    """A book-sized document: 40 MB of paragraphs."""
    chunk = "\n\n".join(english(9000 + i) for i in range(40))
    return (chunk + "\n\n") * (BIG_BYTES // len(chunk) + 1)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".zst":
        data = pa.Codec("zstd").compress(data, asbytes=True)
    path.write_bytes(data)


def row(i: int, text: str | None) -> dict:
    return {"id": i, "text": text, "meta": {"url": f"https://example.com/{i}", "n": i % 7}}


def drop(root: Path) -> dict[str, list[dict]]:
    """Two dates of shards under ``root/dt=D/``; each date's rows."""
    korean = constitution_chapters()[:4]
    first = [row(i, english(i)) for i in range(12)]
    twins = [row(100 + i, r["text"].replace("\n", "\r\n")) for i, r in enumerate(first[:4])]
    twins += [row(110, first[4]["text"].replace("\n", "\r"))]  # lone CR line endings
    blank = [row(200, None), row(201, ""), row(202, "  \n\t "), row(203, "\r\n")]
    people = [row(300, english(300) + CONTACT), row(301, english(301) + LOOKALIKES)]
    day1 = root / f"dt={DAYS[0]}"
    day1.mkdir(parents=True)
    write_jsonl(day1 / "a.jsonl", [row(400, big_document()), *first[:6]])
    write_jsonl(day1 / "b.jsonl.gz", [*people, *(row(500 + i, t) for i, t in enumerate(korean))])
    write_jsonl(day1 / "c.jsonl.zst", [*blank, *twins, *first[6:]])
    (day1 / "d.jsonl").write_bytes(b"")  # an empty shard
    day2 = root / f"dt={DAYS[1]}"
    day2.mkdir(parents=True)
    again = [row(1000 + i, r["text"]) for i, r in enumerate(first[:5])]  # day 1's rows again
    new = [row(1100 + i, english(1100 + i)) for i in range(6)]
    write_jsonl(day2 / "a.jsonl.gz", [*again, *new])
    (day2 / "b.jsonl.gz").write_bytes(gzip.compress(b""))  # an empty compressed shard
    return {
        DAYS[0]: [row(400, None), *first, *twins, *blank, *people]
        + [row(500 + i, t) for i, t in enumerate(korean)],
        DAYS[1]: [*again, *new],
    }


def test_a_messy_drop_of_two_dates_is_kept_or_rejected_whole_and_read_as_committed(tmp_path):
    rows = drop(tmp_path / "drop")
    bucket = tmp_path / "bucket"
    for day in DAYS:
        pipeline(
            str(bucket),
            input_uri=f"{tmp_path}/drop/dt={{date}}",
            steps=[
                {"preprocess": {}},
                {"filter": {"filters": FilterOptions(pii={})}},
                {"dedup": {"mode": "near"}},
            ],
            run_date=day,
        )

    verdicts: dict[int, str | None] = {}
    texts: dict[int, str | None] = {}
    for day in DAYS:
        filtered = bucket / "filtered" / f"dt={day}"
        manifest = assert_committed(filtered)
        kept = read_dataset(str(filtered)).to_pylist()
        rejected = read_dataset(str(companion_path(filtered, "rejected"))).to_pylist()
        ids = [r["id"] for r in kept + rejected]
        # Every input row, kept or rejected, exactly once; the empty shards count 0 rows.
        assert sorted(ids) == sorted(r["id"] for r in rows[day])
        assert manifest["filters"]["rows_in"] == len(rows[day])
        verdicts |= {r["id"]: None for r in kept} | {r["id"]: r["filter_reason"] for r in rejected}
        texts |= {r["id"]: r["text"] for r in kept + rejected}
        assert_committed(bucket / "deduped" / f"dt={day}")

    # Each reader pointed at a dataset's folder sees exactly its committed rows.
    for name in ("filtered", "deduped"):
        committed = sorted(
            i
            for day in DAYS
            for i in read_dataset(str(bucket / name / f"dt={day}"))["id"].to_pylist()
        )
        for reader, ids in seen_by_readers(bucket / name).items():
            assert ids == committed, (name, reader)

    # CRLF and CR twins are judged as their LF originals, and written as they came.
    for twin, original in [(100, 0), (101, 1), (102, 2), (103, 3), (110, 4)]:
        assert verdicts[twin] == verdicts[original], twin
        assert "\r" in texts[twin]
    # PII is redacted wherever the row went; numbers that only look like it are not.
    assert texts[300].endswith("\nWrite to <email> or call <phone> today.")
    assert texts[301] == english(301) + LOOKALIKES
    # Day 2's copies of day 1's rows are gone; its new rows are not.
    deduped = {
        day: set(read_dataset(str(bucket / "deduped" / f"dt={day}"))["id"].to_pylist())
        for day in DAYS
    }
    for i in range(5):
        assert (1000 + i) not in deduped[DAYS[1]]
        assert (i in deduped[DAYS[0]]) == (verdicts[i] is None)
    assert {1100 + i for i in range(6) if verdicts[1100 + i] is None} <= deduped[DAYS[1]]
    assert len(texts[400]) == len(big_document())  # the 40 MB document, kept or rejected whole
