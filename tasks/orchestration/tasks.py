"""The pipeline's Prefect tasks: thin, typed, retrying wrappers around the work.

Every data step runs in one task, :func:`step_task`, on the step skeleton
(``tasks.steps.skeleton``); the work modules never import Prefect, so the Ray Data tasks
they run stay light. The task runs where the flow runs its stage (a Ray worker, through
prefect-ray), with the flow's S3 settings in force, and reports to the Prefect API from
there (``tasks.orchestration.reporting``). ``deadline`` is the flow run's timeout as
epoch seconds: past it nothing is committed.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from tasks.cluster.options import RayOptions
from tasks.errors import OutputBusyError
from tasks.nightly import retention
from tasks.orchestration.exclusive import exclusive_output
from tasks.orchestration.reporting import StageReport, metrics
from tasks.orchestration.retry import retry_if_transient
from tasks.steps.skeleton import Step, run_step
from tasks.store import storage
from tasks.store.bucket import ensure_bucket
from tasks.store.storage import S3Settings

# Up to three retries of transient failures only, after about 5 s, 10 s and 20 s (+-50%
# jitter so parallel runs do not retry in step). No caching: whether work can be skipped
# is for the manifest to say, not Prefect's result cache.
STAGE_OPTIONS: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,
}


def _named(stage: str, parameter: str) -> Callable[[], str]:
    """``task_run_name``: the stage and the dataset it writes, ``generate local-bucket/raw``."""

    def name() -> str:
        where = task_run.parameters.get(parameter)
        return f"{stage} {storage.short_name(str(where))}" if where else stage

    return name


@task(name="create-bucket", task_run_name=_named("create-bucket", "bucket_uri"), **STAGE_OPTIONS)
def create_bucket_task(
    bucket_uri: str,
    region: str | None = None,
    tags: dict[str, str] | None = None,
    s3: S3Settings | None = None,
) -> dict[str, Any]:
    """Create the bucket if it does not exist (``tasks.store.bucket.ensure_bucket``)."""
    result = ensure_bucket(bucket_uri, region, tags, s3)
    metrics("create-bucket", result)
    return result


def step_reference(step: type[Step]) -> str:
    """``module:Class`` of a step: how a task names the step it runs (a string, so the
    task run's parameters show it and any step class will do, registered nowhere)."""
    return f"{step.__module__}:{step.__qualname__}"


def _step_type(reference: str) -> type[Step]:
    module, _, name = reference.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, Step)):
        raise TypeError(f"{reference} is not a data step")
    return found


@task(name="step-dataset", **STAGE_OPTIONS)
def step_task(
    step: str,
    params: BaseModel,
    output_uri: str,
    scheduling: RayOptions,
    s3: S3Settings | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Run the data step ``step`` (``module:Class``) with ``params`` into a committed
    dataset at ``output_uri`` on the step skeleton, with its reports; its manifest."""
    step_type = _step_type(step)
    report = StageReport(step_type.name, output_uri, scheduling)
    manifest = run_step(
        step_type,
        params,
        output_uri,
        scheduling,
        s3=s3,
        deadline=deadline,
        on_done=report.part_done,
        on_phase=get_run_logger().info,
    )
    report.publish(manifest, step_type)
    return manifest


def task_for(step: type[Step]) -> Task[..., dict[str, Any]]:
    """The Prefect task that runs ``step``: ``{step}-dataset``, each run named by the
    dataset it writes (``generate-dataset local-bucket/raw``)."""
    name = f"{step.name}-dataset"
    return step_task.with_options(name=name, task_run_name=_named(name, "output_uri"))


@task(name="retention", task_run_name=_named("retention", "bucket_uri"), **STAGE_OPTIONS)
def retention_task(
    bucket_uri: str,
    datasets: list[str],
    day: dt.date,
    keep_days: int,
    today: dt.date,
    s3: S3Settings | None = None,
) -> list[str]:
    """Remove the committed partitions of ``datasets`` (under ``bucket_uri``) that are
    ``keep_days`` or more days older than ``day``, or than ``today`` (the run's timezone)
    if that is earlier; return the URIs removed.

    Each removal holds the partition's write slot, so a run writing it is never cut
    short; a partition busy that long is left for the next run. A removal that stopped
    half way (a retry, a kill) is finished here too.
    """
    logger = get_run_logger()
    removed: list[str] = []
    for name in datasets:
        base = storage.resolve(f"{bucket_uri}/{name}", s3)
        for partition in retention.expired_partitions(base, day, keep_days, today):
            uri = partition.uri
            try:
                with exclusive_output(uri):
                    files = retention.remove_committed(partition, logger)
            except OutputBusyError as exc:
                logger.warning("left %s: %s", uri, exc)
                continue
            if files is None:  # remove_committed logged why
                continue
            logger.info(
                "removed %s (%d files): %d or more days before %s",
                uri,
                files,
                keep_days,
                min(day, today),
            )
            removed.append(uri)
    metrics("retention", {"keep_days": keep_days, "removed": len(removed)})
    return removed
