"""The seed's three steps in order: create the bucket, generate raw data, clean it."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_link_artifact

from deployments.ray_runner import PipelineRayTaskRunner
from flows.create_bucket import create_bucket
from flows.generate import generate
from flows.preprocess import preprocess


@flow(name="pipeline", task_runner=PipelineRayTaskRunner())
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
) -> str:
    """Generate into ``{bucket_uri}/raw/``, clean into ``{bucket_uri}/preprocessed/``.

    A bare ``s3://`` creates a bucket with the seed's ``ray-on-aws-<epoch>`` name.
    Returns the URI of the preprocessed dataset.
    """
    bucket = create_bucket(bucket_uri, region=region, aws_credentials_block=aws_credentials_block)
    raw = generate(
        f"{bucket}/raw",
        num_rows=num_rows,
        num_files=num_files,
        text_length=text_length,
        seed=seed,
        ray_remote_args=ray_remote_args,
        aws_credentials_block=aws_credentials_block,
    )
    output = preprocess(
        raw,
        f"{bucket}/preprocessed",
        input_format="parquet",
        batch_size=batch_size,
        num_files=preprocessed_num_files,
        ray_remote_args=ray_remote_args,
        aws_credentials_block=aws_credentials_block,
    )
    create_link_artifact(
        key="pipeline-output",
        link=output,
        link_text=output,
        description="The preprocessed dataset this run committed (read it through _manifest.json).",
    )
    return output
