"""S3 for real: every flow against moto's S3 server on loopback, started by the tests."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from flows.create_bucket import create_bucket
from flows.generate import generate
from flows.pipeline import pipeline
from flows.preprocess import preprocess
from tasks.cluster.options import PART_RETRIES
from tasks.errors import InputError
from tasks.steps.generate import synth
from tasks.store import storage
from tasks.store.bucket import check_bucket_name, seed_bucket_name
from tasks.store.dataset import read_dataset
from tests.conftest import AWS_KEY_ID, AWS_SECRET, aws_test_env
from tests.helpers import (
    assert_cleaned_exactly,
    everything_prefect_recorded,
    jsonl_bytes,
    kill_generate_mid_write,
    save_s3_block,
)

SECRET = AWS_SECRET
KEY_ID = AWS_KEY_ID


@pytest.fixture
def aws_env(monkeypatch, moto_endpoint, tmp_path):
    """Only the standard AWS variables, pointing at the loopback endpoint (the Ray
    workers have the same keys: see conftest's ray_cluster)."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_test_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    storage.forget_credentials()  # this process resolves them again from this environment
    return moto_endpoint


def client(region="eu-west-2"):
    return storage.S3Settings.from_environment(region).client()


def unique(prefix: str = "ray-on-aws") -> str:
    return f"{prefix}-{time.time_ns()}"


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("Bad_Bucket..name", "may contain only lowercase letters"),
        ("ab", "3 to 63 characters"),
        ("-leading", "begin and end with a letter or digit"),
        ("two..dots", "two adjacent dots"),
        ("192.168.10.4", "IP address"),
        ("xn--punycode", "must not start with xn--"),
        ("name-s3alias", "must not end with -s3alias"),
    ],
)
def test_bucket_name_rules(name, rule):
    with pytest.raises(InputError, match=rule):
        check_bucket_name(name)


def test_seed_bucket_name():
    assert seed_bucket_name(1768888873) == "ray-on-aws-1768888873"
    check_bucket_name(seed_bucket_name())


@pytest.mark.usefixtures("flows_env")
class TestCreateBucket:
    def test_configured_region_private_encrypted_tagged(self, aws_env):
        name = unique()
        assert create_bucket(f"s3://{name}", tags={"team": "data"}) == f"s3://{name}"
        s3 = client()
        assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-2"
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert s3.get_bucket_tagging(Bucket=name)["TagSet"] == [{"Key": "team", "Value": "data"}]

    def test_us_east_1_takes_no_location_constraint(self, aws_env):
        name = unique()
        create_bucket(f"s3://{name}", region="us-east-1")
        assert client("us-east-1").get_bucket_location(Bucket=name)["LocationConstraint"] is None

    def test_second_creation_succeeds_and_changes_nothing(self, aws_env):
        name = unique()
        create_bucket(f"s3://{name}", tags={"v": "1"})
        assert create_bucket(f"s3://{name}", tags={"v": "2"}) == f"s3://{name}"
        assert client().get_bucket_tagging(Bucket=name)["TagSet"] == [{"Key": "v", "Value": "1"}]

    def test_someone_elses_bucket_is_refused(self, aws_env):
        name = unique()
        other = client()
        other.meta.events.register(
            "before-sign.s3.*",
            lambda request, **_: request.headers.__setitem__("x-moto-account-id", "111122223333"),
        )
        other.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
        with pytest.raises(InputError, match="belongs to another account"):
            create_bucket(f"s3://{name}")

    def test_bad_name_is_refused_before_any_request(self, aws_env, monkeypatch):
        # Nothing listens on port 9: any request would fail with a connection error.
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
        with pytest.raises(InputError, match=r"invalid S3 bucket name 'Bad_Bucket\.\.name'"):
            create_bucket("s3://Bad_Bucket..name")

    def test_bare_s3_uri_gets_the_seed_name(self, aws_env):
        uri = create_bucket("s3://")
        assert uri.startswith("s3://ray-on-aws-") and uri[len("s3://ray-on-aws-") :].isdigit()
        client().head_bucket(Bucket=uri[len("s3://") :])


