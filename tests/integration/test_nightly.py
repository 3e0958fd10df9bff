"""A nightly run left alone: retention, the free-space check, the timeout. Real local Ray
and Prefect server; the one-at-a-time limit and the backfill deployment run through a
worker in test_deployments.py."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.generate import generate
from flows.pipeline import pipeline
from tasks.errors import DeadlineExceeded, InputError
from tasks.nightly import retention
from tasks.steps.generate.step import generated_bytes
from tasks.steps.preprocess.step import preprocessed_bytes
from tasks.store import dataset, space, storage
from tasks.store.dataset import FileEntry
from tests.helpers import assert_committed, tree_digest

DAY = dt.date(2026, 3, 10)
SMALL = {"num_rows": 300, "num_files": 2}


def _commit_by_hand(root: Path, rows: int = 3) -> None:
    """A dataset committed with our protocol, without running a flow."""
    root.mkdir(parents=True)
    table = pa.table({"id": list(range(rows))})
    pq.write_table(table, root / dataset.part_name(0))
    entry = FileEntry(dataset.part_name(0), rows, (root / dataset.part_name(0)).stat().st_size)
    loc = storage.resolve(str(root))
    dataset.commit(loc, dataset.build_manifest([entry], table.schema), [])


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- retention ---------------------------------------------------------------------------


def test_expired_counts_whole_days_back_from_the_runs_date():
    names = ["dt=2026-03-10", "dt=2026-03-09", "dt=2026-03-08", "dt=2026-03-07", "dt=junk"]
    today = DAY + dt.timedelta(days=30)  # a run for a past date counts back from its date
    assert retention.expired(names, DAY, 2, today) == ["dt=2026-03-08", "dt=2026-03-07"]
    assert retention.expired(names, DAY, 1, today) == [
        "dt=2026-03-09",
        "dt=2026-03-08",
        "dt=2026-03-07",
    ]
    assert retention.expired(["dt=2026-02-30", "notes", "dt=2026-3-1"], DAY, 1, today) == []
    # 0 keeps none: an intermediate's own date goes too...
    assert retention.expired(names, DAY, 0, today) == names[:4]
    # ...but a run dated tomorrow leaves today's: today's run may be between two steps.
    tomorrow = DAY + dt.timedelta(days=1)
    assert retention.expired([f"dt={tomorrow}", *names], tomorrow, 0, DAY) == [
        f"dt={tomorrow}",
        *names[1:4],
    ]
    with pytest.raises(InputError, match="keep_days must be at least 0"):
        retention.expired(names, DAY, -1, today)


@pytest.mark.usefixtures("flows_env")
def test_keep_days_removes_only_older_committed_partitions(tmp_path):
    """After a successful daily run: committed partitions dated keep_days or more before
    the run's date go, in raw and preprocessed; an uncommitted one, a foreign folder,
    a foreign file inside a committed partition and a newer partition stay."""
    bucket = tmp_path / "bucket"
    for name in ("raw", "preprocessed"):
        _commit_by_hand(bucket / name / "dt=2026-03-01")
        _commit_by_hand(bucket / name / "dt=2026-03-08")  # exactly keep_days back
        _commit_by_hand(bucket / name / "dt=2026-03-09")  # kept
    # Committed, but someone keeps a file of their own beside our parts.
    (bucket / "raw" / "dt=2026-03-01" / "NOTES.txt").write_text("mine")
    # Old but not committed: a crashed write of ours, and a folder that is not ours.
    crashed = bucket / "raw" / "dt=2026-02-01"
    crashed.mkdir()
    (crashed / dataset.part_name(0)).write_bytes(b"half")
    (crashed / dataset.WRITING_NAME).write_text("{}")
    foreign = bucket / "preprocessed" / "dt=2026-02-02"
    foreign.mkdir()
    (foreign / "data.csv").write_text("a,b\n")
    (bucket / "preprocessed" / "archive").mkdir()
    before = {name: _tree(bucket / name) for name in ("raw", "preprocessed")}

    state = pipeline(
        bucket_uri=str(bucket), **SMALL, run_date=DAY.isoformat(), keep_days=2, return_state=True
    )

    assert state.is_completed(), state
    assert sorted(p.name for p in (bucket / "raw").iterdir()) == [
        "dt=2026-02-01",  # uncommitted: stays
        "dt=2026-03-01",  # holds a file we did not write: the folder stays for it
        "dt=2026-03-09",
        "dt=2026-03-10",
    ]
    assert _tree(bucket / "raw" / "dt=2026-03-01") == {"NOTES.txt"}
    assert _tree(crashed) == {dataset.part_name(0), dataset.WRITING_NAME}
    assert sorted(p.name for p in (bucket / "preprocessed").iterdir()) == [
        "archive",
        "dt=2026-02-02",
        "dt=2026-03-09",
        "dt=2026-03-10",
    ]
    assert _tree(foreign) == {"data.csv"}
    for name in ("raw", "preprocessed"):
        assert assert_committed(bucket / name / "dt=2026-03-09")["num_rows"] == 3
        assert assert_committed(bucket / name / "dt=2026-03-10")["num_rows"] == 300
        gone = {p for p in before[name] if p.startswith(("dt=2026-03-01/", "dt=2026-03-08"))}
        assert gone and not gone & (_tree(bucket / name) - {"dt=2026-03-01/NOTES.txt"})


def test_a_partition_is_uncommitted_before_its_files_go(tmp_path, monkeypatch):
    """The removal marker, then the manifest, then the files: a removal that stops half
    way leaves no manifest naming missing files but a marker naming what is left, which
    the next removal finishes; a folder without a manifest of ours is left alone."""
    root = tmp_path / "dt=2026-03-01"
    _commit_by_hand(root)
    real_delete = storage.delete_file

    def delete_then_stop(loc):
        real_delete(loc)
        if loc.name != dataset.MANIFEST_NAME:
            raise ConnectionResetError("stopped half way")

    monkeypatch.setattr(storage, "delete_file", delete_then_stop)
    with pytest.raises(ConnectionResetError):
        retention.remove_committed(storage.resolve(str(root)))
    assert not (root / dataset.MANIFEST_NAME).exists()  # went before the files
    marker = json.loads((root / dataset.REMOVING_NAME).read_text())
    assert marker["files"] == [dataset.part_name(0)]
    monkeypatch.setattr(storage, "delete_file", real_delete)
    assert retention.remove_committed(storage.resolve(str(root))) == 1
    assert not root.exists()

    other = tmp_path / "dt=2026-03-02"
    other.mkdir()
    (other / dataset.MANIFEST_NAME).write_text(json.dumps({"files": [], "num_rows": 0}))
    (other / dataset.part_name(0)).write_bytes(b"theirs")
    assert retention.remove_committed(storage.resolve(str(other))) is None
    assert _tree(other) == {dataset.MANIFEST_NAME, dataset.part_name(0)}


@pytest.mark.usefixtures("flows_env")
def test_a_run_dated_after_tomorrow_is_refused_before_anything_is_written(tmp_path):
    """Two days ahead or years ahead: refused naming today's date, before the free-space
    check and retention; every committed partition stays, byte for byte."""
    bucket = tmp_path / "bucket"
    today = dt.datetime.now(dt.UTC).date()
    for name in ("raw", "preprocessed"):
        for back in (0, 1, 2, 5):
            _commit_by_hand(bucket / name / f"dt={today - dt.timedelta(days=back)}")
    before, files = _tree(bucket), tree_digest(bucket)

    # 10^11 rows would fail the free-space check: the date's message shows it came first.
    for day in (today + dt.timedelta(days=2), dt.date(today.year + 5, 1, 1)):
        with pytest.raises(InputError) as refused:
            pipeline(
                bucket_uri=str(bucket), num_rows=10**11, num_files=100, run_date=day, keep_days=2
            )
        message = str(refused.value)
        assert f"run_date {day} is later than tomorrow in UTC" in message
        assert f"today there is {today}" in message
        assert (_tree(bucket), tree_digest(bucket)) == (before, files)
    for name in ("raw", "preprocessed"):
        for folder in (bucket / name).iterdir():
            assert_committed(folder)


@pytest.mark.usefixtures("flows_env")
def test_keep_days_is_for_daily_runs_and_is_refused_before_anything_is_written(tmp_path):
    bucket = tmp_path / "bucket"
    with pytest.raises(InputError, match="keep_days applies to daily runs only"):
        pipeline(bucket_uri=str(bucket), **SMALL, keep_days=3)
    with pytest.raises(InputError, match="keep_days applies to daily runs only"):
        pipeline(bucket_uri=str(bucket), **SMALL, steps=[{"preprocess": {"keep_days": 1}}])
    assert not bucket.exists()


# --- free space --------------------------------------------------------------------------


@pytest.mark.usefixtures("flows_env")
def test_a_run_that_would_not_fit_is_refused_before_it_writes(tmp_path):
    """10^11 rows of 1 KB is 100 TB: refused, naming the bytes needed and free, and
    nothing is created (not even the bucket's directory)."""
    bucket = tmp_path / "bucket"
    with pytest.raises(InputError) as refused:
        pipeline(bucket_uri=str(bucket), num_rows=10**11, num_files=100)
    needed = generated_bytes(10**11, 1000) + preprocessed_bytes(
        generated_bytes(10**11, 1000), keep_text=True
    )
    message = str(refused.value)
    assert f"pipeline needs about {needed:,} bytes" in message
    assert "free" in message and str(bucket) in message
    assert not bucket.exists()

    output = tmp_path / "raw"
    with pytest.raises(InputError, match=r"generate needs about [\d,]+ bytes .* free"):
        generate(output_uri=str(output), num_rows=10**11, num_files=100)
    assert not output.exists()


def test_the_reserve_is_part_of_the_check(tmp_path):
    """What fits only by eating into the reserve is refused too."""
    import shutil

    usage = shutil.disk_usage(tmp_path)
    loc = storage.resolve(str(tmp_path / "new" / "deeper"))
    space.check_free_space(loc, 1024, "a small write")  # fits
    just_over = usage.free - space.reserve_bytes(usage.total) + 2**30
    with pytest.raises(InputError, match="must stay free"):
        space.check_free_space(loc, just_over, "a large write")
    s3 = storage.Location("s3", "bucket/key")
    space.check_free_space(s3, 10**18, "S3 is not checked")


# --- timeout -----------------------------------------------------------------------------


def test_nothing_is_committed_past_the_deadline(tmp_path):
    """The last line of defence: a stage that finishes its parts late does not commit."""
    root = storage.resolve(str(tmp_path / "out"))
    manifest = dataset.build_manifest([], pa.schema([("id", pa.int64())]))
    with pytest.raises(DeadlineExceeded, match="past its timeout"):
        dataset.commit(root, manifest, [], deadline=time.time() - 1)
    assert not (tmp_path / "out" / dataset.MANIFEST_NAME).exists()


@pytest.mark.usefixtures("flows_env")
def test_a_run_past_its_timeout_fails_and_commits_nothing(tmp_path, faults):
    """Both parts hang past the run's 6 s timeout: the run fails soon after (the grace
    for the stage to say so, then it is cancelled, so its parts stop too) and no manifest
    ever appears. (With 1.2 s, a loaded machine started the stage after the timeout,
    which then stopped before any part: the other path.)"""
    for index in (0, 1):
        (faults / f"{dataset.part_name(index)}.slow").write_text("30")
    output = tmp_path / "raw"
    started = time.monotonic()
    state = generate(output_uri=str(output), **SMALL, timeout_minutes=0.1, return_state=True)
    failed_after = time.monotonic() - started
    assert state.is_failed(), state
    with pytest.raises(DeadlineExceeded, match="after the run's timeout and was cancelled"):
        state.result()
    assert failed_after < 30, failed_after  # it did not wait for the parts
    with get_client(sync_client=True) as client:
        (task_run,) = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    assert task_run.state.is_cancelled(), task_run.state
    # Wait past the time the parts would have finished: nothing commits late.
    time.sleep(max(0.0, 34 - (time.monotonic() - started)))
    assert not (output / dataset.MANIFEST_NAME).exists()
    assert not (output / dataset.part_name(0)).exists()
