"""Stead's benchmark: ``python bench/run.py`` (``--quick`` for a short run). Not part of the tests.

For SQLite and PostgreSQL, against ``stead serve`` started as users start it (rate limit raised
out of the way, its counting still done):

- throughput and p50/p99 latency of create project, create environment, get project, list
  (first and last page) and the whole provisioning flow, at 1, 16 and 64 concurrent clients;
- p99 at half of the measured maximum throughput (open loop, queueing included);
- the floor: a bare ASGI app (bench/floor.py) doing the same single-row insert / select with the
  same driver under the same server settings, measured right after Stead at each client
  count, and Stead's throughput as a ratio of it; beside it the same two operations through
  FastAPI alone (the framework's share of the gap);
- scale: list (first and last page) and get latency with 1 k, 100 k and 1 M projects seeded
  directly (COPY on PostgreSQL, executemany on SQLite);
- server RSS idle and under load; ``stead --help`` wall time.

Prints one table per section and the targets of the performance issue with pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import httpx  # noqa: E402
from httpload import (  # noqa: E402
    FAILURES,
    Connection,
    Result,
    closed_loop,
    expect,
    open_loop,
    request,
)
from sqlalchemy import create_engine, insert, select, text, update  # noqa: E402

from stead.demo import create_super_admin, example, start_server  # noqa: E402
from stead.identity.models import Account  # noqa: E402
from stead.projects.models import BUCKET_SIZE, Project  # noqa: E402
from stead.projects.statements import count_into_bucket  # noqa: E402
from tests.support.postgres import free_port, postgres_cluster  # noqa: E402

HOST = "127.0.0.1"
TARGETS = {
    "ratio": 0.5,
    "p99_half_load_ms": 20.0,
    "list_growth": 2.0,
    "rss_mb": 200.0,
    "help_ms": 300.0,
}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` and its children, in MiB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


class RssSampler:
    """Peak RSS of a process, sampled every 100 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


@contextmanager
def databases(backend: str, work: Path) -> Iterator[Callable[[str], str]]:
    """A factory of fresh, empty database URLs for ``backend`` (one PostgreSQL cluster)."""
    if backend == "sqlite":
        yield lambda name: f"sqlite:///{work / name}.db"
        return
    with postgres_cluster() as admin_url:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")

        def new(name: str) -> str:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            return admin_url.rsplit("/", 1)[0] + f"/{name}"

        yield new
        engine.dispose()


