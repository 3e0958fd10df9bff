"""The seed's three steps in order: create the bucket, generate raw data, clean it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact
from prefect.runtime import flow_run
from prefect_aws import AwsCredentials
from pydantic import Field

from deployments import runs
from deployments.ray_runner import PipelineRayTaskRunner, start_ray
from flows.create_bucket import create_bucket
from flows.generate import generate
from flows.preprocess import preprocess
from tasks import partitions
from tasks.raydata import RayInit, RayOptions
from tasks.synth import MAX_TEXT_LENGTH


@flow(
    name="pipeline",
    flow_run_name=runs.flow_run_name("pipeline", "bucket_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def pipeline(
    bucket_uri: str,
    num_rows: Annotated[int, Field(ge=1)],
    num_files: Annotated[int, Field(ge=1)],
    text_length: Annotated[int, Field(ge=0, le=MAX_TEXT_LENGTH)] = 1000,
    seed: Annotated[int, Field(ge=0)] = 0,
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
) -> str:
    """Create the bucket, generate into {bucket_uri}/raw, clean into {bucket_uri}/preprocessed.

    Returns the URI of the preprocessed dataset (also the pipeline-output artifact).

    Args:
        bucket_uri: The bucket: a local path, file:// or s3://name; a bare s3:// creates
            a bucket with the seed's ray-on-aws-<epoch> name.
        num_rows: Rows to generate.
        num_files: Parquet files of the raw dataset.
        text_length: Characters of text per generated row.
        seed: Random seed of the generated rows (a daily run adds the date's day number).
        batch_size: Rows cleaned at a time.
        preprocessed_num_files: Files of the preprocessed dataset (default: one per raw
            file).
        keep_text: Keep the raw text beside cleaned_text in the preprocessed dataset.
        compression: Parquet codec of the preprocessed files.
        region: The S3 bucket's region.
        daily: Write one date's partitions, raw/dt=YYYY-MM-DD/ and
            preprocessed/dt=YYYY-MM-DD/: the date the run was scheduled for in timezone.
        run_date: The date to write instead of the scheduled one (implies daily).
        timezone: The IANA timezone that tells a scheduled run's date; match the
            schedule's.
        ray: Where and how the parts of both stages run on Ray (read_blocks applies to
            preprocess only).
        aws_credentials: A prefect-aws AwsCredentials block for S3; without one, the
            standard AWS environment (variables, profile, instance role) is used.
    """
    day = None
    if daily or run_date:  # checked before anything is written
        day = partitions.run_date(run_date, flow_run.scheduled_start_time, timezone)
    runs.tag_flow_run("pipeline", bucket_uri, *([f"dt:{day}"] if day else []))
    start_ray(ray.init)
    stage_ray = ray.model_copy(update={"init": RayInit()})  # this run's Ray is up
    bucket = create_bucket(bucket_uri, region=region, aws_credentials=aws_credentials)
    raw_uri, output_uri = f"{bucket}/raw", f"{bucket}/preprocessed"
    if day:
        raw_uri, output_uri = (
            partitions.partition(raw_uri, day),
            partitions.partition(output_uri, day),
        )
        seed = partitions.daily_seed(seed, day)
        get_run_logger().info("processing the partition of %s (seed %d)", day, seed)
    raw = generate(
        raw_uri,
        num_rows=num_rows,
        num_files=num_files,
        text_length=text_length,
        seed=seed,
        ray=stage_ray.model_copy(update={"read_blocks": None}),
        aws_credentials=aws_credentials,
    )
    output = preprocess(
        raw,
        output_uri,
        input_format="parquet",
        keep_text=keep_text,
        compression=compression,
        batch_size=batch_size,
        num_files=preprocessed_num_files,
        ray=stage_ray,
        aws_credentials=aws_credentials,
    )
    create_link_artifact(
        key="pipeline-output",
        link=output,
        link_text=output,
        description="The preprocessed dataset this run committed (read it through _manifest.json).",
    )
    return output