def assert_manifest_matches_objects(bucket: str, prefix: str) -> dict:
    s3 = client()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")["Contents"]
    objects = {o["Key"][len(prefix) + 1 :]: o["Size"] for o in listed}
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{prefix}/_manifest.json")["Body"].read()
    )
    files = {f["path"]: f["size_bytes"] for f in manifest["files"]}
    assert objects == {**files, "_manifest.json": objects["_manifest.json"]}
    return manifest


@pytest.mark.usefixtures("flows_env")
def test_pipeline_on_s3_with_only_aws_environment(aws_env, capsys):
    bucket = seed_bucket_name() + f"-{time.time_ns() % 10**6}"
    out = pipeline(f"s3://{bucket}", num_rows=3000, num_files=3, text_length=120, seed=9)
    assert out == f"s3://{bucket}/preprocessed"
    assert client().get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-2"
    raw = assert_manifest_matches_objects(bucket, "raw")
    cleaned = assert_manifest_matches_objects(bucket, "preprocessed")
    assert raw["num_rows"] == cleaned["num_rows"] == 3000
    expected = list(synth.generate_rows(9, 0, 3000, 120))
    assert read_dataset(f"s3://{bucket}/raw")["text"].to_pylist() == [
        t for table in expected for t in table["text"].to_pylist()
    ]
    table = read_dataset(out)
    assert sorted(table["id"].to_pylist()) == list(range(3000))
    assert_cleaned_exactly(table)
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err


@pytest.mark.usefixtures("flows_env")
def test_aws_credentials_block_instead_of_environment(aws_env, monkeypatch):
    from prefect_aws import AwsCredentials

    bucket = unique()
    client().create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    block_id = save_s3_block("pipeline-test-s3", aws_env)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name)
    block = AwsCredentials.load("pipeline-test-s3")
    generate(f"s3://{bucket}/raw", num_rows=500, num_files=2, aws_credentials=block)
    # A deployment run's parameters hold the block as a reference (the UI's block picker).
    reference = {"$ref": {"block_document_id": str(block_id)}}
    out = preprocess(f"s3://{bucket}/raw", f"s3://{bucket}/clean", aws_credentials=reference)
    table = read_dataset(out, s3=storage.S3Settings.from_block(block))
    assert table.num_rows == 500
    assert_cleaned_exactly(table)


@pytest.mark.usefixtures("flows_env")
def test_missing_bucket_says_so_without_leaking_secrets(aws_env):
    with pytest.raises(InputError, match="does not exist: no bucket absent-") as failure:
        preprocess(f"s3://{unique('absent')}/raw", f"s3://{unique('absent')}/out")
    assert SECRET not in str(failure.value)
    assert SECRET not in repr(storage.S3Settings.from_environment())


@pytest.mark.usefixtures("flows_env")
def test_secrets_never_reach_the_prefect_api(aws_env):
    """Runs above (and this one) logged, named and recorded nothing secret."""
    create_bucket(f"s3://{unique()}")
    assert asyncio.run(everything_prefect_recorded()).count(SECRET) == 0


@pytest.fixture
def faulty_s3(aws_env, monkeypatch):
    """The S3 endpoint behind a proxy that fails the requests a test asks it to."""
    from tests.s3_faults import FaultyS3Proxy

    with FaultyS3Proxy(aws_env) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        yield proxy


def _run_counts(state) -> list[int]:
    from tests.integration.test_flows import _task_runs

    return [r.run_count for r in asyncio.run(_task_runs(state.state_details.flow_run_id))]


def _new_bucket() -> str:
    name = unique()
    client().create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    return name


@pytest.mark.usefixtures("flows_env")
def test_throttled_writes_are_retried_by_the_sdk(faulty_s3):
    bucket = _new_bucket()
    faulty_s3.fail("PUT", "/raw/part-00001.parquet", "SlowDown", failures=2)
    state = generate(f"s3://{bucket}/raw", num_rows=400, num_files=2, return_state=True)
    assert state.is_completed() and faulty_s3.injected == 2
    assert _run_counts(state) == [1]
    assert assert_manifest_matches_objects(bucket, "raw")["num_rows"] == 400


