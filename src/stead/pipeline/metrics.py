"""Prometheus metrics (docs/operations.md, "Metrics"): request counts and latencies per app, and
the operator metrics of the process (build, database, connection tests, secret stores,
sign-ins).

``stead serve`` runs prometheus_client in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a
private directory it creates and removes): each worker process writes its values to files there,
and ``/metrics``, whichever worker answers it, reads them all, so counters are the sum over
every worker (and keep the counts of a worker that died). Elsewhere (tests, an app built by
hand) each app has its own registry for its request metrics and the process's operator metrics
are added to it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine, event

from stead import __version__

_SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

#: The process's operator metrics (module docstring).
OPERATIONS = CollectorRegistry()

BUILD_INFO = Gauge(
    "stead_build_info",
    "Always 1; the labels say which Stead and Python this server runs",
    ["version", "python"],
    registry=OPERATIONS,
    multiprocess_mode="max",
)
DATABASE_ERRORS = Counter(
    "stead_database_errors",
    "Database errors that reached a request's edge, by kind (unavailable: the database did "
    "not answer; pool_timeout: no pooled connection became free; conflict; data)",
    ["kind"],
    registry=OPERATIONS,
)
POOL_IN_USE = Gauge(
    "stead_database_connections_in_use",
    "Pooled database connections checked out now, summed over live worker processes",
    registry=OPERATIONS,
    multiprocess_mode="livesum",
)
CONNECTION_TESTS = Counter(
    "stead_connection_tests",
    "Warehouse connection tests by warehouse and outcome (ok, or the error code)",
    ["warehouse", "outcome"],
    registry=OPERATIONS,
)
CONNECTION_TEST_SECONDS = Histogram(
    "stead_connection_test_duration_seconds",
    "Warehouse connection test duration in seconds",
    ["warehouse"],
    registry=OPERATIONS,
    buckets=_SLOW_BUCKETS,
)
SECRET_STORE_CALLS = Counter(
    "stead_secret_store_requests",
    "Reads of secret values by store (AWS, Vault, Azure, GCP, Matillion hosted) and outcome "
    "(ok, or the error's kind)",
    ["store", "outcome"],
    registry=OPERATIONS,
)
SECRET_STORE_SECONDS = Histogram(
    "stead_secret_store_request_duration_seconds",
    "Secret store read latency in seconds",
    ["store"],
    registry=OPERATIONS,
    buckets=_SLOW_BUCKETS,
)
SIGN_IN_FAILURES = Counter(
    "stead_sign_in_failures",
    "Failed sign-ins: the token endpoint (client) and the console login (user)",
    ["kind"],
    registry=OPERATIONS,
)

BUILD_INFO.labels(__version__, platform.python_version()).set(1)


def _checked_out(*_args: Any) -> None:
    POOL_IN_USE.inc()


def _checked_in(*_args: Any) -> None:
    POOL_IN_USE.dec()


def instrument_pool(engine: Engine) -> None:
    """Count ``engine``'s checked-out connections in :data:`POOL_IN_USE` (SQLAlchemy's pool
    ``checkout`` and ``checkin`` events). Instrumenting an engine again changes nothing, so
    apps that share an engine count each connection once."""
    if not event.contains(engine, "checkout", _checked_out):
        event.listen(engine, "checkout", _checked_out)
        event.listen(engine, "checkin", _checked_in)


class Metrics:
    """The request metrics of one application, and ``/metrics``' exposition.

    Args:
        multiprocess_dir: prometheus_client's multiprocess directory when the server runs in
            that mode (``stead serve``), else empty.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, multiprocess_dir: str = "") -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "stead_http_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "stead_http_request_duration_seconds",
            "HTTP request latency in seconds",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        if multiprocess_dir:
            _forget_dead_workers(Path(multiprocess_dir))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one request; ``route`` is the path template (``/v1/projects/{projectId}``)."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The exposition text of every metric: of every worker process in multiprocess mode,
        else of this app and process."""
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry) + generate_latest(OPERATIONS)

    def close(self) -> None:
        """At the process's end: its live gauges stop counting (``mark_process_dead``)."""
        if self.multiprocess_dir:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


def _forget_dead_workers(directory: Path) -> None:
    """Drop the live-gauge files of worker processes that no longer run (a worker killed without
    closing its app): their connections are not in use any more."""
    for file in directory.glob("gauge_live*_*.db"):
        pid = int(file.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, another user's
