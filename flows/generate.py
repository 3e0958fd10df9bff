"""Step 2: generate synthetic text rows (id, text, label) as a Parquet dataset."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from deployments.ray_runner import PipelineRayTaskRunner, run_stage
from deployments.runs import flow_run_name
from tasks.exclusive import exclusive_output
from tasks.stages import generate_task
from tasks.storage import canonical_uri, settings_for


@flow(
    name="generate",
    flow_run_name=flow_run_name("generate", "output_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def generate(
    output_uri: str,
    num_rows: int,
    num_files: int,
    text_length: int = 1000,
    seed: int = 0,
    ray_remote_args: dict[str, Any] | None = None,
    aws_credentials_block: str | None = None,
) -> str:
    """Write ``num_rows`` rows in ``num_files`` Parquet files to ``output_uri``.

    The same ``seed`` gives the same rows. ``ray_remote_args`` goes to every Ray Data
    task (e.g. ``{"resources": {"Intel": 1}}`` to pin the work to one node type).
    S3 is reached with the standard AWS settings, or those of the prefect-aws
    ``AwsCredentials`` block named by ``aws_credentials_block``.
    """
    output = canonical_uri(output_uri)
    with exclusive_output(output):
        manifest = run_stage(
            generate_task,
            "generate",
            s3=settings_for([output], aws_credentials_block),
            output_uri=output,
            num_rows=num_rows,
            num_files=num_files,
            text_length=text_length,
            seed=seed,
            ray_remote_args=ray_remote_args,
        )
    get_run_logger().info(
        "committed %d rows in %d files (%.1f MB) at %s",
        manifest["num_rows"],
        len(manifest["files"]),
        manifest["size_bytes"] / 1e6,
        output,
    )
    return output
