"""Which part files are ours: a tokenized shard's ``.bin`` and ``.idx`` only where a mark
of ours names them, never a user's ``part-00000.bin`` beside our Parquet parts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pytest

from tasks.errors import OutputConflictError
from tasks.nightly import retention
from tasks.store import dataset, storage
from tasks.store.dataset import FileEntry
from tasks.store.part_files import write_part

SCHEMA = pa.schema([("id", pa.int64())])
SHARD = ("bin", "idx")


def _parquet_dataset(root: Path) -> storage.Location:
    loc = storage.resolve(str(root))
    leftovers = dataset.prepare_output(loc)
    entries = [write_part(loc, 0, [pa.table({"id": [1, 2]}, schema=SCHEMA)], SCHEMA)]
    dataset.commit(loc, dataset.build_manifest(entries, SCHEMA), leftovers)
    return loc


def _tokenized_dataset(root: Path, shards: int = 2) -> storage.Location:
    """A dataset committed as the tokenize step commits one: .bin and .idx parts, the
    suffixes named in its marker and manifest."""
    loc = storage.resolve(str(root))
    leftovers = dataset.prepare_output(loc, suffixes=SHARD)
    entries = []
    for index in range(shards):
        for suffix in SHARD:
            name = dataset.part_name(index, suffix)
            (root / name).write_bytes(b"tokens" * (index + 1))
            entries.append(
                FileEntry(name, 3 if suffix == "bin" else 0, (root / name).stat().st_size)
            )
    manifest = dataset.build_manifest(entries, SCHEMA, part_suffixes=list(SHARD))
    dataset.commit(loc, manifest, leftovers)
    return loc


def test_a_users_bin_in_our_parquet_dataset_is_refused_and_kept(tmp_path: Path) -> None:
    root = _parquet_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "part-00000.bin").write_bytes(b"the user's own tokens")
    (tmp_path / "ds" / f"part-00001.idx.tmp-{'0' * 32}").write_bytes(b"theirs too")
    with pytest.raises(OutputConflictError, match=r"2 file\(s\).*part-00000\.bin"):
        dataset.prepare_output(root)
    assert (tmp_path / "ds" / "part-00000.bin").read_bytes() == b"the user's own tokens"
    # Nothing was touched: still committed.
    assert (tmp_path / "ds" / dataset.MANIFEST_NAME).exists()


def test_a_users_bin_beside_a_crashed_parquet_write_is_refused(tmp_path: Path) -> None:
    root = storage.resolve(str(tmp_path))
    dataset.prepare_output(root)  # a Parquet write that crashed: its marker only
    (tmp_path / "part-00000.bin").write_bytes(b"theirs")
    with pytest.raises(OutputConflictError, match=r"part-00000\.bin"):
        dataset.prepare_output(root, suffixes=SHARD)  # even a tokenize rerun refuses
    assert (tmp_path / "part-00000.bin").read_bytes() == b"theirs"


def test_a_crashed_tokenize_write_leaves_shards_its_rerun_replaces(tmp_path: Path) -> None:
    root = storage.resolve(str(tmp_path))
    dataset.prepare_output(root, suffixes=SHARD)
    for name in ("part-00000.bin", "part-00000.idx", f"part-00001.bin.tmp-{'a' * 32}"):
        (tmp_path / name).write_bytes(b"half")
    # A Parquet step over the same place takes them as ours, by the marker.
    leftovers = dataset.prepare_output(root)
    assert sorted(leftovers) == sorted(
        ["part-00000.bin", "part-00000.idx", f"part-00001.bin.tmp-{'a' * 32}"]
    )
    assert json.loads((tmp_path / dataset.WRITING_NAME).read_text())["part_suffixes"] == [
        "parquet",
        *SHARD,
    ]
    entries = [write_part(root, 0, [pa.table({"id": [7]}, schema=SCHEMA)], SCHEMA)]
    dataset.commit(root, dataset.build_manifest(entries, SCHEMA), leftovers)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        dataset.MANIFEST_NAME,
        "part-00000.parquet",
    ]


def test_retention_removes_a_tokenized_datasets_shards(tmp_path: Path) -> None:
    root = _tokenized_dataset(tmp_path / "dt=2026-12-01")
    assert retention.remove_committed(root) == 4
    assert not (tmp_path / "dt=2026-12-01").exists()


def test_retention_finishes_a_tokenized_removal_stopped_between_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tokenized_dataset(tmp_path / "dt=2026-12-01")
    real_delete = storage.delete_file

    def delete_then_stop(loc: storage.Location) -> None:
        real_delete(loc)
        if loc.name != dataset.MANIFEST_NAME:
            raise ConnectionResetError("stopped half way")

    with monkeypatch.context() as patch:
        patch.setattr(storage, "delete_file", delete_then_stop)
        with pytest.raises(ConnectionResetError):
            retention.remove_committed(root)
    left = sorted(p.name for p in (tmp_path / "dt=2026-12-01").iterdir())
    assert dataset.MANIFEST_NAME not in left and "part-00001.idx" in left
    assert retention.remove_committed(root) == 4
    assert not (tmp_path / "dt=2026-12-01").exists()


def test_retention_refuses_a_parquet_manifest_that_lists_a_bin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A manifest naming no shard suffixes may not make retention delete a ``.bin``."""
    root = _parquet_dataset(tmp_path / "dt=2026-12-01")
    (tmp_path / "dt=2026-12-01" / "part-00000.bin").write_bytes(b"the user's")
    manifest_path = tmp_path / "dt=2026-12-01" / dataset.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["files"].append({"path": "part-00000.bin", "num_rows": 0, "size_bytes": 10})
    manifest_path.write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        assert retention.remove_committed(root) is None
    assert "part-00000.bin" in caplog.text
    assert (tmp_path / "dt=2026-12-01" / "part-00000.bin").read_bytes() == b"the user's"
    assert manifest_path.exists()


