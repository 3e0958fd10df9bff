"""The tokenize flow on the session's Ray: every document read back from the committed
Megatron shards as the tokenizer's encoding plus EOS, in input order; a rerun writes
the same bytes; a bad tokenizer costs nothing."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.tokenize import tokenize
from tasks.errors import InputError
from tests.helpers import (
    assert_committed,
    save_s3_block,
    train_tokenizer,
    tree_digest,
    write_jsonl,
)
from tests.integration.test_s3 import aws_env, client, unique  # noqa: F401
from tests.unit.test_tokenize import TEXTS, read_indexed

pytestmark = pytest.mark.usefixtures("flows_env")
EOS = "<|endoftext|>"


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tokenizer"), [t for t in TEXTS if t] * 20)


def _load(path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def test_every_document_reads_back_in_order_and_a_rerun_writes_the_same_bytes(
    tmp_path, tokenizer_json
):
    source = tmp_path / "in"
    source.mkdir()
    first, second = TEXTS[:4], TEXTS[4:] * 30  # a null and an empty text in the first
    pq.write_table(pa.table({"id": range(len(first)), "text": first}), source / "a.parquet")
    pq.write_table(pa.table({"id": range(len(second)), "text": second}), source / "b.parquet")
    out = tmp_path / "tokenized"
    tokenize(str(source), str(out), str(tokenizer_json.parent), eos_token=EOS, batch_size=7)

    manifest = assert_committed(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "_manifest.json",
        "part-00000.bin",
        "part-00000.idx",
        "part-00001.bin",
        "part-00001.idx",
    ]
    tokenizer = _load(tokenizer_json)
    eos = tokenizer.token_to_id(EOS)
    documents = []
    for shard in manifest["tokenized"]["shards"]:
        dtype, docs = read_indexed(
            (out / f"{shard}.bin").read_bytes(), (out / f"{shard}.idx").read_bytes()
        )
        assert dtype == "<u2"
        documents += docs
    expected = [
        [*tokenizer.encode(t or "", add_special_tokens=False).ids, eos] for t in [*first, *second]
    ]
    assert documents == expected
    assert manifest["num_rows"] == len(expected)
    assert manifest["stats"]["tokens"] == sum(map(len, expected))
    assert manifest["tokenized"]["dtype"] == "uint16"
    assert manifest["tokenized"]["eos_id"] == eos

    with pytest.raises(
        InputError, match=r"holds \.bin and \.idx parts, not Parquet rows"
    ):  # not rows to read
        tokenize(str(out), str(tmp_path / "again"), str(tokenizer_json))

    shards = {k: v for k, v in tree_digest(out).items() if k.startswith("part-")}
    tokenize(str(source), str(out), str(tokenizer_json.parent), eos_token=EOS, batch_size=3)
    assert {k: v for k, v in tree_digest(out).items() if k.startswith("part-")} == shards


def test_json_lines_without_eos(tmp_path, tokenizer_json):
    """A file whose texts are all empty makes a shard of no tokens: committed, but not
    listed among the shards (Megatron cannot map an empty .bin)."""
    source = tmp_path / "in"
    source.mkdir()
    write_jsonl(source / "a.jsonl", [{"body": t} for t in TEXTS])
    write_jsonl(source / "b.jsonl", [{"body": ""}, {"body": None}])
    out = tmp_path / "tokenized"
    tokenize(str(source), str(out), str(tokenizer_json), text_column="body")
    manifest = assert_committed(out)
    (shard,) = manifest["tokenized"]["shards"]
    assert (out / "part-00001.bin").stat().st_size == 0 and manifest["num_rows"] == len(TEXTS) + 2
    _, docs = read_indexed((out / f"{shard}.bin").read_bytes(), (out / f"{shard}.idx").read_bytes())
    tokenizer = _load(tokenizer_json)
    assert docs == [tokenizer.encode(t or "", add_special_tokens=False).ids for t in TEXTS]


def test_a_bad_tokenizer_or_eos_is_refused_before_anything_is_written(tmp_path, tokenizer_json):
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["a b c"]}), source)
    out = tmp_path / "tokenized"
    with pytest.raises(InputError, match=r"tokenizer \S*missing does not exist"):
        tokenize(str(source), str(out), str(tmp_path / "missing"))
    with pytest.raises(InputError, match="eos_token '</s>' is not in the vocabulary"):
        tokenize(str(source), str(out), str(tokenizer_json), eos_token="</s>")
    with pytest.raises(InputError, match="no 'body' column"):
        tokenize(str(source), str(out), str(tokenizer_json), text_column="body")
    assert not out.exists()


def test_on_s3_with_a_block_as_the_only_credentials(
    aws_env,  # noqa: F811
    monkeypatch,
    tmp_path,
    tokenizer_json,
):
    """Input, tokenizer and output on S3 (moto's server), reached through a saved block
    alone: the shards and manifest are exactly the bucket's objects, read back right."""
    from prefect_aws import AwsCredentials

    s3 = client()
    bucket = unique("tokenize")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    local = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": TEXTS}), local)
    s3.put_object(Bucket=bucket, Key="input/in.parquet", Body=local.read_bytes())
    s3.put_object(Bucket=bucket, Key="vocab/tokenizer.json", Body=tokenizer_json.read_bytes())
    save_s3_block("pipeline-tokenize-s3", aws_env)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name)
    tokenize(
        f"s3://{bucket}/input",
        f"s3://{bucket}/tokenized",
        f"s3://{bucket}/vocab",
        eos_token=EOS,
        aws_credentials=AwsCredentials.load("pipeline-tokenize-s3"),
    )
    found = s3.list_objects_v2(Bucket=bucket, Prefix="tokenized/")["Contents"]
    objects = {
        o["Key"].removeprefix("tokenized/"): s3.get_object(Bucket=bucket, Key=o["Key"])[
            "Body"
        ].read()
        for o in found
    }
    manifest = json.loads(objects["_manifest.json"])
    assert set(objects) == {f["path"] for f in manifest["files"]} | {"_manifest.json"}
    assert manifest["parameters"]["tokenizer"] == f"s3://{bucket}/vocab/tokenizer.json"
    _, docs = read_indexed(objects["part-00000.bin"], objects["part-00000.idx"])
    tokenizer = _load(tokenizer_json)
    eos = tokenizer.token_to_id(EOS)
    assert docs == [[*tokenizer.encode(t or "", add_special_tokens=False).ids, eos] for t in TEXTS]


