"""Finding and reading inputs; every error names the file (and line, for JSON)."""

import gzip
import hashlib
import json
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.errors import InputError
from tasks.steps import reading
from tasks.steps.preprocess.clean import check_input_schema
from tasks.steps.reading import plan_parts
from tasks.store import inputs, storage
from tests.helpers import jsonl_bytes, write_jsonl


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
    with pytest.raises(
        InputError,
        match=r"a\.jsonl: a column has values of incompatible types at lines? (\d+-)?6 ",
    ):
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


@pytest.mark.parametrize(
    ("name", "fmt", "codec"),
    [
        ("a.jsonl", "json", None),
        ("c4-train.00000-of-01024.json.gz", "json", "gzip"),
        ("00.JSONL.ZST", "json", "zstd"),
        ("x.ndjson.zstd", "json", "zstd"),
        ("dump.jsonl.bz2", "json", "bz2"),
        ("part-0.zstd.parquet", "parquet", None),
        ("a.parquet.gz", None, "gzip"),  # Parquet compresses inside the file
        ("notes.txt.gz", None, "gzip"),
        ("README", None, None),
    ],
)
def test_format_and_codec_by_name(name, fmt, codec):
    assert inputs.format_of(name) == fmt
    assert inputs.codec_of(name) == codec


def test_directories_are_walked_recursively_skipping_hidden_ones(tmp_path):
    write_jsonl(tmp_path / "2024" / "01" / "a.jsonl", [{"text": "a"}])
    write_jsonl(tmp_path / "2024" / "02" / "b.jsonl", [{"text": "b"}])
    write_jsonl(tmp_path / "_temporary" / "0" / "c.jsonl", [{"text": "c"}])
    write_jsonl(tmp_path / ".cache" / "d.jsonl", [{"text": "d"}])
    found = inputs.discover(str(tmp_path))
    assert [f.uri.removeprefix(f"file://{tmp_path}/") for f in found.files] == [
        "2024/01/a.jsonl",
        "2024/02/b.jsonl",
    ]


def test_globs_match_one_directory_level_per_star_and_any_with_two(tmp_path):
    for name in ("en/a.json.gz", "en/b.json.gz", "en/sub/c.json.gz", "de/d.json.gz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")

    def names(pattern: str) -> list[str]:
        found = inputs.discover(f"{tmp_path}/{pattern}")
        assert found.uri == f"file://{tmp_path}/{pattern}"
        return [f.uri.removeprefix(f"file://{tmp_path}/") for f in found.files]

    assert names("en/*.json.gz") == ["en/a.json.gz", "en/b.json.gz"]
    assert names("en/**/*.json.gz") == ["en/a.json.gz", "en/b.json.gz", "en/sub/c.json.gz"]
    assert names("*/[ad].json.gz") == ["de/d.json.gz", "en/a.json.gz"]
    assert names("en/?.json.gz") == ["en/a.json.gz", "en/b.json.gz"]
    with pytest.raises(InputError, match=r"input glob file://.*/fr/\*\.json\.gz matches no files"):
        inputs.discover(f"{tmp_path}/fr/*.json.gz")


def test_a_glob_with_input_format_takes_files_of_any_name(tmp_path):
    write_jsonl(tmp_path / "a.txt", [{"text": "a"}])
    with pytest.raises(InputError, match="no parquet input files"):
        inputs.discover(f"{tmp_path}/*.txt")
    assert len(inputs.discover(f"{tmp_path}/*.txt", "json").files) == 1


def test_compressed_json_lines_stream_in_blocks(tmp_path, monkeypatch):
    import gzip

    monkeypatch.setattr(inputs, "JSON_BLOCK_BYTES", 200)
    rows = [{"id": i, "text": f"row {i}"} for i in range(300)]
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert inputs.scan_json(f"file://{path}")[0] == 300
    table = pa.concat_tables(list(inputs.iter_json(f"file://{path}", 7)))
    assert table.to_pylist() == rows


def test_json_types_are_unified_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "JSON_BLOCK_BYTES", 64)
    rows = [
        {"text": "first", "n": 1, "meta": None, "when": "2024-01-02T03:04:05Z"},
        *({"text": "x" * 40, "n": 2} for _ in range(5)),
        {"text": "later", "n": 2.5, "meta": {"src": "web"}, "when": "2024-01-02T03:04:06Z"},
        {"text": "last", "meta": {"src": "book", "year": 1999}, "tags": ["a"]},
    ]
    path = tmp_path / "a.jsonl"
    write_jsonl(path, rows)
    count, schema = inputs.scan_json(f"file://{path}")
    assert count == len(rows)
    assert schema.names == ["text", "n", "meta", "when", "tags"]
    assert schema.field("n").type == pa.float64()  # JSON numbers: ints widen to float
    assert schema.field("when").type == pa.string()  # not inferred as a timestamp
    assert schema.field("meta").type == pa.struct([("src", pa.string()), ("year", pa.int64())])
    table = pa.concat_tables(list(inputs.iter_json(f"file://{path}", 3)))
    assert table.to_pylist() == [
        {
            "text": r["text"],
            "n": r.get("n"),
            "meta": None if r.get("meta") is None else {"year": None, **r["meta"]},
            "when": r.get("when"),
            "tags": r.get("tags"),
        }
        for r in rows
    ]


