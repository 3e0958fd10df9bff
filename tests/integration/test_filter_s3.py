"""The filter step on S3 (moto's server on loopback) with a saved block as the run's
only credentials: kept and rejected rows committed together, exactly the manifest's
objects in the bucket, and a rerun writes the same bytes."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

from flows.filter import filter_documents
from tasks.steps.filter.options import FilterOptions
from tests.helpers import save_s3_block
from tests.integration.test_filter import corpus
from tests.integration.test_s3 import KEY_ID, SECRET, aws_env, client, unique  # noqa: F401

BLOCK = "pipeline-filter-s3"


def _objects(s3, bucket: str, prefix: str) -> dict[str, bytes]:
    found = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")["Contents"]
    return {
        o["Key"].removeprefix(f"{prefix}/"): s3.get_object(Bucket=bucket, Key=o["Key"])[
            "Body"
        ].read()
        for o in found
    }


@pytest.mark.usefixtures("flows_env")
def test_filter_on_s3_with_a_block_as_the_credentials(aws_env, monkeypatch, tmp_path):  # noqa: F811
    from prefect_aws import AwsCredentials

    s3 = client()
    bucket = unique("filter")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    rows = corpus(tmp_path / "in", files=2, rows=20)
    for path in sorted((tmp_path / "in").iterdir()):
        s3.put_object(Bucket=bucket, Key=f"input/{path.name}", Body=path.read_bytes())
    save_s3_block(BLOCK, aws_env)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name)
    block = AwsCredentials.load(BLOCK)

    def run() -> dict[str, bytes]:
        filter_documents(
            f"s3://{bucket}/input",
            f"s3://{bucket}/filtered",
            filters=FilterOptions(pii={}),
            aws_credentials=block,
        )
        kept = _objects(s3, bucket, "filtered")
        rejected = _objects(s3, bucket, "filtered-rejected")
        return kept | {f"rejected:{name}": data for name, data in rejected.items()}

    first = run()
    manifest = json.loads(first["_manifest.json"])
    beside = json.loads(first["rejected:_manifest.json"])
    listed = {f["path"] for f in manifest["files"]}
    aside = {f"rejected:{f['path']}" for f in beside["files"]}
    # Nothing staged, nothing else; the rejected rows beside the dataset, not in it.
    assert set(first) == listed | aside | {"_manifest.json", "rejected:_manifest.json"}
    assert manifest["companions"]["rejected"]["uri"] == f"s3://{bucket}/filtered-rejected"
    ids = []
    for name in sorted(listed | aside):
        table = pq.read_table(io.BytesIO(first[name]))
        assert ("filter_reason" in table.column_names) == name.startswith("rejected:")
        assert {"language", "language_score"} <= set(table.column_names)
        ids += table.column("id").to_pylist()
    assert sorted(ids) == [r["id"] for r in rows]
    assert manifest["filters"]["kept"] + manifest["filters"]["rejected"] == len(rows)

    again = run()
    # Their timings and run ids differ; the data may not.
    volatile = {"_manifest.json", "rejected:_manifest.json"}
    assert {k: v for k, v in again.items() if k not in volatile} == {
        k: v for k, v in first.items() if k not in volatile
    }
