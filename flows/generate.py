"""Step 2: generate synthetic text rows (id, text, label) as a Parquet dataset."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger

from deployments.ray_runner import PipelineRayTaskRunner, run_stage, start_ray
from deployments.runs import flow_run_name
from tasks.exclusive import exclusive_output
from tasks.raydata import Scheduling
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
    num_files: int | None = None,
    text_length: int = 1000,
    seed: int = 0,
    ray_remote_args: dict[str, Any] | None = None,
    aws_credentials_block: str | None = None,
    rows_per_file: int | None = None,
    resources: dict[str, float] | None = None,
    num_cpus: float = 1,
    compute: Literal["tasks", "actors"] = "tasks",
    actor_pool: tuple[int, int] | None = None,
    ray_init: dict[str, Any] | None = None,
) -> str:
    """Write ``num_rows`` rows to ``output_uri`` as ``num_files`` Parquet files (or
    files of at most ``rows_per_file`` rows).

    The same ``seed`` gives the same rows. Scheduling on Ray: ``num_cpus`` per part
    task; custom ``resources`` (``{"Intel": 1}`` runs the parts only on nodes advertising
    that resource); ``compute`` "tasks" or "actors" (a pool of ``actor_pool`` = (min,
    max) actors); ``ray_remote_args`` for anything else Ray Data's ``map`` takes.
    S3 is reached with the standard AWS settings, or those of the prefect-aws
    ``AwsCredentials`` block named by ``aws_credentials_block``. ``ray_init`` sizes the
    local Ray a run starts when there is no cluster: ``object_store_memory`` (bytes),
    ``spill_dir``, ``num_cpus``.
    """
    scheduling = Scheduling(num_cpus, resources, compute, actor_pool, None, ray_remote_args or {})
    output = canonical_uri(output_uri)
    start_ray(ray_init)
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
            scheduling=scheduling,
            rows_per_file=rows_per_file,
        )
    get_run_logger().info(
        "committed %d rows in %d files (%.1f MB) at %s",
        manifest["num_rows"],
        len(manifest["files"]),
        manifest["size_bytes"] / 1e6,
        output,
    )
    return output