@pytest.mark.usefixtures("flows_env")
@pytest.mark.parametrize(
    ("failures", "stage_runs"),
    [
        # More than the SDK's attempts: Ray Data retries that part alone.
        (storage.s3_max_attempts() + 2, 1),
        # More than the SDK's attempts times the part's: Prefect retries the stage.
        (storage.s3_max_attempts() * (PART_RETRIES + 1) + 2, 2),
    ],
)
def test_throttling_beyond_the_sdk_retries_is_retried_by_the_part_then_the_stage(
    faulty_s3, failures, stage_runs
):
    bucket = _new_bucket()
    faulty_s3.fail("PUT", "/raw/part-00000.parquet", "SlowDown", failures=failures)
    state = generate(f"s3://{bucket}/raw", num_rows=400, num_files=2, return_state=True)
    assert state.is_completed()
    assert _run_counts(state) == [stage_runs]
    assert read_dataset(f"s3://{bucket}/raw")["id"].to_pylist() == list(range(400))


@pytest.mark.usefixtures("flows_env")
def test_access_denied_fails_at_once_and_says_so(faulty_s3):
    bucket = _new_bucket()
    faulty_s3.fail("PUT", "/raw/part-", "AccessDenied", failures=10**6)
    state = generate(f"s3://{bucket}/raw", num_rows=400, num_files=2, return_state=True)
    assert state.is_failed()
    with pytest.raises(
        PermissionError, match=f"access denied while trying to write s3://{bucket}/raw/part-"
    ):
        state.result()
    assert _run_counts(state) == [1]
    assert "Contents" not in client().list_objects_v2(Bucket=bucket, Prefix="raw/_manifest.json")


def _etags(bucket: str, prefix: str) -> dict[str, str]:
    listed = client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


@pytest.mark.usefixtures("flows_env")
def test_rerun_on_s3_replaces_the_dataset_without_stale_parts(aws_env):
    bucket = _new_bucket()
    generate(f"s3://{bucket}/raw", num_rows=900, num_files=3, text_length=40)
    preprocess(f"s3://{bucket}/raw", f"s3://{bucket}/clean")
    assert len(assert_manifest_matches_objects(bucket, "clean")["files"]) == 3
    preprocess(f"s3://{bucket}/raw", f"s3://{bucket}/clean", num_files=1)
    manifest = assert_manifest_matches_objects(bucket, "clean")
    assert [f["path"] for f in manifest["files"]] == ["part-00000.parquet"]
    table = read_dataset(f"s3://{bucket}/clean")
    assert sorted(table["id"].to_pylist()) == list(range(900))
    assert_cleaned_exactly(table)


@pytest.mark.usefixtures("flows_env")
def test_foreign_objects_in_an_s3_output_are_refused_and_kept(aws_env):
    bucket = _new_bucket()
    generate(f"s3://{bucket}/raw", num_rows=100, num_files=1, text_length=10)
    client().put_object(Bucket=bucket, Key="clean/part-00000.parquet", Body=b"not ours")
    before = _etags(bucket, "")
    with pytest.raises(InputError, match=r"did not write \(part-00000\.parquet\)"):
        preprocess(f"s3://{bucket}/raw", f"s3://{bucket}/clean")
    assert _etags(bucket, "") == before


@pytest.mark.usefixtures("flows_env")
def test_corrupt_input_on_s3_is_named_and_costs_nothing(aws_env):
    bucket = _new_bucket()
    generate(f"s3://{bucket}/raw", num_rows=100, num_files=2, text_length=10)
    s3 = client()
    s3.copy_object(
        Bucket=bucket, Key="loose/good.parquet", CopySource=f"{bucket}/raw/part-00000.parquet"
    )
    s3.put_object(Bucket=bucket, Key="loose/a.parquet", Body=b"PAR1 broken")
    before = _etags(bucket, "")
    with pytest.raises(InputError, match=f"s3://{bucket}/loose/a.parquet: not a readable Parquet"):
        preprocess(f"s3://{bucket}/loose", f"s3://{bucket}/clean")
    assert _etags(bucket, "") == before


