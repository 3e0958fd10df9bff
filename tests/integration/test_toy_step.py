"""A new step gets every guarantee from the skeleton alone: tests/toy_step.py is one
class, registered nowhere (tests/unit/test_layout.py: no generic module names a step)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from tasks.cluster.options import RayOptions
from tasks.errors import DeadlineExceeded, InputError
from tasks.steps.generate.step import Generate, GenerateParams
from tasks.steps.skeleton import run_step
from tasks.store import space
from tests.helpers import assert_committed, committed_bytes, kill_flow_when, with_write_faults
from tests.toy_step import Upper, UpperParams, UpperStep, upper

pytestmark = pytest.mark.usefixtures("flows_env")


def source(tmp_path: Path, rows: int = 3000, files: int = 3) -> str:
    uri = f"file://{tmp_path}/in"
    run_step(Generate, GenerateParams(num_rows=rows, num_files=files, text_length=50), uri)
    return uri


def test_a_toy_step_runs_its_parts_on_ray_retries_one_and_commits_and_reports(tmp_path, faults):
    (faults / "part-00001.parquet").touch()  # its first write fails half way
    manifest = upper(source(tmp_path), f"file://{tmp_path}/out")

    assert (faults / "part-00001.parquet.fired").exists()
    assert assert_committed(tmp_path / "out") == manifest
    assert manifest["stage"] == "upper" and manifest["num_rows"] == 3000
    assert sum(node["parts"] for node in manifest["execution"]["nodes"]) == 3
    before = pq.read_table(tmp_path / "in" / "part-00001.parquet")["text"].to_pylist()
    after = pq.read_table(tmp_path / "out" / "part-00001.parquet")["text"].to_pylist()
    assert after == [t.upper() for t in before]
    # Its typed counts, added over its parts: every generated text has a lower-case letter.
    assert manifest["stats"] == {"changed": 3000}
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["upper-summary"]))
        )
    assert found, "no upper-summary artifact"


def test_a_toy_step_killed_mid_run_reruns_to_the_same_bytes(tmp_path, faults, ray_cluster):
    source_uri = source(tmp_path, rows=6000, files=6)
    upper(source_uri, f"file://{tmp_path}/whole")
    # The run is killed while part 1 is being written (its write waits 30 s first).
    slow = faults / "part-00001.parquet.slow"
    slow.write_text("30")
    out = tmp_path / "out"
    # A run of its own (joining the session's Ray), whose workers take write faults too.
    script = with_write_faults(
        "tests.integration.test_toy_step", "upper", f"{source_uri!r}, 'file://{out}'"
    )
    kill_flow_when(
        script,
        f"file://{out}",
        ray_cluster.address_info["gcs_address"],
        tmp_path / "killed.log",
        lambda _: Path(f"{slow}.fired").exists(),
    )
    assert not (out / "_manifest.json").exists()

    upper(source_uri, f"file://{out}")
    assert committed_bytes(out) == committed_bytes(tmp_path / "whole")


def test_a_toy_step_is_refused_when_its_output_would_not_fit(tmp_path, monkeypatch):
    uri = source(tmp_path)
    monkeypatch.setattr(space, "reserve_bytes", lambda total: total)
    with pytest.raises(InputError, match="upper needs about"):
        run_step(Upper, UpperParams(input_uri=uri), f"file://{tmp_path}/out")
    assert not (tmp_path / "out").exists()


def test_a_toy_step_past_its_deadline_commits_nothing(tmp_path):
    uri = source(tmp_path)
    with pytest.raises(DeadlineExceeded):
        run_step(Upper, UpperParams(input_uri=uri), f"file://{tmp_path}/out", deadline=time.time())
    assert not (tmp_path / "out" / "_manifest.json").exists()


def test_a_toy_step_in_the_steps_union_runs_in_a_pipeline_with_no_other_change(tmp_path):
    """The union with one more entry: validated, ordered, named (twice), estimated and
    run by the pipeline's own code, each reading the dataset the one before committed."""
    from pydantic import TypeAdapter

    from flows.pipeline import disk_needed, keep_days_of
    from flows.pipeline_step import Source, StepRun, check_order, run_steps, step_of, steps_type
    from flows.steps import STEP_TYPES

    steps = TypeAdapter(steps_type((*STEP_TYPES, UpperStep))).validate_python(
        [{"preprocess": {}}, {"upper": {"column": "cleaned_text"}}, {"upper": {}}]
    )
    chosen = [step_of(entry) for entry in steps]
    check_order(chosen, {"id", "text", "label"})
    with pytest.raises(InputError, match=r"steps\[2\] \(upper\) reads column\(s\) nope"):
        check_order([chosen[0], UpperStep(column="nope")], {"id", "text", "label"})
    assert keep_days_of(chosen, True, 3, 0) == {
        "raw": 0,
        "preprocessed": 3,
        "uppered": 3,
        "uppered_2": 3,
    }
    assert disk_needed(chosen, 100, 10) == 100 + 200 + 200 + 200

    bucket = tmp_path / "bucket"
    out = run_steps(
        chosen,
        Source(source(tmp_path, rows=300, files=2), "parquet"),
        lambda name: f"{bucket}/{name}",
        StepRun(RayOptions(), None, lambda: None, False),
    )
    assert out == f"file://{bucket}/uppered_2"
    first = assert_committed(bucket / "uppered")
    assert first["parameters"]["input_uri"] == f"file://{bucket}/preprocessed"
    assert assert_committed(bucket / "uppered_2")["parameters"]["input_uri"] == (
        f"file://{bucket}/uppered"
    )
    rows = pq.read_table(bucket / "uppered_2").to_pylist()
    assert len(rows) == 300
    assert all(r["text"] == r["text"].upper() and r["cleaned_text"].isupper() for r in rows)
