"""Issue 23, commit then report: once a stage's manifest is written the step is committed,
whatever follows it. A stage cancelled at the timeout, or failing, after its commit (its
cleanup or reports still running) returns the manifest with a warning; one that stops
before committing still fails, and a manifest from before the stage does not count.
Real local Ray and Prefect server."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect import flow, get_client, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from flows import runner
from flows.runner import PipelineRayTaskRunner, run_stage
from tasks.errors import DeadlineExceeded
from tasks.store import dataset, storage
from tasks.store.dataset import FileEntry
from tests.helpers import assert_committed

pytestmark = pytest.mark.usefixtures("flows_env")

# Time for the stage task to start on a Ray worker and commit before the deadline.
LEAD_SECONDS = 8.0


def _commit_tiny(root: storage.Location, deadline: float | None) -> dict:
    leftovers = dataset.prepare_output(root)
    table = pa.table({"id": [0, 1, 2]})
    part = root.child(dataset.part_name(0))
    pq.write_table(table, part.path)
    entry = FileEntry(dataset.part_name(0), table.num_rows, Path(part.path).stat().st_size)
    manifest = dataset.build_manifest([entry], table.schema, stage="test")
    dataset.commit(root, manifest, leftovers, deadline)
    return manifest


@task(name="commit-test-stage", cache_policy=NO_CACHE)
def stage_task(output_uri: str, mode: str, deadline: float | None = None) -> dict:
    """A stage writing a tiny dataset at ``output_uri``; ``mode`` says what goes wrong.

    linger: commit, then keep "cleaning up" for a minute (past the deadline and grace);
    fail-after: commit, then fail; fail-before: start the write, then try to commit
    past the deadline; idle: leave the output alone and run for a minute; raise: leave
    the output alone and fail.
    """
    root = storage.resolve(output_uri)
    if mode in ("linger", "fail-after"):
        manifest = _commit_tiny(root, deadline)
        if mode == "fail-after":
            raise OSError(f"could not delete the staging files of {output_uri}")
        time.sleep(60)
        return manifest
    if mode == "fail-before":
        leftovers = dataset.prepare_output(root)
        time.sleep(max(0.0, (deadline or 0) - time.time()) + 0.2)
        dataset.commit(root, dataset.build_manifest([], pa.schema([])), leftovers, deadline)
    if mode == "idle":
        time.sleep(60)
    raise RuntimeError(f"stage failed ({mode}) without committing {output_uri}")


@flow(name="commit-test", task_runner=PipelineRayTaskRunner())
def stage_flow(output_uri: str, mode: str, lead_seconds: float | None = None) -> dict:
    until = None if lead_seconds is None else time.time() + lead_seconds
    return run_stage(stage_task, "commit-test", output_uri, until, output_uri=output_uri, mode=mode)


@pytest.fixture
def short_grace(monkeypatch):
    monkeypatch.setattr(runner, "CANCEL_GRACE_SECONDS", 1.0)


def _flow_logs(flow_run_id: UUID, wanted: str, timeout: float = 15) -> list[str]:
    """The flow run's log messages, waiting for one containing ``wanted`` to arrive."""
    until = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            messages = [log.message for log in logs]
            if any(wanted in m for m in messages) or time.monotonic() > until:
                return messages
            time.sleep(0.5)


@pytest.mark.usefixtures("short_grace")
def test_a_stage_cancelled_after_its_commit_is_committed(tmp_path):
    """The task commits, then is still busy past the deadline and the grace: it is
    cancelled, and the run completes with the manifest it committed and a warning."""
    output = tmp_path / "out"
    started = time.monotonic()
    state = stage_flow(str(output), "linger", LEAD_SECONDS, return_state=True)
    assert state.is_completed(), state
    assert time.monotonic() - started < LEAD_SECONDS + 15  # it did not wait for the task
    manifest = state.result()
    assert manifest == assert_committed(output)
    assert manifest["num_rows"] == 3 and manifest["stage"] == "test"
    logs = _flow_logs(state.state_details.flow_run_id, "cancelled after the commit")
    warning = next(m for m in logs if "cancelled after the commit" in m)
    assert f"committed at {manifest['committed_at']}" in warning, warning
    assert "still cleaning up/reporting past the timeout" in warning, warning


def test_a_stage_failing_after_its_commit_is_committed(tmp_path):
    """A failure after the manifest is written (a cleanup error not retried) does not
    turn the committed output into a failed run."""
    output = tmp_path / "out"
    state = stage_flow(str(output), "fail-after", return_state=True)
    assert state.is_completed(), state
    manifest = state.result()
    assert manifest == assert_committed(output)
    logs = _flow_logs(state.state_details.flow_run_id, "failed after the commit")
    warning = next(m for m in logs if "failed after the commit" in m)
    assert "could not delete the staging files" in warning, warning


@pytest.mark.usefixtures("short_grace")
def test_a_stage_refused_its_commit_past_the_deadline_fails(tmp_path):
    """The task reaches its commit past the deadline: the commit refuses, the run fails
    with DeadlineExceeded, and no manifest appears."""
    output = tmp_path / "out"
    state = stage_flow(str(output), "fail-before", LEAD_SECONDS, return_state=True)
    assert state.is_failed(), state
    with pytest.raises(DeadlineExceeded, match="past its timeout"):
        state.result()
    assert not (output / dataset.MANIFEST_NAME).exists()


@pytest.mark.usefixtures("short_grace")
@pytest.mark.parametrize(
    ("mode", "lead", "error", "message"),
    [
        ("idle", 2.0, DeadlineExceeded, "was cancelled; nothing of it is committed"),
        ("raise", None, RuntimeError, "without committing"),
    ],
)
def test_a_manifest_from_before_the_stage_is_not_its_commit(tmp_path, mode, lead, error, message):
    """The output already holds a committed dataset the stage leaves alone: the stage
    cancelled at the deadline, or failing, still fails, and the old manifest stays."""
    output = tmp_path / "out"
    _commit_tiny(storage.resolve(str(output)), None)
    before = (output / dataset.MANIFEST_NAME).read_bytes()
    state = stage_flow(str(output), mode, lead, return_state=True)
    assert state.is_failed(), state
    with pytest.raises(error, match=message):
        state.result()
    assert (output / dataset.MANIFEST_NAME).read_bytes() == before
