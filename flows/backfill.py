"""Backfill: one pipeline run per date, skipping dates whose partitions are all committed.

Deployed as ``backfill/nightly`` (prefect.yaml): start it from the UI or with
``make backfill START=2026-11-01 END=2026-11-03``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_client, get_run_logger
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect_aws import AwsCredentials

from flows import runs
from flows.pipeline import datasets_kept, pipeline
from tasks.errors import InputError
from tasks.store import dataset, partitions, storage


def _deployment_parameters(name: str) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        try:
            return dict(client.read_deployment_by_name(name).parameters)
        except ObjectNotFound:
            raise InputError(
                f"deployment {name!r} not found on the Prefect server (prefect deploy --all?)"
            ) from None


def committed(
    bucket_uri: str, day: Any, aws_credentials: AwsCredentials | None, datasets: list[str]
) -> bool:
    """Whether ``day``'s partition of every one of ``datasets`` under ``bucket_uri`` has
    a manifest: a date whose run stopped after preprocess is not done."""
    if not datasets:  # nothing to find committed: never "done"
        raise InputError("the pipeline's parameters keep no dataset past a run")
    base = storage.canonical_uri(bucket_uri)
    targets = [partitions.partition(f"{base}/{name}", day) for name in datasets]
    s3 = storage.settings_for(targets, aws_credentials)
    return all(dataset.read_manifest(storage.resolve(t, s3)) is not None for t in targets)


@flow(name="backfill", flow_run_name="backfill {start_date}..{end_date}")
def backfill(
    start_date: dt.date,
    end_date: dt.date,
    deployment: str | None = "pipeline/nightly",
    parameters: dict[str, Any] | None = None,
    force: bool = False,
) -> dict[str, str]:
    """Run the pipeline once per date from start_date to end_date (both included).

    Dates run oldest first, one at a time. Returns each date's outcome; fails, after
    trying every date, if any run did not complete.

    Args:
        start_date: The first date (YYYY-MM-DD).
        end_date: The last date (YYYY-MM-DD), at most 366 days after start_date and at
            most tomorrow in the pipeline's timezone.
        deployment: The pipeline deployment each date runs as (its worker does the
            work); null to run the pipeline here, as a subflow.
        parameters: Pipeline parameters, over the deployment's.
        force: Rerun dates already committed (every dataset the run writes and keeps:
            raw, and each step's); by default they are skipped.
    """
    params = {**(_deployment_parameters(deployment) if deployment else {}), **(parameters or {})}
    # Refused before any run is created; "today" is the pipeline's, in its timezone.
    days = partitions.date_range(start_date, end_date, str(params.get("timezone") or "UTC"))
    bucket = str(params.get("bucket_uri") or "").strip()
    if not bucket or storage.is_new_bucket(bucket):  # a bare s3:// names a new bucket per run
        raise InputError(
            f"backfill needs the pipeline's bucket_uri to name a bucket, got {bucket!r} "
            f"({'deployment ' + deployment if deployment else 'parameters'})"
        )
    logger = get_run_logger()
    runs.tag_flow_run("backfill", bucket)
    # Typed as the pipeline takes them: a block reference becomes the block.
    typed = pipeline.validate_parameters(params)
    credentials = typed.get("aws_credentials")
    datasets = datasets_kept(typed)
    outcomes: dict[str, str] = {}
    for day in days:
        if not force and committed(bucket, day, credentials, datasets):
            logger.info("%s: already committed, skipped (force=True reruns it)", day)
            outcomes[day.isoformat()] = "skipped"
            continue
        if deployment:
            run = run_deployment(
                deployment,
                parameters={**(parameters or {}), "run_date": day.isoformat()},
                flow_run_name=f"pipeline {storage.short_name(bucket)} {day} (backfill)",
                tags=[f"dt:{day}", "backfill"],
            )
            outcomes[day.isoformat()] = run.state.name if run.state else "unknown"
        else:
            state = pipeline(**{**params, "run_date": day.isoformat()}, return_state=True)
            outcomes[day.isoformat()] = state.name
        logger.info("%s: %s", day, outcomes[day.isoformat()])
    failed = {
        day: outcome for day, outcome in outcomes.items() if outcome not in ("skipped", "Completed")
    }
    if failed:
        raise RuntimeError(f"backfill runs did not complete: {failed}")
    return outcomes
