# Entry points: `make demo` (the main job on SQLite), `make test` (the whole suite) and
# `make test-fast` (lint, types and the suite on SQLite only: the check before every commit).
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# pytest-xdist worker processes; each starts the test servers its tests need.
WORKERS ?= auto

.PHONY: demo test test-fast lint install install-test

$(BIN)/stead: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(BIN)/stead

install: $(BIN)/stead

# A stamp, so that repeated runs skip pip until pyproject.toml changes.
$(VENV)/.test-installed: $(BIN)/stead pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install-test: $(VENV)/.test-installed

demo: install
	$(BIN)/stead demo

lint: install-test
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

# The suite starts its own private PostgreSQL cluster (tests/support/postgres.py) per worker
# unless STEAD_TEST_POSTGRES_URL points at one.
test: lint
	$(BIN)/pytest -q -n $(WORKERS)

test-fast: lint
	$(BIN)/pytest -q -n $(WORKERS) -m "not postgresql"