@pytest.mark.parametrize(
    ("shuffle_seed", "partial"),
    [(None, "part-00000.bin"), (3, "_shuffle/part-00000.bin")],
    ids=["mid-shard", "mid-shuffle"],
)
def test_a_run_killed_mid_write_then_rerun_commits_the_uninterrupted_shards(
    tmp_path, tokenizer_json, ray_cluster, shuffle_seed, partial
):
    """SIGKILL while a shard's .bin is half written, or once a shuffle has staged a
    file: nothing committed; the rerun replaces what it left and commits what an
    uninterrupted run commits."""
    import random

    from tests.helpers import kill_flow_when

    source = tmp_path / "in"
    source.mkdir()
    rng = random.Random(7)
    words = [w for t in TEXTS if t for w in t.split()]
    for name in ("a", "b"):
        texts = [" ".join(rng.choices(words, k=200)) for _ in range(4000)]
        pq.write_table(pa.table({"text": texts}), source / f"{name}.parquet")
    whole, out = tmp_path / "whole", tmp_path / "out"
    options = {"eos_token": EOS, "batch_size": 64, "shuffle_seed": shuffle_seed}
    tokenize(str(source), str(whole), str(tokenizer_json), **options)

    script = (
        "from flows.tokenize import tokenize\n"
        f"tokenize({str(source)!r}, {str(out)!r}, {str(tokenizer_json)!r}, **{options!r})\n"
    )
    partial = out / partial
    kill_flow_when(
        script,
        str(out),
        ray_cluster.address_info["gcs_address"],
        tmp_path / "killed.log",
        lambda _: partial.exists() and partial.stat().st_size > 0,
        reads=(str(source),),
    )
    assert not (out / "_manifest.json").exists()

    tokenize(str(source), str(out), str(tokenizer_json), **options)
    assert_committed(out)
    assert not (out / "_shuffle").exists()
    assert _shards(out) == _shards(whole)


def _shards(out):
    return {k: v for k, v in tree_digest(out).items() if k.startswith("part-")}


