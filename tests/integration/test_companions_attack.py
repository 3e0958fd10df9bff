"""Companions attacked: odd output locations, a companion location that is another
dataset or the input, kills at each point of a run followed by a rerun and retention,
tampered manifests, a step that writes what it may not, and readers pointed at the
parent of a dataset and its companion.

Tests marked ``# Was a defect:`` failed against the first version of companions, for
the reason given; they pass since its fix. The others are attacks it defended from the
start.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import ClassVar

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import ray

from tasks.errors import InputError, OutputConflictError
from tasks.nightly import retention
from tasks.steps import skeleton
from tasks.steps.dedup import against
from tasks.steps.dedup import minhash as dedup
from tasks.steps.filter.options import FilterOptions
from tasks.steps.filter.step import Filter, FilterParams
from tasks.steps.generate.step import Generate, GenerateParams
from tasks.steps.skeleton import PartResult, Plan, check_written, run_step
from tasks.store import dataset, part_files, storage
from tasks.store.dataset import FileEntry, read_dataset
from tasks.store.storage import Location
from tests.helpers import assert_committed, commit_old_layout, companion_path, tree_digest
from tests.integration.test_s3 import aws_env, client, unique  # noqa: F401
from tests.toy_step import Noted, NotedPart, Upper, UpperParams

pytestmark = pytest.mark.usefixtures("ray_cluster")
DAY = "2026-03-01"


def source(tmp_path: Path, name: str = "in", rows: int = 40, files: int = 2) -> str:
    uri = f"file://{tmp_path}/{name}"
    run_step(Generate, GenerateParams(num_rows=rows, num_files=files, text_length=20), uri)
    return uri


def resolve(path: Path | str) -> Location:
    return storage.resolve(str(path))


def ours(root: Path) -> list[str]:
    """The files left under ``root`` (relative), none if it is gone."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


class Killed(BaseException):
    """A kill (not an Exception: nothing in the code under test catches it)."""


# --- where a companion goes -------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("file:///t/out/", "/t/out-notes"),  # trailing slash
        ("/t/x/a=1/b=2", "/t/x-notes/a=1/b=2"),  # nested partitions that are not dates
        ("/t/out-notes", "/t/out-notes-notes"),  # a name ending with the suffix already
        ("/t/out/dt=2026-03-01/", "/t/out-notes/dt=2026-03-01"),
    ],
)
def test_the_companion_of_an_odd_local_output_lies_beside_it(output, expected):
    where = dataset.companion(resolve(output), "notes")
    assert where.path == expected
    assert not where.contains(resolve(output)) and not resolve(output).contains(where)


@pytest.mark.parametrize("output", ["/", "/dt=2026-03-01", "file:///a=1/b=2/"])
def test_a_companion_of_a_filesystem_root_is_refused(output):
    with pytest.raises(InputError, match="folder of its own"):
        dataset.companion(resolve(output), "notes")


@pytest.mark.parametrize("name", ["../x", "rejected/../../etc", "Notes", "", "a-b", "/etc"])
def test_a_companion_name_that_is_not_a_word_is_refused(name):
    with pytest.raises(ValueError):
        dataset.companion(resolve("/t/out"), name)


# --- a companion location that is the input, or another dataset -------------------


@pytest.mark.parametrize(
    ("input_at", "output_at"),
    [
        ("out-rejected", "out"),  # the companion location is the input
        ("out-rejected", f"out/dt={DAY}"),  # the input holds the companion location
    ],
)
def test_a_filter_whose_rejected_rows_would_go_into_its_input_is_refused(
    tmp_path, input_at, output_at
):
    # Was a defect: check_disjoint (reading.open_inputs) checks the input against the output
    # only; the companion location is prepared (uncommitted) and written over the input.
    day = f"/dt={DAY}" if "dt=" in output_at else ""
    run_step(
        Generate,
        GenerateParams(num_rows=40, num_files=2, text_length=200),
        f"{tmp_path}/{input_at}{day}",
    )
    before = tree_digest(tmp_path)
    params = FilterParams(input_uri=str(tmp_path / input_at), filters=FilterOptions(language=None))
    with pytest.raises((InputError, OutputConflictError)):
        run_step(Filter, params, str(tmp_path / output_at))
    assert tree_digest(tmp_path) == before  # the input as it was


