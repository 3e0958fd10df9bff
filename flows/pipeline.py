"""The pipeline in order: create the bucket, generate raw data (or take a corpus of the
user's), then its steps, each reading the dataset the one before committed; with daily
runs, retention of the dates past each dataset's keep_days."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact
from prefect.runtime import flow_run
from prefect_aws import AwsCredentials
from pydantic import Field

from flows import runs
from flows.create_bucket import create_bucket
from flows.generate import generate
from flows.pipeline_step import (
    PipelineStep,
    Source,
    StepRun,
    check_order,
    dataset_names,
    run_steps,
    step_of,
)
from flows.runner import PipelineRayTaskRunner, start_ray
from flows.steps import DEFAULT_STEPS, Steps, validate_steps
from tasks.cluster.options import RayInit, RayOptions
from tasks.errors import InputError
from tasks.orchestration import deadline
from tasks.orchestration.tasks import retention_task
from tasks.steps.generate.step import generated_bytes
from tasks.steps.generate.synth import MAX_TEXT_LENGTH, SCHEMA
from tasks.store import partitions, space, storage

# What generated data is written as, under the bucket.
RAW = "raw"


@flow(
    name="pipeline",
    flow_run_name=runs.flow_run_name("pipeline", "bucket_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def pipeline(
    bucket_uri: str,
    steps: Steps = list(DEFAULT_STEPS),  # noqa: B006 (validated into a new list per run)
    num_rows: Annotated[int, Field(ge=1)] | None = None,
    num_files: Annotated[int, Field(ge=1)] | None = None,
    text_length: Annotated[int, Field(ge=0, le=MAX_TEXT_LENGTH)] = 1000,
    seed: Annotated[int, Field(ge=0)] = 0,
    duplicates: Annotated[float, Field(ge=0, lt=1)] = 0.0,
    input_uri: str | None = None,
    input_format: Literal["auto", "parquet", "json"] = "auto",
    region: str | None = None,
    daily: bool = False,
    run_date: dt.date | None = None,
    timezone: str = "UTC",
    keep_days: Annotated[int, Field(ge=1)] | None = None,
    raw_keep_days: Annotated[int, Field(ge=0)] | None = None,
    ray: RayOptions = RayOptions(),  # noqa: B008 (frozen, so one shared default is safe)
    aws_credentials: AwsCredentials | None = None,
    timeout_minutes: Annotated[float, Field(gt=0)] | None = None,
) -> str:
    """Create the bucket, generate into {bucket_uri}/raw (or read input_uri), then run
    the steps in order, each into {bucket_uri}/<its dataset>.

    Returns the URI of the last dataset committed; it is also the pipeline-output
    artifact.

    Args:
        bucket_uri: The bucket: a local path, file:// or s3://name; a bare s3:// creates
            a bucket with the seed's ray-on-aws-<epoch> name.
        steps: The steps in order, each one key naming the step with its options:
            {preprocess: {...}} into preprocessed, {filter: {...}} into filtered,
            {dedup: {mode: near}} into deduped, {tokenize: {tokenizer: ...}} into
            tokenized (a repeated step writes <dataset>_2, ...). Each reads what
            the one before committed; the first reads raw or input_uri. Every step
            also takes health (bounds on what it commits) and keep_days. Default: one
            preprocess step.
        num_rows: Rows to generate (not with input_uri).
        num_files: Parquet files of the raw dataset (not with input_uri).
        text_length: Characters of text per generated row.
        seed: Random seed of the generated rows (a daily run adds the date's day number).
        duplicates: The share of generated rows that copy an earlier row, exactly or
            nearly (see the generate flow): something for dedup to find.
        input_uri: A corpus for the first step instead of generated rows: anything the
            preprocess flow reads (a dataset, directory, file or glob; Parquet or JSON
            Lines, also compressed), e.g. s3://crawl/incoming/dt={date}/*.jsonl.zst.
            {date} stands for the run's date (YYYY-MM-DD), so it needs a daily run.
            Nothing is written to {bucket_uri}/raw.
        input_format: parquet, json, or auto to tell input_uri's files by their names.
        region: The S3 bucket's region.
        daily: Write one date's partitions, raw/dt=YYYY-MM-DD/ and one per step: the
            date the run was scheduled for in timezone.
        run_date: The date to write instead of the scheduled one (implies daily); at
            most tomorrow in timezone.
        timezone: The IANA timezone that tells a scheduled run's date; match the
            schedule's.
        keep_days: With daily, after a successful run remove the committed partitions
            dated keep_days or more days before the run's date, or before today in
            timezone if that is earlier (7 keeps the run's date and the six before
            it), of every dataset without a keep_days of its own. Folders without a
            manifest of ours are never removed.
        raw_keep_days: keep_days for raw (0: remove the run's date once its last step
            has committed); keep_days if not set.
        ray: Where and how the parts of every step run on Ray.
        aws_credentials: A prefect-aws AwsCredentials block for S3; without one, the
            standard AWS environment (variables, profile, instance role) is used.
        timeout_minutes: Fail the run this long after it starts; the dataset being
            written then is not committed (what an earlier step committed stays).
    """
    until = deadline.after(timeout_minutes)
    # Validated again: a default (or a value a caller built) reaches here unvalidated.
    chosen = [step_of(entry) for entry in validate_steps(steps)]
    day = today = None
    if daily or run_date:  # checked before anything is written
        day = partitions.run_date(run_date, flow_run.scheduled_start_time, timezone)
        # One clock reading: the date check and retention's bound agree on today.
        now = dt.datetime.now(dt.UTC)
        partitions.check_not_future(
            day, timezone, now, parameter="run_date" if run_date else "scheduled date"
        )
        today = partitions.today(timezone, now)
    kept = keep_days_of(chosen, input_uri is None, keep_days, raw_keep_days, bool(day))
    if any(days is not None for days in kept.values()) and day is None:
        raise InputError("keep_days applies to daily runs only (daily=true)")
    corpus = corpus_uri(input_uri, day) if input_uri is not None else None
    if corpus is None and (num_rows is None or num_files is None):
        raise InputError("num_rows and num_files are needed to generate data (or set input_uri)")
    if corpus is not None and (num_rows is not None or num_files is not None):
        raise InputError("num_rows and num_files describe generated data: not with input_uri")
    check_order(chosen, set(SCHEMA.names) if corpus is None else None)
    # Before the bucket's directory is made; a corpus's size is known once it is read,
    # and each step checks its own space then.
    if corpus is None and not storage.is_s3(bucket_uri):
        needed = disk_needed(chosen, generated_bytes(num_rows, text_length), num_rows)
        space.check_free_space(storage.resolve(bucket_uri), needed, "pipeline")
    runs.tag_flow_run("pipeline", bucket_uri, *([f"dt:{day}"] if day else []))
    start_ray(ray.init)
    # The step runs carry the tags this run started with (its deployment's): the
    # crashed alert marks them Crashed too if this run's process dies.
    with runs.subflows_tagged():
        stage_ray = ray.model_copy(update={"init": RayInit()})  # this run's Ray is up
        bucket = create_bucket(bucket_uri, region=region, aws_credentials=aws_credentials)

        def where(name: str) -> str:
            return partitions.partition(f"{bucket}/{name}", day) if day else f"{bucket}/{name}"

        if day:
            seed = partitions.daily_seed(seed, day)
            get_run_logger().info("processing the partition of %s (seed %d)", day, seed)
        if corpus is None:
            source = Source(
                generate(
                    where(RAW),
                    num_rows=num_rows,
                    num_files=num_files,
                    text_length=text_length,
                    seed=seed,
                    duplicates=duplicates,
                    ray=stage_ray.model_copy(update={"read_blocks": None}),
                    aws_credentials=aws_credentials,
                    timeout_minutes=_minutes_left(until),
                ),
                "parquet",
            )
        else:
            source = Source(corpus, input_format)
        shared = StepRun(stage_ray, aws_credentials, lambda: _minutes_left(until), bool(day))
        output = run_steps(chosen, source, where, shared)
        if day and today:
            s3 = storage.settings_for([bucket], aws_credentials, region)
            for days, names in _by_keep_days(kept).items():
                # Light listing and deleting: run in this process, not on Ray.
                with runs.tagged("retention", bucket):
                    retention_task(
                        bucket_uri=bucket,
                        datasets=names,
                        day=day,
                        keep_days=days,
                        today=today,  # when the run started: never within keep_days of it
                        s3=s3,
                    )
    create_link_artifact(
        key="pipeline-output",
        link=output,
        link_text=output,
        description="The last dataset this run committed (read it through _manifest.json).",
    )
    return output


def keep_days_of(
    steps: list[PipelineStep],
    generated: bool,
    keep_days: int | None,
    raw_keep_days: int | None,
    daily: bool = True,
) -> dict[str, int | None]:
    """Each dataset a run writes (raw when it generates, then each step's), with how
    many dates of it retention keeps (None: all). Refuses, naming the step, an
    intermediate (0) that is what the run gives or that a later date reads."""
    if not steps:
        raise InputError("steps is empty: give at least one step")
    if raw_keep_days is not None and not generated:
        raise InputError("raw_keep_days is for generated data: nothing is written to raw")
    kept: dict[str, int | None] = {}
    if generated:
        kept[RAW] = keep_days if raw_keep_days is None else raw_keep_days
    names = dataset_names(steps)
    for number, (step, name) in enumerate(zip(steps, names, strict=True), start=1):
        kept[name] = keep_days if step.keep_days is None else step.keep_days
        if kept[name] != 0:
            continue
        if number == len(steps):
            raise InputError(
                f"steps[{number}] ({step.name}) writes what the run gives: its keep_days "
                "cannot be 0, which would remove it when the run ends"
            )
        if step.reads_earlier_dates(daily):
            raise InputError(
                f"steps[{number}] ({step.name}) compares each date with its earlier dates: "
                "its keep_days cannot be 0, which would leave it none"
            )
    return kept


def datasets_kept(params: dict[str, Any]) -> list[str]:
    """The datasets a pipeline run with (validated) ``params`` writes and keeps past the
    run: a date is done when each of them is committed (those removed once the run
    ends, keep_days 0, are not waited for)."""
    given = params.get("steps")
    steps = [step_of(entry) for entry in validate_steps(DEFAULT_STEPS if given is None else given)]
    kept = keep_days_of(
        steps, params.get("input_uri") is None, params.get("keep_days"), params.get("raw_keep_days")
    )
    return [name for name, days in kept.items() if days != 0]


def disk_needed(steps: list[PipelineStep], raw_bytes: int, rows: int) -> int:
    """About the bytes a run writes: raw, then each step's own estimate from the
    estimate of what the step before wrote (all of them are on disk at the end)."""
    needed = written = raw_bytes
    for step in steps:
        written = step.output_bytes(written, rows)
        needed += written
    return needed


def _by_keep_days(kept: dict[str, int | None]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for name, days in kept.items():
        if days is not None:
            groups.setdefault(days, []).append(name)
    return groups


def corpus_uri(input_uri: str, day: dt.date | None) -> str:
    """``input_uri`` with ``{date}`` standing for the run's date (YYYY-MM-DD)."""
    if "{date}" in input_uri:
        if day is None:
            raise InputError(
                f"input_uri {input_uri!r} has {{date}}: it needs a daily run (daily=true or"
                " run_date)"
            )
        return input_uri.replace("{date}", day.isoformat())
    return input_uri


def _minutes_left(until: float | None) -> float | None:
    """The rest of this run's timeout, for a step it runs (at least a moment: a step
    started past the deadline fails at once, committing nothing)."""
    left = deadline.remaining(until)
    return None if left is None else max(left, 0.001) / 60.0
