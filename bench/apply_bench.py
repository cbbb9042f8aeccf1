"""Benchmark: ``stead apply`` of a 200-project file against a real ``stead serve``.

For each backend (SQLite in a temp directory, PostgreSQL in a private cluster), it measures:

* the first apply on an empty server: wall time, HTTP requests made, changes made;
* the no-op re-apply of the same file: wall time and requests (all reads; no write is made).

The rate limit is disabled for the run (``STEAD_RATE_LIMIT_PER_MINUTE=0``): with the default of
1000 requests a minute the first apply would mostly measure waiting for ``Retry-After``.

Run from the repository root: ``.venv/bin/python bench/apply_bench.py [--projects 200]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stead.declarative.apply import apply_plan  # noqa: E402
from stead.declarative.plan import context_for, make_plan  # noqa: E402
from stead.declarative.spec import load  # noqa: E402
from stead.declarative.state import read_state  # noqa: E402
from stead.demo import create_super_admin, start_server  # noqa: E402
from stead.sdk import Client  # noqa: E402
from tests.declarative.documents import bulk, write  # noqa: E402
from tests.support.postgres import free_port, postgres_cluster  # noqa: E402


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database URL for ``backend``."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'stead.db'}"
        return
    with postgres_cluster() as url:
        yield url


def run_once(path: Path, url: str, client_id: str, secret: str) -> dict[str, float | int]:
    """One ``stead apply --auto-approve`` as the CLI does it: read, plan, apply."""
    spec = load([path], {"REDSHIFT_USER": "bench"})
    started = time.perf_counter()
    with Client(url, client_id, secret) as client:
        state = read_state(client, names=[p.name for p in spec.projects])
        plan = make_plan(spec, state)
        assert not plan.errors, plan.errors
        changes = apply_plan(plan, context_for(client, state))
        requests = client.requests_sent
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "requests": requests,
        "changes": changes,
    }


def bench(backend: str, projects: int) -> dict[str, object]:
    """Apply a ``projects``-project file twice against a fresh server on ``backend``."""
    with tempfile.TemporaryDirectory(prefix=f"stead-bench-{backend}-") as tmp:
        workdir = Path(tmp)
        with database(backend, workdir) as db_url:
            client_id, secret = create_super_admin(db_url)
            port = free_port()
            os.environ["STEAD_RATE_LIMIT_PER_MINUTE"] = "0"
            os.environ["STEAD_LOG_LEVEL"] = "WARNING"
            server = start_server(workdir, port, database_url=db_url)
            try:
                path = write(workdir / "bench.yaml", bulk(projects))
                url = f"http://127.0.0.1:{port}"
                first = run_once(path, url, client_id, secret)
                again = run_once(path, url, client_id, secret)
            finally:
                server.terminate()
                server.wait(timeout=30)
    return {"backend": backend, "projects": projects, "apply": first, "reapply": again}


def main() -> None:
    """Run the benchmark on both backends and print one JSON line per backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    for backend in args.backend or ["sqlite", "postgresql"]:
        print(json.dumps(bench(backend, args.projects)), flush=True)


if __name__ == "__main__":
    main()
