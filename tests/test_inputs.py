"""Finding and reading inputs; every error names the file (and line, for JSON)."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks import inputs
from tasks.errors import InputError
from tasks.preprocess import plan_parts
from tests.helpers import write_jsonl


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match=f"input file://{tmp_path}/nope does not exist"):
        inputs.discover(str(tmp_path / "nope"))


def test_directory_without_input_files(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=r"no parquet input files .* \(found: readme.txt\)"):
        inputs.discover(str(tmp_path))


def test_hidden_and_marker_files_are_skipped(tmp_path):
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "a.parquet")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".a.parquet.crc").write_text("")
    found = inputs.discover(str(tmp_path))
    assert found.format == "parquet"
    assert [f.uri.rsplit("/", 1)[1] for f in found.files] == ["a.parquet"]


def test_mixed_formats_need_a_choice(tmp_path):
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "a.parquet")
    write_jsonl(tmp_path / "b.jsonl", [{"text": "b"}])
    with pytest.raises(InputError, match="both Parquet and JSON"):
        inputs.discover(str(tmp_path))
    assert inputs.discover(str(tmp_path), "json").format == "json"


def test_bad_input_format_is_named(tmp_path):
    with pytest.raises(InputError, match="input_format must be one of"):
        inputs.discover(str(tmp_path), "csv")


def test_corrupt_parquet_is_named(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=f"{bad}: not a readable Parquet file"):
        inputs.parquet_metadata(f"file://{bad}")


def test_parquet_slices_read_only_their_rows(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"id": list(range(100))}), path, row_group_size=7)
    got = pa.concat_tables(list(inputs.iter_parquet(f"file://{path}", 5, 13, 61)))
    assert got["id"].to_pylist() == list(range(13, 61))


def test_json_lines_with_nulls_and_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": 1, "text": "A!"}\n\n{"id": 2, "text": null}\n{"id": 3}\n')
    table = pa.concat_tables(list(inputs.iter_json(f"file://{path}", 2)))
    assert table.to_pylist() == [
        {"id": 1, "text": "A!"},
        {"id": 2, "text": None},
        {"id": 3, "text": None},
    ]


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n\n{"text": "broken"\n')
    with pytest.raises(InputError, match=f"{path}: malformed JSON Lines at line 3"):
        list(inputs.iter_json(f"file://{path}", 10))


def test_non_utf8_json_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(InputError, match=f"{path}: line 2 is not valid UTF-8"):
        list(inputs.iter_json(f"file://{path}", 10))


def test_json_type_change_across_blocks_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "JSON_BLOCK_BYTES", 64)
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [{"text": "x" * 10, "n": 1}] * 5 + [{"text": "y", "n": "two"}])
    with pytest.raises(InputError, match="malformed JSON Lines"):
        list(inputs.iter_json(f"file://{path}", 10))


def test_json_read_in_many_blocks_keeps_every_row(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "JSON_BLOCK_BYTES", 100)
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [{"id": i, "text": f"row {i}"} for i in range(200)])
    table = pa.concat_tables(list(inputs.iter_json(f"file://{path}", 7)))
    assert table["id"].to_pylist() == list(range(200))


def test_plan_one_part_per_input_file_by_default():
    assert plan_parts([3, 0, 2], None) == [[(0, 0, 3)], [(2, 0, 2)]]


@pytest.mark.parametrize(
    ("counts", "num_files"), [([10, 5, 7], 4), ([1, 1, 1, 1], 2), ([100], 3), ([2, 3], 9)]
)
def test_plan_covers_every_row_once_in_order(counts, num_files):
    plan = plan_parts(counts, num_files)
    assert len(plan) == min(num_files, sum(counts))
    rows = [(f, r) for part in plan for f, a, b in part for r in range(a, b)]
    assert rows == [(f, r) for f, n in enumerate(counts) for r in range(n)]
    sizes = [sum(b - a for _, a, b in part) for part in plan]
    assert max(sizes) - min(sizes) <= 1
