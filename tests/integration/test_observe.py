"""What a person sees in the Prefect UI: artifacts, logs from Ray workers, names, tags,
and nightly date partitions with backfills. Real local Ray, real Prefect server."""

from __future__ import annotations

import json
import time
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterTaskRunId,
)
from prefect.exceptions import ParameterTypeError

from flows.backfill import backfill
from flows.pipeline import pipeline
from tasks.errors import InputError
from tasks.store.dataset import read_dataset
from tests.helpers import assert_committed

pytestmark = pytest.mark.usefixtures("flows_env")


def flow_runs_of(client, parent: UUID) -> dict[str, object]:
    """The pipeline run's subflow runs by flow name."""
    children = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
        )
    )
    return {client.read_flow(run.flow_id).name: run for run in children}


def artifacts_of(client, run_id: UUID) -> dict[str, object]:
    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )
    return {a.key: a for a in found}


def table(artifact) -> dict[str, object]:
    return {row["metric"]: row["value"] for row in json.loads(artifact.data)}


def logs_of(client, task_run_id: UUID, wanted: int, timeout: float = 30) -> list[str]:
    """The task run's log messages in the API, waiting for the batched handler to send them."""
    deadline = time.monotonic() + timeout
    while True:
        logs = client.read_logs(
            log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[task_run_id]))
        )
        messages = [log.message for log in logs]
        if sum("part " in m for m in messages) >= wanted or time.monotonic() > deadline:
            return messages
        time.sleep(1)


def test_each_stage_reports_artifacts_logs_names_and_tags(tmp_path):
    bucket = tmp_path / "bucket"
    state = pipeline(str(bucket), num_rows=3000, num_files=3, return_state=True)
    assert state.is_completed()
    raw = assert_committed(bucket / "raw")
    cleaned = assert_committed(bucket / "preprocessed")
    with get_client(sync_client=True) as client:
        runs = flow_runs_of(client, state.state_details.flow_run_id)
        assert set(runs) == {"create-bucket", "generate", "preprocess"}
        today = runs["generate"].expected_start_time.date().isoformat()
        assert runs["generate"].name == f"generate bucket/raw {today}"
        assert {"stage:generate", "storage:local"} <= set(runs["generate"].tags)
        assert {"stage:preprocess", "storage:local"} <= set(runs["preprocess"].tags)

        gen = artifacts_of(client, runs["generate"].id)
        pre = artifacts_of(client, runs["preprocess"].id)
        assert "create-bucket-summary" in artifacts_of(client, runs["create-bucket"].id)
        assert {"generate-summary", "generate-nodes", "generate-progress", "generate-links"} <= set(
            gen
        )
        assert {"preprocess-summary", "preprocess-quality", "preprocess-progress"} <= set(pre)

        summary = table(gen["generate-summary"])
        assert summary["rows out"] == 3000 == raw["num_rows"]
        assert summary["bytes out"] == raw["size_bytes"]
        assert summary["files out"] == 3
        assert summary["retries"] == 0
        assert summary["Ray nodes"] == 1 and summary["Ray CPUs"] == 2
        assert summary["text MB/s"] > 0
        pre_summary = table(pre["preprocess-summary"])
        assert pre_summary["rows in"] == 3000 == pre_summary["rows out"]
        assert pre_summary["bytes in"] == raw["size_bytes"]
        assert pre_summary["bytes out"] == cleaned["size_bytes"]

        # The quality table agrees with the data as committed.
        data = read_dataset(str(bucket / "preprocessed"))
        texts = data.column("text").to_pylist()
        after = data.column("cleaned_text").to_pylist()
        quality = table(pre["preprocess-quality"])
        assert quality["rows"] == 3000
        assert quality["null texts"] == 0
        assert quality["mean text length before (chars)"] == round(sum(map(len, texts)) / 3000, 1)
        assert quality["mean text length after (chars)"] == round(sum(map(len, after)) / 3000, 1)
        for label in set(data.column("label").to_pylist()):
            assert quality[f"rows with label {label}"] == data.column("label").to_pylist().count(
                label
            )

        for stage, found in (("generate", gen), ("preprocess", pre)):
            assert found[f"{stage}-progress"].type == "progress"
            assert float(found[f"{stage}-progress"].data) == 100.0
            assert f"file://{bucket}" in found[f"{stage}-links"].data

        # The stage task ran in a Ray worker; its per-part log lines reached the API.
        task_run = client.read_task_run(gen["generate-summary"].task_run_id)
        assert task_run.name == "generate-dataset bucket/raw"
        assert {"stage:generate", "storage:local"} <= set(task_run.tags)
        messages = logs_of(client, task_run.id, wanted=3)
        for i in (1, 2, 3):
            assert any(m.startswith(f"part {i}/3: part-") for m in messages), messages


