"""Two Ray nodes on one machine: a stage pinned to a custom resource runs only there.

The test starts its own head and worker node with `ray start` (ports and temp dir of its
own, token authentication on, as Ray 2.60 does by default) and stops them by process
group; it never runs `ray stop`, which would end every Ray on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.dataset import read_dataset
from tests.helpers import (
    assert_cleaned_exactly,
    assert_committed,
    free_port,
    start_process,
    stop_process,
)

BIN = Path(sys.executable).parent
QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
TOKEN = {"RAY_AUTH_MODE": "token"}


def _ray_start(args: list[str], log: Path) -> subprocess.Popen:
    command = [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args]
    return start_process(command, {**os.environ, **QUIET, **TOKEN}, log.parent, log)


def _wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in {log}"
        time.sleep(0.5)


@pytest.fixture
def two_nodes(tmp_path) -> Iterator[str]:
    """A head with 1 CPU and a worker node with 2 CPUs advertising {"Graviton": 2}."""
    port = free_port()
    # Ray's socket paths must stay under 108 bytes: a short temp dir of the test's own.
    temp_dir = Path(tempfile.mkdtemp(prefix="rt-"))
    started: list[subprocess.Popen] = []
    try:
        head_log = tmp_path / "head.log"
        head = _ray_start(
            [
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=1",
                "--include-dashboard=false",
                f"--temp-dir={temp_dir}",
            ],
            head_log,
        )
        started.append(head)
        _wait_for(head_log, "Ray runtime started", head)
        worker_log = tmp_path / "worker.log"
        worker = _ray_start(
            [
                f"--address=127.0.0.1:{port}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=2",
                '--resources={"Graviton": 2}',
            ],
            worker_log,
        )
        started.append(worker)
        _wait_for(worker_log, "Ray runtime started", worker)
        yield f"127.0.0.1:{port}"
    finally:
        for process in reversed(started):
            stop_process(process, grace=3)
        shutil.rmtree(temp_dir, ignore_errors=True)


# Runs as the flow's own process (a driver of the two-node cluster): waits for both
# nodes, runs the pipeline pinned to Graviton, prints the node ids.
DRIVER = """
import json, sys, time
import ray
ray.init()
deadline = time.monotonic() + 60
while len([n for n in ray.nodes() if n["Alive"]]) < 2:
    assert time.monotonic() < deadline, ray.nodes()
    time.sleep(0.5)
nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
from flows.pipeline import pipeline
pipeline(sys.argv[1], num_rows=3000, num_files=3, ray={"resources": {"Graviton": 1}})
print(json.dumps(nodes))
"""


@pytest.mark.usefixtures("prefect_server")
def test_a_stage_pinned_to_a_custom_resource_runs_only_on_that_node(tmp_path, two_nodes):
    from prefect.settings import PREFECT_API_URL

    bucket = tmp_path / "bucket"
    done = subprocess.run(
        [str(BIN / "python"), "-c", DRIVER, str(bucket)],
        env={
            **os.environ,
            **QUIET,
            **TOKEN,
            "RAY_ADDRESS": two_nodes,
            "PREFECT_API_URL": PREFECT_API_URL.value(),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    nodes = json.loads(done.stdout.strip().splitlines()[-1])
    (graviton,) = [node for node, resources in nodes.items() if "Graviton" in resources]
    assert len(nodes) == 2

    for stage, files in (("raw", 3), ("preprocessed", 3)):
        manifest = assert_committed(bucket / stage)
        (ran,) = manifest["execution"]["nodes"]  # every part on one node ...
        assert ran["node_id"] == graviton  # ... the one with the resource
        assert ran["type"] == "Graviton" and ran["cpus"] == 2
        assert ran["parts"] == files and ran["rows"] == 3000
    table = read_dataset(str(bucket / "preprocessed"))
    assert table.column("id").to_pylist() == list(range(3000))
    assert_cleaned_exactly(table)
