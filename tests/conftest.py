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

# Three tries of an S3 request, not six (AWS_MAX_ATTEMPTS, the SDKs' own setting, which
# every process here and every Ray worker inherits): the throttling tests then wait out
# the SDK's backoffs (1-13 s each) three times per call, not six.
os.environ.setdefault("AWS_MAX_ATTEMPTS", "3")

# Where tests ask for injected write faults (tests/write_faults.py); set before Ray starts
# so that every Ray worker inherits it.
FAULTS_DIR = Path(tempfile.mkdtemp(prefix="pipeline-faults-"))
os.environ["PIPELINE_TEST_WRITE_FAULTS"] = str(FAULTS_DIR)


# Fixtures that start or use a real part (Ray, a Prefect server, an S3 server): a test
# that asks for none of them is a unit test. tests/e2e/ holds the end-to-end ones.
REAL_PARTS = {"ray_cluster", "flows_env", "prefect_server", "moto_endpoint"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by its role: ``pytest -m unit`` runs the fast ones alone."""
    for item in items:
        if item.path.parent.name == "e2e":
            item.add_marker(pytest.mark.e2e)
        elif REAL_PARTS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


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


# The test AWS identity. Every process resolves its own credentials (tasks.store.storage), so
# the Ray workers get these from their environment, as a node would from its role.
AWS_KEY_ID = "AKIATESTPIPELINE0001"
AWS_SECRET = "s3cr3t-SENTINEL-never-logged-0123456789"


def aws_test_env(tmp: Path) -> dict[str, str]:
    """Static test keys, and no config or credentials file of the host's."""
    return {
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
    }


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's S3 server on loopback (any key is accepted)."""
    from moto.server import ThreadedMotoServer

    from tests.helpers import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A local Ray started by this process and shut down with it (never `ray stop`).

    Its workers inherit the test AWS identity from the environment Ray starts in."""
    import ray

    saved = dict(os.environ)
    os.environ.update(aws_test_env(tmp_path_factory.mktemp("aws")))
    try:
        context = ray.init(
            "local",
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=512 * 1024 * 1024,
            namespace="prefect",
            _node_ip_address="127.0.0.1",
            # Every worker can fail a write on request (the faults fixture).
            runtime_env={"worker_process_setup_hook": "tests.write_faults.install"},
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
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