def test_a_filter_whose_input_lies_inside_its_companion_location_is_refused(tmp_path):
    run_step(
        Generate,
        GenerateParams(num_rows=40, num_files=2, text_length=200),
        f"{tmp_path}/out-rejected/sub",
    )
    before = tree_digest(tmp_path)
    params = FilterParams(
        input_uri=str(tmp_path / "out-rejected" / "sub"), filters=FilterOptions(language=None)
    )
    with pytest.raises((InputError, OutputConflictError)):
        run_step(Filter, params, str(tmp_path / "out"))
    assert tree_digest(tmp_path) == before


def test_a_step_with_companions_does_not_overwrite_a_dataset_at_its_companion_location(
    tmp_path,
):
    # Was a defect: check_output/prepare_output (dataset.py _ours_at) accept any committed
    # dataset of ours at the companion location, so a user's own dataset named
    # "<out>-notes" (or "filtered-rejected") is silently uncommitted and replaced.
    uri = source(tmp_path)
    theirs = tmp_path / "out-notes"
    run_step(Upper, UpperParams(input_uri=uri), str(theirs))  # a dataset in its own right
    before = tree_digest(theirs)
    with pytest.raises(OutputConflictError, match="out-notes"):
        run_step(Noted, UpperParams(input_uri=uri), str(tmp_path / "out"))
    assert tree_digest(theirs) == before


def test_writing_a_companion_location_as_an_output_is_refused(tmp_path):
    # Was a defect: prepare_output takes over a committed companion (manifest with
    # `companion`/`companion_of`) as a plain output: the pair's companion is replaced.
    uri = source(tmp_path)
    out = tmp_path / "out"
    run_step(Noted, UpperParams(input_uri=uri), str(out))
    with pytest.raises(OutputConflictError, match="out-notes"):
        run_step(Upper, UpperParams(input_uri=uri), str(companion_path(out, "notes")))
    assert_committed(out)  # the pair as it was


class Interleaved(Noted):
    """Noted, with a second run writing its companion location as that run's own output
    while this one writes (the flows lease the output URI only, not the companion's)."""

    name = "interleaved"
    second: ClassVar[dict] = {}

    def plan(self) -> Plan[None]:
        try:
            self.second["manifest"] = run_step(Upper, self.params, self.run.companion("notes").uri)
        except (OutputConflictError, InputError) as exc:
            self.second["refused"] = exc
        return super().plan()


def test_a_second_run_writing_the_companion_location_meanwhile_is_refused(tmp_path):
    # Was a defect: a companion's _writing.json does not say it is a companion; the second run
    # takes it over, commits, and the first then overwrites its parts and manifest: both
    # runs succeed, and the second's committed dataset is gone without a word.
    uri = source(tmp_path)
    out = tmp_path / "out"
    Interleaved.second = {}
    run_step(Interleaved, UpperParams(input_uri=uri), str(out))
    assert_committed(out)
    assert "refused" in Interleaved.second, "the second run committed into a companion"


# --- kills, reruns, retention -------------------------------------------------------


def _kill_at_companion_removal(monkeypatch, out: Path) -> None:
    def killed(root, logger=None):
        raise Killed("killed before the old companion is removed")

    monkeypatch.setattr(skeleton.retention, "remove_committed", killed)


def _kill_inside_companion_removal(monkeypatch, out: Path) -> None:
    beside = companion_path(out, "notes")
    delete = storage.delete_file

    def killed(loc):
        if loc.path.startswith(str(beside)) and loc.name == "part-00001.parquet":
            raise Killed("killed while removing the old companion")
        return delete(loc)

    monkeypatch.setattr(storage, "delete_file", killed)


