"""prefect.yaml: what it declares, and every default deployment run through a real worker."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

from tasks.orchestration import alerts
from tests.helpers import assert_cleaned_exactly, assert_committed, start_process, stop_process

ROOT = Path(__file__).resolve().parents[2]
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
        "dedup/default",
        "filter/default",
        "tokenize/default",
        "pipeline/default",
        "pipeline/nightly",
        "pipeline/corpus",
        "backfill/nightly",
    }


# What a person gives when starting a deployment that has no default for it.
ASKED_FOR = {
    "backfill/nightly": {"start_date": "2026-03-01", "end_date": "2026-03-02"},
    "tokenize/default": {"tokenizer": "/models/gpt2/tokenizer.json"},
}


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_parameters_fit_the_flow_signature(name):
    spec = DEPLOYMENTS[name]
    flow = load_flow_from_entrypoint(str(ROOT / spec["entrypoint"]))
    flow.validate_parameters({**ASKED_FOR.get(name, {}), **spec["parameters"]})
    assert spec["work_pool"]["name"] == "local-process"


def test_the_nightly_is_bounded_in_time_and_on_disk():
    """What keeps a nightly left running for a month from piling up (each behaviour is
    tested in test_nightly.py and below)."""
    for name in ("pipeline/nightly", "backfill/nightly"):
        assert DEPLOYMENTS[name]["concurrency_limit"] == {
            "limit": 1,
            "collision_strategy": "ENQUEUE",
        }
    parameters = DEPLOYMENTS["pipeline/nightly"]["parameters"]
    assert parameters["timeout_minutes"] > 0
    assert parameters["keep_days"] >= 1
    # Each date near-deduped against the earlier ones kept; the intermediates go.
    assert [list(step) for step in parameters["steps"]] == [["preprocess"], ["dedup"]]
    assert parameters["steps"][1]["dedup"]["mode"] == "near"
    assert parameters["raw_keep_days"] == parameters["steps"][0]["preprocess"]["keep_days"] == 0
    assert DEPLOYMENTS["backfill/nightly"]["parameters"]["deployment"] == "pipeline/nightly"


def test_corpus_reads_each_dates_drop_with_filters_and_near_dedup():
    corpus = DEPLOYMENTS["pipeline/corpus"]
    parameters = corpus["parameters"]
    assert "{date}" in parameters["input_uri"] and parameters["daily"] is True
    assert [list(step) for step in parameters["steps"]] == [["preprocess"], ["filter"], ["dedup"]]
    assert parameters["steps"][2]["dedup"]["mode"] == "near"
    assert "keep_days" not in parameters["steps"][1]["filter"]  # the rejected rows stay
    assert "num_rows" not in parameters  # nothing generated
    (schedule,) = corpus["schedules"]
    assert schedule["timezone"] == parameters["timezone"]
    assert schedule["active"] is False  # until the user's corpus is there


def test_every_deployment_heartbeats_often_enough_for_the_crashed_alert():
    """A run is marked Crashed after crashed_after_seconds without a heartbeat: with
    Prefect's default (one per 180 s) every healthy run would be."""
    settings = alerts.AlertSettings.load(ROOT / "deployments" / "alerts.yaml")
    for name, spec in DEPLOYMENTS.items():
        env = spec["work_pool"]["job_variables"]["env"]
        assert "ray-text-pipeline" in spec["tags"], name
        assert int(env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]) * 3 <= settings.crashed_after_seconds


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


