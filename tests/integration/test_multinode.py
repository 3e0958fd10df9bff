"""Ray clusters of several nodes on one machine: pinned stages, a node with an older copy
of the project, a node lost mid-run.

Each test starts its own head and worker nodes with `ray start` (ports and temp dir of
its own, token authentication on, as Ray 2.60 does by default) and stops them itself;
it never runs `ray stop`, which would end every Ray on the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.steps.generate import synth
from tasks.store.dataset import read_dataset
from tests.helpers import (
    assert_cleaned_exactly,
    assert_committed,
    committed_bytes,
    dedup_dataset,
    free_port,
    start_process,
    stop_process,
)
from tests.integration.test_dedup_dataset import corpus

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


ROOT = Path(__file__).resolve().parents[2]  # the checkout the flow runs from
PACKAGES = ("tasks", "flows")


FAST_NODE_DEATH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}


@contextlib.contextmanager
def _cluster(
    tmp_path: Path, workers: list[tuple[int, dict[str, float], list[str]]]
) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A head with 1 CPU and worker nodes (CPUs, custom resources, command prefix);
    yields the address and the worker nodes' processes. A node that stops answering is
    declared dead after about 3 s (Ray's default: 30 s)."""
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
                f"--system-config={json.dumps(FAST_NODE_DEATH)}",
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


def _driver_env(address: str) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        **QUIET,
        **TOKEN,
        "RAY_ADDRESS": address,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
    }


def _drive(address: str, script: str, *args: str) -> str:
    """Run ``script`` as a driver of the cluster at ``address``; what it printed."""
    done = subprocess.run(
        [str(BIN / "python"), "-c", script, *args],
        env=_driver_env(address),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def alive_nodes(count: int) -> dict[str, dict[str, float]]:
    """In a driver: wait until ``count`` nodes are alive; their resources by node id."""
    import ray

    deadline = time.monotonic() + 60
    while len(alive := [n for n in ray.nodes() if n["Alive"]]) < count:
        assert time.monotonic() < deadline, ray.nodes()
        time.sleep(0.5)
    return {n["NodeID"]: n["Resources"] for n in alive}


# Runs as the flow's own process (a driver of the two-node cluster): waits for both
# nodes, runs the pipeline pinned to the resource "Old", prints the node ids.
DRIVER = """
import json, sys
import ray
from tests.integration.test_multinode import alive_nodes
ray.init()
nodes = alive_nodes(2)
ray.shutdown()  # the flow run joins the cluster itself, as a deployment's run would
from flows.pipeline import pipeline
pipeline(sys.argv[1], num_rows=3000, num_files=3, ray={"resources": {"Old": 1}})
print(json.dumps(nodes))
"""


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
    from tasks.steps.preprocess.clean import clean_array
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
    """The pipeline pinned to a custom resource runs only on the node offering it, and
    there runs the flow run's code, not the node's own older copy."""
    old = tmp_path / "old"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, old / package, ignore=shutil.ignore_patterns("__pycache__"))
    with (old / "tasks" / "steps" / "preprocess" / "clean.py").open("a") as module:
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
        printed = _drive(address, DRIVER, str(bucket))
    nodes = json.loads(printed.strip().splitlines()[-1])
    (old_node,) = [node for node, resources in nodes.items() if "Old" in resources]
    for stage in ("raw", "preprocessed"):
        (ran,) = assert_committed(bucket / stage)["execution"]["nodes"]  # all parts on ...
        assert ran["node_id"] == old_node  # ... the node with the resource they asked for
        assert ran["type"] == "Old" and ran["cpus"] == 2
        assert ran["parts"] == 3 and ran["rows"] == 3000
    table = read_dataset(str(bucket / "preprocessed"))
    assert table.column("id").to_pylist() == list(range(3000))
    assert_cleaned_exactly(table)


# The flow's own process on a three-node cluster, every preprocess part slowed down by a
# worker setup hook (tests.slow_parts) so that parts are in flight when a node goes.
LOSS_DRIVER = """
import json, os, sys
import ray
from tests.integration.test_multinode import alive_nodes
from flows.runner import code_runtime_env
hook = {
    "worker_process_setup_hook": "tests.slow_parts.install",
    "env_vars": {"SLOW_PARTS_MARKERS": sys.argv[4]},
}
ray.init(runtime_env={**code_runtime_env(), **hook})
nodes = alive_nodes(3)
found = {"nodes": nodes, "driver": ray.get_runtime_context().get_node_id()}
with open(sys.argv[2] + ".tmp", "w") as out:
    json.dump(found, out)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
from flows.preprocess import preprocess
preprocess(sys.argv[1], sys.argv[3], ray={"resources": {"Work": 1}})
"""


