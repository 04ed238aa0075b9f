# Verbinding: one entry point. `make demo` runs the system, `make test` runs the tests.
SHELL := /bin/bash
PY := .venv/bin/python
STACK := python3 deploy/local/stack.py

.PHONY: help bootstrap up up-infra down status demo test test-unit test-integration test-faults lint fmt bench docs dashboards

help:
	@echo "make demo    bootstrap, start Kafka + PostgreSQL + the services, simulate partners, show indicators"
	@echo "make test    bootstrap, start Kafka + PostgreSQL, lint, type-check and run every test"
	@echo "make up      start Kafka, PostgreSQL and the three services in the background (idempotent)"
	@echo "make down    stop everything (idempotent)"
	@echo "make bench   benchmarks against the broker's own limits"

bootstrap:
	@scripts/bootstrap

up-infra: bootstrap
	@$(STACK) up
	@.venv/bin/verbinding migrate >/dev/null

up: up-infra
	@$(STACK) up --services

# The whole system with one command; Ctrl-C stops what it started (scripts/demo says more).
demo:
	@scripts/demo

down:
	@$(STACK) down

status:
	@$(STACK) status

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy shared services tools

fmt:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# The whole suite: unit tests and integration tests against the real broker and database.
test: up-infra lint
	.venv/bin/pytest -q -p no:cacheprovider --durations=20

test-unit: bootstrap
	.venv/bin/pytest -q -p no:cacheprovider tests/unit

test-integration: up-infra
	.venv/bin/pytest -q -p no:cacheprovider tests/integration

# The fault suite (tests/faults/): its own Kafka, PostgreSQL and services on free ports (the
# shared ones are never touched), a simulated load, faults injected mid-load, every figure
# compared with the simulator's ledger; a green run rewrites docs/fault-report.md and .json.
# About six minutes on two cores; VERBINDING_FAULT_RESIDENTS sizes the load.
test-faults: bootstrap
	.venv/bin/pytest -q -p no:cacheprovider tests/faults

# Contract documents generated from the code: docs/openapi/<service>.json and docs/asyncapi.yaml.
docs: bootstrap
	$(PY) -m tools.docs

# The Grafana dashboard generated from tools/grafana_dashboard.py: deploy/grafana/verbinding.json.
dashboards: bootstrap
	$(PY) -m tools.grafana_dashboard

# Benchmarks against the broker's own limits (docs/benchmarks.md): starts the stack like
# `make up`, prints one table, writes docs/benchmarks.json. BENCH_ARGS=--quick for a short run.
bench: bootstrap
	$(PY) -m tools.bench $(BENCH_ARGS)
