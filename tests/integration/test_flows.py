"""The flows on a real local Ray and a real Prefect server, end to end."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.create_bucket import create_bucket
from flows.generate import generate
from flows.pipeline import pipeline
from flows.preprocess import preprocess
from tasks.errors import InputError
from tasks.steps.generate import synth
from tasks.store.dataset import read_dataset
from tests.helpers import assert_cleaned_exactly, assert_committed, tree_digest, write_jsonl

pytestmark = pytest.mark.usefixtures("flows_env")

POOL = list("가각힣ㄱ한국어 ") + list("AbZz09 \t\n\u3000\u00a0!?@#_-,.ÄéΣ😀") + ["\x1c", "İ"]


def messy_texts(n: int, seed: int) -> list[str | None]:
    rng = random.Random(seed)
    return [
        None
        if rng.random() < 0.05
        else "".join(rng.choice(POOL) for _ in range(rng.randrange(0, 60)))
        for _ in range(n)
    ]


def write_parquet_inputs(root, files: int, rows: int) -> None:
    root.mkdir(parents=True)
    for f in range(files):
        ids = list(range(f * rows, (f + 1) * rows))
        texts = messy_texts(rows, seed=f)
        table = pa.table(
            {"id": ids, "text": texts, "label": ["wiki"] * rows, "score": [0.5] * rows}
        )
        pq.write_table(table, root / f"input-{f}.parquet")


def test_create_bucket_is_idempotent(tmp_path):
    uri = create_bucket(str(tmp_path / "bucket"))
    assert uri == f"file://{tmp_path}/bucket"
    assert create_bucket(str(tmp_path / "bucket")) == uri
    assert (tmp_path / "bucket").is_dir()


def test_create_bucket_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file, not a directory"):
        create_bucket(str(tmp_path / "f"))


def test_generate_commits_the_seed_schema_reproducibly(tmp_path):
    uri = generate(str(tmp_path / "raw"), num_rows=5000, num_files=3, text_length=100, seed=11)
    manifest = assert_committed(tmp_path / "raw")
    assert manifest["num_rows"] == 5000 and len(manifest["files"]) == 3
    assert manifest["parameters"]["seed"] == 11
    table = read_dataset(uri)
    assert table.schema == synth.SCHEMA
    expected = pa.concat_tables(list(synth.generate_rows(11, 0, 5000, 100)))
    assert table.equals(expected)


def test_preprocess_cleans_every_row_exactly(tmp_path):
    write_parquet_inputs(tmp_path / "in", files=3, rows=700)
    before = tree_digest(tmp_path / "in")
    uri = preprocess(str(tmp_path / "in"), str(tmp_path / "out"))
    manifest = assert_committed(tmp_path / "out")
    assert len(manifest["files"]) == 3
    table = read_dataset(uri)
    assert table.column_names == ["id", "text", "label", "score", "cleaned_text"]
    assert sorted(table["id"].to_pylist()) == list(range(2100))
    assert table["text"].null_count > 0
    assert_cleaned_exactly(table)
    assert tree_digest(tmp_path / "in") == before


def test_preprocess_json_lines_into_a_chosen_number_of_files(tmp_path):
    rows = [{"id": i, "text": t, "label": "blog"} for i, t in enumerate(messy_texts(500, seed=3))]
    write_jsonl(tmp_path / "in" / "a.jsonl", rows[:200])
    write_jsonl(tmp_path / "in" / "b.json", rows[200:])
    uri = preprocess(str(tmp_path / "in"), str(tmp_path / "out"), num_files=3, batch_size=64)
    manifest = assert_committed(tmp_path / "out")
    assert [f["num_rows"] for f in manifest["files"]] == [166, 167, 167]
    assert manifest["parameters"]["input_format"] == "json"
    table = read_dataset(uri)
    assert table["id"].to_pylist() == list(range(500))
    assert table["text"].to_pylist() == [r["text"] for r in rows]
    assert_cleaned_exactly(table)


def test_pipeline_runs_the_three_steps(tmp_path):
    out = pipeline(str(tmp_path / "bucket"), num_rows=3000, num_files=2, text_length=200, seed=5)
    assert out == f"file://{tmp_path}/bucket/preprocessed"
    raw = assert_committed(tmp_path / "bucket" / "raw")
    cleaned = assert_committed(tmp_path / "bucket" / "preprocessed")
    assert raw["num_rows"] == cleaned["num_rows"] == 3000
    table = read_dataset(out)
    assert Counter(table["id"].to_pylist()) == Counter(range(3000))
    assert_cleaned_exactly(table)


def test_rerun_replaces_the_committed_output(tmp_path):
    write_parquet_inputs(tmp_path / "in", files=3, rows=100)
    preprocess(str(tmp_path / "in"), str(tmp_path / "out"))
    assert len(assert_committed(tmp_path / "out")["files"]) == 3
    preprocess(str(tmp_path / "in"), str(tmp_path / "out"), num_files=1)
    manifest = assert_committed(tmp_path / "out")
    assert [f["path"] for f in manifest["files"]] == ["part-00000.parquet"]
    assert sorted(read_dataset(f"file://{tmp_path}/out")["id"].to_pylist()) == list(range(300))


def _no_text(root):
    root.mkdir()
    pq.write_table(pa.table({"id": [1], "body": ["x"]}), root / "a.parquet")


def _int_text(root):
    root.mkdir()
    pq.write_table(pa.table({"id": [1], "text": [42]}), root / "a.parquet")


def _corrupt_among_good(root):
    write_parquet_inputs(root, files=2, rows=10)
    (root / "input-9.parquet").write_bytes(b"PAR1garbage")


def _bad_json(root):
    root.mkdir()
    (root / "a.jsonl").write_text('{"text": "fine"}\n{"text": \n')


def _latin1_json(root):
    root.mkdir()
    (root / "a.jsonl").write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')


def _empty(root):
    root.mkdir()
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), root / "a.parquet")


BAD_INPUTS = {
    "missing path": (None, "out", "does not exist"),
    "no input files": (lambda r: r.mkdir(), "out", "no parquet input files"),
    "no text column": (_no_text, "out", r"a.parquet: no 'text' column \(columns: id, body\)"),
    "non-string text": (_int_text, "out", "a.parquet: column 'text' has type int64"),
    "corrupt file": (_corrupt_among_good, "out", "input-9.parquet: not a readable Parquet file"),
    "malformed json": (_bad_json, "out", "a.jsonl: malformed JSON Lines at line 2"),
    "empty input": (_empty, "out", "has no rows"),
    "non-utf8 json": (_latin1_json, "out", "a.jsonl: line 2 is not valid UTF-8"),
    "output equals input": (
        lambda r: write_parquet_inputs(r, 1, 5),
        "in",
        "equal to or inside input_uri",
    ),
    "output inside input": (
        lambda r: write_parquet_inputs(r, 1, 5),
        "in/sub",
        "equal to or inside",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_clearly_and_costs_nothing(tmp_path, case):
    make, output, message = BAD_INPUTS[case]
    source = tmp_path / "in"
    if make:
        make(source)
    before = tree_digest(tmp_path)
    with pytest.raises(InputError, match=message):
        preprocess(str(source), str(tmp_path / output))
    assert not list(tmp_path.rglob("_manifest.json"))
    assert tree_digest(tmp_path) == before


def test_bad_input_leaves_an_earlier_commit_and_is_not_retried(tmp_path):
    write_parquet_inputs(tmp_path / "in", files=1, rows=50)
    preprocess(str(tmp_path / "in"), str(tmp_path / "out"))
    committed = tree_digest(tmp_path / "out")
    _int_text(tmp_path / "bad")
    state = preprocess(str(tmp_path / "bad"), str(tmp_path / "out"), return_state=True)
    assert state.is_failed()
    assert tree_digest(tmp_path / "out") == committed
    assert [r.run_count for r in asyncio.run(_task_runs(state.state_details.flow_run_id))] == [1]


async def _task_runs(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        return await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def test_foreign_files_in_the_output_are_refused_and_kept(tmp_path):
    write_parquet_inputs(tmp_path / "in", files=1, rows=10)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.csv").write_text("someone's work")
    before = tree_digest(tmp_path)
    with pytest.raises(InputError, match=r"did not write \(report\.csv\)"):
        preprocess(str(tmp_path / "in"), str(tmp_path / "out"))
    assert tree_digest(tmp_path) == before


def test_parquet_files_may_differ_in_the_text_columns_string_layout(tmp_path):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": [0], "text": ["Ab!"]}), tmp_path / "in" / "a.parquet")
    large = pa.table({"id": [1], "text": pa.array(["Cd?"], pa.large_string())})
    pq.write_table(large, tmp_path / "in" / "b.parquet")
    uri = preprocess(str(tmp_path / "in"), str(tmp_path / "out"))
    table = read_dataset(uri)
    assert table.schema.field("text").type == pa.string()
    assert table.to_pylist() == [
        {"id": 0, "text": "Ab!", "cleaned_text": "ab"},
        {"id": 1, "text": "Cd?", "cleaned_text": "cd"},
    ]