@pytest.mark.parametrize(
    "kill", [_kill_at_companion_removal, _kill_inside_companion_removal], ids=["before", "inside"]
)
def test_a_kill_while_a_step_without_companions_replaces_one_leaves_no_orphan(
    tmp_path, monkeypatch, kill
):
    # Was a defect: prepare_output uncommits the old manifest (which named the companion) and
    # its _writing.json does not carry `companions`: the rerun's Leftovers.companions is
    # empty, so the old companion (committed, or half removed) is never removed, and
    # retention of the new dataset does not name it either.
    uri = source(tmp_path)
    out = tmp_path / "out"
    beside = companion_path(out, "notes")
    run_step(Noted, UpperParams(input_uri=uri), str(out))
    with monkeypatch.context() as patch:
        kill(patch, out)
        with pytest.raises(Killed):
            run_step(Upper, UpperParams(input_uri=uri), str(out))
    assert not (out / "_manifest.json").exists()
    run_step(Upper, UpperParams(input_uri=uri), str(out))
    assert_committed(out)
    assert ours(beside) == [], "the old companion stays, named by nothing"


def test_a_kill_after_the_companion_commit_then_another_step_leaves_no_orphan(
    tmp_path, monkeypatch
):
    # Was a defect: same cause: the killed run's _writing.json does not name the companion it
    # committed, so the next step without companions leaves it committed beside it.
    uri = source(tmp_path)
    out = tmp_path / "out"
    commit = dataset.commit

    def stop_at_the_output(root, *args, **kwargs):
        if root.path == str(out):
            raise Killed("killed between the two commits")
        return commit(root, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(dataset, "commit", stop_at_the_output)
        with pytest.raises(Killed):
            run_step(Noted, UpperParams(input_uri=uri), str(out))
    assert (companion_path(out, "notes") / "_manifest.json").exists()
    run_step(Upper, UpperParams(input_uri=uri), str(out))
    assert_committed(out)
    assert ours(companion_path(out, "notes")) == []


def test_a_step_without_companions_leaves_a_dataset_that_is_not_a_companion_beside_it(
    tmp_path,
):
    # Was a defect: run_step removes the companions an older dataset named with
    # retention.remove_committed, which (unlike retention._remove_companion) does not
    # check that what is there says it is that companion: a dataset of its own at
    # "<out>-notes" (written there since, as the test above allows) is deleted.
    uri = source(tmp_path)
    out = tmp_path / "out"
    beside = companion_path(out, "notes")
    run_step(Noted, UpperParams(input_uri=uri), str(out))
    document = json.loads((beside / "_manifest.json").read_text())
    del document["companion"], document["companion_of"]
    (beside / "_manifest.json").write_text(json.dumps(document))  # not a companion
    before = tree_digest(beside)
    run_step(Upper, UpperParams(input_uri=uri), str(out))
    assert tree_digest(beside) == before


def _old_layout(tmp_path: Path, uri: str) -> Path:
    """A dataset as committed before companions: its rejected rows in ``_rejected/``."""
    return commit_old_layout(tmp_path / "out", read_dataset(uri))


def test_a_kill_while_taking_over_an_older_layout_is_finished_by_the_rerun(tmp_path, monkeypatch):
    # Was a defect: prepare_output deletes the old manifest, the only record of `_rejected`
    # as a side folder of ours, and its _writing.json lists the new step's staging
    # folders only: the rerun calls `_rejected/part-00000.parquet` foreign and refuses.
    uri = source(tmp_path)
    out = _old_layout(tmp_path, uri)
    with monkeypatch.context() as patch:

        def killed(self):
            raise Killed("killed after the output was uncommitted")

        patch.setattr(Noted, "plan", killed)
        with pytest.raises(Killed):
            run_step(Noted, UpperParams(input_uri=uri), str(out))
    run_step(Noted, UpperParams(input_uri=uri), str(out))
    assert not (out / "_rejected").exists()
    assert_committed(out)


def test_a_kill_between_preparing_the_output_and_the_companion(tmp_path, monkeypatch):
    uri = source(tmp_path)
    out = tmp_path / "noted" / f"dt={DAY}"
    beside = companion_path(out, "notes")
    first = run_step(Noted, UpperParams(input_uri=uri), str(out))
    prepare = dataset.prepare_output

    def killed(root, *args, **kwargs):
        if root.path == str(beside):
            raise Killed("killed between the two prepares")
        return prepare(root, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(dataset, "prepare_output", killed)
        with pytest.raises(Killed):
            run_step(Noted, UpperParams(input_uri=uri), str(out))
    before = tree_digest(tmp_path)
    assert retention.remove_committed(resolve(out)) is None  # uncommitted: left
    assert tree_digest(tmp_path) == before
    again = run_step(Noted, UpperParams(input_uri=uri), str(out))
    assert assert_committed(out)["files"] == first["files"]
    assert again["companions"]["notes"]["uri"] == f"file://{beside}"
    assert retention.remove_committed(resolve(out)) == len(first["files"])
    assert not out.exists() and ours(beside) == []


# --- tampered manifests and what retention finds at the companion -------------------


def _rewrite(path: Path, **changes) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def test_retention_ignores_companion_names_that_are_paths(tmp_path):
    uri = source(tmp_path)
    out = tmp_path / "noted" / f"dt={DAY}"
    run_step(Noted, UpperParams(input_uri=uri), str(out))
    victims = [tmp_path / "x" / "part-00000.parquet", tmp_path / "etc" / "part-00000.parquet"]
    for victim in victims:
        victim.parent.mkdir(parents=True)
        victim.write_bytes(b"not to be removed")
    (tmp_path / "x" / "_manifest.json").write_text("{}")
    manifest = json.loads((out / "_manifest.json").read_text())
    manifest["companions"] |= {
        "../x": {},
        "rejected/../../etc": {},
        "../../../x": {},
        "/etc": {},
    }
    (out / "_manifest.json").write_text(json.dumps(manifest))
    assert retention.remove_committed(resolve(out)) == len(manifest["files"])
    assert not out.exists() and ours(companion_path(out, "notes")) == []
    assert all(victim.exists() for victim in victims)


@pytest.mark.parametrize("what", ["other companion", "primary dataset"])
def test_retention_leaves_a_companion_location_that_is_not_this_companion(tmp_path, what):
    uri = source(tmp_path)
    out = tmp_path / "noted" / f"dt={DAY}"
    beside = companion_path(out, "notes")
    manifest = run_step(Noted, UpperParams(input_uri=uri), str(out))
    if what == "other companion":
        _rewrite(beside / "_manifest.json", companion="rejected")
    elif what == "primary dataset":
        document = json.loads((beside / "_manifest.json").read_text())
        del document["companion"], document["companion_of"]
        (beside / "_manifest.json").write_text(json.dumps(document))
    before = tree_digest(beside)
    assert retention.remove_committed(resolve(out)) == len(manifest["files"])
    assert not out.exists()
    assert tree_digest(beside) == before


def test_retention_removes_a_companion_a_killed_write_left_uncommitted(tmp_path):
    """Its write marker names it as this companion: its part-named files are ours."""
    uri = source(tmp_path)
    out = tmp_path / "noted" / f"dt={DAY}"
    beside = companion_path(out, "notes")
    manifest = run_step(Noted, UpperParams(input_uri=uri), str(out))
    document = json.loads((beside / "_manifest.json").read_text())
    (beside / "_manifest.json").unlink()
    marker = {"writer": dataset.WRITER, "side_folders": []}
    marker |= {"companion": "notes", "companion_of": document["companion_of"]}
    (beside / dataset.WRITING_NAME).write_text(json.dumps(marker))
    (beside / "README.md").write_text("a user's")
    assert retention.remove_committed(resolve(out)) == len(manifest["files"])
    assert not out.exists()
    assert ours(beside) == ["README.md"]


def test_retention_of_a_companion_with_foreign_files_removes_only_ours(tmp_path):
    uri = source(tmp_path)
    out = tmp_path / "noted" / f"dt={DAY}"
    beside = companion_path(out, "notes")
    run_step(Noted, UpperParams(input_uri=uri), str(out))
    (beside / "README.md").write_text("a user's")
    (beside / "sub").mkdir()
    (beside / "sub" / "part-00000.parquet").write_bytes(b"a user's part-named file")
    retention.remove_committed(resolve(out))
    assert ours(beside) == ["README.md", "sub/part-00000.parquet"]


# --- reuse, nested partitions -------------------------------------------------------


def test_nested_partitions_and_an_output_reused_by_steps_with_and_without(tmp_path):
    uri = source(tmp_path)
    inner = tmp_path / "x" / "a=1" / "b=2"
    beside = tmp_path / "x-notes" / "a=1" / "b=2"
    run_step(Noted, UpperParams(input_uri=uri), str(inner) + "/")
    assert companion_path(inner, "notes") == beside
    assert_committed(inner)
    before = tree_digest(tmp_path / "x") | tree_digest(tmp_path / "x-notes")
    with pytest.raises(OutputConflictError):  # the outer partition holds the inner pair
        run_step(Noted, UpperParams(input_uri=uri), str(tmp_path / "x" / "a=1"))
    assert tree_digest(tmp_path / "x") | tree_digest(tmp_path / "x-notes") == before
    run_step(Upper, UpperParams(input_uri=uri), str(inner))
    assert ours(beside) == []
    run_step(Noted, UpperParams(input_uri=uri), str(inner))
    assert_committed(inner)
    assert read_dataset(str(beside)).num_rows == 40


# --- what a step may write ----------------------------------------------------------


def _written(tmp_path: Path) -> tuple[Location, list[FileEntry]]:
    root = tmp_path / "w"
    root.mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), root / "part-00000.parquet")
    size = (root / "part-00000.parquet").stat().st_size
    return resolve(root), [FileEntry("part-00000.parquet", 2, size)]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (FileEntry("../part-00000.parquet", 2, 0), "named parts it may not write"),
        (FileEntry("/etc/part-00000.parquet", 2, 0), "named parts it may not write"),
        (FileEntry("sub/part-00000.parquet", 2, 0), "named parts it may not write"),
        (FileEntry("part-00000.parquet", 2, 1), "missing or not the size"),
        (FileEntry("part-00001.parquet", 2, 1), "missing or not the size"),
        (FileEntry("_manifest.json", 2, 1), "named parts it may not write"),
    ],
)
def test_check_written_refuses_what_a_step_may_not_commit(tmp_path, entry, message):
    root, good = _written(tmp_path)
    with pytest.raises(RuntimeError, match=message):
        check_written("attack", root, [entry], [])
    with pytest.raises(RuntimeError):  # the same part twice
        check_written("attack", root, good + good, [])
    check_written("attack", root, good, [])  # what it wrote, as it says: accepted


