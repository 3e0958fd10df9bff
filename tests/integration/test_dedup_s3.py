"""The dedup step on S3 (moto's server on loopback): every pass reads and writes through
the run's S3 settings, with the environment's credentials and with a saved block as the
only credentials of the run and its Ray workers."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.dedup import dedup as dedup_flow
from tasks.store import storage
from tests.conftest import AWS_KEY_ID, AWS_SECRET
from tests.helpers import dedup_dataset, save_s3_block, start_process, stop_process
from tests.integration.test_dedup_dataset import corpus
from tests.integration.test_s3 import aws_env, client, unique  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BLOCK = "pipeline-dedup-s3"


def _upload(tmp_path: Path, s3, seed: int) -> tuple[str, list[dict], set[int], set[int]]:
    """The test corpus of test_dedup_dataset in a new bucket's ``input/``."""
    source, rows, exact, near = corpus(tmp_path, seed=seed)
    bucket = unique("dedup")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    for path in sorted(Path(source).iterdir()):
        s3.put_object(Bucket=bucket, Key=f"input/{path.name}", Body=path.read_bytes())
    return bucket, rows, exact, near


def _kept_ids(s3, bucket: str, prefix: str) -> list[int]:
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{prefix}/_manifest.json")["Body"].read()
    )
    ids: list[int] = []
    for entry in manifest["files"]:
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{entry['path']}")["Body"].read()
        ids += pq.read_table(io.BytesIO(body)).column("id").to_pylist()
    # Exactly the manifest's files: no staged signatures, no marker left behind; the
    # index beside the dataset, committed the same way.
    for where in (prefix, f"{prefix}-index"):
        body = s3.get_object(Bucket=bucket, Key=f"{where}/_manifest.json")["Body"].read()
        listed = {entry["path"] for entry in json.loads(body)["files"]}
        found = s3.list_objects_v2(Bucket=bucket, Prefix=f"{where}/")["Contents"]
        assert {o["Key"].removeprefix(f"{where}/") for o in found} == listed | {"_manifest.json"}
    assert manifest["companions"]["index"]["uri"] == f"s3://{bucket}/{prefix}-index"
    return ids


@pytest.mark.usefixtures("flows_env")
@pytest.mark.usefixtures("aws_env")
def test_near_dedup_on_s3_with_the_environments_credentials(tmp_path):
    """Near mode runs every pass exact mode runs, and its own."""
    s3 = client()
    bucket, rows, exact, near = _upload(tmp_path, s3, seed=6)
    dedup_flow(f"s3://{bucket}/input", f"s3://{bucket}/near", mode="near")
    assert _kept_ids(s3, bucket, "near") == [i for i in range(len(rows)) if i not in exact | near]


# The flow run's own process and its own local Ray, with no AWS identity anywhere: only
# the saved block (keys, region and endpoint) can reach the bucket.
DRIVER = """
import sys
import ray
ray.init("local", num_cpus=2, include_dashboard=False)  # one Ray for both runs
from prefect_aws import AwsCredentials
from flows.dedup import dedup
bucket, block = sys.argv[1:3]
credentials = AwsCredentials.load(block)
dedup(f"s3://{bucket}/input", f"s3://{bucket}/exact", mode="exact", aws_credentials=credentials)
dedup(f"s3://{bucket}/input", f"s3://{bucket}/near", mode="near", aws_credentials=credentials,
      against=[f"s3://{bucket}/earlier"])
"""


@pytest.mark.usefixtures("ray_cluster")
def test_exact_and_near_dedup_on_s3_with_a_block_as_the_only_credentials(
    moto_endpoint, prefect_server, tmp_path
):
    from prefect_aws import AwsCredentials

    settings = storage.S3Settings(region="eu-west-2", endpoint_url=moto_endpoint)
    os.environ.update(AWS_ACCESS_KEY_ID=AWS_KEY_ID, AWS_SECRET_ACCESS_KEY=AWS_SECRET)
    try:
        storage.forget_credentials()
        s3 = settings.client()
        bucket, rows, exact, near = _upload(tmp_path, s3, seed=7)
    finally:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.pop(name, None)
        storage.forget_credentials()
    save_s3_block(BLOCK, moto_endpoint)
    # An earlier near output to compare against: the first 40 rows, deduplicated, written
    # through the block on the session's Ray.
    earlier_input = tmp_path / "earlier-input"
    earlier_input.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:40]), earlier_input / "part-0.parquet")
    settings = storage.S3Settings.from_block(AwsCredentials.load(BLOCK))
    dedup_dataset(str(earlier_input), f"s3://{bucket}/earlier", mode="near", s3=settings)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_ADDRESS"))}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        PREFECT_API_URL=prefect_server,
    )
    log = tmp_path / "driver.log"
    driver = start_process([str(BIN / "python"), "-c", DRIVER, bucket, BLOCK], env, ROOT, log)
    try:
        driver.wait(timeout=540)
    finally:
        stop_process(driver, grace=10)
    assert driver.returncode == 0, log.read_text()[-5000:]
    assert AWS_SECRET not in log.read_text()
    assert _kept_ids(s3, bucket, "exact") == [i for i in range(len(rows)) if i not in exact]
    # Near against the earlier output: none of its 40 rows (nor their copies) come back.
    kept = _kept_ids(s3, bucket, "near")
    texts = {row["cleaned_text"] for row in rows[:40]}
    assert kept and all(i >= 40 for i in kept)
    assert all(rows[i]["cleaned_text"] not in texts for i in kept)
    assert set(kept) <= {i for i in range(len(rows)) if i not in exact | near}
