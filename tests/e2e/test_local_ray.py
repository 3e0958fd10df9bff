"""`make run`'s standing services (``deployments/local.sh``) as a new user meets them.

Ray on a machine Ray has never run on (no token file in the home directory): the head
must start with token authentication and a flow run's client, given what the worker
gives it (``RAY_ADDRESS``, ``RAY_AUTH_MODE=token``), must get in; a client with another
token must not. And ``make stop`` must end the server and worker it started, and only
those, without waiting out a grace time they ignore."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deployments" / "local.sh"
CLIENT = """
import ray
ray.init(logging_level="ERROR")
print("sum", ray.get(ray.remote(lambda: 1 + 1).remote()))
"""


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run_local(what: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(LOCAL), what], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr


def client(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLIENT],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_make_run_services_on_a_machine_ray_never_ran_on_then_make_stop(tmp_path):
    home, run_dir = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PREFECT_"))},
        "HOME": str(home),  # no ~/.ray/auth_token: a machine Ray never ran on
        "RUN_DIR": str(run_dir),
        "RAY_PORT": str(port),
        "RAY_DASHBOARD_PORT": str(free_port()),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORK_POOL": "local-test",
    }
    # What the worker gives its flow runs' Ray clients.
    client_env = {**env, "RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_AUTH_MODE": "token"}
    # A process of ours outside the recorded groups, which stop must leave alone.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        said, groups = start_use_and_stop(env, client_env, home, run_dir)
        # Prefect 3.9's worker ignores its first SIGTERM: stop used to wait 30 s for it.
        lines = [line for _, line in said]
        at = lines.index(f"stopping worker (process group {groups['worker']})")
        worker_took = said[at + 1][0] - said[at][0]
        assert worker_took < 20, f"the worker took {worker_took:.1f} s to stop: {said}"
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def start_use_and_stop(
    env: dict[str, str], client_env: dict[str, str], home: Path, run_dir: Path
) -> tuple[list[tuple[float, str]], dict[str, int]]:
    """Start the services, check Ray's token, then ``stop`` (whatever happened): when
    each line of stop's output came, and the process groups it had to end."""
    groups: dict[str, int] = {}
    try:
        for what in ("server", "ray", "pool", "worker"):
            run_local(what, env)
        groups = {n: int((run_dir / f"{n}.pid").read_text()) for n in ("server", "ray", "worker")}

        worker = client(client_env)
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert "sum 2" in worker.stdout
        token = (home / ".ray" / "auth_token").read_text().strip()
        assert token
        stranger = client({**client_env, "RAY_AUTH_TOKEN": "0" * len(token)})
        assert stranger.returncode != 0
        assert "sum" not in stranger.stdout

        log = run_dir / "worker.log"
        deadline = time.monotonic() + 120
        while "started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "started" in log.read_text(), log.read_text()
        for each in run_dir.glob("*.log"):
            assert token not in each.read_text(errors="replace"), each
    finally:
        stopped = subprocess.Popen(
            [str(LOCAL), "stop"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        # When each "stopping <name>" line came: the worker's stop is the time to the next.
        said = [(time.monotonic(), line.strip()) for line in stopped.stdout]
        stopped.wait(timeout=180)
        said.append((time.monotonic(), "done"))
    assert stopped.returncode == 0, said
    for name, pgid in groups.items():
        assert not group_alive(pgid), name
        assert not (run_dir / f"{name}.pid").exists()
    return said, groups