def test_a_shuffle_spreads_every_document_across_shards_and_a_rerun_writes_the_same_bytes(
    tmp_path, tokenizer_json
):
    source = tmp_path / "in"
    source.mkdir()
    words = [w for t in TEXTS if t for w in t.split()]
    files = {
        name: [f"{name} {i} " + " ".join(words[i % 7 : i % 7 + 3]) for i in range(300)]
        for name in ("a", "b", "c")
    }
    for name, texts in files.items():
        pq.write_table(pa.table({"text": texts}), source / f"{name}.parquet")
    out = tmp_path / "shuffled"
    tokenize(str(source), str(out), str(tokenizer_json), eos_token=EOS, shuffle_seed=11)

    manifest = assert_committed(out)
    assert not (out / "_shuffle").exists()
    assert manifest["tokenized"]["shuffle_seed"] == 11
    tokenizer = _load(tokenizer_json)
    eos = tokenizer.token_to_id(EOS)
    texts = [t for name in sorted(files) for t in files[name]]
    encoded = {tuple([*tokenizer.encode(t, add_special_tokens=False).ids, eos]): t for t in texts}
    assert len(encoded) == len(texts)  # every document tells its text
    shards = []
    for shard in manifest["tokenized"]["shards"]:
        _, docs = read_indexed(
            (out / f"{shard}.bin").read_bytes(), (out / f"{shard}.idx").read_bytes()
        )
        shards.append([encoded[tuple(d)] for d in docs])
    assert len(shards) == 3
    assert sorted(t for s in shards for t in s) == sorted(texts)  # each exactly once
    for shard in shards:  # every shard draws from every file, in no file's order
        assert {t.split()[0] for t in shard} == {"a", "b", "c"}
        assert len(shard) > 200
    assert [t for s in shards for t in s] != texts
    assert [e["num_rows"] for e in manifest["files"] if e["path"].endswith(".bin")] == [
        len(s) for s in shards
    ]

    digest = _shards(out)
    tokenize(str(source), str(out), str(tokenizer_json), eos_token=EOS, shuffle_seed=11)
    assert _shards(out) == digest
    other = tmp_path / "other-seed"
    tokenize(str(source), str(other), str(tokenizer_json), eos_token=EOS, shuffle_seed=12)
    assert _shards(other) != digest


def test_a_file_dropped_into_the_shuffles_staging_is_refused_not_committed(
    tmp_path, tokenizer_json, monkeypatch
):
    """Anything but our staged shards in _shuffle/ would outlive the staging's removal
    inside the committed dataset: the run refuses to commit, and the file stays."""
    from tasks.steps.skeleton import run_step
    from tasks.steps.tokenize.step import Tokenize, TokenizeParams

    source = tmp_path / "in"
    source.mkdir()
    pq.write_table(pa.table({"text": TEXTS[4:] * 10}), source / "a.parquet")
    pq.write_table(pa.table({"text": TEXTS[4:] * 10}), source / "b.parquet")
    out = tmp_path / "out"
    planned = Tokenize.plan

    def plan_then_drop(self):
        plan = planned(self)
        (out / "_shuffle" / "notes.txt").write_text("someone's")
        return plan

    monkeypatch.setattr(Tokenize, "plan", plan_then_drop)
    params = TokenizeParams(input_uri=str(source), tokenizer=str(tokenizer_json), shuffle_seed=1)
    with pytest.raises(RuntimeError, match=r"_shuffle/notes\.txt is not one of its parts"):
        run_step(Tokenize, params, str(out))
    assert not (out / "_manifest.json").exists()
    assert (out / "_shuffle" / "notes.txt").read_text() == "someone's"


def test_the_run_reports_documents_and_tokens_and_its_health_figures(tmp_path, tokenizer_json):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from tasks.orchestration.health import COMMITTED
    from tests.integration.test_health import _events

    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": TEXTS[4:] * 5}), source)
    out = tmp_path / "summarized"
    tokenize(str(source), str(out), str(tokenizer_json), eos_token=EOS)
    stats = assert_committed(out)["stats"]

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["tokenize-summary"]))
        )
    (shown,) = [json.dumps(a.data) for a in found if str(out) in json.dumps(a.data)]
    for label in ("documents", "tokens", "tokens per document", "token dtype"):
        assert label in shown, label
    assert str(stats["tokens"]) in shown
    (committed,) = _events(COMMITTED, f"ray-text-pipeline.dataset.file://{out}", 1)
    assert committed["resource"]["ray-text-pipeline.step"] == "tokenize"
    payload = committed["payload"]
    assert payload["rows_in"] == payload["rows_out"] == stats["documents"] == len(TEXTS[4:]) * 5
