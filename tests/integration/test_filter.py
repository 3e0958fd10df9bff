"""The filter step on a real local Ray and Prefect server: every row kept or rejected
with its reason, counts per rule, the same bytes on a rerun, bad thresholds refused."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from faker import Faker
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.filter import filter_documents
from tasks.steps.filter.options import FilterOptions
from tasks.steps.filter.rules import evaluate
from tasks.steps.preprocess.clean import clean_text
from tests.helpers import (
    assert_committed,
    committed_bytes,
    companion_path,
    kill_flow_when,
    tree_digest,
    with_write_faults,
)
from tests.unit.test_filter_language import constitution_chapters
from tests.unit.test_filter_rules import base

pytestmark = pytest.mark.usefixtures("flows_env")
TABLES = ("summary", "rules", "languages", "examples")


def english(seed: int) -> str:
    """Paragraphs of English words (Faker's list) with the stop words the rules want."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    return "It was the best of times.\n" + "\n".join(fake.paragraph(8) for _ in range(5))


def corpus(root, files: int = 3, rows: int = 40) -> list[dict]:
    """Parquet files of good documents (English, Korean), bad ones of several kinds, a
    null and an empty text, with an extra column that must reach both outputs unchanged."""
    root.mkdir(parents=True)
    every = []
    korean = constitution_chapters()[:5]
    for f in range(files):
        docs = []
        for r in range(rows):
            kind = r % 5
            if kind == 0:
                text = english(f * rows + r)
            elif kind == 1:
                text = (
                    korean[r % len(korean)] if r % 2 else "\n".join(base(first=(f * rows + r) * 72))
                )
            elif kind == 2:
                text = "too short to be a document"
            elif kind == 3:
                text = "\n".join(["the of same line again and again here"] * 12)
            else:
                text = None if r % 2 else ""
            docs.append({"id": f * rows + r, "text": text, "source": f"file-{f}"})
        pq.write_table(pa.Table.from_pylist(docs), root / f"input-{f}.parquet")
        every += docs
    return every


def test_every_row_is_kept_or_rejected_with_its_reason(tmp_path):
    rows = corpus(tmp_path / "in")
    before = tree_digest(tmp_path / "in")
    out = filter_documents(str(tmp_path / "in"), str(tmp_path / "out"))

    manifest = assert_committed(tmp_path / "out")
    assert out == f"file://{tmp_path}/out"
    kept = pq.read_table(tmp_path / "out").to_pylist()
    rejected = pq.read_table(companion_path(tmp_path / "out", "rejected")).to_pylist()
    assert sorted(r["id"] for r in kept + rejected) == [r["id"] for r in rows]
    # The verdicts are the kernel's, row for row; columns pass unchanged.
    expected = evaluate(pa.array([r["text"] for r in rows], pa.string()), FilterOptions())
    ids = [r["id"] for r in rows]
    reasons = dict(zip(ids, expected.reason.to_pylist(), strict=True))
    languages = dict(zip(ids, expected.language.to_pylist(), strict=True))
    by_id = {r["id"]: r for r in rows}
    for r in kept + rejected:  # every row with its language and the model's probability
        assert r.pop("language") == languages[r["id"]]
        assert 0 <= r.pop("language_score") <= 1
    assert all(reasons[r["id"]] is None and r == by_id[r["id"]] for r in kept)
    assert {languages[r["id"]] for r in kept} == {"en", "ko"}
    for r in rejected:
        reason = r.pop("filter_reason")
        assert reason == reasons[r["id"]] and reason is not None
        assert r == by_id[r["id"]]
    stats = manifest["filters"]
    assert (stats["rows_in"], stats["kept"], stats["rejected"]) == (
        len(rows),
        len(kept),
        len(rejected),
    )
    removed = {name: counted["removed_rows"] for name, counted in stats["rules"].items()}
    assert sum(removed.values()) == len(rejected)
    for name, mask in expected.fired.items():
        assert stats["rules"][name]["fired_rows"] == int(mask.sum())
    # Per language: rows in and kept add up, and so do the removals per rule.
    per_language = stats["languages"]
    assert sum(t["rows"] for t in per_language.values()) == len(rows)
    assert sum(t["kept"] for t in per_language.values()) == len(kept)
    for name in removed:
        assert sum(t["removed"].get(name, 0) for t in per_language.values()) == removed[name]
    assert tree_digest(tmp_path / "in") == before

    with get_client(sync_client=True) as client:
        published = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"filter-{t}" for t in TABLES])
            )
        )
    assert {a.key for a in published} == {f"filter-{t}" for t in TABLES}
    examples = {
        row["rule"] for a in published if a.key == "filter-examples" for row in json.loads(a.data)
    }
    assert examples == {r for r in reasons.values() if r is not None}

    first = committed_bytes(tmp_path / "out")
    filter_documents(str(tmp_path / "in"), str(tmp_path / "out"))  # a rerun: same bytes
    assert committed_bytes(tmp_path / "out") == first


