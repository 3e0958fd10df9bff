"""Retention without a flow: which dates may go, removals that stop half way and are
finished (or overwritten by a rerun of that date), manifests that list what is not ours,
and when a backfill counts a date as done."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.backfill import committed
from flows.pipeline import datasets_kept
from tasks.nightly import retention
from tasks.store import dataset, storage
from tasks.store.dataset import FileEntry
from tests.helpers import assert_committed, tree_digest

INDEX = "_dedup/index/part-00000.parquet"


def _commit_by_hand(root: Path, parts: int = 2, index: bool = False, **extra: object) -> dict:
    """A dataset committed with our protocol (``parts`` parts of 3 rows, and with
    ``index`` a dedup signature index file), without running a flow."""
    root.mkdir(parents=True)
    table = pa.table({"id": [1, 2, 3]})
    entries = []
    for i in range(parts):
        pq.write_table(table, root / dataset.part_name(i))
        size = (root / dataset.part_name(i)).stat().st_size
        entries.append(FileEntry(dataset.part_name(i), 3, size))
    if index:
        (root / INDEX).parent.mkdir(parents=True)
        pq.write_table(table, root / INDEX)
        extra = {"side_files": [INDEX], "side_folders": ["_dedup/index"], **extra}
    manifest = {**dataset.build_manifest(entries, table.schema), **extra}
    dataset.commit(storage.resolve(str(root)), manifest, [])
    return manifest


def _stop_after_the_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    """storage.delete_file deletes, then fails like a dropped connection, for every file
    but the manifest: the removal stops right after the first file past the manifest."""
    real_delete = storage.delete_file

    def delete_then_stop(loc: storage.Location) -> None:
        real_delete(loc)
        if loc.name != dataset.MANIFEST_NAME:
            raise ConnectionResetError("stopped half way")

    monkeypatch.setattr(storage, "delete_file", delete_then_stop)


def _stopped_removal(root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A committed dataset (two parts and an index) whose removal stopped after its
    manifest and first part went; returns the files its manifest listed."""
    manifest = _commit_by_hand(root, index=True)
    with monkeypatch.context() as patch:
        _stop_after_the_manifest(patch)
        with pytest.raises(ConnectionResetError):
            retention.remove_committed(storage.resolve(str(root)))
    assert not (root / dataset.MANIFEST_NAME).exists()
    assert (root / dataset.REMOVING_NAME).exists()
    return dataset.listed_files(manifest)


def test_a_run_dated_years_ahead_removes_nothing_within_keep_days_of_today():
    today = dt.date(2026, 3, 10)
    names = [f"dt={today + dt.timedelta(days=d)}" for d in range(-5, 6)]
    future = dt.date(2031, 1, 1)
    assert retention.expired(names, future, 2, today) == [
        "dt=2026-03-05",
        "dt=2026-03-06",
        "dt=2026-03-07",
        "dt=2026-03-08",
    ]
    # A run for yesterday counts back from its own date, as before.
    assert retention.expired(names, today - dt.timedelta(days=1), 2, today)[-1] == "dt=2026-03-07"


@pytest.mark.parametrize("foreign", [False, True])
def test_a_removal_that_stopped_after_the_manifest_is_finished_by_the_next(
    tmp_path, monkeypatch, foreign
):
    root = tmp_path / "dt=2026-03-01"
    listed = _stopped_removal(root, monkeypatch)
    if foreign:
        (root / "NOTES.txt").write_text("mine")
    marker = json.loads((root / dataset.REMOVING_NAME).read_text())
    assert sorted(marker["files"]) == sorted(listed)

    assert retention.remove_committed(storage.resolve(str(root))) == 2
    assert not any((root / path).exists() for path in listed)
    if foreign:  # the folder stays for the file we did not write, and only that is left
        assert [str(p.relative_to(root)) for p in root.rglob("*")] == ["NOTES.txt"]
    else:
        assert not root.exists()
    assert tmp_path.exists()


def test_a_forced_rerun_of_a_date_whose_removal_stopped_commits(tmp_path, monkeypatch):
    """prepare_output counts the removal marker as our mark: the rerun writes there, the
    stale marker goes, and commit deletes the old listed files it did not rewrite."""
    root = tmp_path / "dt=2026-03-01"
    _stopped_removal(root, monkeypatch)
    assert dataset.is_own_file(dataset.REMOVING_NAME)
    loc = storage.resolve(str(root))

    leftovers = dataset.prepare_output(loc)
    assert not (root / dataset.REMOVING_NAME).exists()
    assert (root / dataset.WRITING_NAME).exists()
    assert sorted(leftovers) == [INDEX, dataset.part_name(1)]
    table = pa.table({"id": [7, 8]})
    pq.write_table(table, root / dataset.part_name(0))
    entry = FileEntry(dataset.part_name(0), 2, (root / dataset.part_name(0)).stat().st_size)
    dataset.commit(loc, dataset.build_manifest([entry], table.schema), leftovers)

    assert assert_committed(root)["num_rows"] == 2
    assert not (root / dataset.WRITING_NAME).exists()


