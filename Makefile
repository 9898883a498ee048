# One entry point for developers and CI. Each target creates .venv when it is missing, with the `cli` extra
# (rich, for the command line's tables) and the `dev` tools, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The oldest Python the project supports (requires-python >= 3.10): python3.10 on PATH, else pyenv's 3.10.
PYTHON310 ?= $(shell for p in python3.10 $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV310 ?= .venv310
BIN310 := $(VENV310)/bin
STAMP310 := $(VENV310)/.installed

AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_BIN := $(AIRFLOW_VENV)/bin
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed

.PHONY: test lint typecheck pytest test-py310 demo bench bench-report test-airflow clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,dev]'
	@touch $(STAMP)

## make test: ruff (lint and format), mypy --strict, then the whole pytest suite
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Most of the suite waits on real clocks (poll intervals, rate windows), so it runs in more workers than there are
# cores; tests/conftest.py keeps the timing-sensitive soak tests on one worker, one at a time.
# `make pytest PYTEST_WORKERS=0` runs everything in one process.
PYTEST_WORKERS ?= 4

pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

$(STAMP310): pyproject.toml
	@test -x $(BIN310)/python || { test -n "$(PYTHON310)" || { echo "Python 3.10 not found: make test-py310 PYTHON310=/path/to/python3.10" >&2; exit 1; }; $(PYTHON310) -m venv $(VENV310); }
	$(BIN310)/python -m pip install --quiet --upgrade pip
	$(BIN310)/python -m pip install --quiet -e '.[cli,dev]'
	@touch $(STAMP310)

## make test-py310: the pytest suite on Python 3.10, the oldest supported, in its own .venv310 (ruff and mypy
## already check against 3.10 in make test); CI runs it after make test
test-py310: $(STAMP310)
	$(BIN310)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

$(AIRFLOW_STAMP): pyproject.toml
	@test -x $(AIRFLOW_BIN)/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_BIN)/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_BIN)/python -m pip install --quiet -e '.[airflow,cli,dev]'
	@touch $(AIRFLOW_STAMP)

## make test-airflow: the Airflow integration against real Airflow 3, in its own environment
test-airflow: $(AIRFLOW_STAMP)
	$(AIRFLOW_BIN)/mypy portable_wait/airflow.py portable_wait/_airflow_provider.py tests_airflow/*.py examples/airflow_dag*.py
	$(AIRFLOW_BIN)/pytest tests_airflow

## make demo: the main job, waiting on an embedded fake Portable server with a live table (about 20 s;
## make demo DEMO_ARGS=--long for the 60 s version)
demo: $(STAMP)
	$(BIN)/portable-wait demo $(DEMO_ARGS)

## make bench: benchmarks (never part of make test); writes docs/performance.md
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks

## make bench-report: rebuild docs/performance.md from the stored results in docs/bench-results/ (no benchmark runs)
bench-report: $(STAMP)
	$(BIN)/python -m benchmarks report

clean:
	rm -rf $(VENV) $(VENV310) $(AIRFLOW_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
