"""Benchmark: console page speed with 100,000 projects, read from the ``Server-Timing`` header.

For each backend (SQLite in a temp directory, PostgreSQL in a private cluster) it migrates a
fresh database, seeds the projects as ``bench/run.py`` does (COPY / executemany, counted in as
the project service does), starts a real ``stead serve`` (production argon2 cost), logs a Super
Admin in through the login form and requests each case of :data:`PAGES` ``--repeat`` times, one
after another. It reports the p50 and p95 of the server's own time (``Server-Timing:
app;dur=<ms>``, from the request's arrival to the start of the answer; its minimum too, the
cost with nothing else running) and of the round trip.
Targets: pages under 150 ms p95, a login under 500 ms p95.

Run from the repository root: ``.venv/bin/python bench/console.py [--projects 100000]``.

Hook for other pages: add a ``(name, path)`` to :data:`PAGES` and, when the page needs data of
its own (an audit page: 1,000,000 audit events), a function ``seed(url)`` to :data:`SEEDERS`; a
seeder may put values in :data:`PATH_VALUES` that paths name as ``{key}``.

The audit cases read the audit page (newest first, 50 events, keyset) over
``--audit-events`` events (default 1,000,000), unfiltered and with each filter.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import seed_projects  # noqa: E402

from stead.audit.models import AuditEvent  # noqa: E402
from stead.audit.service import Cursor  # noqa: E402
from stead.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from stead.demo import start_server  # noqa: E402
from stead.identity.models import Account  # noqa: E402
from stead.identity.service import create_user, hash_secret, verify_secret  # noqa: E402
from stead.migrations import upgrade  # noqa: E402
from stead.projects.models import Project  # noqa: E402
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
    ("audit: first page", "/console/audit"),
    ("audit: a page in the middle", "/console/audit?older={audit_middle}"),
    ("audit: common action", "/console/audit?action=noun0.changed"),
    ("audit: rare action", "/console/audit?action=environment.created"),
    ("audit: frequent actor (id)", "/console/audit?actor=actor-0"),
    ("audit: rare actor (name, any case)", "/console/audit?actor=USER150@example.com"),
    ("audit: one project", "/console/audit?project={audit_project}"),
    ("audit: one day", "/console/audit?from=2026-03-01&to=2026-03-02"),
]

#: Extra data for other pages' cases: each is called with the database URL before serving.
SEEDERS: list[Callable[[str], None]] = []
#: Values the paths of :data:`PAGES` name as ``{key}``, set by seeders.
PATH_VALUES: dict[str, str] = {}
#: Audit events :func:`seed_audit_events` writes (``--audit-events``).
AUDIT_EVENTS = 1_000_000
_AUDIT_START = datetime(2026, 1, 1, tzinfo=UTC)
_AUDIT_STEP = timedelta(seconds=30)


def seed_audit_events(url: str) -> None:
    """Insert :data:`AUDIT_EVENTS` audit events, one every 30 s from 2026-01-01: 41 actions
    and 200 actors with skewed (Pareto) frequencies, 90 % of them in 1,000 of the seeded
    projects (COPY on PostgreSQL, executemany on SQLite); then ANALYZE."""
    started = time.perf_counter()
    engine = create_engine(url)
    with engine.connect() as conn:
        account = conn.execute(select(Account.id)).scalar_one()
        projects = list(conn.execute(select(Project.id).limit(1000)).scalars())
    rnd = random.Random(7)
    actions = [f"noun{i}.changed" for i in range(40)] + ["environment.created"]

    def rows() -> Iterator[tuple[object, ...]]:
        for i in range(AUDIT_EVENTS):
            actor = min(int(rnd.paretovariate(1.2)) - 1, 199)
            at = _AUDIT_START + i * _AUDIT_STEP
            yield (
                account,
                "user",
                f"actor-{actor}",
                f"user{actor}@example.com",
                actions[min(int(rnd.paretovariate(1.1)) - 1, 40)],
                "project",
                "x",
                None if i % 10 == 0 else projects[rnd.randrange(len(projects))],
                "{}",
                "127.0.0.1",
                at,
                at,
            )

    columns = (
        "account_id, actor_type, actor_id, actor_name, action, target_type, target_id, "
        "project_id, details, source_ip, created_at, updated_at"
    )
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as pg:
            with pg.cursor() as cur, cur.copy(f"COPY audit_events ({columns}) FROM STDIN") as copy:
                for row in rows():
                    copy.write_row(row)
            with pg.cursor() as cur:
                cur.execute("ANALYZE audit_events")
    else:
        names = [c.strip() for c in columns.split(",")]
        batch: list[dict[str, object]] = []
        with engine.begin() as conn:
            for row in rows():
                item = dict(zip(names, row, strict=True))
                item["details"] = {}
                batch.append(item)
                if len(batch) == 20_000:
                    conn.execute(insert(AuditEvent), batch)
                    batch.clear()
            if batch:
                conn.execute(insert(AuditEvent), batch)
            conn.execute(text("ANALYZE"))
    engine.dispose()
    middle = Cursor(created_at=_AUDIT_START + AUDIT_EVENTS // 2 * _AUDIT_STEP, id=2**31 - 1)
    PATH_VALUES.update(audit_middle=middle.token(), audit_project=projects[3])
    print(f"seeded {AUDIT_EVENTS:,} audit events in {time.perf_counter() - started:.1f} s")


SEEDERS.append(seed_audit_events)

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
    """Rows ``[case, min server, p50 server, p95 server, p95 round trip]`` in ms."""
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
                answer = client.get(path.format_map(PATH_VALUES))
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
        f"{min(server):.1f}",
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
    global AUDIT_EVENTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=60, help="requests per page case")
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--audit-events", type=int, default=AUDIT_EVENTS)
    args = parser.parse_args()
    AUDIT_EVENTS = args.audit_events
    header = ["case", "min server ms", "p50 server ms", "p95 server ms", "p95 round trip ms"]
    for backend in args.backends.split(","):
        rows = run(backend, args.projects, args.repeat, args.logins)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        print(f"\n{backend}, {args.projects:,} projects")
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
