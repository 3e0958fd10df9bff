"""The filter step on a real local Ray and Prefect server: every row kept or rejected
with its reason, counts per rule, the same bytes on a rerun, bad thresholds refused."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.filter import filter_documents
from flows.pipeline import pipeline
from tasks.errors import InputError
from tasks.steps.filter.rules import FilterOptions, evaluate
from tests.helpers import (
    assert_committed,
    committed_bytes,
    kill_flow_when,
    tree_digest,
    with_write_faults,
)
from tests.unit.test_filter_rules import base

pytestmark = pytest.mark.usefixtures("flows_env")


def corpus(root, files: int = 3, rows: int = 40) -> list[dict]:
    """Parquet files of good documents, bad ones of several kinds, a null and an empty
    text, with an extra column that must reach both outputs unchanged."""
    root.mkdir(parents=True)
    every = []
    for f in range(files):
        docs = []
        for r in range(rows):
            kind = r % 5
            if kind in (0, 1):
                text = "\n".join(base())  # kept by every default rule
            elif kind == 2:
                text = "too short to be a document"
            elif kind == 3:
                text = "\n".join(["the of same line again and again here"] * 12)
            else:
                text = None if r % 2 else ""
            docs.append({"id": f * rows + r, "text": text, "source": f"file-{f}"})
        pq.write_table(pa.Table.from_pylist(docs), root / f"input-{f}.parquet")
        every += docs
    return every


def test_every_row_is_kept_or_rejected_with_its_reason(tmp_path):
    rows = corpus(tmp_path / "in")
    before = tree_digest(tmp_path / "in")
    out = filter_documents(str(tmp_path / "in"), str(tmp_path / "out"))

    manifest = assert_committed(tmp_path / "out")
    assert out == f"file://{tmp_path}/out"
    kept = pq.read_table(tmp_path / "out").to_pylist()  # the parts only: _rejected is hidden
    rejected = pa.concat_tables(
        pq.read_table(tmp_path / "out" / path) for path in manifest["side_files"]
    ).to_pylist()
    assert sorted(r["id"] for r in kept + rejected) == [r["id"] for r in rows]
    # The verdicts are the kernel's, row for row; columns pass unchanged.
    expected = evaluate(pa.array([r["text"] for r in rows], pa.string()), FilterOptions())
    reasons = dict(zip([r["id"] for r in rows], expected.reason.to_pylist(), strict=True))
    by_id = {r["id"]: r for r in rows}
    assert all(reasons[r["id"]] is None and r == by_id[r["id"]] for r in kept)
    for r in rejected:
        reason = r.pop("filter_reason")
        assert reason == reasons[r["id"]] and reason is not None
        assert r == by_id[r["id"]]
    stats = manifest["filters"]
    assert (stats["rows_in"], stats["kept"], stats["rejected"]) == (
        len(rows),
        len(kept),
        len(rejected),
    )
    removed = {name: counted["removed_rows"] for name, counted in stats["rules"].items()}
    assert sum(removed.values()) == len(rejected)
    for name, mask in expected.fired.items():
        assert stats["rules"][name]["fired_rows"] == int(mask.sum())
    assert tree_digest(tmp_path / "in") == before

    with get_client(sync_client=True) as client:
        published = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["filter-summary", "filter-rules", "filter-examples"])
            )
        )
    assert {a.key for a in published} == {"filter-summary", "filter-rules", "filter-examples"}
    examples = {
        row["rule"] for a in published if a.key == "filter-examples" for row in json.loads(a.data)
    }
    assert examples == {r for r in reasons.values() if r is not None}

    first = committed_bytes(tmp_path / "out")
    filter_documents(str(tmp_path / "in"), str(tmp_path / "out"))  # a rerun: same bytes
    assert committed_bytes(tmp_path / "out") == first


def test_a_filter_turned_off_is_not_applied(tmp_path):
    rows = corpus(tmp_path / "in", files=1, rows=10)
    only_c4 = FilterOptions.model_validate(
        {"gopher_quality": None, "gopher_repetition": None, "fineweb": None, "c4": {}}
    )
    filter_documents(str(tmp_path / "in"), str(tmp_path / "out"), filters=only_c4)
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert set(manifest["filters"]["rules"]) == {
        "c4.lorem_ipsum",
        "c4.curly_bracket",
        "c4.too_few_sentences",
    }
    assert manifest["filters"]["rows_in"] == len(rows)


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"gopher_repetition": {"max_dup_line_frac": 1.5}}, "max_dup_line_frac"),
        ({"c4": {"min_num_sentences": -1}}, "min_num_sentences"),
        ({"fineweb": {"no_such_threshold": 1}}, "no_such_threshold"),
    ],
)
def test_the_flow_refuses_a_bad_threshold_by_name(filters, field):
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match=field):
        filter_documents.validate_parameters(
            {"input_uri": "in", "output_uri": "out", "filters": filters}
        )


def test_a_filter_run_killed_mid_part_reruns_to_the_same_bytes(tmp_path, faults, ray_cluster):
    corpus(tmp_path / "in", files=4, rows=40)
    source = str(tmp_path / "in")
    filter_documents(source, str(tmp_path / "whole"))
    out = tmp_path / "out"
    # Killed while part 1's kept rows are being written (the write waits 30 s first).
    slow = faults / "part-00001.parquet.slow"
    slow.write_text("30")
    script = with_write_faults("flows.filter", "filter_documents", f"{source!r}, 'file://{out}'")
    kill_flow_when(
        script,
        f"file://{out}",
        ray_cluster.address_info["gcs_address"],
        tmp_path / "killed.log",
        lambda _: Path(f"{slow}.fired").exists(),
    )
    assert not (out / "_manifest.json").exists()

    filter_documents(source, str(out))
    assert committed_bytes(out) == committed_bytes(tmp_path / "whole")
    assert sorted(committed_bytes(out)) == sorted(
        [f"part-0000{i}.parquet" for i in range(4)]
        + [f"_rejected/part-0000{i}.parquet" for i in range(4)]
    )


def test_the_pipeline_runs_the_filter_between_preprocess_and_dedup(tmp_path):
    bucket = tmp_path / "bucket"
    none = {"gopher_quality": None, "gopher_repetition": None, "c4": None, "fineweb": None}
    out = pipeline(
        str(bucket), num_rows=300, num_files=2, text_length=200, dedup="exact", filters=none
    )
    assert out == f"file://{bucket}/deduped"
    filtered = assert_committed(bucket / "filtered")
    assert filtered["filters"]["kept"] == 300  # every rule set off: every row kept
    deduped = json.loads((bucket / "deduped" / "_manifest.json").read_text())
    assert deduped["parameters"]["input_uri"] == f"file://{bucket}/filtered"

    # The default rules reject the generated random letters, every row with its reason.
    pipeline(str(bucket / "defaults"), num_rows=300, num_files=2, text_length=200, filters={})
    stats = assert_committed(bucket / "defaults" / "filtered")["filters"]
    assert (stats["kept"], stats["rejected"]) == (0, 300)
    with pytest.raises(InputError, match="keep_text"):
        pipeline(str(bucket / "x"), num_rows=10, num_files=1, keep_text=False, filters={})
