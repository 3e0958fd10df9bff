"""Corpora as people have them: C4, the Pile, FineWeb and scraped dumps, each made here in
miniature, cleaned by the preprocess flow on a real local Ray and Prefect server."""

from __future__ import annotations

import bz2
import gzip
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.preprocess import preprocess
from tasks.errors import InputError
from tasks.steps.preprocess.clean import clean_text
from tasks.store.dataset import read_dataset
from tests.helpers import assert_committed, jsonl_bytes, tree_digest

pytestmark = pytest.mark.usefixtures("flows_env")

POOL = list("가각힣ㄱ한국어 ") + list("AbZz09 \t\n\u3000!?@#_-,.ÄéΣ😀")


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randrange(0, 80))) for _ in range(n)]


def zstd(data: bytes) -> bytes:
    return pa.Codec("zstd").compress(data, asbytes=True)


def assert_cleaned_records(
    output: pa.Table, records: list[dict], text_column: str = "text", keep_text: bool = True
) -> None:
    """Every input field unchanged (missing ones null), plus the seed's cleaning of the text."""
    expected = []
    for record in records:
        row = {name: record.get(name) for name in output.column_names if name != "cleaned_text"}
        text = record.get(text_column)
        row["cleaned_text"] = None if text is None else clean_text(text)
        expected.append(row)
    assert ("text" in output.column_names or text_column in output.column_names) == keep_text
    assert output.to_pylist() == expected


def test_c4_json_gz_pair_picked_by_a_glob(tmp_path):
    en = tmp_path / "c4" / "en"
    en.mkdir(parents=True)
    records = [
        {
            "text": text,
            "timestamp": f"2019-04-{10 + i % 20:02d}T12:57:{i % 60:02d}Z",
            "url": f"https://example.com/{i}",
        }
        for i, text in enumerate(texts(600, seed=1))
    ]
    for k in range(2):
        part = records[k * 300 : (k + 1) * 300]
        (en / f"c4-train.{k:05d}-of-01024.json.gz").write_bytes(gzip.compress(jsonl_bytes(part)))
    # Beside them, what the glob must not take: another split, a marker, a checksum.
    (en / "c4-validation.00000-of-00008.json.gz").write_bytes(
        gzip.compress(jsonl_bytes(records[:5]))
    )
    (en / "_SUCCESS").write_text("")
    (en / ".c4-train.00000-of-01024.json.gz.crc").write_text("")

    preprocess(str(en / "c4-train.*.json.gz"), str(tmp_path / "out"))
    manifest = assert_committed(tmp_path / "out")
    assert manifest["parameters"]["input_format"] == "json"
    assert manifest["parameters"]["input_uri"] == f"file://{en}/c4-train.*.json.gz"
    assert manifest["inputs"]["num_files"] == 2
    output = read_dataset(str(tmp_path / "out"))
    assert output.schema.names == ["text", "timestamp", "url", "cleaned_text"]
    # JSON has no timestamps: the strings stay strings, spelled as they were.
    assert output.schema.field("timestamp").type == pa.string()
    assert_cleaned_records(output, records)


def test_pile_jsonl_zst_with_a_nested_meta_struct(tmp_path):
    sets = ["Pile-CC", "Github", "ArXiv"]
    records = []
    for i, text in enumerate(texts(400, seed=2)):
        meta: dict | None = {"pile_set_name": sets[i % 3]}
        if i % 7 == 0:
            meta["stars"] = i  # a field only some rows have
        if i % 11 == 0:
            meta = None
        records.append({"text": text, "meta": meta})
    path = tmp_path / "pile" / "00.jsonl.zst"
    path.parent.mkdir()
    path.write_bytes(zstd(jsonl_bytes(records)))

    preprocess(str(path), str(tmp_path / "out"), num_files=3, batch_size=50)
    manifest = assert_committed(tmp_path / "out")
    assert [f["num_rows"] for f in manifest["files"]] == [133, 133, 134]
    output = read_dataset(str(tmp_path / "out"))
    assert pa.types.is_struct(output.schema.field("meta").type)
    expected = [
        {**r, "meta": None if r["meta"] is None else {"stars": None, **r["meta"]}} for r in records
    ]
    assert_cleaned_records(output, expected)


