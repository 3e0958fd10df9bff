"""Step 1: create the bucket (an S3 bucket, or a local directory)."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect_aws import AwsCredentials

from flows.runner import PipelineRayTaskRunner, run_stage
from flows.runs import flow_run_name
from tasks.orchestration.tasks import create_bucket_task
from tasks.store.storage import canonical_uri, is_s3, settings_for


@flow(
    name="create-bucket",
    flow_run_name=flow_run_name("create-bucket", "bucket_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def create_bucket(
    bucket_uri: str,
    region: str | None = None,
    tags: dict[str, str] | None = None,
    aws_credentials: AwsCredentials | None = None,
) -> str:
    """Create the bucket at bucket_uri if it does not exist; return its URI.

    Args:
        bucket_uri: s3://name creates a private, encrypted S3 bucket; a bare s3:// picks
            the seed's ray-on-aws-<epoch> name. A path or file:// URI creates a local
            directory.
        region: The S3 bucket's region (default: the configured one).
        tags: Tags of a new S3 bucket.
        aws_credentials: A prefect-aws AwsCredentials block for S3; without one, the
            standard AWS environment (variables, profile, instance role) is used.
    """
    s3 = settings_for([bucket_uri], aws_credentials, region)
    uri = bucket_uri.strip() if is_s3(bucket_uri) else canonical_uri(bucket_uri)
    result = run_stage(
        create_bucket_task, "create-bucket", uri, s3=s3, bucket_uri=uri, region=region, tags=tags
    )
    state = "created" if result["created"] else "already there, left unchanged"
    get_run_logger().info("bucket %s: %s", result["bucket_uri"], state)
    return str(result["bucket_uri"])
