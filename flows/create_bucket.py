"""Step 1: create the bucket (an S3 bucket, or a local directory)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from deployments.ray_runner import PipelineRayTaskRunner, run_stage
from tasks.stages import create_bucket_task
from tasks.storage import canonical_uri


@flow(name="create-bucket", task_runner=PipelineRayTaskRunner())
def create_bucket(bucket_uri: str, region: str | None = None) -> str:
    """Create the bucket at ``bucket_uri`` if it does not exist; return its URI."""
    result = run_stage(create_bucket_task, bucket_uri=canonical_uri(bucket_uri), region=region)
    state = "created" if result["created"] else "already there"
    get_run_logger().info("bucket %s: %s", result["bucket_uri"], state)
    return str(result["bucket_uri"])