def test_a_column_seen_only_as_null_is_a_string():
    schema = pa.schema([("a", pa.null()), ("s", pa.struct([("b", pa.null())]))])
    settled = inputs.settle_json_schema(schema)
    assert settled == pa.schema([("a", pa.string()), ("s", pa.struct([("b", pa.string())]))])


def test_a_type_clash_within_a_block_names_its_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a", "n": 1}\n\n{"text": "b", "n": 2}\n{"text": "c", "n": "three"}\n')
    with pytest.raises(
        InputError, match=r"a\.jsonl: a column has values of incompatible types at line 4 "
    ):
        inputs.scan_json(f"file://{path}")


def _open(input_uri: str, output: str) -> tuple[inputs.Inputs, list, pa.Schema]:
    """``reading.open_inputs`` as preprocess calls it, the JSON scans run in this process."""
    run = SimpleNamespace(
        s3=None,
        output=storage.resolve(output),
        companions=(),  # preprocess keeps none
        map=lambda fn, specs: [SimpleNamespace(result=fn(spec)) for spec in specs],
    )
    return reading.open_inputs(input_uri, "auto", run, check=check_input_schema)


def _rows(found: inputs.Inputs, schema: pa.Schema) -> list[dict]:
    return [
        row
        for f in found.files
        for table in reading.iter_slice(found.format, f.loc, 2, schema)
        for row in table.to_pylist()
    ]


EMPTY_JSON = {
    "zero bytes": ("0.jsonl", b""),
    "blank lines only": ("0.jsonl", b"\n  \n\r\n\t\n"),
    "empty gzip stream": ("0.jsonl.gz", gzip.compress(b"")),
    "zero-byte gzip file": ("0.jsonl.gz", b""),
    "empty zstd stream": ("0.jsonl.zst", pa.Codec("zstd").compress(b"", asbytes=True)),
}


@pytest.mark.parametrize("case", list(EMPTY_JSON))
def test_an_empty_json_shard_counts_as_no_rows(tmp_path, case):
    name, data = EMPTY_JSON[case]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_bytes(data)  # first: the schema comes from the others
    write_jsonl(tmp_path / "in" / "1.jsonl", [{"text": "a", "n": 1}])
    write_jsonl(tmp_path / "in" / "2.jsonl", [{"text": "b", "n": 2}, {"text": "c"}])
    assert inputs.scan_json(f"file://{tmp_path}/in/{name}") == (0, pa.schema([]))
    found, inspected, schema = _open(str(tmp_path / "in"), str(tmp_path / "out"))
    assert [i.num_rows for i in inspected] == [0, 1, 2]
    assert schema == pa.schema([("text", pa.string()), ("n", pa.int64())])
    assert list(inputs.iter_json(found.files[0].loc, 2, schema)) == []
    assert _rows(found, schema) == [
        {"text": "a", "n": 1},
        {"text": "b", "n": 2},
        {"text": "c", "n": None},
    ]


def test_a_zero_row_parquet_shard_counts_as_no_rows(tmp_path):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({}), tmp_path / "in" / "0.parquet")  # no columns at all
    # What pandas writes for an empty frame: a column of type null.
    pq.write_table(pa.table({"text": pa.array([], pa.null())}), tmp_path / "in" / "1.parquet")
    source = pa.table({"text": ["a", "b", "c"], "n": [1, 2, 3]})
    pq.write_table(source, tmp_path / "in" / "2.parquet")
    found, inspected, schema = _open(str(tmp_path / "in"), str(tmp_path / "out"))
    assert [i.num_rows for i in inspected] == [0, 0, 3]
    assert schema == source.schema
    assert _rows(found, schema) == source.to_pylist()


