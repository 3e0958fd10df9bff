"""Manifests, commits and the output-location rules, on local storage."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.errors import InputError, OutputConflictError
from tasks.store import dataset, storage
from tasks.store.part_files import write_part
from tests.helpers import assert_committed

SCHEMA = pa.schema([("id", pa.int64()), ("text", pa.string())])


def table(n, start=0):
    return pa.table({"id": list(range(start, start + n)), "text": ["x"] * n}, schema=SCHEMA)


def test_write_part_and_commit_round_trip(tmp_path):
    root = storage.resolve(str(tmp_path / "ds"))
    leftovers = dataset.prepare_output(root)
    entries = [write_part(root, i, [table(5, 5 * i)], SCHEMA) for i in range(3)]
    manifest = dataset.build_manifest(entries, SCHEMA, stage="test")
    dataset.commit(root, manifest, leftovers)
    assert assert_committed(tmp_path / "ds")["num_rows"] == 15
    assert dataset.read_dataset(root.uri)["id"].to_pylist() == list(range(15))


def test_part_names_are_deterministic_so_rewrites_overwrite(tmp_path):
    root = storage.resolve(str(tmp_path))
    write_part(root, 0, [table(3)], SCHEMA)
    write_part(root, 0, [table(4)], SCHEMA)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000.parquet"]
    assert pq.read_table(tmp_path / "part-00000.parquet").num_rows == 4


def test_write_part_groups_small_batches_into_row_groups(tmp_path):
    root = storage.resolve(str(tmp_path))
    write_part(root, 0, [table(10, 10 * i) for i in range(50)], SCHEMA)
    meta = pq.ParquetFile(tmp_path / "part-00000.parquet").metadata
    assert meta.num_row_groups == 1 and meta.num_rows == 500


def test_rerun_removes_stale_parts_and_uncommits_first(tmp_path):
    root = storage.resolve(str(tmp_path))
    schema = SCHEMA
    first = [write_part(root, i, [table(2)], schema) for i in range(3)]
    dataset.commit(root, dataset.build_manifest(first, schema), [])
    leftovers = dataset.prepare_output(root)
    assert not (tmp_path / "_manifest.json").exists()
    second = [write_part(root, 0, [table(6)], schema)]
    dataset.commit(root, dataset.build_manifest(second, schema), leftovers)
    assert [f["path"] for f in assert_committed(tmp_path)["files"]] == ["part-00000.parquet"]


def test_foreign_files_are_refused_and_kept(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    root = storage.resolve(str(tmp_path))
    with pytest.raises(
        OutputConflictError, match=r"holds 1 file\(s\) this pipeline did not write \(notes.txt\)"
    ):
        dataset.prepare_output(root)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_our_file_names_without_our_mark_are_foreign(tmp_path):
    (tmp_path / "part-00000.parquet").write_bytes(b"someone else's file with our kind of name")
    with pytest.raises(OutputConflictError, match=r"part-00000\.parquet"):
        dataset.prepare_output(storage.resolve(str(tmp_path)))
    assert (tmp_path / "part-00000.parquet").read_bytes().startswith(b"someone else")


def test_leftovers_of_an_unfinished_write_of_ours_are_replaced(tmp_path):
    root = storage.resolve(str(tmp_path))
    dataset.prepare_output(root)  # leaves the marker, as a crashed run would
    write_part(root, 0, [table(3)], SCHEMA)
    write_part(root, 1, [table(3)], SCHEMA)
    leftovers = dataset.prepare_output(root)
    assert sorted(leftovers) == ["part-00000.parquet", "part-00001.parquet"]
    entries = [write_part(root, 0, [table(5)], SCHEMA)]
    dataset.commit(root, dataset.build_manifest(entries, SCHEMA), leftovers)
    assert [f["path"] for f in assert_committed(tmp_path)["files"]] == ["part-00000.parquet"]
    assert not (tmp_path / "_writing.json").exists()


def test_commit_never_deletes_unlisted_foreign_names(tmp_path):
    root = storage.resolve(str(tmp_path))
    (tmp_path / "keep.csv").write_text("x")
    dataset.commit(root, dataset.build_manifest([], SCHEMA), ["keep.csv"])
    assert (tmp_path / "keep.csv").exists()


@pytest.mark.parametrize(
    ("inp", "out", "message"),
    [
        ("a", "a", "is equal to or inside input_uri"),
        ("a", "a/b", "is equal to or inside input_uri"),
        ("a/b", "a", "is inside output_uri"),
    ],
)
def test_output_must_not_overlap_input(tmp_path, inp, out, message):
    with pytest.raises(InputError, match=message):
        dataset.check_disjoint(
            storage.resolve(str(tmp_path / inp)), storage.resolve(str(tmp_path / out))
        )


def test_siblings_with_a_common_prefix_do_not_overlap(tmp_path):
    dataset.check_disjoint(
        storage.resolve(str(tmp_path / "raw")), storage.resolve(str(tmp_path / "raw2"))
    )


def test_read_dataset_requires_a_manifest(tmp_path):
    with pytest.raises(InputError, match=r"has no _manifest\.json"):
        dataset.read_dataset(str(tmp_path))


def test_invalid_manifest_is_named(tmp_path):
    (tmp_path / "_manifest.json").write_text(json.dumps({"files": [{"path": "x"}], "num_rows": 1}))
    with pytest.raises(InputError, match="not a valid manifest"):
        dataset.read_manifest(storage.resolve(str(tmp_path)))


def test_uris_resolve_to_absolute_locations(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.resolve("data/x").uri == f"file://{tmp_path}/data/x"
    assert storage.resolve(f"file://{tmp_path}/y").path == f"{tmp_path}/y"
    assert storage.resolve("s3://bucket/a/b/").path == "bucket/a/b"
    with pytest.raises(InputError, match="unsupported scheme 'gs'"):
        storage.resolve("gs://bucket/x")
    with pytest.raises(InputError, match="needs a bucket name"):
        storage.resolve("s3:///x")
    with pytest.raises(InputError, match="must not hold credentials") as refused:
        storage.resolve("s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/x")
    assert "wJalrXUtnFEMI" not in str(refused.value)  # the error reaches logs and alerts
