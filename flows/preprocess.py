"""Step 3: clean the text for LLM training into a new Parquet dataset."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger

from deployments.ray_runner import PipelineRayTaskRunner, run_stage, start_ray
from deployments.runs import flow_run_name
from tasks.exclusive import exclusive_output
from tasks.raydata import Scheduling
from tasks.stages import preprocess_task
from tasks.storage import canonical_uri, settings_for


@flow(
    name="preprocess",
    flow_run_name=flow_run_name("preprocess", "output_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def preprocess(
    input_uri: str,
    output_uri: str,
    input_format: str = "auto",
    batch_size: int = 1024,
    num_files: int | None = None,
    ray_remote_args: dict[str, Any] | None = None,
    aws_credentials_block: str | None = None,
    rows_per_file: int | None = None,
    read_blocks: int | None = None,
    resources: dict[str, float] | None = None,
    num_cpus: float = 1,
    compute: Literal["tasks", "actors"] = "tasks",
    actor_pool: tuple[int, int] | None = None,
    ray_init: dict[str, Any] | None = None,
) -> str:
    """Add ``cleaned_text`` (the seed's regex, lower-cased) to every row of the input.

    The input is a committed dataset, a directory or a file of Parquet or JSON Lines
    (``input_format``: parquet, json or auto). ``num_files`` sets the number of output
    files (or ``rows_per_file`` the most rows per file); by default there is one per
    input file. ``read_blocks`` splits the work into that many Ray Data tasks (default:
    one per output file; fewer tasks each write several files in turn). The other Ray
    scheduling parameters, ``ray_init`` and S3 work as in ``generate``.
    """
    scheduling = Scheduling(
        num_cpus, resources, compute, actor_pool, read_blocks, ray_remote_args or {}
    )
    source, output = canonical_uri(input_uri), canonical_uri(output_uri)
    start_ray(ray_init)
    with exclusive_output(output):
        manifest = run_stage(
            preprocess_task,
            "preprocess",
            s3=settings_for([source, output], aws_credentials_block),
            input_uri=source,
            output_uri=output,
            input_format=input_format,
            batch_size=batch_size,
            num_files=num_files,
            scheduling=scheduling,
            rows_per_file=rows_per_file,
        )
    get_run_logger().info(
        "committed %d cleaned rows in %d files at %s",
        manifest["num_rows"],
        len(manifest["files"]),
        output,
    )
    return output
