"""Data health through real flow runs on the test server: every committed step emits its
figures on its dataset, and a step out of its bounds (an empty input, nothing kept, rows
far from the earlier dates' median) emits the event the data-health alert sends."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.preprocess import preprocess
from tasks.errors import InputError
from tasks.orchestration.health import COMMITTED, UNHEALTHY, HealthBounds
from tests.helpers import assert_committed
from tests.unit.test_health import _commit

pytestmark = pytest.mark.usefixtures("flows_env")


def _events(name: str, dataset: str, count: int, timeout: float = 60) -> list[dict]:
    """The server's ``name`` events about ``dataset``, once there are ``count``."""
    api = os.environ["PREFECT_API_URL"]
    body = {"filter": {"event": {"name": [name]}, "any_resource": {"id": [dataset]}}}
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(
            f"{api}/events/filter",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            found = json.loads(response.read())["events"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _input(path: Path, rows: int) -> Path:
    pq.write_table(pa.table({"id": list(range(rows)), "text": ["Hello, world"] * rows}), path)
    return path


def test_a_committed_step_emits_its_figures_and_out_of_bounds_ones_alert(tmp_path):
    out = tmp_path / "preprocessed"
    for day in ("01", "02", "03"):  # the earlier dates: 100 rows each
        _commit(out / f"dt=2026-12-{day}", 100)
    today = out / "dt=2026-12-04"
    bounds = HealthBounds(rows_vs_median=0.5, max_kept_fraction=0.99)
    preprocess(str(_input(tmp_path / "in.parquet", 40)), str(today), health=bounds)

    resource = f"ray-text-pipeline.dataset.file://{today}"
    (committed,) = _events(COMMITTED, resource, 1)
    assert committed["resource"]["ray-text-pipeline.step"] == "preprocess"
    assert committed["resource"]["ray-text-pipeline.date"] == "2026-12-04"
    payload = committed["payload"]
    assert (payload["rows_in"], payload["rows_out"], payload["kept_fraction"]) == (40, 40, 1.0)
    assert payload["history_rows"] == [100, 100, 100]
    assert payload["bytes_out"] == sum(p.stat().st_size for p in today.glob("*.parquet"))
    text_bytes = assert_committed(today)["stats"]["text_bytes"]
    assert payload["seconds"] > 0
    assert payload["text_mb_per_s"] == round(text_bytes / 1e6 / payload["seconds"], 3)
    # Related to the run that committed it (here the root: no deployment started it).
    roles = {r["prefect.resource.role"] for r in committed["related"]}
    assert {"flow-run", "flow"} <= roles

    (unhealthy,) = _events(UNHEALTHY, resource, 1)
    assert unhealthy["payload"]["problems"] == [
        "kept 1.0000 of its rows, above max_kept_fraction 0.99",
        "40 rows out against a median of 100 over the last 3 dates (rows_vs_median 0.5)",
    ]


def test_nothing_kept_alerts_once_and_an_empty_input_alerts(tmp_path):
    """Random letters (what generate writes) through the filter keep nothing: one alert.
    Dedup then reads that committed dataset of 0 rows: the same night's one problem, not a
    second alert. Dedup of an empty dataset no step of this run reported is one. (An
    input with no rows at all is refused by preprocess, by name: the failed alert sends
    that.)"""
    from flows.dedup import dedup
    from flows.filter import filter_documents
    from tasks.steps.generate.synth import generate_chunk

    raw = tmp_path / "raw.parquet"
    pq.write_table(generate_chunk(seed=5, chunk=0, text_length=1000).slice(0, 25), raw)
    filtered, deduped = tmp_path / "filtered", tmp_path / "deduped"
    filter_documents(str(raw), str(filtered))
    dedup(str(filtered), str(deduped), text_column="text")
    (kept_nothing,) = _events(UNHEALTHY, f"ray-text-pipeline.dataset.file://{filtered}", 1)
    assert kept_nothing["payload"]["problems"] == ["kept 0 of 25 rows"]
    assert kept_nothing["resource"]["ray-text-pipeline.step"] == "filter"
    (committed,) = _events(COMMITTED, f"ray-text-pipeline.dataset.file://{deduped}", 1)
    assert committed["payload"]["rows_in"] == 0
    assert _events(UNHEALTHY, f"ray-text-pipeline.dataset.file://{deduped}", 1, timeout=5) == []

    empty = tmp_path / "empty"
    _commit(empty, 0)
    dedup(str(empty), str(tmp_path / "deduped-empty"))
    resource = f"ray-text-pipeline.dataset.file://{tmp_path / 'deduped-empty'}"
    (unhealthy,) = _events(UNHEALTHY, resource, 1)
    assert unhealthy["payload"]["problems"] == ["its input has 0 rows"]
    with pytest.raises(InputError, match=r"empty\.parquet has no rows"):
        preprocess(str(_input(tmp_path / "empty.parquet", 0)), str(tmp_path / "out"))


def test_a_healthy_step_emits_no_alert(tmp_path):
    today = tmp_path / "preprocessed"
    preprocess(str(_input(tmp_path / "in.parquet", 10)), str(today))
    resource = f"ray-text-pipeline.dataset.file://{today}"
    assert len(_events(COMMITTED, resource, 1)) == 1
    assert _events(UNHEALTHY, resource, 1, timeout=5) == []
