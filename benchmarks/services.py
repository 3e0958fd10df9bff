"""What a benchmark run starts and stops itself: a Prefect server, a Ray head, a sampler.

Everything listens on 127.0.0.1, lives under the run's work directory and is stopped
by process group at the end; nothing else on the host is touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "RAY_USAGE_STATS_ENABLED": "0"}
# Ray starts fresh worker processes for every job (every flow run, every seed script);
# this has them import Ray Data and the pipeline's work modules before taking work.
# The same setting as deployments/local.sh; it helps the seed's scripts as much.
PRELOAD = {
    "RAY_preload_python_modules": "ray.data,tasks.steps.generate.step,tasks.steps.preprocess.step"
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM the process group we started, then SIGKILL whatever of it is left.

    The leader can exit before its children (Ray's GCS outlives ``ray start``), so the
    group gets the SIGKILL even when the leader is already gone.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    process.wait()


def _wait_for(check, what: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}); see {log}")
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s; see {log}")


@contextlib.contextmanager
def prefect_server(work: Path) -> Iterator[dict[str, str]]:
    """A Prefect server of this run's own; yields the environment that points at it."""
    port = free_port()
    env = {**os.environ, **QUIET, "PREFECT_HOME": str(work / "prefect")}
    log = work / "prefect-server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_for(
            lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200,
            "Prefect server",
            process,
            log,
            120,
        )
        yield {"PREFECT_HOME": env["PREFECT_HOME"], "PREFECT_API_URL": url}
    finally:
        _stop(process)


@contextlib.contextmanager
def ray_head(work: Path, name: str, object_store_bytes: int | None = None) -> Iterator[RayHead]:
    """``ray start --head --block`` on loopback, ports and temp dir of its own."""
    port = free_port()
    log = work / f"ray-{name}.log"
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--include-dashboard=false",
        f"--temp-dir={work / f'ray-{name}'}",
    ]
    if object_store_bytes:
        command.append(f"--object-store-memory={object_store_bytes}")
    # Token authentication on, as the drivers ask for it: Ray's token file is made if the
    # machine has none (`ray start` does not make one), and never printed.
    subprocess.run(
        [str(BIN / "ray"), "get-auth-token", "--generate"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            env={**os.environ, **QUIET, **PRELOAD, "RAY_AUTH_MODE": "token"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for(lambda: "Ray runtime started" in log.read_text(), "Ray", process, log, 120)
        yield RayHead(process, f"127.0.0.1:{port}")
    finally:
        _stop(process)


class RayHead:
    def __init__(self, process: subprocess.Popen, address: str):
        self.process = process
        self.address = address

    @property
    def env(self) -> dict[str, str]:
        # The head has token authentication on (ray_head); clients must say so.
        return {"RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token"}

    def spilled_bytes(self) -> int:
        """Bytes this cluster has spilled from its object store so far."""
        os.environ["RAY_AUTH_MODE"] = "token"  # this process is a client too
        from tasks.cluster import internals  # Ray has no public API for it

        return internals.cluster_spilled_bytes(self.address)


def _pss(pid: int) -> int:
    """Proportional set size: shared pages (the object store) counted once in total."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakMemory:
    """Samples the summed PSS of process trees in a thread; ``peak`` is the maximum.

    Once a second: reading PSS walks every mapping, and with a Ray object store mapped
    into each process one pass over a Ray tree costs ~0.1 s of CPU. Sampling four times
    a second took half a core from the sides being measured on a 2-core machine.
    """

    def __init__(self, roots: list[int], interval: float = 1.0):
        self.roots = roots
        self.interval = interval
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def total(self) -> int:
        pids: set[int] = set()
        for root in self.roots:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(root)
                pids.add(root)
                pids.update(p.pid for p in process.children(recursive=True))
        return sum(_pss(pid) for pid in pids)

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.total())
            self._done.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
