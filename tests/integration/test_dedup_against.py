"""The dedup step across datasets on a real local Ray: ``against`` earlier outputs
through their signature indexes, retention of an output with its index, and the daily
pipeline deduplicating each date against the earlier ones."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.errors import InputError
from tasks.steps.dedup import minhash as dedup
from tasks.store.dataset import read_dataset
from tests.helpers import dedup_dataset
from tests.integration.test_dedup_dataset import corpus, document, near_copy

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_against_removes_what_an_earlier_night_kept_without_its_text(tmp_path):
    rng = random.Random(5)
    night1, *_ = corpus(tmp_path / "n1", seed=4)
    first = dedup_dataset(night1, str(tmp_path / "out1"), mode="near")
    kept = read_dataset(str(tmp_path / "out1")).column("cleaned_text").to_pylist()
    # Night 2: new documents, plus exact and near copies of rows night 1 kept.
    rows2, planted = [], set()
    for i in range(60):
        if i % 5 == 1:
            rows2.append(rng.choice(kept))
            planted.add(i)
        elif i % 5 == 3:
            rows2.append(near_copy(rng, rng.choice(kept), 1))
            planted.add(i)
        else:
            rows2.append(document(rng))
    (tmp_path / "n2").mkdir()
    table = pa.table({"cleaned_text": rows2, "id": list(range(1000, 1060))})
    pq.write_table(table.slice(0, 30), tmp_path / "n2" / "part-0.parquet")
    pq.write_table(table.slice(30), tmp_path / "n2" / "part-1.parquet")
    # Night 1's text is gone: only its index can tell.
    for part in first["files"]:
        (tmp_path / "out1" / part["path"]).unlink()
    manifest = dedup_dataset(
        str(tmp_path / "n2"), str(tmp_path / "out2"), mode="near", against=[str(tmp_path / "out1")]
    )
    out = read_dataset(str(tmp_path / "out2")).column("id").to_pylist()
    assert out == [1000 + i for i in range(60) if i not in planted]
    assert manifest["dedup"]["against_removed"] == len(planted)
    assert any("out1-index/part-" in g["survivor"] for g in manifest["dedup"]["examples"])


def test_against_must_be_a_dedup_output_with_matching_signatures(tmp_path):
    from tasks.steps.dedup.against import index_files
    from tasks.store.storage import resolve

    output = resolve(str(tmp_path / "out"))

    def against_indexes(uris, params, output):
        return [f for uri in uris for f in index_files(uri, params, {"output_uri": output})[0]]

    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InputError, match=r"no _manifest\.json, not a committed dataset"):
        against_indexes([str(plain)], None, output)
    source, *_ = corpus(tmp_path)
    dedup_dataset(source, str(tmp_path / "exact"), mode="exact")
    near = dedup.MinHashParams()
    with pytest.raises(InputError, match="deduplicated in exact mode"):
        against_indexes([str(tmp_path / "exact")], near, output)
    assert against_indexes([str(tmp_path / "exact")], None, output)  # exact needs digests only
    manifest_path = tmp_path / "exact" / "_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["parameters"]["minhash"] = {**near.__dict__, "num_perm": 64}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="its signatures use num_perm=64, this run num_perm=128"):
        against_indexes([str(tmp_path / "exact")], near, output)
    with pytest.raises(InputError, match="is, holds or lies inside this run's output_uri"):
        against_indexes([str(tmp_path / "exact")], None, resolve(str(tmp_path / "exact")))
    # An index from an earlier version of the step (other digests and sketches), in
    # either mode: refused, never compared with digests that cannot match.
    del manifest["dedup"]["sketch"]
    manifest_path.write_text(json.dumps(manifest))
    for params in (None, near):
        with pytest.raises(InputError, match="written by an earlier version of the dedup step"):
            against_indexes([str(tmp_path / "exact")], params, output)


def test_retention_removes_a_dedup_output_with_its_index(tmp_path):
    from tasks.nightly.retention import remove_committed
    from tasks.store.storage import resolve

    source, *_ = corpus(tmp_path)
    manifest = dedup_dataset(source, str(tmp_path / "out"), mode="exact")
    (tmp_path / "out" / "NOTES.txt").write_text("not ours")
    assert (tmp_path / "out-index" / "_manifest.json").exists()
    assert remove_committed(resolve(str(tmp_path / "out"))) == len(manifest["files"])
    # Everything we wrote is gone, the index beside it too; what we did not write stays.
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["NOTES.txt"]
    assert not (tmp_path / "out-index").exists()


@pytest.mark.parametrize("damage", ["rewritten", "missing"])
def test_against_refuses_an_index_that_is_not_the_one_committed_with_the_dataset(tmp_path, damage):
    """An index companion replaced (by a run of its own there, a restore from a backup)
    or gone is never read as the dataset's: its rows would be compared as if kept."""
    from tasks.steps.dedup.against import index_files
    from tasks.store.storage import resolve

    source, *_ = corpus(tmp_path)
    dedup_dataset(source, str(tmp_path / "out"), mode="exact")
    index = tmp_path / "out-index" / "_manifest.json"
    if damage == "rewritten":
        index.write_text(json.dumps({**json.loads(index.read_text()), "committed_at": "later"}))
    else:
        index.unlink()
    with pytest.raises(InputError, match=r"out-index is missing or is not the one committed"):
        index_files(str(tmp_path / "out"), None, {"output_uri": resolve(str(tmp_path / "x"))})


def test_the_nightly_pipeline_dedups_each_date_against_the_earlier_ones(tmp_path, prefect_server):
    """Three dates of 2-character texts (many repeats within and across dates): each
    date keeps only texts no earlier row of it or of an earlier date had."""
    from flows.pipeline import pipeline

    bucket = tmp_path / "bucket"
    days = ["2026-03-01", "2026-03-02", "2026-03-03"]
    seen: set[str] = set()
    for i, day in enumerate(days):
        output = pipeline(
            str(bucket),
            num_rows=400,
            num_files=2,
            text_length=2,
            run_date=day,
            steps=[{"preprocess": {}}, {"dedup": {"mode": "exact"}}],
        )
        assert output == f"file://{bucket}/deduped/dt={day}"
        cleaned = read_dataset(str(bucket / "preprocessed" / f"dt={day}")).to_pylist()
        expected = []
        for row in cleaned:
            if not row["cleaned_text"].strip():  # blank texts are nobody's duplicates
                expected.append(row["id"])
            elif row["cleaned_text"] not in seen:
                expected.append(row["id"])
                seen.add(row["cleaned_text"])
        kept = read_dataset(output.removeprefix("file://"))
        assert kept.column("id").to_pylist() == expected
        manifest = json.loads((bucket / "deduped" / f"dt={day}" / "_manifest.json").read_text())
        assert manifest["parameters"]["against"] == [
            f"file://{bucket}/deduped/dt={earlier}" for earlier in days[:i]
        ]
        if i:
            assert manifest["dedup"]["against_removed"] > 0
