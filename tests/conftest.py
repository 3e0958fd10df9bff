"""One local Ray and one temporary Prefect server for the whole test run."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before Ray or Prefect start: nothing we start phones home.
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
# Ship log lines to the Prefect API every half second (default 2 s), from this process
# and from the Ray workers that inherit this environment: tests read them back.
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.5")

# Where tests ask for injected write faults (tasks.parts); set before Ray starts so every
# Ray worker inherits it.
FAULTS_DIR = Path(tempfile.mkdtemp(prefix="pipeline-faults-"))
os.environ["RAY_TEXT_PIPELINE_FAULTS"] = str(FAULTS_DIR)


@pytest.fixture(scope="session", autouse=True)
def _remove_faults_dir():
    yield
    shutil.rmtree(FAULTS_DIR, ignore_errors=True)


@pytest.fixture
def faults():
    """The fault-request directory, emptied after each test."""
    yield FAULTS_DIR
    for leftover in FAULTS_DIR.iterdir():
        leftover.unlink()


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray started by this process and shut down with it (never `ray stop`)."""
    import ray

    context = ray.init(
        "local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=512 * 1024 * 1024,
        namespace="prefect",
        _node_ip_address="127.0.0.1",
    )
    yield context
    ray.shutdown()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One `prefect server start` (API and UI) on loopback for the whole run, with a
    database of its own; flows in this process and every process a test starts use it.
    One server instead of a test harness plus a UI server: each start costs ~30-60 s."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.helpers import start_prefect_server, stop_process

    home = tmp_path_factory.mktemp("prefect-server")
    server, url = start_prefect_server(home, home / "server.log")
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url  # for the processes tests start
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
            # Send the last log lines while the server is still there to take them.
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        stop_process(server)


@pytest.fixture
def flows_env(ray_cluster, prefect_server):
    """Flows run against the session's Ray and Prefect server."""
    return ray_cluster