def test_a_scheduled_daily_run_commits_its_dates_partitions(tmp_path):
    """The date comes from the run's scheduled time in the schedule's timezone."""
    import datetime as dt

    from prefect.client.schemas.objects import FlowRun
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    # 02:00 on 2 March in Seoul: still 1 March in UTC.
    when = dt.datetime(2026, 3, 1, 17, 0, tzinfo=dt.UTC)
    bucket = tmp_path / "nightly"
    params = {
        "bucket_uri": str(bucket),
        "num_rows": 1000,
        "num_files": 2,
        "daily": True,
        "timezone": "Asia/Seoul",
    }
    with get_client(sync_client=True) as client:
        flow_run: FlowRun = client.create_flow_run(
            pipeline, parameters=params, state=Scheduled(scheduled_time=when)
        )
    state = run_flow(pipeline, flow_run=flow_run, parameters=params, return_type="state")
    assert state.is_completed(), state
    assert sorted(p.name for p in (bucket / "raw").iterdir()) == ["dt=2026-03-02"]
    assert sorted(p.name for p in (bucket / "preprocessed").iterdir()) == ["dt=2026-03-02"]
    first = assert_committed(bucket / "preprocessed" / "dt=2026-03-02")
    assert first["num_rows"] == 1000
    rows = read_dataset(str(bucket / "raw" / "dt=2026-03-02"))

    # The same date again (named by run_date) rewrites the same rows.
    pipeline(**{**params, "run_date": "2026-03-02"})
    assert read_dataset(str(bucket / "raw" / "dt=2026-03-02")).equals(rows)
    assert sorted(p.name for p in (bucket / "raw").iterdir()) == ["dt=2026-03-02"]
    with get_client(sync_client=True) as client:
        assert "dt:2026-03-02" in client.read_flow_run(flow_run.id).tags


def test_a_bad_run_date_fails_before_anything_is_written(tmp_path):
    bucket = tmp_path / "b"
    # Typed as a date: Prefect refuses it when the run starts, naming the parameter.
    with pytest.raises(ParameterTypeError, match="run_date: Input should be a valid date"):
        pipeline(str(bucket), num_rows=10, num_files=1, run_date="2026-02-30")
    assert not bucket.exists()


def test_backfill_commits_each_date_once(tmp_path):
    bucket = tmp_path / "bucket"
    params = {"bucket_uri": str(bucket), "num_rows": 600, "num_files": 1}
    first = backfill("2026-01-30", "2026-02-01", deployment=None, parameters=params)
    assert first == {
        "2026-01-30": "Completed",
        "2026-01-31": "Completed",
        "2026-02-01": "Completed",
    }
    days = ["dt=2026-01-30", "dt=2026-01-31", "dt=2026-02-01"]
    assert sorted(p.name for p in (bucket / "preprocessed").iterdir()) == days
    for d in days:
        assert assert_committed(bucket / "preprocessed" / d)["num_rows"] == 600
    texts = [read_dataset(str(bucket / "raw" / d)).column("text") for d in days]
    assert texts[0] != texts[1] != texts[2]  # each date has rows of its own
    manifests = {d: (bucket / "preprocessed" / d / "_manifest.json").read_bytes() for d in days}

    again = backfill("2026-01-30", "2026-02-01", deployment=None, parameters=params)
    assert again == dict.fromkeys(first, "skipped")
    assert {
        d: (bucket / "preprocessed" / d / "_manifest.json").read_bytes() for d in days
    } == manifests

    forced = backfill("2026-01-31", "2026-01-31", deployment=None, parameters=params, force=True)
    assert forced == {"2026-01-31": "Completed"}
    rewritten = bucket / "preprocessed" / "dt=2026-01-31" / "_manifest.json"
    assert rewritten.read_bytes() != manifests["dt=2026-01-31"]
    assert assert_committed(bucket / "preprocessed" / "dt=2026-01-31")["num_rows"] == 600


def test_backfill_names_a_missing_deployment_and_a_bad_range(tmp_path):
    with pytest.raises(InputError, match="deployment 'pipeline/nope' not found"):
        backfill("2026-01-01", "2026-01-02", deployment="pipeline/nope")
    with pytest.raises(InputError, match="end_date 2026-01-01 is before start_date 2026-01-02"):
        backfill(
            "2026-01-02", "2026-01-01", deployment=None, parameters={"bucket_uri": str(tmp_path)}
        )
    with pytest.raises(InputError, match="needs the pipeline's bucket_uri"):
        backfill("2026-01-01", "2026-01-01", deployment=None, parameters={"bucket_uri": "s3://"})
