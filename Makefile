# Two commands for a newcomer: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast generate bench bench-cost bench-killed clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python scripts/demo.py

# Lint and types first (a few seconds), then the tests: every tier (unit, e2e, external;
# pyproject.toml and tests/conftest.py), the slowest 15 named at the end.
test: install lint
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15

# Lint, types and the `unit` tier only: under a minute on two cores.
test-fast: install lint
	$(BIN)/python -m pytest -n 2 --dist load -m unit

# The CI workflows are checked against GitHub's workflow schema that check-jsonschema carries (no
# network; a file that is not valid YAML fails too).
.PHONY: lint
lint: install
	$(BIN)/ruff check tap_stripe stripe_sandbox scripts benchmarks tests
	$(BIN)/mypy
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

# A bounded soak of the simulation test (tests/simulation.py): SOAK_ARGS="--seeds 200" or "--minutes 30".
.PHONY: soak
soak: install
	$(BIN)/python scripts/soak.py $(SOAK_ARGS)

# Mutation testing of what is written and when (docs/mutation.md); about 13 minutes, one worker.
.PHONY: mutation
mutation: install
	$(BIN)/pip install --quiet 'mutmut>=3.8,<4' 'coverage>=7.10'
	$(BIN)/python scripts/mutation.py

generate: install
	$(BIN)/python scripts/generate.py
	$(BIN)/python scripts/generate_sandbox.py

bench: install
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/small_account.py
	$(BIN)/python benchmarks/fixed_cpu.py
	$(BIN)/python benchmarks/cpu_per_record.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/sandbox_speed.py

# Requests, records and seconds of a first load, a quiet run and a run after a few changes, at the
# default settings (20 requests/s for a test key); then the demo's data and the freshness runs.
# About 20 minutes; BENCH_COST_ARGS="--n 100 --scales 1" for a quick look.
bench-cost: install
	$(BIN)/python benchmarks/run_cost.py $(or $(BENCH_COST_ARGS),--all)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info demo-output

# A first load killed every 4 s (SIGKILL), as an orchestrator's task timeout would: runs and records.
.PHONY: bench-killed
bench-killed: install
	$(BIN)/python benchmarks/killed_load.py $(BENCH_KILLED_ARGS)