def test_a_filter_turned_off_is_not_applied(tmp_path):
    rows = corpus(tmp_path / "in", files=1, rows=10)
    only_c4 = FilterOptions.model_validate(
        {"language": None, "gopher_quality": None, "gopher_repetition": None, "fineweb": None}
        | {"c4": {}}
    )
    filter_documents(str(tmp_path / "in"), str(tmp_path / "out"), filters=only_c4)
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert set(manifest["filters"]["rules"]) == {
        "c4.lorem_ipsum",
        "c4.curly_bracket",
        "c4.too_few_sentences",
    }
    assert manifest["filters"]["rows_in"] == len(rows)


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"gopher_repetition": {"max_dup_line_frac": 1.5}}, "max_dup_line_frac"),
        ({"c4": {"min_num_sentences": -1}}, "min_num_sentences"),
        ({"fineweb": {"no_such_threshold": 1}}, "no_such_threshold"),
    ],
)
def test_the_flow_refuses_a_bad_threshold_by_name(filters, field):
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match=field):
        filter_documents.validate_parameters(
            {"input_uri": "in", "output_uri": "out", "filters": filters}
        )


def test_a_filter_run_killed_mid_part_reruns_to_the_same_bytes(tmp_path, faults, ray_cluster):
    corpus(tmp_path / "in", files=4, rows=40)
    source = str(tmp_path / "in")
    filter_documents(source, str(tmp_path / "whole"))
    out = tmp_path / "out"
    # Killed while part 1's kept rows are being written (the write waits 30 s first).
    slow = faults / "part-00001.parquet.slow"
    slow.write_text("30")
    script = with_write_faults("flows.filter", "filter_documents", f"{source!r}, 'file://{out}'")
    kill_flow_when(
        script,
        f"file://{out}",
        ray_cluster.address_info["gcs_address"],
        tmp_path / "killed.log",
        lambda _: Path(f"{slow}.fired").exists(),
    )
    assert not (out / "_manifest.json").exists()

    filter_documents(source, str(out))
    assert committed_bytes(out) == committed_bytes(tmp_path / "whole")
    assert sorted(committed_bytes(out)) == sorted(
        [f"part-0000{i}.parquet" for i in range(4)]
        + [f"rejected:part-0000{i}.parquet" for i in range(4)]
    )


def test_pii_is_redacted_in_kept_and_rejected_rows_and_counted(tmp_path):
    rows = corpus(tmp_path / "in", files=1, rows=10)
    contact = " Write to kim.minsu@example.co.kr or call 010-1234-5678."
    for r in rows:  # the same contact on every text, kept and rejected alike
        r["text"] = (r["text"] or "") + contact
        r["cleaned_text"] = clean_text(r["text"])  # as preprocess made it
    (tmp_path / "in" / "input-0.parquet").unlink()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "input-0.parquet")
    filters = FilterOptions(pii={})
    filter_documents(str(tmp_path / "in"), str(tmp_path / "out"), filters=filters)
    manifest = assert_committed(tmp_path / "out")
    kept = pq.read_table(tmp_path / "out").to_pylist()
    rejected = pq.read_table(companion_path(tmp_path / "out", "rejected")).to_pylist()
    assert kept and rejected
    for r in kept + rejected:
        assert r["text"].endswith(" Write to <email> or call <phone>.")
        assert r["cleaned_text"] == clean_text(r["text"])  # no digits of the phone left
    assert manifest["filters"]["pii_redacted"] == {
        "email": len(rows),
        "ip_address": 0,
        "korean_phone": len(rows),
        "korean_rrn": 0,
    }


