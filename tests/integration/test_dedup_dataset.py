"""The dedup step over datasets on a real local Ray: survivors, counts, index, reruns."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.errors import InputError
from tasks.steps.dedup import minhash as dedup
from tasks.steps.dedup.step import STAGING
from tasks.store.dataset import read_dataset
from tests.helpers import companion_path, dedup_dataset

pytestmark = pytest.mark.usefixtures("ray_cluster")

VOCABULARY = [f"word{i}" for i in range(20000)]


def document(rng: random.Random, words: int = 120) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def near_copy(rng: random.Random, text: str, changes: int) -> str:
    """``text`` with ``changes`` of its words replaced (high similarity for few)."""
    words = text.split()
    for position in rng.sample(range(len(words)), changes):
        words[position] = rng.choice(VOCABULARY)
    return " ".join(words)


def corpus(tmp_path, seed: int = 0) -> tuple[str, list[dict], set[int], set[int]]:
    """Three input files of rows ``id``, ``cleaned_text``, ``source``; returns the input
    directory, every row in input order, and the ids of planted exact and near copies
    (each planted after the row it copies, so the original survives)."""
    rng = random.Random(seed)
    rows: list[dict] = []
    exact, near = set(), set()
    for _ in range(150):
        roll = rng.random()
        earlier = [r for r in rows if r["cleaned_text"]]
        if earlier and roll < 0.15:
            rows.append({"cleaned_text": rng.choice(earlier)["cleaned_text"]})
            exact.add(len(rows) - 1)
        elif earlier and roll < 0.3:
            rows.append({"cleaned_text": near_copy(rng, rng.choice(earlier)["cleaned_text"], 1)})
            near.add(len(rows) - 1)
        else:
            rows.append({"cleaned_text": document(rng)})
    for i, row in enumerate(rows):
        row["id"], row["source"] = i, f"s{i % 7}"
    root = tmp_path / "input"
    root.mkdir(parents=True)
    for f, chunk in enumerate((rows[:40], rows[40:100], rows[100:])):
        pq.write_table(pa.Table.from_pylist(chunk), root / f"part-{f}.parquet")
    return str(root), rows, exact, near


def test_exact_mode_keeps_the_first_of_identical_texts(tmp_path):
    source, rows, exact, _ = corpus(tmp_path)
    manifest = dedup_dataset(source, str(tmp_path / "out"), mode="exact")
    seen, expected = set(), []
    for row in rows:
        if row["cleaned_text"] not in seen:
            expected.append(row)
            seen.add(row["cleaned_text"])
    out = read_dataset(str(tmp_path / "out")).to_pylist()
    assert out == expected  # same columns, same order, first copy kept
    stats = manifest["dedup"]
    assert stats["rows_in"] == len(rows)
    assert stats["exact_duplicates_removed"] == len(rows) - len(expected) == len(exact)
    assert stats["near_duplicates_removed"] == 0
    assert not (tmp_path / "out" / STAGING).exists()  # the signatures were staging only


def test_near_mode_removes_planted_copies_and_keeps_the_rest(tmp_path, monkeypatch):
    """Also with the candidate pairs verified in rounds of 7 (the same pairs found)."""
    from tasks.steps.dedup import grouping

    monkeypatch.setattr(grouping, "VERIFY_ROUND_PAIRS", 7)
    source, rows, exact, near = corpus(tmp_path, seed=1)
    assert near and exact
    manifest = dedup_dataset(source, str(tmp_path / "out"), mode="near")
    out = read_dataset(str(tmp_path / "out")).to_pylist()
    assert out == [row for i, row in enumerate(rows) if i not in exact | near]
    stats = manifest["dedup"]
    assert stats["exact_duplicates_removed"] == len(exact)
    assert stats["near_duplicates_removed"] == len(near)
    assert stats["groups"] >= 1 and stats["largest_group"] >= 2
    # The largest group first, its survivor the earliest of its rows.
    top = stats["examples"][0]
    assert top["rows"] == stats["largest_group"]

    def position(where: str) -> tuple[str, int]:
        path, row = where.rsplit(":", 1)
        return path, int(row)  # input files are named part-0 .. part-2: in input order

    removed = [position(w) for w in top["removed (first few)"].split(", ")]
    assert removed and all(r > position(top["survivor"]) for r in removed)
    # The index beside the output: one row per kept row, keyed by its output place.
    index = read_dataset(str(companion_path(tmp_path / "out", "index")))
    assert index.num_rows == len(out)
    assert [dedup.key_position(k)[1] for k in index.column("key").to_pylist()][:3] == [0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "fuzzy"}, "mode must be one of exact, near; got 'fuzzy'"),
        ({"text_column": "body"}, "no 'body' column"),
    ],
)
def test_bad_parameters_are_refused_before_writing(tmp_path, kwargs, message):
    source, *_ = corpus(tmp_path)
    with pytest.raises(InputError, match=message):
        dedup_dataset(source, str(tmp_path / "out"), **kwargs)
    assert not (tmp_path / "out").exists()


def test_the_dedup_flow_commits_and_reports_its_counts(tmp_path, prefect_server):
    """Through Prefect on the session's Ray: the dedup-summary artifact has the counts."""
    from prefect import get_client

    from flows.dedup import dedup as dedup_flow
    from tests.integration.test_observe import artifacts_of, table

    source, rows, exact, near = corpus(tmp_path, seed=3)
    state = dedup_flow(source, str(tmp_path / "out"), mode="near", return_state=True)
    assert state.is_completed()
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["num_rows"] == len(rows) - len(exact) - len(near)
    with get_client(sync_client=True) as client:
        found = artifacts_of(client, state.state_details.flow_run_id)
        summary, found_groups = table(found["dedup-summary"]), found["dedup-groups"]
    assert summary["rows in"] == len(rows)
    assert summary["rows out"] == manifest["num_rows"]
    assert summary["exact duplicates removed"] == len(exact)
    assert summary["near duplicates removed"] == len(near)
    groups = json.loads(found_groups.data)
    assert groups == manifest["dedup"]["examples"] and groups[0]["rows"] >= 2


@pytest.mark.usefixtures("flows_env")
def test_generated_copies_are_what_dedup_finds(tmp_path):
    """generate(duplicates=...) plants exact and near copies of earlier rows: exact dedup
    removes every exact copy (and near copies that happen to match another exactly),
    near dedup most near copies too, and neither removes a row that is no copy."""
    from flows.dedup import dedup as dedup_flow
    from flows.generate import generate

    raw = generate(str(tmp_path / "raw"), num_rows=6_000, num_files=2, duplicates=0.2)
    stats = json.loads((tmp_path / "raw" / "_manifest.json").read_text())["stats"]
    exact, near = stats["exact_copies"], stats["near_copies"]
    assert exact > 400 and near > 400
    kept = {}
    for mode in ("exact", "near"):
        out = dedup_flow(raw, str(tmp_path / mode), mode=mode, text_column="text")
        kept[mode] = read_dataset(out).num_rows
    assert exact <= 6_000 - kept["exact"] <= exact + near
    # A near copy of a row of fewer than 13 words (about a tenth of them) is less than
    # 0.8 similar: near dedup may rightly keep it.
    assert exact + 0.85 * near <= 6_000 - kept["near"] <= exact + near