@dataclasses.dataclass(frozen=True)
class ExtraPart(NotedPart):
    extra: Location


class Unreported(Noted):
    """A step with a bug: it writes a companion part but reports none."""

    name = "unreported"

    @staticmethod
    def write_part(spec: NotedPart) -> PartResult:
        return dataclasses.replace(Noted.write_part(spec), companions={})


class Undeclared(Noted):
    """A step with a bug: its parts report a companion it does not declare."""

    name = "undeclared"

    def plan(self) -> Plan[None]:
        plan = super().plan()
        extra = self.run.companion("extra")
        specs = [ExtraPart(*vars(s).values(), extra) for s in plan.specs]
        return dataclasses.replace(plan, specs=specs)

    @staticmethod
    def write_part(spec: ExtraPart) -> PartResult:
        result = Noted.write_part(spec)
        table = pq.read_table(spec.source.path, filesystem=spec.source.fs)
        storage.make_dirs(spec.extra)
        entry = part_files.write_part(spec.extra, spec.index, [table], table.schema)
        return dataclasses.replace(result, companions={**result.companions, "extra": entry})


def test_a_companion_part_the_step_does_not_report_commits_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match=r"part-00000\.parquet is not one of its parts"):
        run_step(Unreported, UpperParams(input_uri=source(tmp_path)), str(out))
    assert not (out / "_manifest.json").exists()
    assert not (companion_path(out, "notes") / "_manifest.json").exists()


