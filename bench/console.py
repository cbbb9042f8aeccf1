"""Benchmark: console page speed with 100,000 projects, read from the ``Server-Timing`` header.

For each backend (SQLite in a temp directory, PostgreSQL in a private cluster) it migrates a
fresh database, seeds the projects as ``bench/run.py`` does (COPY / executemany, counted in as
the project service does), starts a real ``stead serve`` (production argon2 cost), logs a Super
Admin in through the login form and requests each case of :data:`PAGES` ``--repeat`` times, one
after another. It reports the p50 and p95 of the server's own time (``Server-Timing:
app;dur=<ms>``, from the request's arrival to the start of the answer) and of the round trip.
Targets: pages under 150 ms p95, a login under 500 ms p95.

Run from the repository root: ``.venv/bin/python bench/console.py [--projects 100000]``.

Hook for other pages: add a ``(name, path)`` to :data:`PAGES` and, when the page needs data of
its own (an audit page: 1,000,000 audit events), a function ``seed(url)`` to :data:`SEEDERS`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import seed_projects  # noqa: E402

from stead.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from stead.demo import start_server  # noqa: E402
from stead.identity.service import create_user, hash_secret, verify_secret  # noqa: E402
from stead.migrations import upgrade  # noqa: E402
from tests.support.postgres import free_port, postgres_cluster  # noqa: E402

EMAIL = "bench@example.com"
PASSWORD = "bench password 1234"

#: The measured pages: ``(name, path)``; ``{last_after}`` is the ``after`` cursor of the
#: second-to-last page (the keyset from the end is ``last=1``).
PAGES: list[tuple[str, str]] = [
    ("projects: first page", "/console/projects"),
    ("projects: prefix search (11 hits)", "/console/projects?q=seed-4242"),
    ("projects: prefix search (1,000+ hits)", "/console/projects?q=seed-1"),
    ("projects: last page", "/console/projects?last=1"),
    ("projects: page after a cursor", "/console/projects?after=50000"),
]

#: Extra data for other pages' cases: each is called with the database URL before serving.
SEEDERS: list[Callable[[str], None]] = []

_TIMING = re.compile(r"app;dur=([0-9.]+)")


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database URL for ``backend``."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'stead.db'}"
        return
    with postgres_cluster() as url:
        yield url


def server_ms(response: httpx.Response) -> float:
    """The server's own time of ``response`` (its ``Server-Timing`` header), in ms."""
    found = _TIMING.search(response.headers.get("server-timing", ""))
    assert found, response.headers
    return float(found.group(1))


def p95(values: list[float]) -> float:
    """The 95th percentile (inclusive method) of ``values``."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def log_in(client: httpx.Client) -> httpx.Response:
    """Log ``client`` in through the form; the answer to the POST."""
    form = client.get("/console/login").text
    token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/console/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    return response


def measure(base_url: str, repeat: int, logins: int) -> list[list[str]]:
    """Rows ``[case, p50 server, p95 server, p95 round trip]`` in ms."""
    rows = []
    server, trip = [], []
    for _ in range(logins):
        with httpx.Client(base_url=base_url, timeout=60) as fresh:
            started = time.perf_counter()
            answer = log_in(fresh)
            trip.append((time.perf_counter() - started) * 1000)
            server.append(server_ms(answer))
    rows.append(_row("login (form + argon2id)", server, trip))
    rows.append(_argon2_row(logins))
    with httpx.Client(base_url=base_url, timeout=60) as client:
        log_in(client)
        for name, path in PAGES:
            server, trip = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                answer = client.get(path)
                trip.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (path, answer.status_code)
                server.append(server_ms(answer))
            rows.append(_row(name, server, trip))
    return rows


def _argon2_row(times: int) -> list[str]:
    """For reference: one argon2id check at production cost, in this process (the floor of
    a login's time on this machine)."""
    hashed = hash_secret(PASSWORD)
    took = []
    for _ in range(times):
        started = time.perf_counter()
        verify_secret(hashed, PASSWORD)
        took.append((time.perf_counter() - started) * 1000)
    return _row("  (one argon2id check alone)", took, took)


def _row(name: str, server: list[float], trip: list[float]) -> list[str]:
    return [
        name,
        f"{statistics.median(server):.1f}",
        f"{p95(server):.1f}",
        f"{p95(trip):.1f}",
    ]


def run(backend: str, projects: int, repeat: int, logins: int) -> list[list[str]]:
    """Seed, serve and measure one backend."""
    with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
        upgrade(url)
        engine = make_engine(url)
        with session_scope(make_sessionmaker(engine), write=True) as session:
            create_user(
                session, email=EMAIL, password=PASSWORD, display_name=None, role="SUPER_ADMIN"
            )
        engine.dispose()
        started = time.perf_counter()
        seed_projects(url, projects)
        for seed in SEEDERS:
            seed(url)
        print(f"{backend}: seeded {projects:,} projects in {time.perf_counter() - started:.1f} s")
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        port = free_port()
        proc = start_server(
            data_dir, port, database_url=url, env={"STEAD_RATE_LIMIT_PER_MINUTE": "0"}
        )
        try:
            return measure(f"http://127.0.0.1:{port}", repeat, logins)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=60, help="requests per page case")
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    header = ["case", "p50 server ms", "p95 server ms", "p95 round trip ms"]
    for backend in args.backends.split(","):
        rows = run(backend, args.projects, args.repeat, args.logins)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        print(f"\n{backend}, {args.projects:,} projects")
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