@pytest.mark.parametrize(
    "bad", ["../other/part-00000.parquet", "/etc/passwd", "notes.txt", dataset.MANIFEST_NAME]
)
@pytest.mark.parametrize("where", ["files", "index", "folder"])
def test_a_manifest_listing_what_is_not_ours_deletes_nothing(tmp_path, bad, where):
    """Every listed path is checked before anything goes: one bad entry, even after good
    ones, and the partition is left as it is, manifest included."""
    other = tmp_path / "other"
    other.mkdir()
    pq.write_table(pa.table({"id": [0]}), other / dataset.part_name(0))
    root = tmp_path / "dt=2026-03-01"
    manifest = _commit_by_hand(root)
    if where == "files":
        manifest["files"].append({"path": bad, "num_rows": 0, "size_bytes": 0})
    elif where == "index":
        manifest["side_files"] = [INDEX, bad]
    else:  # a side folder named outside the partition claims the file for itself
        manifest["side_folders"] = [bad.rpartition("/")[0] or bad]
        manifest["side_files"] = [bad]
    (root / dataset.MANIFEST_NAME).write_text(json.dumps(manifest))
    before = tree_digest(tmp_path)

    assert retention.remove_committed(storage.resolve(str(root))) is None
    assert tree_digest(tmp_path) == before


def test_a_removal_marker_listing_what_is_not_ours_deletes_nothing(tmp_path, monkeypatch):
    root = tmp_path / "dt=2026-03-01"
    _stopped_removal(root, monkeypatch)
    marker = json.loads((root / dataset.REMOVING_NAME).read_text())
    marker["files"].append("../../etc/passwd")
    (root / dataset.REMOVING_NAME).write_text(json.dumps(marker))
    before = tree_digest(root)
    assert retention.remove_committed(storage.resolve(str(root))) is None
    assert tree_digest(root) == before


@pytest.mark.parametrize(
    "changed",
    [{"manifest_version": dataset.MANIFEST_VERSION + 1}, {"writer": "someone-else"}],
)
def test_a_manifest_of_another_version_or_writer_is_left_alone(tmp_path, changed):
    root = tmp_path / "dt=2026-03-01"
    _commit_by_hand(root, **changed)
    before = tree_digest(root)
    assert retention.remove_committed(storage.resolve(str(root))) is None
    assert tree_digest(root) == before


def test_leftovers_of_a_killed_write_beside_the_manifest_go(tmp_path):
    """Own files the manifest does not list (a killed rewrite's marker, signature files,
    temps) go with the dataset; a file we did not write stays, and the folder with it."""
    root = tmp_path / "dt=2026-03-01"
    _commit_by_hand(root, index=True)
    signatures = root / "_dedup" / "signatures"
    signatures.mkdir(parents=True)
    (signatures / dataset.part_name(0)).write_bytes(b"sig")
    (root / dataset.WRITING_NAME).write_text("{}")
    (root / f"{dataset.part_name(5)}.tmp-{'0' * 32}").write_bytes(b"temp")
    (root / "_dedup" / "NOTES.txt").write_text("mine")

    assert retention.remove_committed(storage.resolve(str(root))) == 2
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "_dedup",
        "_dedup/NOTES.txt",
    ]


def test_backfill_counts_a_date_done_only_when_every_dataset_it_writes_is_committed(tmp_path):
    bucket = tmp_path / "bucket"
    day = dt.date(2026, 3, 1)
    near = datasets_kept({"steps": [{"preprocess": {}}, {"dedup": {"mode": "near"}}]})
    assert near == ["raw", "preprocessed", "deduped"]
    assert datasets_kept({}) == ["raw", "preprocessed"]
    assert datasets_kept({"input_uri": "corpus"}) == ["preprocessed"]
    steps = [{"preprocess": {}}, {"filter": {}}, {"filter": {}}, {"dedup": {}}]
    assert datasets_kept({"steps": steps})[2:] == ["filtered", "filtered_2", "deduped"]
    # What the run removes once it is done is not waited for.
    intermediate = [{"preprocess": {"keep_days": 0}}, {"dedup": {}}]
    assert datasets_kept({"steps": intermediate, "raw_keep_days": 0, "keep_days": 3}) == ["deduped"]

    _commit_by_hand(bucket / "preprocessed" / f"dt={day}")
    assert not committed(str(bucket), day, None, datasets_kept({}))  # raw is missing
    _commit_by_hand(bucket / "raw" / f"dt={day}")
    assert committed(str(bucket), day, None, datasets_kept({}))
    assert not committed(str(bucket), day, None, near)  # dedup on, deduped not committed
    _commit_by_hand(bucket / "deduped" / f"dt={day}", index=True)
    assert committed(str(bucket), day, None, near)


def test_a_dedup_output_committed_before_side_files_were_recorded_goes_whole(tmp_path):
    """A manifest of the first release names its index only under ``dedup`` (no
    ``side_files``): retention still removes the index, as a leftover of ours."""
    root = tmp_path / "dt=2026-03-01"
    manifest = _commit_by_hand(root, index=True)
    legacy = {k: v for k, v in manifest.items() if k not in ("side_files", "side_folders")}
    legacy["dedup"] = {"index": [INDEX]}
    (root / dataset.MANIFEST_NAME).write_text(json.dumps(legacy))
    (root / "NOTES.txt").write_text("not ours")

    assert retention.remove_committed(storage.resolve(str(root))) == 2
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["NOTES.txt"]