def test_input_whose_every_json_file_is_empty_has_no_rows(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(b"")
    (tmp_path / "in" / "b.jsonl.gz").write_bytes(gzip.compress(b"\n"))
    with pytest.raises(
        InputError, match=f"input file://{tmp_path}/in has no rows: its 2 files are all empty"
    ):
        _open(str(tmp_path / "in"), str(tmp_path / "out"))
    with pytest.raises(InputError, match=r"input file://.*/a\.jsonl has no rows: it is empty"):
        _open(str(tmp_path / "in" / "a.jsonl"), str(tmp_path / "out"))


def test_input_of_zero_row_parquet_files_keeps_their_schema(tmp_path):
    """An empty committed dataset (a filter that rejected every row) is read as one."""
    (tmp_path / "in").mkdir()
    schema = pa.schema([("text", pa.string()), ("n", pa.int64())])
    pq.write_table(pa.table({}), tmp_path / "in" / "0.parquet")
    pq.write_table(schema.empty_table(), tmp_path / "in" / "1.parquet")
    found, inspected, got = _open(str(tmp_path / "in"), str(tmp_path / "out"))
    assert [i.num_rows for i in inspected] == [0, 0]
    assert got == schema
    assert _rows(found, got) == []


def _long_line_file(path, size: int) -> tuple[bytes, int]:
    """A JSON Lines file: a short line, one of about ``size`` bytes (its text mixes
    1-, 2- and 3-byte characters), then 1000 short ones. The long text's sha256 and
    length."""
    unit = "lorem ipsum é 한 ".encode()
    text = unit * (size // len(unit))
    with open(path, "wb") as out:
        out.write(b'{"id": 0, "text": "first"}\n{"id": 1, "text": "')
        out.write(text)
        out.write(b'"}\n')
        out.write(jsonl_bytes([{"id": i, "text": f"row {i}"} for i in range(2, 1002)]))
    return hashlib.sha256(text).digest(), len(text)


def test_a_100_mb_line_is_read_whole(tmp_path):
    path = tmp_path / "long.jsonl"
    digest, size = _long_line_file(path, 100 * 1024 * 1024)
    count, schema = inputs.scan_json(f"file://{path}")
    assert count == 1002
    assert schema == pa.schema([("id", pa.int64()), ("text", pa.string())])
    ids, short = [], []
    for table in inputs.iter_json(f"file://{path}", 3):
        for at in range(table.num_rows):
            ids.append(table["id"][at].as_py())
            text = table["text"][at]
            if ids[-1] == 1:
                data = text.as_buffer()
                assert (data.size, hashlib.sha256(data).digest()) == (size, digest)
            else:
                short.append(text.as_py())
    assert ids == list(range(1002))
    assert short == ["first", *(f"row {i}" for i in range(2, 1002))]


@pytest.mark.parametrize(
    ("block_bytes", "length"), [(64, 1001), (4096, 1001), (4096, 5000), (700, 2500)]
)
def test_a_line_over_the_limit_is_refused_naming_it(tmp_path, monkeypatch, block_bytes, length):
    monkeypatch.setattr(inputs, "JSON_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(inputs, "JSON_MAX_LINE_BYTES", 1000)
    wrap = len(json.dumps({"text": ""}))
    fits = {"text": "y" * (1000 - wrap)}  # exactly the limit: read
    rows = [{"text": "a"}, fits, {"text": "x" * (length - wrap)}, {"text": "b"}]
    path = tmp_path / "a.jsonl"
    write_jsonl(path, rows)
    message = f"{path}: line 3 is longer than 1000 bytes"
    with pytest.raises(InputError, match=rf"{message}, .*\(JSON_MAX_LINE_BYTES\)"):
        inputs.scan_json(f"file://{path}")
    with pytest.raises(InputError, match=message):
        list(inputs.iter_json(f"file://{path}", 10, pa.schema([("text", pa.string())])))
    write_jsonl(path, [rows[0], fits, rows[3]])
    assert inputs.scan_json(f"file://{path}")[0] == 3


def _parquet_with_bad_utf8(path, column: str, bad_row: int, rows: int = 20) -> None:
    """Strings in ``column`` (``text``, or the ``url`` field of the struct ``meta``), one
    of them Latin-1."""
    values = [f"text {i}".encode() for i in range(rows)]
    values[bad_row] = b"caf\xe9"
    binary = pa.array(values, pa.binary())
    # Relabelled as strings without the check a cast would make.
    bad = pa.Array.from_buffers(pa.string(), len(binary), binary.buffers())
    good = pa.array([f"text {i}" for i in range(rows)])
    text, url = (bad, good) if column == "text" else (good, bad)
    meta = pa.StructArray.from_arrays([url], ["url"])
    table = pa.table({"id": range(rows), "meta": meta, "text": text})
    pq.write_table(table, path, row_group_size=6)


@pytest.mark.parametrize("column", ["text", "meta"])
@pytest.mark.parametrize(("start", "batch_size"), [(0, 4), (5, 3), (13, 100)])
def test_invalid_utf8_in_parquet_names_file_column_and_row(tmp_path, column, start, batch_size):
    path = tmp_path / "latin1.parquet"
    _parquet_with_bad_utf8(path, column, 14)
    with pytest.raises(InputError, match=f"{path}: row 14 of column '{column}' is not valid UTF-8"):
        list(inputs.iter_parquet(f"file://{path}", batch_size, start))
    # The rows before it are read, and those after it.
    got = pa.concat_tables(list(inputs.iter_parquet(f"file://{path}", batch_size, 0, 14)))
    assert got["text"].to_pylist() == [f"text {i}" for i in range(14)]
    assert len(list(inputs.iter_parquet(f"file://{path}", batch_size, 15))) > 0