def test_scraped_jsonl_bz2_whose_text_is_content_without_the_raw_text(tmp_path):
    records = [
        {"url": f"https://blog.example/{i}", "content": text, "score": i / 7, "tags": ["a", "b"]}
        for i, text in enumerate(texts(300, seed=3))
    ]
    records[5]["content"] = None
    path = tmp_path / "dump.jsonl.bz2"
    path.write_bytes(bz2.compress(jsonl_bytes(records)))

    preprocess(str(path), str(tmp_path / "out"), text_column="content", keep_text=False)
    manifest = assert_committed(tmp_path / "out")
    assert manifest["parameters"]["text_column"] == "content"
    assert manifest["stats"]["null_texts"] == 1
    output = read_dataset(str(tmp_path / "out"))
    assert output.schema.names == ["url", "score", "tags", "cleaned_text"]
    assert_cleaned_records(output, records, text_column="content", keep_text=False)


def test_fineweb_zstd_parquet_with_string_ids_and_metadata(tmp_path):
    root = tmp_path / "fineweb" / "data" / "CC-MAIN-2024-10"
    root.mkdir(parents=True)
    tables = []
    for k in range(2):
        n = 250
        table = pa.table(
            {
                "text": texts(n, seed=10 + k),
                "id": [f"<urn:uuid:{k:02d}-{i:06d}>" for i in range(n)],
                "dump": ["CC-MAIN-2024-10"] * n,
                "url": [f"https://site/{k}/{i}" for i in range(n)],
                "date": pa.array(
                    [None if i % 9 == 0 else "2024-02-21T05:12:03Z" for i in range(n)]
                ),
                "language_score": [0.5 + i / 1000 for i in range(n)],
                "token_count": pa.array(range(n), pa.int32()),
                "meta": pa.array([{"crawl": k, "warc": f"w{i}"} for i in range(n)]),
            }
        )
        pq.write_table(table, root / f"{k:03d}_00000.parquet", compression="zstd")
        tables.append(table)
    before = tree_digest(tmp_path / "fineweb")

    preprocess(str(tmp_path / "fineweb"), str(tmp_path / "out"), compression="zstd")
    manifest = assert_committed(tmp_path / "out")
    assert manifest["parameters"]["compression"] == "zstd"
    first = pq.ParquetFile(tmp_path / "out" / manifest["files"][0]["path"])
    assert first.metadata.row_group(0).column(0).compression == "ZSTD"
    output = read_dataset(str(tmp_path / "out"))
    source = pa.concat_tables(tables)
    assert output.schema.names == [*source.schema.names, "cleaned_text"]
    for name in source.schema.names:  # names, types, values and nulls as they were
        assert output.schema.field(name).type == source.schema.field(name).type, name
        assert output.column(name).equals(source.column(name)), name
    cleaned = [None if t is None else clean_text(t) for t in source["text"].to_pylist()]
    assert output["cleaned_text"].to_pylist() == cleaned
    assert tree_digest(tmp_path / "fineweb") == before


