"""Credentials on a real run: resolved by every process itself, rotated mid-run, never
recorded anywhere.

An S3 server of its own (moto in server mode, IAM authentication on: unknown, deleted or
forged keys are refused), a flow run in a process of its own with a local Ray that has
a dashboard (for Ray's job and task state), and a saved prefect-aws ``AwsCredentials``
block as the only credentials: the Ray workers have none in their environment.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect import flow, task
from prefect.context import FlowRunContext
from prefect_aws import AwsCredentials

from flows.runner import PipelineRayTaskRunner
from tasks.steps.generate import synth
from tasks.store import storage
from tasks.store.dataset import read_dataset
from tests.helpers import (
    assert_cleaned_exactly,
    everything_prefect_recorded,
    free_port,
    start_process,
    stop_process,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REGION = "us-east-1"
BLOCK = "pipeline-rotated"
ROWS, PARTS = 4000, 8
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
ALLOW_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:AssumeRole"], "Resource": "*"}],
}
TRUST_ANYONE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
}


class IamS3:
    """moto's server with IAM authentication on, an admin for the test, and the
    pipeline's own user whose keys get rotated."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        # The first three requests are unauthenticated: they make the test's admin.
        anonymous = self.client("iam", ("bootstrap", "bootstrap"))
        anonymous.create_user(UserName="admin")
        anonymous.put_user_policy(
            UserName="admin", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL)
        )
        key = anonymous.create_access_key(UserName="admin")["AccessKey"]
        self.admin = (key["AccessKeyId"], key["SecretAccessKey"])
        self.iam = self.client("iam")
        self.iam.create_user(UserName="pipeline")
        self.iam.put_user_policy(
            UserName="pipeline", PolicyName="s3", PolicyDocument=json.dumps(ALLOW_S3)
        )
        self.iam.create_role(
            RoleName="nightly-writer", AssumeRolePolicyDocument=json.dumps(TRUST_ANYONE)
        )
        self.iam.put_role_policy(
            RoleName="nightly-writer", PolicyName="s3", PolicyDocument=json.dumps(ALLOW_S3)
        )

    def client(self, service: str, credentials: tuple[str, ...] | None = None) -> Any:
        """A boto3 client of the server, as the admin unless ``credentials`` are given."""
        key_id, secret, *token = credentials or self.admin
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=token[0] if token else None,
        )

    def new_user_key(self) -> tuple[str, str]:
        key = self.iam.create_access_key(UserName="pipeline")["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def session_credentials(self, key: tuple[str, str]) -> tuple[str, str, str]:
        """Temporary credentials (with a session token) of the pipeline's role."""
        found = self.client("sts", key).assume_role(
            RoleArn="arn:aws:iam::123456789012:role/nightly-writer", RoleSessionName="nightly"
        )["Credentials"]
        return found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"]

    def user_keys(self) -> list[str]:
        listed = self.iam.list_access_keys(UserName="pipeline")["AccessKeyMetadata"]
        return [k["AccessKeyId"] for k in listed]


@pytest.fixture(scope="module")
def iam_s3(tmp_path_factory) -> Iterator[IamS3]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto-iam") / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    server = start_process(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env, log.parent, log
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                import urllib.request

                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        yield IamS3(endpoint)
    finally:
        stop_process(server, grace=5)


def save_block(endpoint: str, key_id: str, secret: str, token: str | None = None) -> None:
    from prefect_aws.client_parameters import AwsClientParameters

    AwsCredentials(
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name=REGION,
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
    ).save(BLOCK, overwrite=True)


# The flow run's own process: a local Ray with a dashboard, every part slowed down (and
# announced) by tests.slow_parts; it cleans s3://bucket/raw with the saved block and then
# writes down what Ray's state API says about the run's jobs, tasks, actors and workers.
DRIVER = """
import json, sys
import ray
from ray.util import state

bucket, markers, ray_dir, dump = sys.argv[1:5]
hook = {
    "worker_process_setup_hook": "tests.slow_parts.install",
    "env_vars": {"SLOW_PARTS_MARKERS": markers},
}
context = ray.init(
    "local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
    dashboard_port=int(sys.argv[5]), _temp_dir=ray_dir, runtime_env=hook,
)
from prefect_aws import AwsCredentials
from flows.preprocess import preprocess
preprocess(f"s3://{bucket}/raw", f"s3://{bucket}/clean",
           aws_credentials=AwsCredentials.load(sys.argv[6]))
here = {"address": context.address_info["address"], "detail": True, "limit": 10000}
found = {
    "jobs": state.list_jobs(**here),
    "tasks": state.list_tasks(**here),
    "actors": state.list_actors(**here),
    "workers": state.list_workers(**here),
}
with open(dump, "w") as out:
    json.dump(found, out, default=str)
"""


def _no_aws(tmp: Path) -> dict[str, str]:
    """This environment without any AWS identity: only the block can open the bucket."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(tmp / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@pytest.fixture(scope="module")
def rotated_run(iam_s3, prefect_server, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """One flow run whose block keys are rotated mid-run, the old key deleted."""
    tmp = tmp_path_factory.mktemp("rotated")
    bucket = f"rotated-{time.time_ns()}"
    s3 = iam_s3.client("s3")
    s3.create_bucket(Bucket=bucket)
    table = pa.concat_tables(synth.generate_rows(11, 0, ROWS, 200))
    step = ROWS // PARTS
    for number in range(PARTS):
        sink = io.BytesIO()
        pq.write_table(table.slice(number * step, step), sink)
        s3.put_object(Bucket=bucket, Key=f"raw/in-{number:02d}.parquet", Body=sink.getvalue())

    first = iam_s3.new_user_key()
    save_block(iam_s3.endpoint, *first)
    markers, ray_dir, dump = tmp / "started", Path(f"/tmp/rc-{time.time_ns()}"), tmp / "ray.json"
    markers.mkdir()
    log = tmp / "driver.log"
    args = [bucket, markers, ray_dir, dump, free_port(), BLOCK]
    driver = start_process(
        [str(BIN / "python"), "-c", DRIVER, *map(str, args)], _no_aws(tmp), ROOT, log
    )
    try:
        # Once the first part is written, rotate: a new key (its temporary credentials,
        # with a session token) into the block, then the old key deleted.
        deadline = time.monotonic() + 300
        while "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="clean/part-"):
            assert driver.poll() is None, log.read_text()[-5000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        second = iam_s3.session_credentials(iam_s3.new_user_key())
        save_block(iam_s3.endpoint, *second)
        iam_s3.iam.delete_access_key(UserName="pipeline", AccessKeyId=first[0])
        rotated_at = time.time()
        driver.wait(timeout=600)
    finally:
        stop_process(driver, grace=10)
    yield {
        "bucket": bucket,
        "table": table,
        "returncode": driver.returncode,
        "log": log.read_text(),
        "rotated_at": rotated_at,
        "first": first,
        "second": second,
        "ray_state": dump.read_text() if dump.exists() else "",
        "ray_dir": ray_dir,
        # The session's Prefect server log (and any other server's a test started).
        "prefect_logs": list(tmp_path_factory.getbasetemp().glob("prefect-server*/*.log")),
    }
    shutil.rmtree(ray_dir, ignore_errors=True)


def test_keys_rotated_mid_run_the_run_finishes_with_the_new_ones_exactly_once(
    rotated_run, iam_s3, monkeypatch
):
    assert rotated_run["returncode"] == 0, rotated_run["log"][-5000:]
    bucket = rotated_run["bucket"]
    # The old key is gone, and the run committed after it went ...
    assert rotated_run["first"][0] not in iam_s3.user_keys()
    s3 = iam_s3.client("s3")
    committed = s3.head_object(Bucket=bucket, Key="clean/_manifest.json")["LastModified"]
    assert committed.timestamp() > rotated_run["rotated_at"]
    # ... after S3 refused the old key to processes that then resolved the block again.
    assert "S3 refused the credentials in use" in rotated_run["log"]

    listed = s3.list_objects_v2(Bucket=bucket, Prefix="clean/")["Contents"]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key="clean/_manifest.json")["Body"].read())
    parts = [f"part-{i:05d}.parquet" for i in range(PARTS)]
    assert [f["path"] for f in manifest["files"]] == parts
    assert sorted(o["Key"] for o in listed) == sorted(
        f"clean/{p}" for p in [*parts, "_manifest.json"]
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", iam_s3.admin[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", iam_s3.admin[1])
    storage.forget_credentials()
    settings = storage.S3Settings(region=REGION, endpoint_url=iam_s3.endpoint)
    cleaned = read_dataset(f"s3://{bucket}/clean", s3=settings)
    storage.forget_credentials()
    assert cleaned["id"].to_pylist() == rotated_run["table"]["id"].to_pylist()
    assert cleaned["text"].equals(rotated_run["table"]["text"])
    assert_cleaned_exactly(cleaned)


def test_no_secret_is_recorded_by_prefect_ray_or_the_logs(rotated_run):
    assert rotated_run["returncode"] == 0, rotated_run["log"][-5000:]
    secrets = {
        "first secret key": rotated_run["first"][1],
        "second secret key": rotated_run["second"][1],
        "session token": rotated_run["second"][2],
    }
    records = {
        "Prefect API (flow and task runs with their parameters, logs, artifacts)": asyncio.run(
            everything_prefect_recorded()
        ),
        "Ray's job, task, actor and worker state": rotated_run["ray_state"],
        "the flow run's output": rotated_run["log"],
    }
    assert f"{rotated_run['bucket']}/clean" in records[next(iter(records))]  # this run's
    assert rotated_run["prefect_logs"]
    for path in rotated_run["prefect_logs"]:
        records[str(path)] = path.read_text(errors="replace")
    assert len(json.loads(rotated_run["ray_state"])["tasks"]) > PARTS
    logs = [p for p in rotated_run["ray_dir"].rglob("*") if p.is_file() and p.stat().st_size]
    assert any(p.suffix in (".out", ".err", ".log") for p in logs)
    for path in logs:
        records[str(path)] = path.read_bytes().decode("latin-1")
    leaks = [
        f"{what} in {where}"
        for where, text in records.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    assert leaks == []


SENTINEL = "block-secret-SENTINEL-0123456789"


@pytest.mark.usefixtures("flows_env")
def test_a_task_on_ray_receives_block_parameters_as_references_not_secrets():
    """prefect-ray pickles the flow run's context, parameters included and secrets
    revealed, into every task it submits; ours are references by then."""

    @task
    def shipped() -> str:
        return repr(FlowRunContext.get().parameters)

    @flow(task_runner=PipelineRayTaskRunner())
    def probe(aws_credentials: AwsCredentials) -> tuple[str, str]:
        here = aws_credentials.aws_secret_access_key.get_secret_value()
        return here, shipped.submit().result()

    block_id = AwsCredentials(aws_access_key_id="AKIAPROBE", aws_secret_access_key=SENTINEL).save(
        "pipeline-probe", overwrite=True
    )
    here, there = probe(AwsCredentials.load("pipeline-probe"))
    assert here == SENTINEL  # the flow itself has the block ...
    assert SENTINEL not in there  # ... its tasks on Ray only its reference
    assert str(block_id) in there