def test_retention_keeps_a_users_bin_beside_our_parquet_dataset(tmp_path: Path) -> None:
    root = _parquet_dataset(tmp_path / "dt=2026-12-01")
    (tmp_path / "dt=2026-12-01" / "part-00003.bin").write_bytes(b"the user's")
    assert retention.remove_committed(root) == 1
    assert sorted(p.name for p in (tmp_path / "dt=2026-12-01").iterdir()) == ["part-00003.bin"]


def test_a_forged_suffix_is_not_ours(tmp_path: Path) -> None:
    """A marker naming a suffix we never write claims nothing."""
    root = storage.resolve(str(tmp_path))
    dataset.prepare_output(root)
    marker = tmp_path / dataset.WRITING_NAME
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "part_suffixes": ["csv"]}))
    (tmp_path / "part-00000.csv").write_text("theirs")
    with pytest.raises(OutputConflictError, match=r"part-00000\.csv"):
        dataset.prepare_output(root)


def test_a_users_parquet_in_our_tokenized_dataset_is_refused_and_kept(tmp_path: Path) -> None:
    root = _tokenized_dataset(tmp_path / "dt=2026-12-01")
    theirs = tmp_path / "dt=2026-12-01" / "part-00007.parquet"
    theirs.write_bytes(b"the user's rows")
    with pytest.raises(OutputConflictError, match=r"part-00007\.parquet"):
        dataset.prepare_output(root, suffixes=SHARD)
    assert retention.remove_committed(root) == 4  # the shards go, theirs stays
    assert theirs.read_bytes() == b"the user's rows"
    assert sorted(p.name for p in theirs.parent.iterdir()) == ["part-00007.parquet"]


def test_a_manifest_we_did_not_write_claims_nothing(tmp_path: Path) -> None:
    """A _manifest.json of our version but not our writer (someone else's tool, or a
    forgery) does not make the shards beside it ours."""
    (tmp_path / dataset.MANIFEST_NAME).write_text(
        json.dumps(
            {"manifest_version": 1, "num_rows": 0, "files": [], "part_suffixes": list(SHARD)}
        )
    )
    for name in ("part-00000.bin", "part-00000.idx"):
        (tmp_path / name).write_bytes(b"theirs")
    with pytest.raises(OutputConflictError, match=r"part-00000\.bin"):
        dataset.prepare_output(storage.resolve(str(tmp_path)), suffixes=SHARD)
    assert (tmp_path / "part-00000.bin").read_bytes() == b"theirs"
