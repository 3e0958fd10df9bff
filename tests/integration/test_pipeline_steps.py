"""The pipeline given as a list of steps: a user's corpus cleaned, filtered, deduplicated
and tokenized into what training reads, each step reading what the one before committed;
steps that cannot follow each other refused before anything is written; intermediates
removed once the date's last dataset is committed."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.exceptions import ParameterTypeError

from flows.pipeline import pipeline
from tasks.errors import InputError
from tasks.store.dataset import read_dataset
from tests.helpers import assert_committed, train_tokenizer
from tests.integration.test_filter import english
from tests.unit.test_tokenize import read_indexed

pytestmark = pytest.mark.usefixtures("flows_env")
EOS = "<|endoftext|>"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A drop of English documents, a few of them copies, and a tokenizer trained on it."""
    root = tmp_path_factory.mktemp("corpus")
    texts = [english(i) for i in range(40)]
    rows = [{"doc": f"d{i}", "text": t} for i, t in enumerate(texts + texts[:5])]
    (root / "drop").mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:25]), root / "drop" / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[25:]), root / "drop" / "b.parquet")
    tokenizer = train_tokenizer(root, texts, vocab_size=600)
    return root / "drop", tokenizer


def test_clean_filter_dedup_tokenize_commits_exactly_the_deduped_documents(tmp_path, corpus):
    drop, tokenizer = corpus
    bucket = tmp_path / "bucket"
    steps = [
        {"preprocess": {}},
        {"filter": {}},
        {"dedup": {"mode": "exact"}},
        {"tokenize": {"tokenizer": str(tokenizer), "text_column": "text", "eos_token": EOS}},
    ]
    out = pipeline(str(bucket), input_uri=str(drop), steps=steps)
    assert out == f"file://{bucket}/tokenized"
    for name, read_from in (
        ("filtered", "preprocessed"),
        ("deduped", "filtered"),
        ("tokenized", "deduped"),
    ):
        source = assert_committed(bucket / name)["parameters"]["input_uri"]
        assert source == f"file://{bucket}/{read_from}", name
    deduped = read_dataset(str(bucket / "deduped")).column("text").to_pylist()
    assert 0 < len(deduped) < 45  # the filter kept some, dedup removed the copies

    from tokenizers import Tokenizer

    encoder = Tokenizer.from_file(str(tokenizer))
    eos = encoder.token_to_id(EOS)
    manifest = assert_committed(bucket / "tokenized")
    documents = []
    for shard in manifest["tokenized"]["shards"]:
        _, docs = read_indexed(
            (bucket / "tokenized" / f"{shard}.bin").read_bytes(),
            (bucket / "tokenized" / f"{shard}.idx").read_bytes(),
        )
        documents += docs
    assert documents == [[*encoder.encode(t, add_special_tokens=False).ids, eos] for t in deduped]


def test_steps_that_cannot_follow_each_other_are_refused_before_anything_is_written(
    tmp_path, corpus
):
    drop, tokenizer = corpus
    bucket = tmp_path / "bucket"
    tokenize = {"tokenize": {"tokenizer": str(tokenizer)}}
    with pytest.raises(InputError, match=r"steps\[2\] \(dedup\) follows tokenize"):
        pipeline(str(bucket), input_uri=str(drop), steps=[tokenize, {"dedup": {}}])
    with pytest.raises(InputError, match=r"steps\[2\] \(dedup\) reads column\(s\) cleaned_text"):
        pipeline(str(bucket), num_rows=10, num_files=1, steps=[{"filter": {}}, {"dedup": {}}])
    with pytest.raises(InputError, match="steps is empty"):
        pipeline(str(bucket), num_rows=10, num_files=1, steps=[])
    twice = [{"preprocess": {}}, {"preprocess": {}}]
    with pytest.raises(
        InputError, match=r"steps\[2\] \(preprocess\) adds column\(s\) cleaned_text"
    ):
        pipeline(str(bucket), num_rows=10, num_files=1, steps=twice)
    twice = [{"preprocess": {}}, {"filter": {}}, {"filter": {}}]
    with pytest.raises(InputError, match=r"\(filter\) adds column\(s\) language, language_score"):
        pipeline(str(bucket), num_rows=10, num_files=1, steps=twice)
    daily = {"num_rows": 10, "num_files": 1, "run_date": "2026-03-01"}
    last = [{"preprocess": {"keep_days": 0}}]
    with pytest.raises(InputError, match=r"steps\[1\] \(preprocess\) writes what the run gives"):
        pipeline(str(bucket), **daily, steps=last)
    earlier = [{"preprocess": {}}, {"dedup": {"keep_days": 0}}, {"dedup": {"text_column": "text"}}]
    with pytest.raises(InputError, match=r"steps\[2\] \(dedup\) compares each date"):
        pipeline(str(bucket), **daily, steps=earlier)
    with pytest.raises(InputError, match="raw_keep_days is for generated data"):
        pipeline(str(bucket), input_uri=str(drop), raw_keep_days=0, run_date="2026-03-01")
    assert not bucket.exists()
    for bad, named in (
        ([{"sort": {}}], "one of: preprocess, filter, dedup, tokenize"),
        ([{"preprocess": {}, "dedup": {}}], "a step is one key"),
        ([{"dedup": {"mode": "fuzzy"}}], r"dedup\.dedup\.mode"),
        ([{"tokenize": {}}], r"tokenize\.tokenize\.tokenizer"),
        ([{"preprocess": {"keep_days": -1}}], "keep_days"),
    ):
        with pytest.raises(ParameterTypeError, match=named):
            pipeline.validate_parameters({"bucket_uri": str(bucket), "steps": bad})


def test_a_repeated_step_writes_a_dataset_of_its_own_and_intermediates_go_after_the_last(
    tmp_path,
):
    bucket = tmp_path / "bucket"
    steps = [
        {"preprocess": {"keep_days": 0}},
        # An intermediate: it must not compare with its earlier dates, which it keeps none of.
        {"dedup": {"mode": "exact", "keep_days": 0, "against_earlier": False}},
        {"dedup": {"mode": "exact", "text_column": "text"}},
    ]
    for day in ("2026-03-01", "2026-03-02"):
        out = pipeline(
            str(bucket),
            num_rows=200,
            num_files=2,
            duplicates=0.3,
            run_date=day,
            raw_keep_days=0,
            keep_days=2,
            steps=steps,
        )
        assert out == f"file://{bucket}/deduped_2/dt={day}"
    kept = assert_committed(bucket / "deduped_2" / "dt=2026-03-02")
    assert kept["parameters"]["input_uri"] == f"file://{bucket}/deduped/dt=2026-03-02"
    # Only what is kept past the run is left: its last dataset, both dates.
    assert sorted(p.name for p in (bucket / "deduped_2").iterdir()) == [
        "dt=2026-03-01",
        "dt=2026-03-02",
    ]
    for name in ("raw", "preprocessed", "deduped"):
        assert list((bucket / name).iterdir()) == [], name
    # The second dedup compared with its own earlier date, not the first dedup's.
    assert kept["parameters"]["against"] == [f"file://{bucket}/deduped_2/dt=2026-03-01"]
    recorded = json.loads((bucket / "deduped_2" / "dt=2026-03-02" / "_manifest.json").read_text())
    assert recorded["parameters"]["mode"] == "exact"
