"""The dedup step read as an adversary would: itself as ``against``, blank texts, one
huge group of copies, earlier partitions that are malformed or removed between runs or
while it reads them.
Real local Ray (the session's, its object store capped at 512 MiB)."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.errors import InputError
from tasks.nightly import retention
from tasks.steps.dedup import grouping
from tasks.steps.dedup.step import deduplicated_bytes
from tasks.steps.generate.step import generated_bytes
from tasks.steps.preprocess.step import preprocessed_bytes
from tasks.store import storage
from tasks.store.dataset import FileEntry, build_manifest, commit, part_name, read_dataset
from tests.helpers import dedup_dataset, tree_digest
from tests.integration.test_dedup_dataset import corpus

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_against_that_is_or_holds_the_input_is_refused_naming_both(tmp_path):
    """Deduplicated against itself, every row would be its own duplicate."""
    source, *_ = corpus(tmp_path)
    first = tmp_path / "outer" / "first"
    dedup_dataset(source, str(first), mode="exact")
    before = tree_digest(first)
    for input_uri, against in (
        (str(first), str(first)),  # its own input as against
        (str(tmp_path / "outer"), str(first)),  # against inside the input
        (str(first), str(tmp_path / "outer")),  # against holding the input
    ):
        with pytest.raises(InputError) as refused:
            dedup_dataset(input_uri, str(tmp_path / "second"), against=[against])
        message = str(refused.value)
        assert "is, holds or lies inside this run's" in message
        assert storage.resolve(against).uri in message
        assert not (tmp_path / "second").exists()
    assert tree_digest(first) == before


@pytest.mark.parametrize("mode", ["exact", "near"])
def test_blank_texts_are_all_kept_while_a_real_copy_goes(tmp_path, mode):
    """After the seed's cleaning, CJK-only or emoji-only texts are empty or whitespace:
    they are not copies of each other, and none is removed; a real copy is."""
    real = "the same real sentence of several words here"
    texts = ["", "   ", None, real, "\t\n", "", real, " ", None, "other words entirely"]
    (tmp_path / "in").mkdir()
    table = pa.table({"id": list(range(len(texts))), "cleaned_text": texts})
    pq.write_table(table, tmp_path / "in" / "part-0.parquet")
    manifest = dedup_dataset(str(tmp_path / "in"), str(tmp_path / "out"), mode=mode)
    kept = read_dataset(str(tmp_path / "out")).column("id").to_pylist()
    assert kept == [i for i in range(len(texts)) if i != 6]
    stats = manifest["dedup"]
    assert stats["empty"] == 7
    assert stats["exact_duplicates_removed"] == 1 and stats["near_duplicates_removed"] == 0


def test_one_group_of_200000_copies_larger_than_a_shard_completes(tmp_path, monkeypatch):
    """200,000 identical texts are one group, four times a shard's bound here: near mode
    keeps the first and a few unrelated rows, under the session's capped object store.
    Exact copies never reach the band grouping (their survivor's bands stand for them)."""
    monkeypatch.setattr(grouping, "SHARD_ROWS", 50_000)
    monkeypatch.setattr(grouping, "VERIFY_ROUND_PAIRS", 1_000)
    same = "one boilerplate line that a crawler saw on every page of a site"
    others = [f"unrelated row {i} with words of its own {i * 7} {i * 13}" for i in range(50)]
    texts = others[:25] + [same] * 200_000 + others[25:]
    (tmp_path / "in").mkdir()
    table = pa.table({"id": list(range(len(texts))), "cleaned_text": texts})
    pq.write_table(table.slice(0, 100_025), tmp_path / "in" / "part-0.parquet")
    pq.write_table(table.slice(100_025), tmp_path / "in" / "part-1.parquet")
    manifest = dedup_dataset(str(tmp_path / "in"), str(tmp_path / "out"), mode="near")
    kept = read_dataset(str(tmp_path / "out")).column("id").to_pylist()
    assert kept == [*range(26), *range(200_025, 200_050)]
    stats = manifest["dedup"]
    assert stats["exact_duplicates_removed"] == 199_999
    assert stats["largest_group"] == 200_000 and stats["groups"] == 1
    assert stats["largest_group_span"] == 1.0


def _day(bucket, day: str):
    return bucket / "deduped" / f"dt={day}"


def test_earlier_partitions_used_and_skipped_are_recorded_and_a_malformed_one_is_skipped(
    tmp_path,
):
    """The nightly's against_earlier: a malformed earlier manifest is skipped with its
    reason (never a crash), and a rerun after an earlier date was removed records the
    smaller set it compared with, so a reader can tell why its bytes differ."""
    source, rows, *_ = corpus(tmp_path)
    bucket = tmp_path / "bucket"
    first = _day(bucket, "2026-03-01")
    dedup_dataset(source, str(first), mode="exact")
    # 2 March: a copy whose manifest lost the shape of its index.
    broken = _day(bucket, "2026-03-02")
    shutil.copytree(first, broken)
    manifest = json.loads((broken / "_manifest.json").read_text())
    manifest["companions"]["index"] = 5
    (broken / "_manifest.json").write_text(json.dumps(manifest))
    (bucket / "deduped" / "dt=2026-03-04").mkdir()  # later: never compared with

    third = _day(bucket, "2026-03-03")
    manifest = dedup_dataset(source, str(third), mode="exact", against_earlier=True)
    assert manifest["parameters"]["against"] == [f"file://{first}"]
    (skipped,) = manifest["parameters"]["against_skipped"]
    assert skipped["uri"] == f"file://{broken}" and "malformed" in skipped["reason"]
    assert manifest["num_rows"] == 0  # every row was kept on 1 March already
    assert manifest["dedup"]["against_removed"] == len(rows) - manifest["dedup"]["empty"]

    assert retention.remove_committed(storage.resolve(str(first)))
    rerun = dedup_dataset(source, str(third), mode="exact", against_earlier=True)
    assert rerun["parameters"]["against"] == []
    assert [s["uri"] for s in rerun["parameters"]["against_skipped"]] == [f"file://{broken}"]
    assert rerun["num_rows"] == len({r["cleaned_text"] for r in rows})


def test_an_earlier_partition_from_an_older_version_is_skipped_and_its_rows_are_kept(
    tmp_path,
):
    """against_earlier beside a date deduplicated by an earlier version of the step (its
    manifest records no sketch scheme: its digests differ): skipped with its reason, so
    this date's rows are compared with nothing and all kept, as they would be without it."""
    source, rows, *_ = corpus(tmp_path)
    bucket = tmp_path / "bucket"
    old = _day(bucket, "2026-03-01")
    dedup_dataset(source, str(old), mode="exact")
    manifest = json.loads((old / "_manifest.json").read_text())
    del manifest["dedup"]["sketch"]
    (old / "_manifest.json").write_text(json.dumps(manifest))
    before = {p: p.read_bytes() for p in old.rglob("*") if p.is_file()}

    found = dedup_dataset(
        source, str(_day(bucket, "2026-03-02")), mode="exact", against_earlier=True
    )
    assert found["parameters"]["against"] == []
    (skipped,) = found["parameters"]["against_skipped"]
    assert skipped["uri"] == f"file://{old}" and "earlier version" in skipped["reason"]
    assert found["num_rows"] == len({r["cleaned_text"] for r in rows})
    assert {p: p.read_bytes() for p in old.rglob("*") if p.is_file()} == before  # untouched


def _commit_texts(root, texts: list[str]) -> None:
    """A dataset committed with our protocol, without running a flow."""
    root.mkdir(parents=True)
    table = pa.table({"id": list(range(len(texts))), "cleaned_text": texts})
    pq.write_table(table, root / part_name(0))
    entry = FileEntry(part_name(0), len(texts), (root / part_name(0)).stat().st_size)
    loc = storage.resolve(str(root))
    commit(loc, build_manifest([entry], table.schema), [])


@pytest.mark.usefixtures("flows_env")
def test_retention_leaves_what_a_running_dedup_reads_and_removes_it_afterwards(
    tmp_path, faults, monkeypatch
):
    """While a dedup run reads its input and the earlier dates it may compare with,
    retention skips them (and the date being written); once it has finished, they go."""
    from flows.dedup import dedup as dedup_flow
    from tasks.orchestration import exclusive
    from tasks.orchestration.tasks import retention_task

    monkeypatch.setattr(exclusive, "WAIT_SECONDS", 1.0)
    bucket = tmp_path / "bucket"
    source = bucket / "preprocessed" / "dt=2026-03-01"
    _commit_texts(source, [f"row {i} of the first date" for i in range(40)])
    earlier = bucket / "deduped" / "dt=2026-03-02"
    _commit_texts(earlier, ["an earlier date's row"])
    (faults / f"{part_name(0)}.slow").write_text("10")  # holds pass 1
    output = bucket / "deduped" / "dt=2026-03-03"
    with ThreadPoolExecutor(1) as pool:
        # In a copy of this context: the thread sees the test's Prefect settings.
        run = pool.submit(
            contextvars.copy_context().run,
            dedup_flow,
            str(source),
            str(output),
            against_earlier=True,
            return_state=True,
        )
        started = time.monotonic()
        while not (faults / f"{part_name(0)}.slow.fired").exists():
            assert time.monotonic() - started < 120 and not run.done()
            time.sleep(0.2)
        day = dt.date(2026, 3, 20)
        removed = retention_task(str(bucket), ["preprocessed", "deduped"], day, 1, day)
        assert removed == []  # each one read (or written) by the run: left
        assert (source / "_manifest.json").exists() and (earlier / "_manifest.json").exists()
        state = run.result(timeout=300)
    assert state.is_completed(), state
    assert json.loads((output / "_manifest.json").read_text())["num_rows"] == 40
    removed = retention_task(str(bucket), ["preprocessed", "deduped"], day, 1, day)
    assert sorted(removed) == sorted(f"file://{p}" for p in (source, earlier, output))


def test_dedup_counts_its_signature_files_in_the_space_it_needs(tmp_path, monkeypatch):
    """A local dedup run checks free space before it writes, counting its output and
    its signature files twice (staged, and the index); the pipeline's estimate counts
    them too. Here the whole disk must stay free, so any write is refused."""
    from tasks.store import space

    source, rows, *_ = corpus(tmp_path)
    monkeypatch.setattr(space, "reserve_bytes", lambda total: total)
    input_bytes = sum(p.stat().st_size for p in (tmp_path / "input").iterdir())
    needed = deduplicated_bytes(input_bytes, len(rows), 128, 16)
    # Staged signatures and the index (key, digest, 128 values), a digest row and 16 band
    # rows for the groups.
    assert needed == input_bytes + len(rows) * (2 * (8 + 16 + 128) + 32 + 16 * 16)
    with pytest.raises(InputError, match=f"dedup needs about {needed:,} bytes"):
        dedup_dataset(source, str(tmp_path / "out"), mode="near")
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("flows_env")
def test_the_pipelines_estimate_counts_its_dedup_step(tmp_path):
    from flows.pipeline import pipeline

    rows = 10**11
    raw = generated_bytes(rows, 1000)
    cleaned = preprocessed_bytes(raw, keep_text=True)
    needed = raw + cleaned + deduplicated_bytes(cleaned, rows, 128, 16)
    with pytest.raises(InputError, match=f"pipeline needs about {needed:,} bytes"):
        pipeline(
            bucket_uri=str(tmp_path / "bucket"),
            num_rows=rows,
            num_files=100,
            steps=[{"preprocess": {}}, {"dedup": {"mode": "near"}}],
        )
    assert not (tmp_path / "bucket").exists()