def test_a_companion_the_step_does_not_declare_commits_nothing(tmp_path):
    # Was a defect: run_step only looks at `step.companions`; a part's PartResult.companions
    # entry for an undeclared name is dropped, and its files beside the output stay,
    # unchecked and uncommitted, while the output commits.
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="extra"):
        run_step(Undeclared, UpperParams(input_uri=source(tmp_path)), str(out))
    assert not (out / "_manifest.json").exists()


# --- against --------------------------------------------------------------------------


def _against_manifest(root: Path, **dedup_stats) -> None:
    root.mkdir(parents=True)
    document = dataset.build_manifest(
        [], pa.schema([]), stage="dedup", dedup={"sketch": dedup.SKETCH, **dedup_stats}
    )
    (root / "_manifest.json").write_text(json.dumps(document))


@pytest.mark.parametrize(
    "index", [["../victim/part-00000.parquet"], ["/etc/passwd"], "_dedup/index"]
)
def test_against_refuses_an_older_layout_index_outside_its_dataset(tmp_path, index):
    root = tmp_path / "old" / f"dt={DAY}"
    _against_manifest(root, index=index)
    with pytest.raises(InputError):
        against.index_files(str(root), None, {})


@pytest.mark.parametrize(
    "recorded", [{}, "x", {"manifest_sha256": "0" * 64}, {"manifest_sha256": None}]
)
def test_against_refuses_a_recorded_index_without_a_digest_or_a_foreign_one(tmp_path, recorded):
    # Was a defect (the None case): against._companion_index compares manifest_fingerprint
    # (None for a missing index) with the recorded digest (None): they match, and the
    # `assert index is not None` raises AssertionError, which resolve_against does not
    # catch: one malformed earlier partition fails a whole against_earlier run.
    root = tmp_path / "new" / f"dt={DAY}"
    _against_manifest(root)
    _rewrite(root / "_manifest.json", companions={"index": recorded})
    with pytest.raises(InputError):
        against.index_files(str(root), None, {})


