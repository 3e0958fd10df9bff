"""The tokenize flow on the session's Ray: every document read back from the committed
Megatron shards as the tokenizer's encoding plus EOS, in input order; a rerun writes
the same bytes; a bad tokenizer costs nothing."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.tokenize import tokenize
from tasks.errors import InputError
from tests.helpers import assert_committed, train_tokenizer, tree_digest, write_jsonl
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

    shards = {k: v for k, v in tree_digest(out).items() if k.startswith("part-")}
    tokenize(str(source), str(out), str(tokenizer_json.parent), eos_token=EOS, batch_size=3)
    assert {k: v for k, v in tree_digest(out).items() if k.startswith("part-")} == shards


def test_json_lines_without_eos(tmp_path, tokenizer_json):
    source = tmp_path / "in.jsonl"
    write_jsonl(source, [{"body": t} for t in TEXTS])
    out = tmp_path / "tokenized"
    tokenize(str(source), str(out), str(tokenizer_json), text_column="body")
    (shard,) = assert_committed(out)["tokenized"]["shards"]
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
