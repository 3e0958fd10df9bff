"""What a step keeps besides its rows (rejected rows, an index) is a companion dataset
beside its output: any reader pointed at the output's folder reads exactly its committed
rows, the companion commits first and goes with the output (retention, a rerun by
another step), an older layout's side folders are taken over, and a step that writes
anything but its parts commits nothing. Attacked as a kill, a stray file or a stale
companion would."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import ray

from tasks.errors import OutputConflictError
from tasks.nightly import retention
from tasks.steps.generate.step import Generate, GenerateParams
from tasks.steps.skeleton import run_step
from tasks.store import dataset, storage
from tasks.store.dataset import read_dataset
from tests.helpers import (
    assert_committed,
    commit_old_layout,
    committed_bytes,
    companion_path,
    tree_digest,
)
from tests.toy_step import Noted, Stray, Upper, UpperParams

pytestmark = pytest.mark.usefixtures("ray_cluster")
DAYS = ("2026-03-01", "2026-03-02")


def source(tmp_path: Path, name: str = "in", rows: int = 300, files: int = 3) -> str:
    uri = f"file://{tmp_path}/{name}"
    run_step(Generate, GenerateParams(num_rows=rows, num_files=files, text_length=20), uri)
    return uri


def seen_by_readers(base: Path) -> dict[str, list[int]]:
    """The ids each reader a user points at ``base`` (partitioned by dt=) reads."""
    glob = f"{base}/**/*.parquet"
    return {
        "ray": sorted(row["id"] for row in ray.data.read_parquet(str(base)).take_all()),
        "pyarrow": sorted(
            ds.dataset(base, format="parquet", partitioning="hive").to_table()["id"].to_pylist()
        ),
        "polars": sorted(
            pl.scan_parquet(glob, hive_partitioning=True).select("id").collect()["id"].to_list()
        ),
        "duckdb": sorted(
            row[0]
            for row in duckdb.sql(
                f"select id from read_parquet('{glob}', hive_partitioning = true)"
            ).fetchall()
        ),
    }


def test_readers_of_a_dataset_see_its_rows_and_its_companion_lies_beside_it(tmp_path):
    base = tmp_path / "bucket" / "noted"
    committed: list[int] = []
    for i, day in enumerate(DAYS):
        uri = source(tmp_path, f"in{i}", rows=100 + i)
        manifest = run_step(Noted, UpperParams(input_uri=uri), f"{base}/dt={day}")
        assert_committed(base / f"dt={day}")
        beside = tmp_path / "bucket" / "noted-notes" / f"dt={day}"
        assert manifest["companions"]["notes"]["uri"] == f"file://{beside}"
        assert read_dataset(str(beside)).num_rows == manifest["num_rows"]
        committed += read_dataset(f"{base}/dt={day}")["id"].to_pylist()
    assert len(committed) == 201
    for reader, ids in seen_by_readers(base).items():
        assert ids == sorted(committed), reader
    for reader, ids in seen_by_readers(tmp_path / "bucket" / "noted-notes").items():
        assert ids == sorted(committed), reader


def test_a_step_that_writes_anything_but_its_parts_commits_nothing(tmp_path):
    with pytest.raises(RuntimeError, match=r"debug-0\.txt is not one of its parts"):
        run_step(Stray, UpperParams(input_uri=source(tmp_path)), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "_manifest.json").exists()


def test_a_run_stopped_between_the_companion_and_the_output_commits_reruns_whole(
    tmp_path, monkeypatch
):
    uri = source(tmp_path)
    run_step(Noted, UpperParams(input_uri=uri), str(tmp_path / "reference"))
    out = tmp_path / "out"
    commit = dataset.commit

    def stop_at_the_output(root, *args, **kwargs):
        if root.path == str(out):
            raise KeyboardInterrupt("killed between the two commits")
        return commit(root, *args, **kwargs)

    monkeypatch.setattr(dataset, "commit", stop_at_the_output)
    with pytest.raises(KeyboardInterrupt):
        run_step(Noted, UpperParams(input_uri=uri), str(out))
    monkeypatch.setattr(dataset, "commit", commit)
    assert not (out / "_manifest.json").exists()  # not committed: readers see no dataset
    assert retention.remove_committed(storage.resolve(str(out))) is None  # nor retention

    run_step(Noted, UpperParams(input_uri=uri), str(out))
    assert_committed(out)
    assert committed_bytes(out) == committed_bytes(tmp_path / "reference")


def test_another_step_writing_the_folder_removes_the_companion_it_does_not_have(tmp_path):
    uri = source(tmp_path)
    out = tmp_path / "out"
    run_step(Noted, UpperParams(input_uri=uri), str(out))
    assert companion_path(out, "notes").exists()
    manifest = run_step(Upper, UpperParams(input_uri=uri), str(out))
    assert "companions" not in manifest
    assert not companion_path(out, "notes").exists()
    assert_committed(out)


def test_an_older_layouts_side_folder_is_taken_over_by_the_next_write(tmp_path):
    """A dataset committed with its rejected rows inside it (``_rejected/``, as before
    companions): the next write there removes them, and leaves nothing else behind."""
    table = pq.read_table(source(tmp_path).removeprefix("file://"))
    out = commit_old_layout(tmp_path / "out", table)

    run_step(Noted, UpperParams(input_uri=f"file://{tmp_path}/in"), str(out))
    assert not (out / "_rejected").exists()
    assert_committed(out)


def test_a_foreign_file_where_the_companion_goes_is_refused_before_anything_changes(tmp_path):
    uri = source(tmp_path)
    out = tmp_path / "out"
    run_step(Noted, UpperParams(input_uri=uri), str(out))
    (companion_path(out, "notes") / "mine.csv").write_text("a user's file")
    before = tree_digest(tmp_path)
    with pytest.raises(OutputConflictError, match=r"out-notes holds 1 file\(s\).*mine\.csv"):
        run_step(Noted, UpperParams(input_uri=uri), str(out))
    assert tree_digest(tmp_path) == before  # the committed pair as it was


def test_retention_removes_the_companion_and_finishes_a_removal_stopped_inside_it(
    tmp_path, monkeypatch
):
    uri = source(tmp_path)
    out = tmp_path / "noted" / f"dt={DAYS[0]}"
    beside = companion_path(out, "notes")
    manifest = run_step(Noted, UpperParams(input_uri=uri), str(out))
    (beside / "NOTES.txt").write_text("not ours")
    delete = storage.delete_file

    def stop_in_the_companion(loc):
        if loc.path.startswith(str(beside)) and loc.name.startswith("part-00001"):
            raise KeyboardInterrupt("killed while removing the companion")
        return delete(loc)

    monkeypatch.setattr(storage, "delete_file", stop_in_the_companion)
    with pytest.raises(KeyboardInterrupt):
        retention.remove_committed(storage.resolve(str(out)))
    monkeypatch.setattr(storage, "delete_file", delete)
    # Both uncommitted, each with the list of what it still has to remove.
    assert not (out / "_manifest.json").exists() and not (beside / "_manifest.json").exists()
    marker = json.loads((beside / dataset.REMOVING_NAME).read_text())
    assert marker["companion"] == "notes"

    assert retention.remove_committed(storage.resolve(str(out))) == len(manifest["files"])
    assert not out.exists()
    assert sorted(p.name for p in beside.rglob("*")) == ["NOTES.txt"]  # not ours: stays
