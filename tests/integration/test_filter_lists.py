"""The filter step's URL blocklist and decontamination on a real local Ray and Prefect
server (and moto's S3 server on loopback): rejected rows with their rule and what they
matched, counts per benchmark, nothing lost, the lists' identity in the manifest and
nothing of them left in the dataset's folder."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.filter import filter_documents
from tasks.errors import InputError
from tasks.steps.filter.options import FilterOptions
from tests.helpers import assert_committed, companion_path, tree_digest
from tests.integration.test_filter import english
from tests.integration.test_s3 import aws_env, client, unique  # noqa: F401

pytestmark = pytest.mark.usefixtures("flows_env")

ITEM = {
    "question": "In which year did the first crewed landing on the Moon take place and "
    "which module carried the astronauts down?",
    "answer": "It was 1969, and the lunar module Eagle carried them to the surface.",
}


def _planted(seed: int, words: int) -> str:
    """An English document with ``words`` words of the item planted in the middle,
    across its question and answer, cased and punctuated otherwise."""
    item = f"{ITEM['question']} {ITEM['answer']}".split()
    span = item[18 - words // 2 : 18 - words // 2 + words]
    loud = " ".join(w.strip("?,.").upper() if k % 2 else w for k, w in enumerate(span)) + "."
    good = english(seed).split("\n")
    return "\n".join([*good[:3], loud, *good[3:]])


def _corpus(root) -> list[dict]:
    root.mkdir(parents=True)
    rows = []
    for i in range(24):
        kind = i % 6
        text = english(i)
        url = f"https://site{i}.org/page/{i}"
        if kind == 1:
            url = f"https://www.blocked.com/{i}"
        elif kind == 2:
            url = f"https://notblocked.com/{i}"
        elif kind == 3:
            text = _planted(i, 13)
        elif kind == 4:
            text = _planted(i, 12)
        elif kind == 5:
            url = None if i % 4 else "not a url"
        rows.append({"id": i, "text": text, "url": url})
    pq.write_table(pa.Table.from_pylist(rows), root / "docs.parquet")
    return rows


def _read(path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_blocked_and_contaminated_rows_are_rejected_with_what_they_matched(tmp_path):
    rows = _corpus(tmp_path / "in")
    (tmp_path / "evals.jsonl").write_text(json.dumps(ITEM) + "\n")
    (tmp_path / "blocked.txt").write_text("# ours\nblocked.com\n")
    filters = FilterOptions(
        language=None,
        url={"block_domains": str(tmp_path / "blocked.txt")},
        decontaminate={
            "benchmarks": [
                {
                    "name": "moon",
                    "uri": str(tmp_path / "evals.jsonl"),
                    "columns": ["question", "answer"],
                }
            ]
        },
    )
    before = tree_digest(tmp_path / "in")
    filter_documents(str(tmp_path / "in"), str(tmp_path / "out"), filters=filters)
    manifest = assert_committed(tmp_path / "out")
    kept = [r for f in sorted((tmp_path / "out").glob("*.parquet")) for r in _read(f)]
    aside = companion_path(tmp_path / "out", "rejected")
    rejected = [r for f in sorted(aside.glob("*.parquet")) for r in _read(f)]
    assert sorted(r["id"] for r in kept + rejected) == [r["id"] for r in rows]  # nothing lost
    why = {r["id"]: (r["filter_reason"], r["filter_detail"]) for r in rejected}
    for i in range(1, 24, 6):
        assert why[i] == ("url.blocked_domain", "blocked.com")
    for i in range(3, 24, 6):
        assert why[i][0] == "decontaminate.moon"
        assert len(why[i][1].split()) == 13 and why[i][1] == why[i][1].lower()
    for i in (*range(2, 24, 6), *range(4, 24, 6), *range(5, 24, 6)):
        assert i not in why or not why[i][0].startswith(("url", "decontaminate")), why[i]
    stats = manifest["filters"]
    assert stats["rules"]["url.blocked_domain"]["removed_rows"] == 4
    assert stats["rules"]["decontaminate.moon"]["removed_rows"] == 4
    assert stats["url"]["without_host"] == 4 and stats["url"]["domains"] == 1
    assert stats["url"]["block_domains"] == f"file://{tmp_path}/blocked.txt"
    (bench,) = stats["decontaminate"]["benchmarks"]
    assert (bench["name"], bench["items"], stats["decontaminate"]["ngram"]) == ("moon", 1, 13)
    assert len(stats["decontaminate"]["sha256"]) == 64
    # Only the parts and our control files in the dataset's folder: no staged list.
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        *(f["path"] for f in manifest["files"]),
        "_manifest.json",
    }
    assert tree_digest(tmp_path / "in") == before


def test_a_missing_url_column_is_refused_by_name_before_anything_is_written(tmp_path):
    _corpus(tmp_path / "in")
    filters = FilterOptions(url={"block_domains": ["blocked.com"], "url_column": "link"})
    with pytest.raises(InputError, match=r"no .link. column for filters\.url"):
        filter_documents(str(tmp_path / "in"), str(tmp_path / "out"), filters=filters)
    assert not (tmp_path / "out").exists()


def test_a_benchmark_where_the_run_writes_is_refused_before_anything_is_written(tmp_path):
    """An earlier run's kept (or rejected) rows as the benchmark: a rerun would judge by
    what the run before it wrote."""
    _corpus(tmp_path / "in")
    filter_documents(
        str(tmp_path / "in"), str(tmp_path / "out"), filters=FilterOptions(language=None)
    )
    before = tree_digest(tmp_path)
    for uri in (tmp_path / "out", tmp_path / "out-rejected", tmp_path / "out" / "*.parquet"):
        benchmark = {"name": "own", "uri": str(uri), "columns": ["text"]}
        filters = FilterOptions(language=None, decontaminate={"benchmarks": [benchmark]})
        with pytest.raises(InputError, match=r"benchmark own .* overlaps .* which this run writes"):
            filter_documents(str(tmp_path / "in"), str(tmp_path / "out"), filters=filters)
    assert tree_digest(tmp_path) == before


def test_benchmarks_and_a_blocklist_on_s3(aws_env, tmp_path):  # noqa: F811
    s3 = client()
    bucket = unique("lists")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    rows = _corpus(tmp_path / "in")
    s3.put_object(
        Bucket=bucket, Key="in/docs.parquet", Body=(tmp_path / "in/docs.parquet").read_bytes()
    )
    s3.put_object(Bucket=bucket, Key="evals/moon.jsonl", Body=json.dumps(ITEM).encode() + b"\n")
    s3.put_object(Bucket=bucket, Key="lists/blocked.txt", Body=b"blocked.com\n")
    filters = FilterOptions(
        language=None,
        url={"block_domains": f"s3://{bucket}/lists/blocked.txt"},
        decontaminate={
            "benchmarks": [
                {"name": "moon", "uri": f"s3://{bucket}/evals/", "columns": ["question", "answer"]}
            ]
        },
    )
    filter_documents(f"s3://{bucket}/in", f"s3://{bucket}/out", filters=filters)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="out-rejected/")["Contents"]
    rejected = [
        r
        for o in listed
        if o["Key"].endswith(".parquet")
        for r in pq.read_table(
            io.BytesIO(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        ).to_pylist()
    ]
    reasons = {r["id"]: r["filter_reason"] for r in rejected}
    assert {i for i, why in reasons.items() if why == "url.blocked_domain"} == set(range(1, 24, 6))
    assert {i for i, why in reasons.items() if why == "decontaminate.moon"} == set(range(3, 24, 6))
    out = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]}
    manifest = json.loads(s3.get_object(Bucket=bucket, Key="out/_manifest.json")["Body"].read())
    # Only the parts and the manifest: the staged lists are gone.
    assert out == {"out/_manifest.json", *(f"out/{f['path']}" for f in manifest["files"])}
    assert manifest["filters"]["kept"] + manifest["filters"]["rejected"] == len(rows)
