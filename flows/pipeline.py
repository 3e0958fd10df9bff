"""The pipeline in order: create the bucket, generate raw data (or take a corpus of the
user's), clean it, optionally filter it and remove its duplicates; with daily runs,
retention of the dates past keep_days."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact
from prefect.runtime import flow_run
from prefect_aws import AwsCredentials
from pydantic import Field

from flows import runs
from flows.create_bucket import create_bucket
from flows.dedup import dedup as dedup_step
from flows.filter import filter_documents
from flows.generate import generate
from flows.preprocess import preprocess
from flows.runner import PipelineRayTaskRunner, start_ray
from tasks.cluster.options import RayInit, RayOptions
from tasks.errors import InputError
from tasks.nightly import deadline, space
from tasks.orchestration.health import HealthBounds
from tasks.orchestration.tasks import retention_task
from tasks.steps.dedup.minhash import MinHashParams
from tasks.steps.dedup.step import deduplicated_bytes
from tasks.steps.filter.rules import FilterOptions
from tasks.steps.generate.step import generated_bytes
from tasks.steps.generate.synth import MAX_TEXT_LENGTH
from tasks.steps.preprocess.step import preprocessed_bytes
from tasks.store import partitions, storage

# The datasets of a bucket, in the order the pipeline writes them (filtered only with
# filters given, deduped only with the dedup step on).
DATASETS = ("raw", "preprocessed", "filtered", "deduped")


@flow(
    name="pipeline",
    flow_run_name=runs.flow_run_name("pipeline", "bucket_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def pipeline(
    bucket_uri: str,
    num_rows: Annotated[int, Field(ge=1)] | None = None,
    num_files: Annotated[int, Field(ge=1)] | None = None,
    text_length: Annotated[int, Field(ge=0, le=MAX_TEXT_LENGTH)] = 1000,
    seed: Annotated[int, Field(ge=0)] = 0,
    duplicates: Annotated[float, Field(ge=0, lt=1)] = 0.0,
    batch_size: Annotated[int, Field(ge=1)] = 1024,
    preprocessed_num_files: Annotated[int, Field(ge=1)] | None = None,
    keep_text: bool = True,
    compression: Literal["snappy", "zstd", "none"] = "snappy",
    region: str | None = None,
    daily: bool = False,
    run_date: dt.date | None = None,
    timezone: str = "UTC",
    ray: RayOptions = RayOptions(),  # noqa: B008 (frozen, so one shared default is safe)
    aws_credentials: AwsCredentials | None = None,
    timeout_minutes: Annotated[float, Field(gt=0)] | None = None,
    keep_days: Annotated[int, Field(ge=1)] | None = None,
    dedup: Literal["none", "exact", "near"] = "none",
    filters: FilterOptions | None = None,
    input_uri: str | None = None,
    input_format: Literal["auto", "parquet", "json"] = "auto",
    text_column: Annotated[str, Field(min_length=1)] = "text",
    health: dict[Literal["preprocess", "filter", "dedup"], HealthBounds] | None = None,
) -> str:
    """Create the bucket, generate into {bucket_uri}/raw (or read input_uri), clean into
    {bucket_uri}/preprocessed, then optionally filter and deduplicate.

    Returns the URI of the last dataset committed, preprocessed or (with dedup) deduped;
    it is also the pipeline-output artifact.

    Args:
        bucket_uri: The bucket: a local path, file:// or s3://name; a bare s3:// creates
            a bucket with the seed's ray-on-aws-<epoch> name.
        num_rows: Rows to generate (not with input_uri).
        num_files: Parquet files of the raw dataset (not with input_uri).
        text_length: Characters of text per generated row.
        seed: Random seed of the generated rows (a daily run adds the date's day number).
        duplicates: The share of generated rows that copy an earlier row, exactly or
            nearly (see the generate flow): something for dedup to find.
        batch_size: Rows cleaned at a time.
        preprocessed_num_files: Files of the preprocessed dataset (default: one per raw
            file).
        keep_text: Keep the raw text beside cleaned_text in the preprocessed dataset.
        compression: Parquet codec of the preprocessed files.
        region: The S3 bucket's region.
        daily: Write one date's partitions, raw/dt=YYYY-MM-DD/ and
            preprocessed/dt=YYYY-MM-DD/: the date the run was scheduled for in timezone.
        run_date: The date to write instead of the scheduled one (implies daily); at
            most tomorrow in timezone.
        timezone: The IANA timezone that tells a scheduled run's date; match the
            schedule's.
        ray: Where and how the parts of both stages run on Ray (read_blocks applies to
            preprocess only).
        aws_credentials: A prefect-aws AwsCredentials block for S3; without one, the
            standard AWS environment (variables, profile, instance role) is used.
        timeout_minutes: Fail the run this long after it starts; the dataset being
            written then is not committed (what an earlier step committed stays).
        keep_days: With daily, after a successful run remove the committed partitions
            of raw, preprocessed, filtered and deduped dated keep_days or more days
            before the run's date, or before today in timezone if that is earlier (7
            keeps the run's date and the six before it). Folders without a manifest of
            ours are never removed.
        dedup: A fourth step, the dedup flow with its defaults, from preprocessed into
            {bucket_uri}/deduped: exact or near duplicates removed (none: no fourth
            step). With daily, each date's rows are also checked against the earlier
            dates' deduped partitions still kept.
        filters: A step between preprocess and dedup, the filter flow with these rule
            sets ({} for each rule set's defaults), from preprocessed into
            {bucket_uri}/filtered; it judges the raw text, so keep_text must stay on.
            Dedup then reads the filtered rows. None: no filter step.
        input_uri: A corpus to preprocess instead of generating one: anything the
            preprocess flow reads (a dataset, directory, file or glob; Parquet or JSON
            Lines, also compressed), e.g. s3://crawl/incoming/dt={date}/*.jsonl.zst.
            {date} stands for the run's date (YYYY-MM-DD), so it needs a daily run.
            Nothing is written to {bucket_uri}/raw.
        input_format: parquet, json, or auto to tell input_uri's files by their names.
        text_column: The input's text column: cleaned by preprocess, judged by filters.
        health: Per step (preprocess, filter, dedup), bounds on what it commits: the
            kept fraction, rows against the median of the earlier dates (see each
            step's flow). Out of them the run alerts as unhealthy data; so does a step
            whose input has 0 rows, or that keeps 0 rows of some, whatever the bounds.
    """
    until = deadline.after(timeout_minutes)
    bounds = health or {}
    day = today = None
    if daily or run_date:  # checked before anything is written
        day = partitions.run_date(run_date, flow_run.scheduled_start_time, timezone)
        # One clock reading: the date check and retention's bound agree on today.
        now = dt.datetime.now(dt.UTC)
        partitions.check_not_future(
            day, timezone, now, parameter="run_date" if run_date else "scheduled date"
        )
        today = partitions.today(timezone, now)
    if keep_days is not None and day is None:
        raise InputError(f"keep_days={keep_days} applies to daily runs only (daily=true)")
    corpus = corpus_uri(input_uri, day) if input_uri is not None else None
    if corpus is None and (num_rows is None or num_files is None):
        raise InputError("num_rows and num_files are needed to generate data (or set input_uri)")
    if corpus is not None and (num_rows is not None or num_files is not None):
        raise InputError("num_rows and num_files describe generated data: not with input_uri")
    if filters is not None and not keep_text:
        raise InputError("filters judge the raw text: they need keep_text=true")
    # Before the bucket's directory is made; a corpus's size is known once it is read,
    # and each step checks its own space then.
    if corpus is None and not storage.is_s3(bucket_uri):
        raw_bytes = generated_bytes(num_rows, text_length)
        cleaned_bytes = preprocessed_bytes(raw_bytes, keep_text)
        needed = raw_bytes + cleaned_bytes
        if filters is not None:  # every row written once, kept or rejected
            needed += cleaned_bytes
        if dedup != "none":  # its output, and its signatures until it commits
            minhash = MinHashParams() if dedup == "near" else None
            needed += deduplicated_bytes(
                cleaned_bytes,
                num_rows,
                minhash.num_perm if minhash else 0,
                minhash.bands if minhash else 0,
            )
        space.check_free_space(storage.resolve(bucket_uri), needed, "pipeline")
    runs.tag_flow_run("pipeline", bucket_uri, *([f"dt:{day}"] if day else []))
    start_ray(ray.init)
    # The step runs carry the tags this run started with (its deployment's): the
    # crashed alert marks them Crashed too if this run's process dies.
    with runs.subflows_tagged():
        stage_ray = ray.model_copy(update={"init": RayInit()})  # this run's Ray is up
        bucket = create_bucket(bucket_uri, region=region, aws_credentials=aws_credentials)
        raw_uri, output_uri, filtered_uri, deduped_uri = (f"{bucket}/{name}" for name in DATASETS)
        if day:
            raw_uri, output_uri, filtered_uri, deduped_uri = (
                partitions.partition(uri, day)
                for uri in (raw_uri, output_uri, filtered_uri, deduped_uri)
            )
            seed = partitions.daily_seed(seed, day)
            get_run_logger().info("processing the partition of %s (seed %d)", day, seed)
        if corpus is None:
            raw = generate(
                raw_uri,
                num_rows=num_rows,
                num_files=num_files,
                text_length=text_length,
                seed=seed,
                duplicates=duplicates,
                ray=stage_ray.model_copy(update={"read_blocks": None}),
                aws_credentials=aws_credentials,
                timeout_minutes=_minutes_left(until),
            )
        else:
            raw = corpus
        output = preprocess(
            raw,
            output_uri,
            input_format="parquet" if corpus is None else input_format,
            text_column=text_column,
            keep_text=keep_text,
            compression=compression,
            batch_size=batch_size,
            num_files=preprocessed_num_files,
            ray=stage_ray,
            aws_credentials=aws_credentials,
            timeout_minutes=_minutes_left(until),
            health=bounds.get("preprocess", HealthBounds()),
        )
        if filters is not None:
            output = filter_documents(
                output,
                filtered_uri,
                text_column=text_column,
                filters=filters,
                compression=compression,
                ray=stage_ray,
                aws_credentials=aws_credentials,
                timeout_minutes=_minutes_left(until),
                health=bounds.get("filter", HealthBounds()),
            )
        if dedup != "none":
            output = dedup_step(
                output,
                deduped_uri,
                mode=dedup,
                against_earlier=bool(day),
                compression=compression,
                ray=stage_ray,
                aws_credentials=aws_credentials,
                timeout_minutes=_minutes_left(until),
                health=bounds.get("dedup", HealthBounds()),
            )
        if day and today and keep_days:
            # Light listing and deleting: run in this process, not on Ray.
            with runs.tagged("retention", bucket):
                retention_task(
                    bucket_uri=bucket,
                    datasets=list(DATASETS),
                    day=day,
                    keep_days=keep_days,
                    today=today,  # when the run started: never remove within keep_days of it
                    s3=storage.settings_for([bucket], aws_credentials, region),
                )
    create_link_artifact(
        key="pipeline-output",
        link=output,
        link_text=output,
        description="The last dataset this run committed, preprocessed or deduped (read it "
        "through _manifest.json).",
    )
    return output


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
