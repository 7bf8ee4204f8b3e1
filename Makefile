# One Makefile for humans and CI. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-latest lint format pytest faults fixtures screenshots redis-server chromium bench bench-cluster bench-runs autoscale clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lcstream needs Python >= 3.11"'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else echo "python3-venv is missing: run 'sudo apt-get install -y python3-venv'" >&2; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP)

## The main job on its embedded default: an in-process Redis, no server needed.
demo: install
	$(BIN)/lcstream demo

## Lint, types, and every test (unit on fakeredis, integration on a redis-server the tests start).
test: install redis-server chromium lint pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

pytest: install redis-server chromium
	$(BIN)/pytest

## The suite against the newest langchain-core the package index offers (constraints.txt pins the other
## tested one), in a virtualenv of its own: .venv-latest.
test-latest: redis-server chromium
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install -q --upgrade pip
	grep -v '^langchain-core==' constraints.txt > .venv-latest/constraints.txt
	.venv-latest/bin/pip install -q -c .venv-latest/constraints.txt -e '.[dev]'
	.venv-latest/bin/pip install -q --upgrade langchain-core
	.venv-latest/bin/python -c 'from importlib.metadata import version; print("langchain-core", version("langchain-core"))'
	.venv-latest/bin/pytest

## Regenerate the conformance fixtures (tests/fixtures/conformance) from the installed langchain-core.
fixtures: install
	$(BIN)/python -m tests.fixtures.conformance

## The docs' screenshot of the operations page (docs/images/operations.png), taken by its browser test under load.
screenshots: install redis-server chromium
	LCSTREAM_SCREENSHOT_DIR=docs/images $(BIN)/pytest tests/worker/gateway/test_operations_page.py -k follows

## The fault-injection acceptance tests alone (kill -9, SIGSTOP, SIGTERM, Redis restarts); `make test` runs them too.
faults: install redis-server
	$(BIN)/pytest tests/faults

## Side-by-side performance run (issue 6): lcstream, a naive worker, and the in-process and Redis ceilings.
## BENCH_ARGS=--quick for a smoke run of a minute or two; --only WORKLOAD, --json PATH. See docs/performance.md.
bench: install redis-server
	$(BIN)/python -m tests.benchmarks $(BENCH_ARGS)

## A backlog through a local 3-master Redis Cluster as partitions grow (issue 7): each master's share.
bench-cluster: install redis-server
	$(BIN)/python -m tests.benchmarks.cluster_spread

## What RedisStreamHandler adds to a graph run's wall time (docs/performance.md, "Runs").
bench-runs: install redis-server
	$(BIN)/python -m tests.benchmarks.run_handler

## KEDA autoscaling of workers, simulated (deploy/k8s/keda.yaml's rule, times compressed 10x): an arrival
## profile autoscaled, then on one fixed worker; about 7 minutes. Writes results.json, autoscale.md and
## autoscale.png in /tmp/lcstream-autoscale, and the plot of docs/scaling.md. AUTOSCALE_ARGS=--help for
## the options (--set LCSTREAM_NAME=VALUE, --profile, --worker-cpu ...).
AUTOSCALE_ARGS ?= --plot docs/images/autoscale.png
autoscale: $(VENV)/.installed-bench redis-server
	$(BIN)/python -m tests.benchmarks.autoscale $(AUTOSCALE_ARGS)

# The plot needs matplotlib: the optional `bench` extra, added to the dev install.
$(VENV)/.installed-bench: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,bench]'
	@touch $@

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
	  else echo "redis-server is missing: run 'sudo apt-get install -y redis-server'" \
	    "(the tests start their own on a free port; they never use a running one)" >&2; exit 1; fi; }

## The dashboard test drives Debian's Chromium headless (the playwright package never downloads a browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }; \
	  else echo "chromium is missing: run 'sudo apt-get install -y chromium'" \
	    "(the dashboard test drives it headless)" >&2; exit 1; fi; }

clean:
	rm -rf $(VENV) .venv-latest .pytest_cache .mypy_cache .ruff_cache
