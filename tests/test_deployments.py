"""prefect.yaml: what it declares, and every default deployment run through a real worker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

from tests.helpers import assert_cleaned_exactly, assert_committed, free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SPEC = yaml.safe_load((ROOT / "prefect.yaml").read_text())
DEPLOYMENTS = {
    f"{load_flow_from_entrypoint(str(ROOT / d['entrypoint'])).name}/{d['name']}": d
    for d in SPEC["deployments"]
}


def test_the_promised_deployments_exist():
    assert set(DEPLOYMENTS) == {
        "create-bucket/default",
        "generate/default",
        "preprocess/default",
        "pipeline/default",
        "pipeline/nightly",
    }


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_parameters_fit_the_flow_signature(name):
    spec = DEPLOYMENTS[name]
    flow = load_flow_from_entrypoint(str(ROOT / spec["entrypoint"]))
    flow.validate_parameters(spec["parameters"])
    assert spec["work_pool"]["name"] == "local-process"


def test_nightly_runs_at_two_with_an_explicit_timezone():
    (schedule,) = DEPLOYMENTS["pipeline/nightly"]["schedules"]
    assert schedule["cron"] == "0 2 * * *"
    assert schedule["timezone"] == "Asia/Seoul"


def test_nightly_partitions_by_the_date_in_its_schedules_timezone():
    nightly = DEPLOYMENTS["pipeline/nightly"]
    (schedule,) = nightly["schedules"]
    assert nightly["parameters"]["daily"] is True
    assert nightly["parameters"]["timezone"] == schedule["timezone"]


def test_defaults_chain_through_one_local_bucket():
    bucket = DEPLOYMENTS["create-bucket/default"]["parameters"]["bucket_uri"]
    assert bucket.startswith("data/")
    assert DEPLOYMENTS["pipeline/default"]["parameters"]["bucket_uri"] == bucket
    generated = DEPLOYMENTS["generate/default"]["parameters"]["output_uri"]
    assert generated == f"{bucket}/raw"
    assert DEPLOYMENTS["preprocess/default"]["parameters"]["input_uri"] == generated
    assert DEPLOYMENTS["preprocess/default"]["parameters"]["output_uri"] == f"{bucket}/preprocessed"


def _start(args: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    # A session of its own, so the whole process tree can be ended by its group id.
    return subprocess.Popen(
        args,
        env=env,
        cwd=cwd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def project(tmp_path_factory, ray_cluster):
    """A copy of the project's prefect.yaml and flows/, served by a server (with its UI)
    and a worker of its own; flow runs join the test session's Ray through RAY_ADDRESS.
    Shared by this module's end-to-end tests, which each write a bucket of their own."""
    tmp_path = tmp_path_factory.mktemp("deployments")
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(ROOT / "prefect.yaml", work)
    shutil.copytree(ROOT / "flows", work / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ADDRESS": ray_cluster.address_info["gcs_address"],
        "RAY_AUTH_MODE": "token",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }
    procs = []
    try:
        server = _start(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env,
            work,
            tmp_path / "server.log",
        )
        procs.append(server)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{env['PREFECT_API_URL']}/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "Prefect server did not start"
                time.sleep(1)
        prefect = [str(BIN / "prefect")]
        for args in (
            ["work-pool", "create", "local-process", "--type", "process"],
            ["--no-prompt", "deploy", "--all"],
        ):
            done = subprocess.run(prefect + args, env=env, cwd=work, capture_output=True, text=True)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        procs.append(
            _start(
                [*prefect, "worker", "start", "--pool", "local-process"],
                env,
                work,
                tmp_path / "worker.log",
            )
        )
        yield work, env
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.mark.e2e
def test_every_default_deployment_completes_through_a_worker(project):
    work, env = project
    bucket = work / "data" / "local-bucket"
    for name in ("create-bucket/default", "generate/default", "preprocess/default"):
        _run_deployment(name, env, work)
    assert bucket.is_dir()
    assert assert_committed(bucket / "raw")["num_rows"] == 20000
    first = assert_committed(bucket / "preprocessed")
    assert first["parameters"]["input_uri"] == f"file://{bucket}/raw"

    shutil.rmtree(bucket)
    _run_deployment("pipeline/default", env, work)
    assert assert_committed(bucket / "raw")["num_rows"] == 20000
    assert assert_committed(bucket / "preprocessed")["num_rows"] == 20000
    from tasks.dataset import read_dataset

    assert_cleaned_exactly(read_dataset(str(bucket / "preprocessed")))
    report = subprocess.run(
        [str(BIN / "python"), str(ROOT / "deployments" / "report.py"), "pipeline/default"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert report.stdout.strip() == f"output: file://{bucket}/preprocessed"

    # Each stage of the pipeline/default run published its artifacts ...
    api = env["PREFECT_API_URL"]
    (run,) = _post(
        api,
        "/flow_runs/filter",
        {
            "deployments": {"name": {"any_": ["default"]}},
            "flows": {"name": {"any_": ["pipeline"]}},
            "sort": "END_TIME_DESC",
            "limit": 1,
        },
    )
    stages = {
        _post(api, "/flows/filter", {"flows": {"id": {"any_": [child["flow_id"]]}}})[0][
            "name"
        ]: child
        for child in _post(
            api, "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}}
        )
    }
    expected = {
        "create-bucket": {"create-bucket-summary"},
        "generate": {"generate-summary", "generate-nodes", "generate-progress", "generate-links"},
        "preprocess": {
            "preprocess-summary",
            "preprocess-quality",
            "preprocess-nodes",
            "preprocess-progress",
            "preprocess-links",
        },
    }
    for stage, keys in expected.items():
        found = _post(
            api,
            "/artifacts/filter",
            {"artifacts": {"flow_run_id": {"any_": [stages[stage]["id"]]}}},
        )
        assert {a["key"] for a in found} == keys, stage

    # ... and the UI renders them: the generate run's page, its Artifacts tab, the summary.
    shot = work / "ui-generate-summary.png"
    rows_out = _ui_summary_rows_out(api.removesuffix("/api"), stages["generate"]["id"], shot)
    assert rows_out == "20000"
    assert shot.stat().st_size > 10_000


@pytest.mark.e2e
def test_nightly_schedule_and_backfill_through_a_worker(project):
    work, env = project
    # pipeline/nightly as its schedule would start it: 02:00 Seoul time on 2 March, which
    # is 1 March in UTC. Small data in a bucket of the test's own.
    nightly = work / "nightly-bucket"
    small = {"bucket_uri": str(nightly), "num_rows": 2000, "num_files": 2}
    scheduled = subprocess.run(
        [str(BIN / "python"), "-c", SCHEDULE_NIGHTLY, json.dumps(small), "2026-03-01T17:00:00Z"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert scheduled.stdout.strip().endswith("Completed"), scheduled.stdout + scheduled.stderr
    assert [p.name for p in (nightly / "preprocessed").iterdir()] == ["dt=2026-03-02"]
    assert assert_committed(nightly / "preprocessed" / "dt=2026-03-02")["num_rows"] == 2000

    # A backfill through the deployment: one worker run per missing date, then nothing.
    # (tests/test_observe.py backfills three dates in-process; here the deployment path.)
    first = _backfill(["2026-03-02", "2026-03-03", "--parameters", json.dumps(small)], env, work)
    assert first == ["2026-03-02: skipped", "2026-03-03: Completed"]
    days = sorted(p.name for p in (nightly / "preprocessed").iterdir())
    assert days == ["dt=2026-03-02", "dt=2026-03-03"]
    assert assert_committed(nightly / "preprocessed" / "dt=2026-03-03")["num_rows"] == 2000
    again = _backfill(["2026-03-02", "2026-03-03", "--parameters", json.dumps(small)], env, work)
    assert again == ["2026-03-02: skipped", "2026-03-03: skipped"]


# Create a run of pipeline/nightly scheduled at a given time, wait for the worker to run
# it, print its final state.
SCHEDULE_NIGHTLY = """
import sys, json, datetime as dt
from prefect import get_client
from prefect.deployments import run_deployment
from prefect.states import Scheduled
when = dt.datetime.fromisoformat(sys.argv[2].replace("Z", "+00:00"))
run = run_deployment("pipeline/nightly", parameters=json.loads(sys.argv[1]), scheduled_time=when)
print(run.state.name)
"""


def _post(api: str, path: str, body: dict) -> list[dict]:
    request = urllib.request.Request(
        api + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def chromium() -> str:
    """Debian's Chromium (packages chromium and chromium-driver; .ci/run installs them)."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/lib/chromium/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium")
    if not found:
        pytest.fail("Chromium not found: apt-get install chromium chromium-driver")
    return found


def _ui_summary_rows_out(ui: str, flow_run_id: str, screenshot: Path) -> str:
    """Open the flow run's page in headless Chromium, go to its summary artifact through
    the Artifacts tab, and return the "rows out" cell as rendered; save a screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{ui}/runs/flow-run/{flow_run_id}")
            page.get_by_text("Artifacts", exact=True).click()
            page.get_by_text("generate-summary", exact=True).first.click()
            row = page.get_by_role("row").filter(has_text="rows out")
            row.wait_for(timeout=60_000)
            page.screenshot(path=str(screenshot), full_page=True)
            return row.get_by_role("cell").last.inner_text().strip()
        finally:
            browser.close()


def _backfill(args: list[str], env: dict, cwd: Path) -> list[str]:
    done = subprocess.run(
        [str(BIN / "python"), "-m", "flows.backfill", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [line for line in done.stdout.splitlines() if line.startswith("2026-")]


def _run_deployment(name: str, env: dict, cwd: Path) -> None:
    done = subprocess.run(
        [str(BIN / "prefect"), "deployment", "run", name, "--watch"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Completed" in done.stdout