def test_kept_rows_are_written_as_c4_leaves_them_with_keep_rewritten_text(tmp_path):
    """C4 drops short lines and javascript lines from the documents it keeps; with
    keep_rewritten_text the kept rows carry that text (and cleaned_text made from it),
    rejected rows the input's, as judged."""
    rows = corpus(tmp_path / "in", files=1, rows=10)
    for r in rows:
        if r["text"] and r["id"] % 5 == 0:  # English documents C4 keeps, with lines it drops
            r["text"] = "Menu\n" + r["text"] + "\nPlease enable Javascript to comment."
        r["cleaned_text"] = clean_text(r["text"]) if r["text"] is not None else None
    (tmp_path / "in" / "input-0.parquet").unlink()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "input-0.parquet")
    filters = FilterOptions(keep_rewritten_text=True)
    filter_documents(str(tmp_path / "in"), str(tmp_path / "out"), filters=filters)
    kept = pq.read_table(tmp_path / "out").to_pylist()
    rejected = pq.read_table(companion_path(tmp_path / "out", "rejected")).to_pylist()
    judged = evaluate(pa.array([r["text"] for r in rows], pa.string()), filters)
    rewritten = dict(zip([r["id"] for r in rows], judged.text.to_pylist(), strict=True))
    by_id = {r["id"]: r for r in rows}
    changed = [r for r in kept if r["text"] != by_id[r["id"]]["text"]]
    assert changed  # the English rows lost their menu and javascript lines
    for r in kept:
        assert r["text"] == rewritten[r["id"]]
        assert "Javascript" not in r["text"] and not r["text"].startswith("Menu")
        assert r["cleaned_text"] == clean_text(r["text"])
    for r in rejected:
        assert r["text"] == by_id[r["id"]]["text"]


def test_pii_in_another_column_leaves_cleaned_text_as_preprocess_made_it(tmp_path):
    """cleaned_text was made from ``text``; judging and redacting ``body`` must not make
    it again from ``body``."""
    from flows.preprocess import preprocess

    rows = corpus(tmp_path / "in", files=1, rows=10)
    for r in rows:
        r["body"] = (r["text"] or "") + " Write to kim.minsu@example.co.kr."
    (tmp_path / "in" / "input-0.parquet").unlink()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "input-0.parquet")
    preprocess(str(tmp_path / "in"), str(tmp_path / "pre"))  # cleans ``text``
    filters = FilterOptions(pii={})
    filter_documents(str(tmp_path / "pre"), str(tmp_path / "out"), "body", filters=filters)
    out = pq.read_table(tmp_path / "out").to_pylist()
    out += pq.read_table(companion_path(tmp_path / "out", "rejected")).to_pylist()
    by_id = {r["id"]: r for r in rows}
    assert len(out) == len(rows)
    for r in out:
        assert r["body"].endswith(" Write to <email>.")
        text = by_id[r["id"]]["text"]
        assert r["cleaned_text"] == (clean_text(text) if text is not None else None)


def test_a_text_column_of_nulls_only_is_judged_with_pii_on(tmp_path):
    """Parquet types a column that holds no value as null: nothing to redact or keep."""
    (tmp_path / "in").mkdir()
    table = pa.table({"id": [1, 2], "text": pa.nulls(2)})
    pq.write_table(table, tmp_path / "in" / "part-0.parquet")
    filter_documents(str(tmp_path / "in"), str(tmp_path / "out"), filters=FilterOptions(pii={}))
    manifest = assert_committed(tmp_path / "out")
    assert (manifest["filters"]["kept"], manifest["filters"]["rejected"]) == (0, 2)
    assert set(manifest["filters"]["pii_redacted"].values()) == {0}
