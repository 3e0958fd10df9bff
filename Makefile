# Two commands on a fresh clone: `make run` and `make test`. Everything lives in .venv.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
BIN := .venv/bin
PREFECT_PORT ?= 4200

# One local Prefect home and server for this checkout; nothing phones home.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export RAY_USAGE_STATS_ENABLED := 0
# Pick up new flow runs within 2 s instead of the default 10 s.
export PREFECT_WORKER_QUERY_SECONDS ?= 2
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
# Compile every installed module to bytecode once, at install. Without it, where
# PYTHONDONTWRITEBYTECODE is set (many container images, CI machines), every new Ray
# worker and flow process compiles Ray, Ray Data and Prefect from source again: measured
# 5.7-6.6 s of CPU per process against 2.1 s, on 2 cores (docs/performance.md).
export UV_COMPILE_BYTECODE := 1

.PHONY: help install run stop alerts backfill test bench lint format clean

help:
	@echo "make run     start a local Prefect server, Ray and worker; deploy; run pipeline/default"
	@echo "make stop    stop the server, Ray and worker that make run started"
	@echo "make alerts  apply deployments/alerts.yaml to the server (ALERT_WEBHOOK_URL=...)"
	@echo "make backfill START=YYYY-MM-DD END=YYYY-MM-DD [FORCE=1]"
	@echo "             runs backfill/nightly: one pipeline/nightly run per date not yet committed"
	@echo "make test    install and run the test suite"
	@echo "make bench   the seed's method, Polars and our flows side by side (BENCH_ARGS=...)"
	@echo "make lint    ruff check and ruff format --check"

# uv itself, pinned, in a private venv: nothing needs to be installed beforehand.
$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: pyproject.toml uv.lock Makefile | $(UV)
	$(UV) sync --locked --python $(PYTHON)
	@touch $@

install: .venv/.installed

run: install
	$(BIN)/python -m tasks.steps.kernels
	@deployments/local.sh server
	@deployments/local.sh ray
	@deployments/local.sh pool
	$(BIN)/prefect --no-prompt deploy --all
	$(BIN)/python deployments/alerts.py
	@deployments/local.sh worker
	$(BIN)/prefect deployment run pipeline/default --watch
	@$(BIN)/python deployments/report.py pipeline/default
	@echo "Prefect UI: $(PREFECT_API_URL:/api=)"
	@[[ -n "$$RAY_ADDRESS" ]] || echo "Ray dashboard: http://127.0.0.1:$${RAY_DASHBOARD_PORT:-8265}"

stop:
	@deployments/local.sh stop

# The automations that alert when a run fails or starts late (deployments/alerts.yaml),
# on the server at PREFECT_API_URL; each alert posts to ALERT_WEBHOOK_URL if it is set.
alerts: install
	$(BIN)/python deployments/alerts.py

# The backfill/nightly deployment: one pipeline/nightly run per date from START to END
# (both included), one at a time; dates already committed are skipped unless FORCE=1.
# Needs `make run`'s server and worker (or any worker serving the deployment's pool).
backfill: install
	@[[ -n "$(START)" && -n "$(END)" ]] || { echo "usage: make backfill START=YYYY-MM-DD END=YYYY-MM-DD [FORCE=1]"; exit 2; }
	$(BIN)/prefect deployment run backfill/nightly --param start_date=$(START) \
		--param end_date=$(END) $(if $(FORCE),--param force=true,) --watch

# Everything the suite needs, Chromium for the UI tests included (tests/chromium.sh), and
# the bench group: datatrove's filters and spaCy's tokenizer are the references the
# filter kernel's unit tests compare with.
# The Numba kernels are compiled into their cache first (tasks/steps/kernels.py), so the
# suite's processes load them instead of compiling them side by side.
# Three pytest workers, a test file each at a time: most of the suite waits on servers,
# clusters and subprocesses, so three share two cores well (each worker starts its own
# Ray and Prefect server).
test: install
	$(UV) sync --locked --group bench --python $(PYTHON)
	@tests/chromium.sh
	$(BIN)/python -m tasks.steps.kernels
	$(BIN)/pytest -n 3 --dist loadfile

# Starts its own Prefect server and Ray heads on loopback and stops them; see benchmarks/.
bench: install
	$(UV) sync --locked --group bench --python $(PYTHON)
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: stop
	rm -rf .venv .tools .prefect .run data
