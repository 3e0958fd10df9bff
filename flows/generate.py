"""Step 2: generate synthetic text rows (id, text, label) as a Parquet dataset."""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger
from prefect_aws import AwsCredentials
from pydantic import Field

from flows.runner import PipelineRayTaskRunner, run_step_task, start_ray
from flows.runs import flow_run_name
from tasks.cluster.options import RayOptions
from tasks.orchestration import deadline
from tasks.orchestration.exclusive import exclusive_output
from tasks.steps.generate.step import Generate, GenerateParams
from tasks.steps.generate.synth import MAX_TEXT_LENGTH
from tasks.store.storage import canonical_uri, settings_for


@flow(
    name="generate",
    flow_run_name=flow_run_name("generate", "output_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def generate(
    output_uri: str,
    num_rows: Annotated[int, Field(ge=1)],
    num_files: Annotated[int, Field(ge=1)] | None = None,
    rows_per_file: Annotated[int, Field(ge=1)] | None = None,
    text_length: Annotated[int, Field(ge=0, le=MAX_TEXT_LENGTH)] = 1000,
    seed: Annotated[int, Field(ge=0)] = 0,
    duplicates: Annotated[float, Field(ge=0, lt=1)] = 0.0,
    ray: RayOptions = RayOptions(),  # noqa: B008 (frozen, so one shared default is safe)
    aws_credentials: AwsCredentials | None = None,
    timeout_minutes: Annotated[float, Field(gt=0)] | None = None,
) -> str:
    """Write num_rows synthetic rows (id, text, label) to output_uri as Parquet files.

    The same seed gives the same rows, however they are split into files.

    Args:
        output_uri: Where the dataset goes: a local path, file:// or s3://bucket/prefix.
        num_rows: How many rows (ids 0 to num_rows - 1).
        num_files: How many Parquet part files (the seed's repartition). Give this or
            rows_per_file.
        rows_per_file: At most this many rows per file (the seed's min_rows_per_file),
            instead of num_files.
        text_length: Characters of text per row (ASCII letters and spaces).
        seed: Random seed of the text and labels.
        duplicates: The share of rows (on average) whose text copies an earlier row's of
            the same 4,096-row chunk, half exactly and half with its last letter changed
            (a near copy: at least 0.8 similar in 5-word shingles from 13 words); the
            other rows are the same bytes as with 0. For dedup to find something.
        ray: Where and how the parts run on Ray: CPUs and custom resources per part,
            tasks or an actor pool, Dataset.map options, the size of a local Ray.
        aws_credentials: A prefect-aws AwsCredentials block for S3; without one, the
            standard AWS environment (variables, profile, instance role) is used.
        timeout_minutes: Fail the run this long after it starts; the dataset being
            written is then not committed.
    """
    until = deadline.after(timeout_minutes)
    output = canonical_uri(output_uri)
    if ray.read_blocks is not None:
        get_run_logger().warning("ray.read_blocks applies to preprocess only; generate ignores it")
    start_ray(ray.init)
    with exclusive_output(output):
        manifest = run_step_task(
            Generate,
            GenerateParams(
                num_rows=num_rows,
                num_files=num_files,
                rows_per_file=rows_per_file,
                text_length=text_length,
                seed=seed,
                duplicates=duplicates,
            ),
            output,
            until,
            scheduling=ray.model_copy(update={"read_blocks": None}),
            s3=settings_for([output], aws_credentials),
        )
    get_run_logger().info(
        "committed %d rows in %d files (%.1f MB) at %s",
        manifest["num_rows"],
        len(manifest["files"]),
        manifest["size_bytes"] / 1e6,
        output,
    )
    return output