def test_empty_shards_and_a_long_document_among_a_corpus(tmp_path):
    """Empty shards (zero bytes, an empty gzip stream, blank lines) count as no rows and
    have no say in the schema; a 5 MB document, longer than pyarrow's JSON block, is read."""
    root = tmp_path / "dump"
    root.mkdir()
    records = [{"text": t, "n": i} for i, t in enumerate(texts(200, seed=6))]
    records[50]["text"] = "A long document. " * (5 * 1024 * 1024 // 17)
    (root / "00.jsonl.gz").write_bytes(b"")
    (root / "01.jsonl.gz").write_bytes(gzip.compress(jsonl_bytes(records[:100])))
    (root / "02.jsonl.gz").write_bytes(gzip.compress(b""))
    (root / "03.jsonl.gz").write_bytes(gzip.compress(b"\n \n"))
    (root / "04.jsonl.gz").write_bytes(gzip.compress(jsonl_bytes(records[100:])))

    preprocess(str(root), str(tmp_path / "out"))
    manifest = assert_committed(tmp_path / "out")
    assert manifest["inputs"]["num_files"] == 5
    assert [f["num_rows"] for f in manifest["files"]] == [100, 100]
    output = read_dataset(str(tmp_path / "out"))
    assert output.schema.names == ["text", "n", "cleaned_text"]
    assert_cleaned_records(output, records)


def test_invalid_utf8_in_a_parquet_corpus_is_refused_naming_file_column_and_row(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    values = [t.encode() for t in texts(50, seed=7)]
    values[31] = b"caf\xe9"  # Latin-1
    binary = pa.array(values, pa.binary())
    text = pa.Array.from_buffers(pa.string(), len(binary), binary.buffers())  # unchecked
    pq.write_table(pa.table({"text": text}), root / "a.parquet")
    with pytest.raises(InputError, match=r"a\.parquet: row 31 of column 'text' is not valid UTF-8"):
        preprocess(str(root), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "_manifest.json").exists()


def _corrupt_gzip(root):
    root.mkdir()
    good = gzip.compress(jsonl_bytes([{"text": t} for t in texts(200, seed=4)]))
    (root / "a.jsonl.gz").write_bytes(good)
    (root / "b.jsonl.gz").write_bytes(good[: len(good) // 2])  # cut off mid-stream


def _corrupt_zstd(root):
    root.mkdir()
    good = zstd(jsonl_bytes([{"text": t} for t in texts(200, seed=5)]))
    (root / "a.jsonl.zst").write_bytes(good[:8] + b"\x00" * 64 + good[72:])


def _no_text_column(root):
    root.mkdir()
    (root / "a.jsonl.gz").write_bytes(gzip.compress(jsonl_bytes([{"body": "x", "url": "u"}])))


def _int_content(root):
    root.mkdir()
    (root / "a.jsonl.bz2").write_bytes(bz2.compress(jsonl_bytes([{"content": 7}, {"content": 8}])))


def _every_shard_empty(root):
    root.mkdir()
    (root / "a.jsonl").write_bytes(b"")
    (root / "b.jsonl.zst").write_bytes(zstd(b"\n"))


BAD_CORPORA = {
    "corrupt gzip": (_corrupt_gzip, "in", {}, r"b\.jsonl\.gz: a corrupt gzip stream"),
    "corrupt zstd": (_corrupt_zstd, "in", {}, r"a\.jsonl\.zst: a corrupt zstd stream"),
    "glob matching nothing": (
        lambda r: r.mkdir(),
        "in/c4-train.*.json.gz",
        {},
        r"input glob file://.*/in/c4-train\.\*\.json\.gz matches no files",
    ),
    "missing text column": (
        _no_text_column,
        "in",
        {},
        r"a\.jsonl\.gz: no 'text' column \(columns: body, url\)",
    ),
    "every shard empty": (
        _every_shard_empty,
        "in",
        {},
        r"input file://.*/in has no rows: its 2 files are all empty",
    ),
    "text column not a string": (
        _int_content,
        "in",
        {"text_column": "content"},
        r"a\.jsonl\.bz2: column 'content' has type int64, expected a string type",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CORPORA))
def test_bad_corpora_are_refused_by_name_and_nothing_is_written(tmp_path, case):
    make, source, options, message = BAD_CORPORA[case]
    make(tmp_path / "in")
    before = tree_digest(tmp_path)
    with pytest.raises(InputError, match=message):
        preprocess(str(tmp_path / source), str(tmp_path / "out"), **options)
    assert not (tmp_path / "out").exists()
    assert tree_digest(tmp_path) == before
