"""Two Ray nodes on one machine: a stage pinned to a custom resource runs only there.

The test starts its own head and worker node with `ray start` (ports and temp dir of its
own, token authentication on, as Ray 2.60 does by default) and stops them by process
group; it never runs `ray stop`, which would end every Ray on the host.
"""

from __future__ import annotations

import contextlib
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


def _ray_start(args: list[str], log: Path, prefix: list[str] = ()) -> subprocess.Popen:
    command = [*prefix, str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args]
    return start_process(command, {**os.environ, **QUIET, **TOKEN}, log.parent, log)


def _wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in {log}"
        time.sleep(0.5)


ROOT = Path(__file__).resolve().parent.parent  # the checkout the flow runs from
PACKAGES = ("tasks", "flows", "deployments")


@contextlib.contextmanager
def _cluster(
    tmp_path: Path, workers: list[tuple[int, dict[str, float], list[str]]]
) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A head with 1 CPU and worker nodes (CPUs, custom resources, command prefix);
    yields the address and the worker nodes' processes."""
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
        nodes = []
        for number, (cpus, resources, prefix) in enumerate(workers):
            log = tmp_path / f"worker-{number}.log"
            node = _ray_start(
                [
                    f"--address=127.0.0.1:{port}",
                    "--node-ip-address=127.0.0.1",
                    f"--num-cpus={cpus}",
                    f"--resources={json.dumps(resources)}",
                ],
                log,
                prefix,
            )
            started.append(node)
            nodes.append(node)
            _wait_for(log, "Ray runtime started", node)
        yield f"127.0.0.1:{port}", nodes
    finally:
        for process in reversed(started):
            stop_process(process, grace=3)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def two_nodes(tmp_path) -> Iterator[str]:
    """A head with 1 CPU and a worker node with 2 CPUs advertising {"Graviton": 2}."""
    with _cluster(tmp_path, [(2, {"Graviton": 2}, [])]) as (address, _):
        yield address


def _driver_env(address: str) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        **QUIET,
        **TOKEN,
        "RAY_ADDRESS": address,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
    }


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
ray.shutdown()  # the flow run joins the cluster itself, as a deployment's run would
from flows.pipeline import pipeline
pipeline(sys.argv[1], num_rows=3000, num_files=3, ray={"resources": {"Graviton": 1}})
print(json.dumps(nodes))
"""


@pytest.mark.usefixtures("prefect_server")
def test_a_stage_pinned_to_a_custom_resource_runs_only_on_that_node(tmp_path, two_nodes):
    bucket = tmp_path / "bucket"
    done = subprocess.run(
        [str(BIN / "python"), "-c", DRIVER, str(bucket)],
        env=_driver_env(two_nodes),
        cwd=ROOT,
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


# Last week's cleaning step: upper-cases where today's lower-cases.
OLD_CLEANING = """

_todays_clean_array = clean_array


def clean_array(text):
    return pc.utf8_upper(_todays_clean_array(text))
"""

# A plain Ray job, no code shipped, asking the old node how it cleans "Ab".
PROBE = """
import ray
ray.init()

@ray.remote(resources={"Old": 1})
def clean():
    import pyarrow as pa
    from tasks.clean import clean_array
    return clean_array(pa.array(["Ab"])).to_pylist()

print(ray.get(clean.remote()))
"""


def _with_old_code(old: Path) -> list[str]:
    """A command prefix: the node sees ``old``'s packages at the checkout's own paths
    (bind mounts in a mount namespace of its own, as on a VM set up last week)."""
    mounts = " && ".join(f"mount --bind {old / p} {ROOT / p}" for p in PACKAGES)
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'{mounts} && exec "$@"',
        "sh",
    ]


@pytest.mark.usefixtures("prefect_server")
def test_a_node_with_an_older_copy_at_the_same_path_runs_the_flow_runs_code(tmp_path):
    old = tmp_path / "old"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, old / package, ignore=shutil.ignore_patterns("__pycache__"))
    with (old / "tasks" / "clean.py").open("a") as module:
        module.write(OLD_CLEANING)
    bucket = tmp_path / "bucket"
    with _cluster(tmp_path, [(2, {"Old": 2}, _with_old_code(old))]) as (address, _):
        # The node really has the old code where the flow run's checkout is ...
        probe = subprocess.run(
            [str(BIN / "python"), "-c", PROBE],
            env=_driver_env(address),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert probe.returncode == 0, probe.stderr[-3000:]
        assert probe.stdout.strip().splitlines()[-1] == "['AB']"
        # ... yet every part the flow run sends there runs the flow run's own code.
        done = subprocess.run(
            [str(BIN / "python"), "-c", DRIVER.replace("Graviton", "Old"), str(bucket)],
            env=_driver_env(address),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    nodes = json.loads(done.stdout.strip().splitlines()[-1])
    (old_node,) = [node for node, resources in nodes.items() if "Old" in resources]
    for stage in ("raw", "preprocessed"):
        (ran,) = assert_committed(bucket / stage)["execution"]["nodes"]
        assert ran["node_id"] == old_node and ran["parts"] == 3
    table = read_dataset(str(bucket / "preprocessed"))
    assert table.column("id").to_pylist() == list(range(3000))
    assert_cleaned_exactly(table)
