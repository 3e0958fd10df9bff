#!/usr/bin/env bash
# The local Prefect server, Ray head and worker behind `make run`.
#   deployments/local.sh server|ray|pool|worker|stop
# `stop` ends only what this script started, by the process groups it recorded.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${RUN_DIR:-.run}
BIN=.venv/bin
POOL=${PREFECT_WORK_POOL:-local-process}
RAY_PORT=${RAY_PORT:-6390}
RAY_DASHBOARD_PORT=${RAY_DASHBOARD_PORT:-8265}
: "${PREFECT_API_URL:?PREFECT_API_URL must be set (the Makefile sets it)}"
mkdir -p "$RUN_DIR"

api_up() {
  "$BIN/python" - "$PREFECT_API_URL/health" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
PY
}

alive() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

start_bg() {  # name command...: its own session, so stop can end its children too
  local name=$1
  shift
  setsid "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

stop_one() {  # name [seconds the group's leader gets to stop by itself]
  local name=$1 grace=${2:-30} pid
  alive "$name" || { rm -f "$RUN_DIR/$name.pid"; return 0; }
  pid=$(cat "$RUN_DIR/$name.pid")
  echo "stopping $name (process group $pid)"
  # The leader first: `ray start --block` stops its own processes on SIGTERM within
  # seconds, but waits out its whole grace time when they get the signal with it.
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((grace * 5))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  # A second SIGTERM: Prefect's worker turns it into SIGKILL (its first, forwarded to
  # itself as SIGINT, leaves an idle worker of Prefect 3.9 running).
  kill -TERM "$pid" 2>/dev/null || true
  # Then what is left of its group (a worker's flow-run processes), by force at last.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN_DIR/$name.pid"
}

case "${1:-}" in
  server)
    if api_up; then
      echo "Prefect server already answers at $PREFECT_API_URL"
      exit 0
    fi
    port=${PREFECT_API_URL##*:}
    port=${port%%/*}
    echo "starting Prefect server on 127.0.0.1:$port (log: $RUN_DIR/server.log)"
    start_bg server "$BIN/prefect" server start --host 127.0.0.1 --port "$port"
    for _ in $(seq 120); do
      api_up && exit 0
      alive server || { tail -20 "$RUN_DIR/server.log"; exit 1; }
      sleep 1
    done
    echo "Prefect server did not answer within 120 s; see $RUN_DIR/server.log" >&2
    exit 1
    ;;
  ray)
    # A standing local Ray, as the seed has a standing cluster: flow runs join it through
    # RAY_ADDRESS instead of each starting (and paying for) a Ray of its own.
    if [[ -n "${RAY_ADDRESS:-}" ]]; then
      echo "using the Ray cluster in RAY_ADDRESS=$RAY_ADDRESS"
      exit 0
    fi
    if alive ray; then
      echo "local Ray already running (pid $(cat "$RUN_DIR/ray.pid"))"
      exit 0
    fi
    echo "starting a local Ray head on 127.0.0.1:$RAY_PORT (log: $RUN_DIR/ray.log)"
    # Token authentication on, with Ray's own token file (~/.ray/auth_token), made here
    # on a machine that has none: `ray start` does not make one, and without it the head
    # would run open while the worker's flow runs ask for a token and fail. The token is
    # never printed.
    "$BIN/ray" get-auth-token --generate >/dev/null 2>&1
    # Ray starts new worker processes for every job (every flow run); have them import
    # Ray Data and our work modules as they start, before any task waits on them.
    RAY_AUTH_MODE=token \
      RAY_preload_python_modules=ray.data,tasks.steps.generate.step,tasks.steps.preprocess.step,tasks.steps.dedup.step \
      start_bg ray "$BIN/ray" start --head --block --disable-usage-stats \
      --node-ip-address 127.0.0.1 --port "$RAY_PORT" \
      --dashboard-host 127.0.0.1 --dashboard-port "$RAY_DASHBOARD_PORT"
    for _ in $(seq 120); do
      grep -q "Ray runtime started" "$RUN_DIR/ray.log" && exit 0
      alive ray || { tail -20 "$RUN_DIR/ray.log"; exit 1; }
      sleep 1
    done
    echo "Ray did not start within 120 s; see $RUN_DIR/ray.log" >&2
    exit 1
    ;;
  pool)
    "$BIN/prefect" work-pool inspect "$POOL" >/dev/null 2>&1 ||
      "$BIN/prefect" work-pool create "$POOL" --type process
    ;;
  worker)
    if alive worker; then
      echo "worker already running (pid $(cat "$RUN_DIR/worker.pid"))"
      exit 0
    fi
    echo "starting a worker on pool $POOL (log: $RUN_DIR/worker.log)"
    if [[ -z "${RAY_ADDRESS:-}" ]] && alive ray; then
      # Our head has Ray's token authentication on; the token is in ~/.ray/auth_token.
      export RAY_ADDRESS="127.0.0.1:$RAY_PORT" RAY_AUTH_MODE=token
    fi
    start_bg worker "$BIN/prefect" worker start --pool "$POOL"
    ;;
  stop)
    stop_one worker 5  # Prefect 3.9's worker does not stop on its first SIGTERM
    stop_one ray
    stop_one server
    ;;
  *)
    echo "usage: $0 server|ray|pool|worker|stop" >&2
    exit 2
    ;;
esac
