"""The pipeline's Prefect tasks: thin, typed, retrying wrappers around the work.

The work modules never import Prefect, so the Ray Data tasks they run stay light. These
wrappers run where the stage runs (a Ray worker, through prefect-ray), with the flow's
S3 settings in force, and report to the Prefect API from there (``tasks.orchestration.reporting``).
``deadline`` is the flow run's timeout as epoch seconds: past it nothing is committed.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.tasks import exponential_backoff

from tasks.cluster.mapping import RayOptions
from tasks.data import storage
from tasks.data.bucket import ensure_bucket
from tasks.data.storage import S3Settings
from tasks.errors import OutputBusyError
from tasks.nightly import retention
from tasks.orchestration.exclusive import exclusive_output
from tasks.orchestration.reporting import OnDone, metrics, reported
from tasks.orchestration.retry import retry_if_transient
from tasks.steps.dedup.minhash import MinHashParams
from tasks.steps.dedup.step import dedup_dataset
from tasks.steps.generate.step import generate_dataset
from tasks.steps.preprocess.step import preprocess_dataset

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
    """Create the bucket if it does not exist (``tasks.data.bucket.ensure_bucket``)."""
    with storage.using_s3(s3):
        result = ensure_bucket(bucket_uri, region, tags)
    metrics("create-bucket", result)
    return result


@task(
    name="generate-dataset", task_run_name=_named("generate-dataset", "output_uri"), **STAGE_OPTIONS
)
def generate_task(
    output_uri: str,
    num_rows: int,
    num_files: int | None,
    rows_per_file: int | None,
    text_length: int,
    seed: int,
    scheduling: RayOptions,
    s3: S3Settings | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Generate and commit the synthetic dataset (``tasks.steps.generate.step``); its manifest."""
    work = functools.partial(
        generate_dataset,
        output_uri,
        num_rows,
        num_files,
        text_length,
        seed,
        scheduling,
        rows_per_file,
        deadline=deadline,
    )
    with storage.using_s3(s3):
        return reported("generate", output_uri, scheduling, work)


@task(
    name="preprocess-dataset",
    task_run_name=_named("preprocess-dataset", "output_uri"),
    **STAGE_OPTIONS,
)
def preprocess_task(
    input_uri: str,
    output_uri: str,
    input_format: str,
    text_column: str,
    keep_text: bool,
    compression: str,
    batch_size: int,
    num_files: int | None,
    rows_per_file: int | None,
    scheduling: RayOptions,
    s3: S3Settings | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Clean the input into a committed dataset (``tasks.steps.preprocess.step``); its manifest."""

    def work(on_done: OnDone) -> dict[str, Any]:
        return preprocess_dataset(
            input_uri,
            output_uri,
            input_format=input_format,
            batch_size=batch_size,
            num_files=num_files,
            scheduling=scheduling,
            rows_per_file=rows_per_file,
            on_done=on_done,
            text_column=text_column,
            keep_text=keep_text,
            compression=compression,
            deadline=deadline,
        )

    with storage.using_s3(s3):
        return reported("preprocess", output_uri, scheduling, work)


@task(name="dedup-dataset", task_run_name=_named("dedup-dataset", "output_uri"), **STAGE_OPTIONS)
def dedup_task(
    input_uri: str,
    output_uri: str,
    mode: str,
    text_column: str,
    params: MinHashParams | None,
    compression: str,
    scheduling: RayOptions,
    against: list[str] | None = None,
    against_earlier: bool = False,
    s3: S3Settings | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Remove duplicates into a committed dataset (``tasks.steps.dedup.step``); its manifest."""

    def work(on_done: OnDone) -> dict[str, Any]:
        return dedup_dataset(
            input_uri,
            output_uri,
            mode=mode,
            text_column=text_column,
            params=params,
            compression=compression,
            scheduling=scheduling,
            on_done=on_done,
            deadline=deadline,
            against=against,
            against_earlier=against_earlier,
            on_phase=get_run_logger().info,
        )

    with storage.using_s3(s3):
        return reported("dedup", output_uri, scheduling, work)


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
    with storage.using_s3(s3):
        for name in datasets:
            base = f"{bucket_uri}/{name}"
            for uri in retention.expired_partitions(base, day, keep_days, today):
                try:
                    with exclusive_output(uri):
                        files = retention.remove_committed(storage.resolve(uri), logger)
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
