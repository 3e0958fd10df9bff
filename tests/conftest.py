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
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def flows_env(ray_cluster, prefect_server):
    """Flows run against the session's Ray and Prefect server."""
    return ray_cluster