@contextmanager
def stead_server(url: str, work: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, str]]:
    """``stead serve`` on ``url`` (rate limit out of the way): ``(process, port, token)``."""
    client_id, secret = create_super_admin(url)
    port = free_port()
    os.environ["STEAD_RATE_LIMIT_PER_MINUTE"] = str(10**9)
    work.mkdir(parents=True, exist_ok=True)
    proc = start_server(work, port, database_url=url)
    try:
        token = httpx.post(
            f"http://{HOST}:{port}/oauth/dpc/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        ).json()["access_token"]
        yield proc, port, token
    finally:
        proc.terminate()
        proc.wait()


def start_floor(
    url: str, work: Path, factory: str = "create_app"
) -> tuple[subprocess.Popen[bytes], int]:
    """Serve bench/floor.py's app ``factory`` with the uvicorn settings of ``stead serve``."""
    port = free_port()
    code = (
        f"import uvicorn; uvicorn.run('floor:{factory}', factory=True, host='127.0.0.1', "
        f"port={port}, workers=1, log_config=None, log_level='info', access_log=False)"
    )
    env = {**os.environ, "FLOOR_DATABASE_URL": url, "PYTHONPATH": str(ROOT / "bench")}
    log = open(work / "floor.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=log)
    for _ in range(300):
        try:
            httpx.get(f"http://{HOST}:{port}/rows/none", timeout=1)
            return proc, port
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("floor did not start")


class Bench:
    """One backend's server, its token, and the objects the operations build on."""

    def __init__(self, url: str, port: int, token: str) -> None:
        self.url, self.port, self.token = url, port, token
        self.http = httpx.Client(
            base_url=f"http://{HOST}:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        run = uuid.uuid4().hex[:6]
        self.project_id = self._post(
            "/v1/projects", {**example("01-create-project-redshift"), "name": f"bench-{run}"}
        )["projectId"]
        agent = {**example("02-create-agent"), "name": f"bench agent {run}"}
        self.agent_id = self._post("/v1/agents", agent)["agentId"]
        base = f"/v1/projects/{self.project_id}"
        self._post(f"{base}/data-platform-connections", example("03-create-connection-redshift"))
        self._post(
            f"{base}/secret-references/finance-prod-redshift",
            example(
                "04-create-secret-reference-aws", agentId=self.agent_id, projectId=self.project_id
            ),
        )
        self.env_body = example("05-create-environment-redshift", agentId=self.agent_id)

    def _post(self, path: str, body: Any) -> Any:
        resp = self.http.post(path, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def operations(self) -> dict[str, Any]:
        token, base = self.token, f"/v1/projects/{self.project_id}"
        total = self.http.get("/v1/projects?size=25").json()["total"]
        last = max(0, (total - 1) // 25)
        run = uuid.uuid4().hex[:6]

        def project(n: int) -> bytes:
            body = {**example("01-create-project-redshift"), "name": f"p-{run}-{n}"}
            return request("POST", "/v1/projects", token=token, body=body)

        def environment(n: int) -> bytes:
            body = {**self.env_body, "name": f"e-{run}-{n}"}
            return request("POST", f"{base}/environments", token=token, body=body)

        get = request("GET", f"/v1/projects/{self.project_id}", token=token)
        first_page = request("GET", "/v1/projects?page=0&size=25", token=token)
        last_page = request("GET", f"/v1/projects?page={last}&size=25", token=token)

        async def flow(conn: Connection, n: int) -> bool:
            name = f"f-{run}-{n}"
            status, body = await conn.send(
                request(
                    "POST",
                    "/v1/projects",
                    token=token,
                    body={**example("01-create-project-redshift"), "name": name},
                )
            )
            if status != 201:
                return False
            project_id = json.loads(body)["projectId"]
            pbase = f"/v1/projects/{project_id}"
            steps = [
                (f"{pbase}/data-platform-connections", example("03-create-connection-redshift")),
                (
                    f"{pbase}/secret-references/finance-prod-redshift",
                    example(
                        "04-create-secret-reference-aws",
                        agentId=self.agent_id,
                        projectId=project_id,
                    ),
                ),
                (f"{pbase}/environments", self.env_body),
            ]
            for path, step in steps:
                status, _ = await conn.send(request("POST", path, token=token, body=step))
                if status != 201:
                    return False
            return True

        return {
            "create project": expect(project, 201),
            "create environment": expect(environment, 201),
            "get project": expect(lambda n: get, 200),
            "list first page": expect(lambda n: first_page, 200),
            "list last page": expect(lambda n: last_page, 200),
            "provisioning flow (4 POSTs)": flow,
        }


def floor_operations(port: int) -> dict[str, Any]:
    http = httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30)
    row_id = http.post("/rows", json={"name": "x"}).json()["id"]
    get = request("GET", f"/rows/{row_id}")
    run = uuid.uuid4().hex[:6]
    return {
        "create project": expect(
            lambda n: request("POST", "/rows", body={"name": f"{run}-{n}"}), 201
        ),
        "get project": expect(lambda n: get, 200),
    }


def seed_projects(url: str, count: int) -> float:
    """Insert ``count`` more projects directly (COPY / executemany) and count them in as the
    project service does (``seq``, the account's count and last seq, the list buckets); return
    seconds taken."""
    started = time.perf_counter()
    engine = create_engine(url)
    with engine.connect() as conn:
        account_id, last = conn.execute(select(Account.id, Account.project_seq)).one()
    base = datetime(2020, 1, 1, tzinfo=UTC)
    seqs = range(last + 1, last + 1 + count)
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as pg:
            with (
                pg.cursor() as cur,
                cur.copy(
                    "COPY projects (id, account_id, seq, name, name_key, warehouse, "
                    "agent_deployment_type, created_at, updated_at) FROM STDIN"
                ) as copy,
            ):
                for seq in seqs:
                    at = base + timedelta(milliseconds=seq)
                    copy.write_row(
                        (
                            str(uuid.uuid4()),
                            account_id,
                            seq,
                            f"seed-{seq}",
                            f"seed-{seq}",
                            "REDSHIFT",
                            "HYBRID",
                            at,
                            at,
                        )
                    )
            with pg.cursor() as cur:
                cur.execute("ANALYZE projects")
    else:
        table = Project.__table__
        batch = 50_000
        with engine.begin() as conn:
            for start in range(0, count, batch):
                rows = []
                for seq in seqs[start : start + batch]:
                    at = base + timedelta(milliseconds=seq)
                    rows.append(
                        {
                            "id": str(uuid.uuid4()),
                            "account_id": account_id,
                            "seq": seq,
                            "name": f"seed-{seq}",
                            "name_key": f"seed-{seq}",
                            "description": None,
                            "warehouse": "REDSHIFT",
                            "agent_deployment_type": "HYBRID",
                            "created_at": at,
                            "updated_at": at,
                        }
                    )
                conn.execute(insert(table), rows)
            conn.execute(text("ANALYZE"))
    added = Counter(seq // BUCKET_SIZE for seq in seqs)
    with engine.begin() as conn:
        # What the project service does for each project it creates.
        conn.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(project_count=Account.project_count + count, project_seq=last + count)
        )
        for bucket, n in added.items():
            count_into_bucket(conn, account_id=account_id, bucket=bucket, change=n)
    engine.dispose()
    return time.perf_counter() - started


async def sequential_latency(port: int, raw: list[bytes], expected: int) -> float:
    """Median latency of sending each request in ``raw`` one after another."""
    conn = await Connection.open(HOST, port)
    times = []
    for r in raw:
        began = time.perf_counter()
        status, body = await conn.send(r)
        times.append(time.perf_counter() - began)
        assert status == expected, body[:300]
    conn.close()
    return statistics.median(times)


def scale(url: str, port: int, token: str, sizes: list[int]) -> list[list[str]]:
    """List and get latency as the projects table of an otherwise empty database grows."""
    http = httpx.Client(
        base_url=f"http://{HOST}:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    rows = []
    have = 0
    for size in sizes:
        seconds = seed_projects(url, size - have)
        have = size
        total = http.get("/v1/projects?size=1").json()["total"]
        last = (total - 1) // 25
        middle = last // 2
        ids = [p["id"] for p in http.get(f"/v1/projects?page={middle}&size=25").json()["results"]]
        pages = [
            [request("GET", f"/v1/projects?page={page}&size=25", token=token)] * 30
            for page in (0, middle, last)
        ]
        gets = [request("GET", f"/v1/projects/{i}", token=token) for i in ids] * 2
        lat = [asyncio.run(sequential_latency(port, reqs, 200)) for reqs in [*pages, gets]]
        rows.append([f"{total:,}", f"{seconds:.1f}", *(ms(x) for x in lat)])
    return rows


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def help_wall_time(runs: int = 7) -> float:
    """Median wall time of ``stead --help``, in seconds."""
    stead = Path(sys.executable).with_name("stead")
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([str(stead), "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def run_backend(backend: str, args: argparse.Namespace, summary: dict[str, Any]) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"stead-bench-{backend}-"))
    try:
        with databases(backend, work) as new_database:
            url = new_database("bench")
            with stead_server(url, work / "server") as (proc, port, token):
                time.sleep(1)
                idle = rss_mb(proc.pid)
                bench = Bench(url, port, token)
                # The floor runs beside Stead and is measured right after Stead at each client
                # count: this machine's speed drifts by tens of percent within minutes, so a
                # floor measured minutes later made the ratio a measure of the drift.
                # The same floor through FastAPI shows the framework's share of the gap.
                floor, floor_port = start_floor(url, work)
                framework, framework_port = start_floor(url, work, "create_fastapi_app")
                try:
                    floors = {
                        "floor": (floor_port, floor_operations(floor_port)),
                        "fastapi": (framework_port, floor_operations(framework_port)),
                    }
                    sampler = RssSampler(proc.pid)
                    rows: list[list[str]] = []
                    best: dict[str, float] = {}
                    floor_best: dict[str, dict[str, float]] = {"floor": {}, "fastapi": {}}
                    for name, op in bench.operations().items():
                        for clients in args.clients:
                            res: Result = asyncio.run(
                                closed_loop(HOST, port, op, clients=clients, seconds=args.seconds)
                            )
                            best[name] = max(best.get(name, 0.0), res.throughput)
                            rows.append(
                                [
                                    name,
                                    str(clients),
                                    f"{res.throughput:.0f}",
                                    ms(res.percentile(50)),
                                    ms(res.percentile(99)),
                                    str(res.errors),
                                ]
                            )
                            for kind, (floor_port, floor_ops) in floors.items():
                                if name not in floor_ops:
                                    continue
                                top = asyncio.run(
                                    closed_loop(
                                        HOST,
                                        floor_port,
                                        floor_ops[name],
                                        clients=clients,
                                        seconds=args.seconds,
                                    )
                                ).throughput
                                kept = floor_best[kind]
                                kept[name] = max(kept.get(name, 0.0), top)
                    peak = sampler.stop()
                finally:
                    for server in (floor, framework):
                        server.terminate()
                        server.wait()
                print_table(
                    f"{backend}: stead serve",
                    ["operation", "clients", "ops/s", "p50 ms", "p99 ms", "errors"],
                    rows,
                )
                half_rows = []
                ops = bench.operations()
                for name in ("create project", "get project"):
                    rate = best[name] / 2
                    res = asyncio.run(
                        open_loop(HOST, port, ops[name], rate=rate, seconds=args.seconds)
                    )
                    half_rows.append(
                        [
                            name,
                            f"{rate:.0f}",
                            ms(res.percentile(50)),
                            ms(res.percentile(99)),
                            str(res.errors),
                        ]
                    )
                    summary.setdefault("p99_half", []).append(
                        (backend, name, res.percentile(99) * 1000)
                    )
                print_table(
                    f"{backend}: latency at half of the maximum throughput (open loop)",
                    ["operation", "rate/s", "p50 ms", "p99 ms", "errors"],
                    half_rows,
                )

                floor_rows = []
                for name, top in floor_best["floor"].items():
                    ratio = best[name] / top
                    bare = floor_best["fastapi"][name]
                    summary.setdefault("ratio", []).append((backend, name, ratio))
                    floor_rows.append(
                        [
                            name,
                            f"{top:.0f}",
                            f"{bare:.0f}",
                            f"{bare / top:.0%}",
                            f"{best[name]:.0f}",
                            f"{ratio:.0%}",
                        ]
                    )
                print_table(
                    f"{backend}: the floor (bare ASGI + same driver) and the same work through "
                    "FastAPI, measured right after Stead at each client count; best of all "
                    "client counts",
                    [
                        "operation",
                        "floor ops/s",
                        "fastapi ops/s",
                        "fastapi/floor",
                        "stead ops/s",
                        "stead/floor",
                    ],
                    floor_rows,
                )

                summary.setdefault("rss", []).append((backend, idle, peak))
                print(
                    f"\n{backend}: server RSS idle {idle:.0f} MiB, peak under load {peak:.0f} MiB"
                )

            scale_url = new_database("scale")
            with stead_server(scale_url, work / "scale") as (_, scale_port, scale_token):
                scale_rows = scale(scale_url, scale_port, scale_token, args.scale)
                print_table(
                    f"{backend}: scale (median of sequential requests)",
                    ["projects", "seed s", "list first ms", "middle ms", "last ms", "get ms"],
                    scale_rows,
                )
                for column, page in ((2, "first"), (3, "middle"), (4, "last")):
                    small, big = float(scale_rows[0][column]), float(scale_rows[-1][column])
                    summary.setdefault("growth", []).append(
                        (backend, page, big / small, scale_rows[-1][0])
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--scale", default="1000,100000,1000000")
    parser.add_argument("--quick", action="store_true", help="2 s per point, scale to 100 k")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.scale = 2.0, "1000,100000"
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    args.clients = [int(c) for c in args.clients.split(",")]
    args.scale = [int(s) for s in args.scale.split(",")]
    print(f"Stead benchmark on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    summary: dict[str, Any] = {}
    for backend in args.backends.split(","):
        run_backend(backend, args, summary)
    help_s = help_wall_time()
    print(f"\nstead --help: {help_s * 1000:.0f} ms (median of 7)")

    checks = []
    for backend, name, ratio in summary.get("ratio", []):
        checks.append(
            (f"{backend} {name} >= 50% of floor", f"{ratio:.0%}", ratio >= TARGETS["ratio"])
        )
    for backend, name, p99 in summary.get("p99_half", []):
        checks.append(
            (
                f"{backend} {name} p99 at half load <= 20 ms",
                f"{p99:.1f} ms",
                p99 <= TARGETS["p99_half_load_ms"],
            )
        )
    for backend, page, growth, size in summary.get("growth", []):
        checks.append(
            (
                f"{backend} list {page} page at {size} within 2x of 1 k",
                f"{growth:.2f}x",
                growth <= TARGETS["list_growth"],
            )
        )
    for backend, _, peak in summary.get("rss", []):
        checks.append(
            (f"{backend} RSS under load <= 200 MB", f"{peak:.0f} MiB", peak <= TARGETS["rss_mb"])
        )
    checks.append(
        ("stead --help <= 300 ms", f"{help_s * 1000:.0f} ms", help_s * 1000 <= TARGETS["help_ms"])
    )
    print_table(
        "targets",
        ["target", "measured", "met"],
        [[t, m, "yes" if ok else "NO"] for t, m, ok in checks],
    )
    if FAILURES:
        print("\nfirst unexpected answers:\n  " + "\n  ".join(FAILURES))


if __name__ == "__main__":
    main()