# --- readers pointed at the parent of a dataset and its companion ------------------


def test_readers_pointed_at_the_parent_read_the_companion_too(tmp_path):
    """Documented hazard, not a defect: a reader given the folder that holds both
    ``noted/`` and ``noted-notes/`` reads the companion's rows as rows (here each row
    twice). The layout promises exact rows only to a reader pointed at the dataset;
    before companions, pyarrow skipped ``_rejected/`` at any depth, now it does not."""
    base = tmp_path / "bucket"
    shutil.rmtree(base, ignore_errors=True)
    manifest = run_step(Noted, UpperParams(input_uri=source(tmp_path)), f"{base}/noted/dt={DAY}")
    ids = sorted(read_dataset(f"{base}/noted/dt={DAY}")["id"].to_pylist())
    assert len(ids) == manifest["num_rows"] == 40
    glob = f"{base}/**/*.parquet"
    seen = {
        "ray": sorted(row["id"] for row in ray.data.read_parquet(str(base)).take_all()),
        "pyarrow": sorted(
            ds.dataset(base, format="parquet", partitioning="hive").to_table()["id"].to_pylist()
        ),
        "polars": sorted(pl.scan_parquet(glob).select("id").collect()["id"].to_list()),
        "duckdb": sorted(r[0] for r in duckdb.sql(f"select id from '{glob}'").fetchall()),
    }
    for reader, found in seen.items():
        assert found == sorted(ids + ids), reader


# --- S3 ---------------------------------------------------------------------------------


def _keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_on_s3_a_bucket_root_is_refused_and_a_pair_is_rerun_and_removed_whole(
    aws_env,  # noqa: F811
    tmp_path,
    caplog,
):
    s3 = client()
    bucket = unique("companions")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    uri = source(tmp_path)
    for root in (f"s3://{bucket}", f"s3://{bucket}/", f"s3://{bucket}/dt={DAY}"):
        with pytest.raises(InputError, match="folder of its own"):
            run_step(Noted, UpperParams(input_uri=uri), root)
    assert _keys(s3, bucket) == []
    out = f"s3://{bucket}/noted/dt={DAY}/"
    first = run_step(Noted, UpperParams(input_uri=uri), out)
    assert first["companions"]["notes"]["uri"] == f"s3://{bucket}/noted-notes/dt={DAY}"
    keys = _keys(s3, bucket)
    run_step(Noted, UpperParams(input_uri=uri), out)  # `noted` never lists `noted-notes`
    assert _keys(s3, bucket) == keys
    s3.put_object(Bucket=bucket, Key=f"noted-notes/dt={DAY}/NOTES.txt", Body=b"a user's")
    with caplog.at_level(logging.INFO):
        assert retention.remove_committed(storage.resolve(out)) == len(first["files"])
    assert _keys(s3, bucket) == [f"noted-notes/dt={DAY}/NOTES.txt"]
