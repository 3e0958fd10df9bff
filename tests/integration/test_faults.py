"""Exactly once under retries, crashes, reruns and concurrent writers (fault injection)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from flows.generate import generate
from flows.preprocess import preprocess
from tasks.errors import OutputBusyError
from tasks.orchestration import exclusive
from tasks.steps.generate import synth
from tasks.store.dataset import read_dataset
from tests.helpers import assert_cleaned_exactly, assert_committed, kill_generate_mid_write
from tests.integration.test_flows import _task_runs, write_parquet_inputs

pytestmark = pytest.mark.usefixtures("flows_env")


def assert_exactly_generated(root: Path, num_rows: int, seed: int, text_length: int) -> None:
    manifest = assert_committed(root)
    assert manifest["num_rows"] == num_rows
    table = read_dataset(str(root))
    assert Counter(table["id"].to_pylist()) == Counter(range(num_rows))
    expected = pa.concat_tables(list(synth.generate_rows(seed, 0, num_rows, text_length)))
    assert table.sort_by("id").equals(expected)


def run_counts(state) -> list[int]:
    import asyncio

    return [r.run_count for r in asyncio.run(_task_runs(state.state_details.flow_run_id))]


def test_a_part_failing_once_midway_is_retried_by_itself_to_an_exact_result(tmp_path, faults):
    (faults / "part-00001.parquet").write_text("")
    state = generate(
        str(tmp_path / "raw"), num_rows=9000, num_files=3, text_length=50, seed=4, return_state=True
    )
    assert state.is_completed()
    assert (faults / "part-00001.parquet.fired").exists()
    # Ray Data retried the part; the stage (every other part) did not run again.
    assert run_counts(state) == [1]
    assert_exactly_generated(tmp_path / "raw", 9000, seed=4, text_length=50)


def test_a_preprocess_write_failing_once_is_retried(tmp_path, faults):
    write_parquet_inputs(tmp_path / "in", files=2, rows=300)
    (faults / "part-00000.parquet").write_text("")
    state = preprocess(str(tmp_path / "in"), str(tmp_path / "out"), return_state=True)
    assert state.is_completed() and (faults / "part-00000.parquet.fired").exists()
    assert assert_committed(tmp_path / "out")["stats"]["null_texts"] > 0
    table = read_dataset(str(tmp_path / "out"))
    assert Counter(table["id"].to_pylist()) == Counter(range(600))
    assert_cleaned_exactly(table)


def _ray_map_workers() -> list[int]:
    """PIDs of Ray workers running a Ray Data map task (Ray sets their process title)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::Map"):
                found.append(int(entry.name))
    return found


def test_a_ray_worker_killed_during_a_run_costs_nothing(tmp_path):
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set() and not killed:
            for pid in _ray_map_workers():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        generate(str(tmp_path / "raw"), num_rows=60000, num_files=4, text_length=1000, seed=2)
    finally:
        stop.set()
        thread.join()
    assert killed, "no Ray Data worker was seen to kill"
    assert_exactly_generated(tmp_path / "raw", 60000, seed=2, text_length=1000)


def test_a_flow_killed_mid_write_is_finished_by_the_next_run(tmp_path, ray_cluster):
    out = tmp_path / "raw"
    kill_generate_mid_write(
        f"file://{out}",
        ray_cluster.address_info["gcs_address"],
        num_rows=120000,
        num_files=8,
        wrote=lambda: bool(list(out.glob("part-*.parquet"))),
        log=tmp_path / "killed.log",
    )
    assert not (out / "_manifest.json").exists()
    assert (out / "_writing.json").exists()

    generate(str(out), num_rows=20000, num_files=3, text_length=100, seed=6)
    assert_exactly_generated(out, 20000, seed=6, text_length=100)


def test_a_second_writer_of_the_same_output_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(exclusive, "WAIT_SECONDS", 2.0)
    write_parquet_inputs(tmp_path / "in", files=1, rows=10)
    output = f"file://{tmp_path}/out"
    busy = pytest.raises(OutputBusyError, match=f"another run is writing {output}")
    with exclusive.exclusive_output(output), busy:
        preprocess(str(tmp_path / "in"), output)
    assert not (tmp_path / "out").exists()
    preprocess(str(tmp_path / "in"), output)  # the slot is free again
    assert assert_committed(tmp_path / "out")["num_rows"] == 10
