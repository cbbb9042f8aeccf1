# Entry points: `make demo` (the main job on SQLite), `make test` (the whole suite) and
# `make test-fast` (lint, types and the suite on SQLite only: the check before every commit).
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# pytest-xdist worker processes, two for every core: the tests spend part of their time
# waiting on the servers, browsers and commands they start (docs/decisions.md, "The test
# suite"). Each worker starts the test servers its tests need.
WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))

.PHONY: demo test test-fast lint install install-test vendor image

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

# The OpenID Connect provider of the single sign-on browser tests (npm oidc-provider, pinned
# by its package-lock.json); npm ci rewrites node_modules/.package-lock.json.
NODE_PROVIDER := tests/support/oidc_node
$(NODE_PROVIDER)/node_modules/.package-lock.json: $(NODE_PROVIDER)/package-lock.json
	npm ci --prefix $(NODE_PROVIDER) --no-audit --no-fund --silent

install-test: $(VENV)/.test-installed $(NODE_PROVIDER)/node_modules/.package-lock.json

demo: install
	$(BIN)/stead demo

lint: install-test
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

# The suite starts its own private PostgreSQL cluster (tests/support/postgres.py) per worker
# unless STEAD_TEST_POSTGRES_URL points at one. The tests marked slow are collected first and
# an idle worker takes queued tests from a busy one (worksteal), so no worker finishes long
# after the others.
PYTEST := $(BIN)/pytest -q -n $(WORKERS) --dist worksteal

# Bytecode caches are written even where the environment says not to (PYTHONDONTWRITEBYTECODE):
# without them every worker, every `stead serve` and every CLI command the tests start compiles
# Stead's modules and pytest's rewritten test modules again (collecting took 11.4 s of CPU per
# worker instead of 5.0 s). They go to __pycache__ folders, which git ignores.
unexport PYTHONDONTWRITEBYTECODE

test: lint
	$(PYTEST)

# Before a commit: SQLite only, without the multi-minute system tests (marked slow) and the
# tests that start Stead as a process of its own (marked process; the README says what they
# cover), which `make test` and CI always run.
test-fast: lint
	$(PYTEST) -m "not postgresql and not slow and not process"

# The console's browser assets (src/stead/console/static/vendor/VENDOR.md), refreshed from npm
# and checked against SHA256SUMS before anything is replaced. For developers only: installs and
# CI never run it.
VENDOR_DIR := src/stead/console/static/vendor
HTMX_VERSION := 2.0.11
PICO_VERSION := 2.1.1
vendor:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd "$$tmp" && \
	npm pack --silent htmx.org@$(HTMX_VERSION) @picocss/pico@$(PICO_VERSION) >/dev/null && \
	mkdir htmx pico && tar xzf htmx.org-$(HTMX_VERSION).tgz -C htmx && \
	tar xzf picocss-pico-$(PICO_VERSION).tgz -C pico && \
	cp htmx/package/dist/htmx.min.js htmx-$(HTMX_VERSION).min.js && \
	cp htmx/package/LICENSE htmx-$(HTMX_VERSION).LICENSE && \
	cp pico/package/css/pico.min.css pico-$(PICO_VERSION).min.css && \
	cp pico/package/LICENSE.md pico-$(PICO_VERSION).LICENSE.md && \
	sha256sum -c "$(CURDIR)/$(VENDOR_DIR)/SHA256SUMS" && \
	cp htmx-$(HTMX_VERSION).* pico-$(PICO_VERSION).* "$(CURDIR)/$(VENDOR_DIR)/"

# The container image (Containerfile; docs/operations.md, "Container"). The wheels of Stead and
# its dependencies are built here on the host (the image's Python is Debian bookworm's 3.11, so
# build with a CPython 3.11 on Linux) and installed in the image without a package index.
# EXTRAS=snowflake,redshift,aws adds extras. PODMAN and PODMAN_BUILD_FLAGS adapt to the host
# (e.g. PODMAN="podman --runtime /usr/sbin/runc --cgroup-manager cgroupfs",
# PODMAN_BUILD_FLAGS="--network host").
IMAGE              ?= localhost/stead:latest
EXTRAS             ?=
PODMAN             ?= podman
PODMAN_BUILD_FLAGS ?=
IMAGE_CONTEXT      ?= build/image

image: install
	rm -rf $(IMAGE_CONTEXT)
	mkdir -p $(IMAGE_CONTEXT)/wheels $(IMAGE_CONTEXT)/app
	$(BIN)/pip wheel --quiet --wheel-dir $(IMAGE_CONTEXT)/wheels '.$(if $(EXTRAS),[$(EXTRAS)])'
	mv $(IMAGE_CONTEXT)/wheels/stead-*.whl $(IMAGE_CONTEXT)/app/
	$(PODMAN) build --format docker $(PODMAN_BUILD_FLAGS) \
	  --file Containerfile --tag $(IMAGE) $(IMAGE_CONTEXT)