@pytest.mark.usefixtures("flows_env")
def test_a_part_failing_once_on_s3_is_retried_by_itself_to_an_exact_result(aws_env, faults):
    bucket = _new_bucket()
    (faults / "part-00001.parquet").write_text("")
    state = generate(
        f"s3://{bucket}/raw", num_rows=3000, num_files=3, text_length=50, return_state=True
    )
    assert state.is_completed() and (faults / "part-00001.parquet.fired").exists()
    assert _run_counts(state) == [1]  # Ray Data retried the part, not Prefect the stage
    assert assert_manifest_matches_objects(bucket, "raw")["num_rows"] == 3000
    table = read_dataset(f"s3://{bucket}/raw")
    expected = [t for tb in synth.generate_rows(0, 0, 3000, 50) for t in tb["text"].to_pylist()]
    assert table["text"].to_pylist() == expected


@pytest.mark.usefixtures("flows_env")
def test_a_flow_killed_mid_write_on_s3_is_finished_by_the_next_run(aws_env, ray_cluster, tmp_path):
    bucket = _new_bucket()
    out = f"s3://{bucket}/raw"
    kill_generate_mid_write(
        out,
        ray_cluster.address_info["gcs_address"],
        num_rows=24000,
        num_files=12,
        wrote=lambda: any(k.endswith(".parquet") for k in _etags(bucket, "raw/")),
        log=tmp_path / "killed.log",
    )
    keys = _etags(bucket, "raw/")
    assert "raw/_manifest.json" not in keys and "raw/_writing.json" in keys

    generate(out, num_rows=2000, num_files=2, text_length=100, seed=3)
    manifest = assert_manifest_matches_objects(bucket, "raw")
    assert [f["path"] for f in manifest["files"]] == ["part-00000.parquet", "part-00001.parquet"]
    table = read_dataset(out)
    expected = [t for tb in synth.generate_rows(3, 0, 2000, 100) for t in tb["text"].to_pylist()]
    assert table["text"].to_pylist() == expected


@pytest.mark.usefixtures("flows_env")
def test_a_second_writer_of_an_s3_output_fails_clearly(aws_env, monkeypatch):
    from tasks.errors import OutputBusyError
    from tasks.orchestration import exclusive

    monkeypatch.setattr(exclusive, "WAIT_SECONDS", 2.0)
    bucket = _new_bucket()
    out = f"s3://{bucket}/raw"
    busy = pytest.raises(OutputBusyError, match=f"another run is writing {out}")
    with exclusive.exclusive_output(out), busy:
        generate(out, num_rows=10, num_files=1)
    assert _etags(bucket, "raw/") == {}


@pytest.mark.usefixtures("flows_env")
def test_compressed_json_lines_picked_by_a_glob_on_s3(aws_env):
    import gzip

    import pyarrow as pa

    from tasks.steps.preprocess.clean import clean_text

    bucket = unique()
    s3 = client()
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    records = [{"content": f"Doc {i}: Hello, 세계!", "url": f"u{i}"} for i in range(400)]
    zstd = pa.Codec("zstd")
    for k in range(2):
        body = zstd.compress(jsonl_bytes(records[k * 200 : (k + 1) * 200]), asbytes=True)
        s3.put_object(Bucket=bucket, Key=f"c4/en/c4-train.{k:05d}.jsonl.zst", Body=body)
    s3.put_object(Bucket=bucket, Key="c4/en/c4-valid.00000.jsonl.zst", Body=b"not read")
    s3.put_object(Bucket=bucket, Key="c4/en/_SUCCESS", Body=b"")

    out = preprocess(
        f"s3://{bucket}/c4/en/c4-train.*.jsonl.zst", f"s3://{bucket}/clean", text_column="content"
    )
    table = read_dataset(out)
    assert table.column_names == ["content", "url", "cleaned_text"]
    assert table.to_pylist() == [{**r, "cleaned_text": clean_text(r["content"])} for r in records]

    # A corrupt stream on S3 is the file's fault, named, and not retried as a storage error.
    whole = gzip.compress(jsonl_bytes(records))
    s3.put_object(Bucket=bucket, Key="bad/a.jsonl.gz", Body=whole[: len(whole) // 2])
    state = preprocess(
        f"s3://{bucket}/bad", f"s3://{bucket}/bad-out", text_column="content", return_state=True
    )
    assert state.is_failed()
    with pytest.raises(InputError, match=r"s3://.*/bad/a\.jsonl\.gz: a corrupt gzip stream"):
        state.result()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="bad-out")
    assert listed["KeyCount"] == 0
