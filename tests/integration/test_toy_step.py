"""A new step gets every guarantee from the skeleton alone: tests/toy_step.py is one
class, registered nowhere (tests/unit/test_layout.py: no generic module names a step)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.runner import PipelineRayTaskRunner, run_step_task
from tasks.cluster.options import RayOptions
from tasks.errors import DeadlineExceeded, InputError
from tasks.nightly import deadline, space
from tasks.orchestration.exclusive import exclusive_output
from tasks.steps.generate.step import Generate, GenerateParams
from tasks.steps.skeleton import run_step
from tests.helpers import assert_committed, committed_bytes, kill_flow_when, with_write_faults
from tests.toy_step import Upper, UpperParams

pytestmark = pytest.mark.usefixtures("flows_env")


@flow(task_runner=PipelineRayTaskRunner())
def upper(input_uri: str, output_uri: str, timeout_minutes: float | None = None) -> dict:
    """The toy step as a flow runs any step: its task on Ray, holding the output's slot."""
    with exclusive_output(output_uri):
        return run_step_task(
            Upper,
            UpperParams(input_uri=input_uri),
            output_uri,
            deadline.after(timeout_minutes),
            scheduling=RayOptions(),
            s3=None,
        )


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
