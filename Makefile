# Two entry points: `make demo` (the main job on SQLite) and `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install install-test

$(BIN)/stead: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(BIN)/stead

install: $(BIN)/stead

install-test: install
	$(BIN)/pip install --quiet -e '.[test]'

demo: install
	$(BIN)/stead demo

# The suite starts its own private PostgreSQL cluster (tests/support/postgres.py) unless
# STEAD_TEST_POSTGRES_URL points at one.
test: install-test
	$(BIN)/ruff check src tests
	$(BIN)/mypy src
	$(BIN)/pytest -q
