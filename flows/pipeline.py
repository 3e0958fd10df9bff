"""The seed's three steps in order: create the bucket, generate raw data, clean it."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact
from prefect.runtime import flow_run

from deployments import runs
from deployments.ray_runner import PipelineRayTaskRunner, start_ray
from flows.create_bucket import create_bucket
from flows.generate import generate
from flows.preprocess import preprocess
from tasks import partitions
from tasks.raydata import Scheduling


@flow(
    name="pipeline",
    flow_run_name=runs.flow_run_name("pipeline", "bucket_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def pipeline(
    bucket_uri: str,
    num_rows: int,
    num_files: int,
    text_length: int = 1000,
    seed: int = 0,
    batch_size: int = 1024,
    preprocessed_num_files: int | None = None,
    region: str | None = None,
    ray_remote_args: dict[str, Any] | None = None,
    aws_credentials_block: str | None = None,
    daily: bool = False,
    run_date: str | None = None,
    timezone: str = "UTC",
    resources: dict[str, float] | None = None,
    num_cpus: float = 1,
    compute: Literal["tasks", "actors"] = "tasks",
    actor_pool: tuple[int, int] | None = None,
    read_blocks: int | None = None,
    ray_init: dict[str, Any] | None = None,
) -> str:
    """Generate into ``{bucket_uri}/raw/``, clean into ``{bucket_uri}/preprocessed/``.

    A bare ``s3://`` creates a bucket with the seed's ``ray-on-aws-<epoch>`` name.
    With ``daily`` (the nightly deployment) or a ``run_date``, the run writes one date's
    partitions, ``raw/dt=YYYY-MM-DD/`` and ``preprocessed/dt=YYYY-MM-DD/``: the date
    it was scheduled for in ``timezone``, unless ``run_date`` names another. Each date
    is generated with its own seed (``seed`` plus the date's day number), so rerunning
    a date rewrites the same rows. The Ray scheduling parameters apply to both stages
    (see ``generate`` and ``preprocess``); so does ``ray_init``. Returns the URI of
    the preprocessed dataset.
    """
    day = None
    if daily or run_date:  # checked before anything is written
        day = partitions.run_date(run_date, flow_run.scheduled_start_time, timezone)
    runs.tag_flow_run("pipeline", bucket_uri, *([f"dt:{day}"] if day else []))
    # Checked before anything is written, like the date.
    Scheduling(num_cpus, resources, compute, actor_pool, read_blocks, ray_remote_args or {})
    start_ray(ray_init)
    scheduling = {
        "resources": resources,
        "num_cpus": num_cpus,
        "compute": compute,
        "actor_pool": actor_pool,
    }
    bucket = create_bucket(bucket_uri, region=region, aws_credentials_block=aws_credentials_block)
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
        ray_remote_args=ray_remote_args,
        aws_credentials_block=aws_credentials_block,
        **scheduling,
    )
    output = preprocess(
        raw,
        output_uri,
        input_format="parquet",
        batch_size=batch_size,
        num_files=preprocessed_num_files,
        ray_remote_args=ray_remote_args,
        aws_credentials_block=aws_credentials_block,
        read_blocks=read_blocks,
        **scheduling,
    )
    create_link_artifact(
        key="pipeline-output",
        link=output,
        link_text=output,
        description="The preprocessed dataset this run committed (read it through _manifest.json).",
    )
    return output