@pytest.mark.usefixtures("prefect_server")
def test_a_worker_node_lost_mid_run_the_run_finishes_exactly_once_and_says_so(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "clean"
    write_parquet_parts(raw, ROWS, PARTS)
    workers = [(1, {"Work": 1, "A": 1}, []), (1, {"Work": 1, "B": 1}, [])]
    with _cluster(tmp_path, workers) as (address, processes):
        log, nodes_file = tmp_path / "driver.log", tmp_path / "nodes.json"
        markers = tmp_path / "started"
        markers.mkdir()
        driver = start_process(
            [str(BIN / "python"), "-c", LOSS_DRIVER, *map(str, (raw, nodes_file, out, markers))],
            _driver_env(address),
            ROOT,
            log,
        )
        try:
            deadline = time.monotonic() + 300
            while not nodes_file.exists():
                assert driver.poll() is None, log.read_text()[-5000:]
                assert time.monotonic() < deadline
                time.sleep(0.05)
            lost, kept, doomed = _doomed(json.loads(nodes_file.read_text()), processes)
            while not any(marker.name.startswith(lost) for marker in markers.iterdir()):
                assert driver.poll() is None, log.read_text()[-5000:]
                assert time.monotonic() < deadline
                time.sleep(0.05)
            kill_tree(doomed.pid)  # the node and every process it started, mid-part
            driver.wait(timeout=600)
        finally:
            stop_process(driver, grace=3)
    assert driver.returncode == 0, log.read_text()[-5000:]

    manifest = assert_committed(out)
    assert [f["path"] for f in manifest["files"]] == [f"part-{i:05d}.parquet" for i in range(PARTS)]
    table = read_dataset(str(out))
    assert table.column("id").to_pylist() == list(range(ROWS))
    assert_cleaned_exactly(table)

    execution = manifest["execution"]
    (gone,) = execution["lost_nodes"]
    assert gone["node_id"] == lost and gone["type"] in ("A+Work", "B+Work")
    assert gone["parts_redone"] >= 1
    assert execution["redone_parts"]
    for redone in execution["redone_parts"]:
        assert redone["nodes"][:-1] == [lost] and redone["nodes"][-1] == kept
    summary = asyncio.run(_latest_artifact("preprocess-summary"))
    assert "Ray node lost" in summary and lost in summary


ROWS, PARTS = 4000, 8


def write_parquet_parts(root: Path, rows: int, parts: int) -> None:
    """``parts`` Parquet files of generated rows, in id order."""
    table = pa.concat_tables(synth.generate_rows(7, 0, rows, 200))
    root.mkdir()
    step = rows // parts
    for number in range(parts):
        pq.write_table(table.slice(number * step, step), root / f"in-{number:02d}.parquet")


def _doomed(found: dict, processes: list[subprocess.Popen]) -> tuple[str, str, subprocess.Popen]:
    """(lost node id, kept node id, process to kill): a worker node other than the one
    the flow run's process joined through. Here every node has the same IP, so a driver
    may join through any of them; on a real cluster it is its own machine's node."""
    by_label = {
        label: node for node, r in found["nodes"].items() for label in ("A", "B") if label in r
    }
    lost = next(by_label[label] for label in ("B", "A") if by_label[label] != found["driver"])
    kept = by_label["A" if lost == by_label["B"] else "B"]
    return lost, kept, processes[0 if lost == by_label["A"] else 1]


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants at once, as a lost machine would (Ray's
    worker processes leave the node's process group)."""
    for doomed in [pid, *_descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(doomed, signal.SIGKILL)


async def _latest_artifact(key: str) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as api:
        artifact = await api.read_latest_artifacts(limit=200)
    (found,) = [a for a in artifact if a.key == key]
    return json.dumps(found.data)


# The dedup flow as its own process on a two-node cluster, once both nodes are up.
DEDUP_DRIVER = """
import sys
import ray
from tests.integration.test_multinode import alive_nodes
ray.init()
alive_nodes(2)
ray.shutdown()
from flows.dedup import dedup
dedup(sys.argv[1], sys.argv[2], mode="near")
"""


# Then, in the same driver, a shuffled tokenize of what it committed.
TOKENIZE_AFTER = """
from flows.tokenize import tokenize
tokenize(sys.argv[2], sys.argv[3], sys.argv[4], text_column="cleaned_text", shuffle_seed=5)
"""


@pytest.mark.usefixtures("prefect_server", "ray_cluster")
def test_dedup_and_a_shuffled_tokenize_on_two_nodes_commit_what_one_node_does(tmp_path):
    from tokenizers import Tokenizer

    from tests.helpers import train_tokenizer
    from tests.unit.test_tokenize import read_indexed

    source, rows, *_ = corpus(tmp_path, seed=4)
    one, two = tmp_path / "one-node", tmp_path / "two-nodes"
    dedup_dataset(source, str(one), mode="near")  # the session's Ray: one node
    tokenizer = train_tokenizer(tmp_path, [r["cleaned_text"] or "" for r in rows])
    with _cluster(tmp_path, [(1, {}, [])]) as (address, _):
        script = DEDUP_DRIVER + TOKENIZE_AFTER
        _drive(address, script, source, str(two), str(tmp_path / "tokens-two"), str(tokenizer))
    manifest = assert_committed(two)
    assert len(manifest["execution"]["nodes"]) == 2  # the parts ran on both nodes
    assert manifest["dedup"] == assert_committed(one)["dedup"]
    assert manifest["dedup"]["near_duplicates_removed"] > 0
    assert committed_bytes(two) == committed_bytes(one)
    # The shuffled shards, written on both nodes, hold every kept row's text once (the
    # draws come from the seed and the input alone: tests/unit/test_tokenize.py).
    out = tmp_path / "tokens-two"
    tokens = assert_committed(out)
    assert len(tokens["execution"]["nodes"]) == 2
    encoder = Tokenizer.from_file(str(tokenizer))
    kept = read_dataset(str(two), ["cleaned_text"]).column(0).to_pylist()
    expected = sorted(encoder.encode(t or "", add_special_tokens=False).ids for t in kept)
    shards = [
        read_indexed((out / f"{s}.bin").read_bytes(), (out / f"{s}.idx").read_bytes())[1]
        for s in tokens["tokenized"]["shards"]
    ]
    assert sorted(d for shard in shards for d in shard) == expected
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