@pytest.fixture(scope="module")
def project(tmp_path_factory, ray_cluster, prefect_server):
    """A copy of the project's prefect.yaml and flows/, deployed to the session's Prefect
    server (which serves the UI too) and served by a worker of its own; flow runs join
    the test session's Ray through RAY_ADDRESS. Shared by this module's end-to-end
    tests, which each write a bucket of their own."""
    tmp_path = tmp_path_factory.mktemp("deployments")
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(ROOT / "prefect.yaml", work)
    shutil.copytree(ROOT / "flows", work / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": prefect_server,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ADDRESS": ray_cluster.address_info["gcs_address"],
        "RAY_AUTH_MODE": "token",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }
    prefect = [str(BIN / "prefect")]
    for args in (
        ["work-pool", "create", "local-process", "--type", "process"],
        ["--no-prompt", "deploy", "--all"],
    ):
        done = subprocess.run(prefect + args, env=env, cwd=work, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The default queue only: the crash test's run goes to a worker of its own.
    worker = start_process(
        [*prefect, "worker", "start", "--pool", "local-process", "--work-queue", "default"],
        env,
        work,
        tmp_path / "worker.log",
    )
    try:
        yield work, env
    finally:
        stop_process(worker)


@pytest.mark.e2e
def test_pipeline_default_runs_through_a_worker_and_shows_in_the_ui(project):
    """What `make run` does. (Every deployment's entrypoint and parameters are loaded by
    `prefect deploy --all` and checked above; the stages' flows run in test_flows.py.)"""
    work, env = project
    bucket = work / "data" / "local-bucket"
    _run_deployment("pipeline/default", env, work)
    assert assert_committed(bucket / "raw")["num_rows"] == 20000
    assert assert_committed(bucket / "preprocessed")["num_rows"] == 20000
    from tasks.store.dataset import read_dataset

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
def test_nightly_one_at_a_time_on_schedule_then_the_backfill_deployment(project):
    """pipeline/nightly as its schedule starts it; a second run started meanwhile waits,
    as the documented collision strategy (ENQUEUE) says; then backfill/nightly through
    the worker fills in the missing date only, and a second backfill starts nothing."""
    from prefect.deployments import run_deployment

    from tasks.orchestration.exclusive import exclusive_output
    from tasks.store.storage import canonical_uri

    work, env = project
    nightly = work / "nightly-bucket"
    # Exact dedup stands in for the nightly's near (same passes, fewer Ray Data jobs).
    small = {
        "bucket_uri": str(nightly),
        "num_rows": 2000,
        "num_files": 2,
        "steps": [{"preprocess": {"keep_days": 0}}, {"dedup": {"mode": "exact"}}],
    }

    # 02:00 Seoul time on 2 March is 1 March in UTC: the run writes dt=2026-03-02. The
    # test holds that run's output, so the run stays running (waiting for its write
    # slot) until the second run has been seen held back.
    with exclusive_output(canonical_uri(str(nightly / "raw" / "dt=2026-03-02"))):
        first = run_deployment(
            "pipeline/nightly",
            parameters=small,
            scheduled_time=dt.datetime(2026, 3, 1, 17, 0, tzinfo=dt.UTC),
            timeout=0,
        )
        _wait_for_state(env, first.id, lambda s: s["type"] == "RUNNING")
        second = run_deployment(
            "pipeline/nightly", parameters={**small, "run_date": "2026-03-03"}, timeout=0
        )
        _wait_for_state(env, second.id, lambda s: s["name"] == "AwaitingConcurrencySlot")
        assert _flow_run(env, first.id)["state"]["type"] == "RUNNING"
    done = [_wait_for_state(env, run.id, lambda s: s["type"] in FINAL) for run in (first, second)]
    assert [run["state"]["type"] for run in done] == ["COMPLETED", "COMPLETED"]
    assert dt.datetime.fromisoformat(done[1]["start_time"]) >= dt.datetime.fromisoformat(
        done[0]["end_time"]
    )
    for day in ("2026-03-02", "2026-03-03"):
        assert assert_committed(nightly / "deduped" / f"dt={day}")["dedup"]["rows_in"] == 2000
    # raw and preprocessed are intermediates here (keep_days 0): each went once its
    # date's deduped was committed.
    for name in ("raw", "preprocessed"):
        assert list((nightly / name).iterdir()) == [], name

    # backfill/nightly, as the UI's run form or `make backfill` starts it: the worker runs
    # the backfill, which starts one pipeline/nightly run per missing date.
    def backfill() -> list[str]:
        before = {r["id"] for r in _pipeline_runs("backfill")}
        run = run_deployment(
            "backfill/nightly",
            parameters={"start_date": "2026-03-03", "end_date": "2026-03-04", "parameters": small},
            timeout=300,
            poll_interval=1,
        )
        assert run.state.is_completed(), run.state
        started = [r for r in _pipeline_runs("backfill") if r["id"] not in before]
        assert all(r["state_type"] == "COMPLETED" for r in started), started
        return sorted(r["parameters"]["run_date"] for r in started)

    # 3 March's deduped was committed: skipped, though its intermediates are gone.
    assert backfill() == ["2026-03-04"]
    # The nightly's keep_days (2) applies to backfilled dates too: 4 March's run removed
    # 2 March from deduped, and its own raw and preprocessed.
    assert sorted(p.name for p in (nightly / "deduped").iterdir()) == [
        "dt=2026-03-03",
        "dt=2026-03-04",
    ]
    for name in ("raw", "preprocessed"):
        assert list((nightly / name).iterdir()) == [], name
    # Each date deduplicated against the earlier dates still kept when it ran.
    deduped = assert_committed(nightly / "deduped" / "dt=2026-03-04")
    assert deduped["parameters"]["mode"] == "exact"
    assert sorted(deduped["parameters"]["against"]) == [
        canonical_uri(str(nightly / "deduped" / f"dt={day}"))
        for day in ("2026-03-02", "2026-03-03")
    ]
    assert deduped["dedup"]["rows_in"] == 2000
    assert backfill() == []


FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _flow_run(env: dict, run_id: str) -> dict:
    with urllib.request.urlopen(f"{env['PREFECT_API_URL']}/flow_runs/{run_id}") as response:
        return json.loads(response.read())


def _wait_for_state(env: dict, run_id: str, wanted, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while not wanted((run := _flow_run(env, run_id))["state"]):
        assert time.monotonic() < deadline, run["state"]
        time.sleep(0.5)
    return run


def _pipeline_runs(tag: str) -> list[dict]:
    api = os.environ["PREFECT_API_URL"]
    return _post(
        api,
        "/flow_runs/filter",
        {"flows": {"name": {"any_": ["pipeline"]}}, "flow_runs": {"tags": {"all_": [tag]}}},
    )


@pytest.mark.e2e
def test_the_server_refuses_bad_parameters_by_name_and_the_run_form_documents_them(project):
    """What a person sees: `prefect deployment run ... --param` with a bad value is refused
    by the server before any worker starts a run; the run form has a description for
    every field and the Ray options as a nested form."""
    work, env = project
    api = env["PREFECT_API_URL"]
    bad = [
        ("preprocess/default", "batch_size=0", "batch_size"),
        ("preprocess/default", "compression=lz4", "compression"),
        ("preprocess/default", 'ray={"num_cpus": 0}', "num_cpus"),
        ("preprocess/default", 'ray={"compute": "gpus"}', "compute"),
        ("preprocess/default", 'ray={"num_cpu": 2}', "num_cpu"),
        ("dedup/default", "mode=fuzzy", "mode"),
        ("dedup/default", "threshold=1.5", "threshold"),
        ("dedup/default", "num_perm=0", "num_perm"),
        ("pipeline/default", 'steps=[{"sort": {}}]', "'sort'"),  # no such step
        ("pipeline/default", 'steps=[{"dedup": {"mode": "fuzzy"}}]', "steps[0].dedup.mode"),
        ("pipeline/default", 'steps=[{"filter": {"filters": {"c4": {"x": 1}}}}]', "'x'"),
        (
            "filter/default",
            'filters={"decontaminate": {"ngram": 0, "benchmarks": '
            '[{"name": "mmlu", "uri": "mmlu.jsonl", "columns": ["question"]}]}}',
            "ngram",
        ),
        ("tokenize/default", "batch_size=1", "tokenizer"),  # it asks for a tokenizer
        ("tokenize/default", "tokenizer=", "tokenizer"),
    ]
    for deployment_name, param, name in bad:
        done = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", deployment_name, "--param", param],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = done.stdout + done.stderr
        assert done.returncode != 0, said
        assert "Validation failed" in said and name in said, said
    refused = _post(
        api,
        "/deployments/filter",
        {
            "deployments": {"name": {"any_": ["default"]}},
            "flows": {"name": {"any_": ["preprocess", "dedup"]}},
        },
    )
    assert len(refused) == 2
    ids = [d["id"] for d in refused]
    runs = _post(api, "/flow_runs/filter", {"deployments": {"id": {"any_": ids}}})
    assert runs == []  # refused: no run was created for a worker to pick up
    (deployment,) = [d for d in refused if d["entrypoint"].startswith("flows/preprocess.py")]

    schema = deployment["parameter_openapi_schema"]
    for name, field in schema["properties"].items():
        assert field.get("description"), f"no description for {name}"
    assert schema["properties"]["compression"]["enum"] == ["snappy", "zstd", "none"]
    assert schema["properties"]["batch_size"]["minimum"] == 1
    ray_form = schema["definitions"]["RayOptions"]
    assert set(ray_form["properties"]) == {
        "num_cpus",
        "resources",
        "compute",
        "actor_pool",
        "read_blocks",
        "remote_args",
        "init",
    }
    for name, field in ray_form["properties"].items():
        assert field.get("description"), f"no description for ray.{name}"
    credentials = schema["definitions"]["AwsCredentials"]
    assert credentials["block_type_slug"] == "aws-credentials"  # the UI's block picker

    shot = work / "ui-run-form.png"
    labels = _ui_run_form(api.removesuffix("/api"), deployment["id"], shot)
    assert labels == {"text_column", "keep_text", "ray", "Num Cpus", "aws_credentials"}
    assert shot.stat().st_size > 10_000


def _post(api: str, path: str, body: dict) -> list[dict]:
    request = urllib.request.Request(
        api + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def chromium() -> str:
    """The system Chromium (`make test` installs Debian's with tests/chromium.sh)."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/lib/chromium/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium")
    if not found:
        pytest.fail(
            "Chromium not found: run tests/chromium.sh (make test does), or set CHROMIUM_PATH"
        )
    return found


@contextlib.contextmanager
def _page(url: str, height: int) -> Iterator[Any]:
    """``url`` opened in headless Chromium (closed on leaving the block)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.goto(url)
            yield page
        finally:
            browser.close()


def _ui_summary_rows_out(ui: str, flow_run_id: str, screenshot: Path) -> str:
    """Open the flow run's page in headless Chromium, go to its summary artifact through
    the Artifacts tab, and return the "rows out" cell as rendered; save a screenshot."""
    with _page(f"{ui}/runs/flow-run/{flow_run_id}", height=1000) as page:
        page.get_by_text("Artifacts", exact=True).click()
        page.get_by_text("generate-summary", exact=True).first.click()
        row = page.get_by_role("row").filter(has_text="rows out")
        row.wait_for(timeout=60_000)
        page.screenshot(path=str(screenshot), full_page=True)
        return row.get_by_role("cell").last.inner_text().strip()


def _ui_run_form(ui: str, deployment_id: str, screenshot: Path) -> set[str]:
    """Open the deployment's custom run form in headless Chromium and save a screenshot;
    return the fields it shows with the description the flow's docstring gives them."""
    fields = {
        "text_column": "The column to clean.",
        "keep_text": "Keep the raw text column beside cleaned_text",
        "ray": "Where and how the parts run on Ray",
        "Num Cpus": "CPUs each part task reserves.",  # inside the nested ray form
        "aws_credentials": "A prefect-aws AwsCredentials block for S3",
    }
    with _page(f"{ui}/deployments/deployment/{deployment_id}/run", height=2200) as page:
        page.get_by_text(fields["text_column"]).first.wait_for(timeout=60_000)
        shown = {
            name
            for name, description in fields.items()
            if page.get_by_text(re.compile(rf"^{name}( \(Optional\))?$")).count()
            and page.get_by_text(description).count()
        }
        page.screenshot(path=str(screenshot), full_page=True)
        return shown


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


class Receiver:
    """A loopback HTTP server standing in for Slack or a pager: every POST's JSON body."""

    def __init__(self) -> None:
        import http.server
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, *words: str, timeout: float = 90) -> list[dict]:
        """The posts whose text holds every one of ``words``, once there is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [p for p in self.received if all(w in p.get("text", "") for w in words)]
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"no alert with {words} in {timeout} s: {self.received}")


@pytest.fixture(scope="module")
def receiver(prefect_server) -> Iterator[Receiver]:
    """The receiver, and afterwards none of our automations left on the session's server."""
    from prefect.client.orchestration import get_client

    found = Receiver()
    yield found
    found.server.shutdown()
    with get_client(sync_client=True) as client:
        alerts.apply(client, [])


def _apply_alerts(env: dict, url: str) -> str:
    """`make alerts` as a user runs it: the script, with ALERT_WEBHOOK_URL."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "deployments" / "alerts.py")],
        env={**env, "ALERT_WEBHOOK_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.e2e
def test_alerts_apply_twice_to_the_same_automations(project, receiver):
    _, env = project
    first = _apply_alerts(env, receiver.url)
    for name in ("failed", "crashed", "data health"):
        assert f"created   {alerts.PREFIX}{name}\n" in first
    for name in DEPLOYMENTS:
        assert f"{alerts.PREFIX}late: {name}" in first
    again = _apply_alerts(env, receiver.url)
    assert "created" not in again and "replaced" not in again and "deleted" not in again
    assert again.count("unchanged") == len(DEPLOYMENTS) + 3


PREFECT = [str(BIN / "prefect")]
MISSING = "input_uri=data/missing"


@pytest.mark.e2e
@pytest.mark.parametrize(
    "deployment, params",
    [
        ("preprocess/default", [MISSING]),
        # Its preprocess subflow fails, then the run: one post, for the run.
        ("pipeline/default", [MISSING, "num_rows=null", "num_files=null"]),
    ],
)
def test_a_failed_run_posts_one_alert_naming_it_and_its_error(
    project, receiver, deployment, params
):
    work, env = project
    _apply_alerts(env, receiver.url)
    before = len(receiver.received)
    args = [*PREFECT, "deployment", "run", deployment, "--watch"]
    for param in params:
        args += ["--param", param]
    done = subprocess.run(args, env=env, cwd=work, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)
    name = _flow_run(env, run_id)["name"]  # as the flow named it once it ran
    (post,) = receiver.wait_for(f"Failed: {deployment}", name, run_id)
    # The step that failed, and the first line of its error.
    failed = r"\nstep preprocess failed: InputError: input \S*data/missing does not exist\n"
    assert re.search(failed, post["text"])
    time.sleep(5)
    assert receiver.received[before:] == [post]  # one post, and none for a subflow run


@pytest.mark.e2e
def test_a_run_not_started_in_time_posts_late(project, receiver, prefect_server):
    """A pipeline/default run scheduled two hours ago while the pool is paused."""
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    _, env = project
    settings = alerts.AlertSettings(tag="ray-text-pipeline", default_late_minutes=0.5)
    prefect = PREFECT
    subprocess.run([*prefect, "work-pool", "pause", "local-process"], env=env, check=True)
    try:
        with get_client(sync_client=True) as client:
            alerts.set_up(client, settings, receiver.url)
            deployment = client.read_deployment_by_name("pipeline/default")
            when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
            run = client.create_flow_run_from_deployment(
                deployment.id, state=Scheduled(scheduled_time=when)
            )
            try:
                (post,) = receiver.wait_for("Late: pipeline/default", run.name)
            finally:
                client.delete_flow_run(run.id)
    finally:
        subprocess.run([*prefect, "work-pool", "resume", "local-process"], env=env, check=True)
    assert (
        f"scheduled for {when.isoformat(sep=' ')}, has not started (late after 0.5"
        in (post["text"])
    )


@pytest.mark.e2e
def test_a_step_that_keeps_nothing_posts_unhealthy_data(project, receiver, tmp_path):
    """`make run`'s random letters through filter/default: every row is rejected."""
    from tasks.steps.generate.synth import generate_chunk

    work, env = project
    _apply_alerts(env, receiver.url)
    raw = tmp_path / "raw.parquet"
    pq.write_table(generate_chunk(seed=3, chunk=0, text_length=1000).slice(0, 300), raw)
    output = tmp_path / "filtered"
    params = [f"input_uri={raw}", f"output_uri={output}"]
    args = [*PREFECT, "deployment", "run", "filter/default", "--watch"]
    for param in params:
        args += ["--param", param]
    done = subprocess.run(args, env=env, cwd=work, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert assert_committed(output)["num_rows"] == 0  # committed, and nothing kept
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)
    name = _flow_run(env, run_id)["name"]
    (post,) = receiver.wait_for("Unhealthy data: filter/default", name)
    assert f"step filter wrote file://{output}: kept 0 of 300 rows" in post["text"]
    assert run_id in post["text"]  # the run's UI link


@pytest.mark.e2e
def test_a_killed_worker_leaves_its_run_crashed_and_posts_crashed(project, receiver, tmp_path):
    """SIGKILL to a running pipeline/default run's process and to its worker's session:
    nothing is left to report, its heartbeats stop, and the run is marked Crashed."""
    from prefect.client.orchestration import get_client

    work, env = project
    # A shorter wait than the repository's 270 s, for this test's runs only (restored
    # after): with heartbeats every 30 s, a healthy run still sends one in time.
    settings = alerts.AlertSettings(tag="ray-text-pipeline", crashed_after_seconds=45)
    with get_client(sync_client=True) as client:
        alerts.set_up(client, settings, receiver.url)
        with contextlib.suppress(Exception):  # made by an earlier run of this test
            client.create_work_queue(name="crash", work_pool_name="local-process")
        deployment = client.read_deployment_by_name("pipeline/default")
        run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"bucket_uri": str(tmp_path / "bucket"), "num_rows": 2_000_000},
            work_queue_name="crash",
        )
    worker = start_process(
        [*PREFECT, "worker", "start", "--pool", "local-process", "--work-queue", "crash"],
        env,
        work,
        tmp_path / "crash-worker.log",
    )
    try:
        running = _wait_for_state(env, run.id, lambda s: s["type"] == "RUNNING", timeout=180)
        deadline = time.monotonic() + 120
        while not [c for c in _children(env, run.id) if c["state_type"] == "RUNNING"]:
            assert time.monotonic() < deadline, "no subflow of the run started"
            time.sleep(0.5)
        # The flow run's process is in a session of its own (Prefect 3.9's worker isolates
        # it): killed first, it cannot say it is going; then the worker's whole session.
        os.kill(int(running["infrastructure_pid"].rpartition(":")[2]), signal.SIGKILL)
        os.killpg(worker.pid, signal.SIGKILL)
        killed = time.monotonic()
        name = _flow_run(env, run.id)["name"]
        (post,) = receiver.wait_for("Crashed: pipeline/default", name, timeout=240)
        assert time.monotonic() - killed < 300  # within 5 minutes, as promised
        assert "no heartbeat for 45 s" in post["text"]
        assert _flow_run(env, run.id)["state"]["type"] == "CRASHED"
        # Its subflow runs died with it: marked Crashed too, and not alerted again.
        for child in _children(env, run.id):
            _wait_for_state(env, child["id"], lambda s: s["type"] == "CRASHED", timeout=120)
        assert len([p for p in receiver.received if "Crashed" in p.get("text", "")]) == 1
    finally:
        stop_process(worker)
        _apply_alerts(env, receiver.url)


def _children(env: dict, run_id: Any) -> list[dict]:
    """The subflow runs of flow run ``run_id``."""
    return _post(
        env["PREFECT_API_URL"],
        "/flow_runs/filter",
        {"flow_runs": {"parent_flow_run_id": {"any_": [str(run_id)]}}},
    )
