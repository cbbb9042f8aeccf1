"""Benchmark: plan and apply a fleet of projects against a real ``stead serve``.

Each project holds a connection, a secret reference, a hosted secret and two environments.
For each backend (SQLite in a temp directory, PostgreSQL in a private cluster) it measures, as
``stead plan`` / ``stead apply`` do them (the server on the same machine):

* the first apply on an empty server (``--parallelism``, default 10);
* a plan of the unchanged file (nothing to do);
* a plan after one property of one environment changed (it must name exactly that change).

Targets for 1,000 projects: first apply < 30 s, each plan < 5 s. The rate limit is off for the
run (``STEAD_RATE_LIMIT_PER_MINUTE=0``), as in ``bench/apply_bench.py``.

Run from the repository root: ``.venv/bin/python bench/fleet.py [--projects 1000]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stead.declarative.apply import apply_plan  # noqa: E402
from stead.declarative.plan import context_for, make_plan  # noqa: E402
from stead.declarative.spec import load  # noqa: E402
from stead.declarative.state import read_state  # noqa: E402
from stead.demo import create_super_admin, start_server  # noqa: E402
from stead.sdk import Client  # noqa: E402
from tests.declarative.documents import bulk, redshift_environment, write  # noqa: E402
from tests.support.postgres import free_port, postgres_cluster  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process ``pid`` has used, from ``/proc`` (Linux): the
    share of a busy machine a phase took, whatever else ran at the same time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def measured(server_pid: int, into: dict[str, Any]) -> Iterator[None]:
    """Add ``serverCpu`` and ``clientCpu`` (seconds) of the block to ``into``."""
    server, client = cpu_seconds(server_pid), time.process_time()
    yield
    into["server_cpu"] = round(cpu_seconds(server_pid) - server, 2)
    into["client_cpu"] = round(time.process_time() - client, 2)


TARGETS = {"apply": 30.0, "noop_plan": 5.0, "one_change_plan": 5.0}
VARIABLES = {"REDSHIFT_USER": "bench", "API_KEY": "bench-api-key"}


def fleet(count: int) -> dict[str, Any]:
    """``count`` Redshift projects, each with a connection, a secret reference, a hosted secret
    and two environments (prod and dev): the tests' bulk file with a dev environment and a
    hosted secret added to each project."""
    document = bulk(count)
    for i, project in enumerate(document["projects"]):
        dev = redshift_environment("dev")
        dev["connectionOverrides"][0]["connectionProperties"]["username"] = {"value": f"u{i}"}
        project["environments"].append(dev)
        project["secrets"] = [{"name": "api-key", "type": "PASSWORD", "value": "${API_KEY}"}]
    return document


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database URL for ``backend``."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'stead.db'}"
        return
    with postgres_cluster() as url:
        yield url


def plan_once(path: Path, url: str, client_id: str, secret: str) -> dict[str, Any]:
    """One ``stead plan``: read the file, read the listed projects, compare."""
    started = time.perf_counter()
    spec = load([path], VARIABLES)
    with Client(url, client_id, secret) as client:
        plan = make_plan(spec, read_state(client, names=[p.name for p in spec.projects]))
        requests = client.requests_sent
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "requests": requests,
        "changes": [c.address for c in plan.pending],
    }


def apply_once(
    path: Path, url: str, client_id: str, secret: str, parallelism: int
) -> dict[str, Any]:
    """One ``stead apply --auto-approve``: read the file and the server, plan, apply."""
    started = time.perf_counter()
    spec = load([path], VARIABLES)
    with Client(url, client_id, secret) as client:
        state = read_state(client, names=[p.name for p in spec.projects])
        plan = make_plan(spec, state)
        assert not plan.errors, plan.errors
        changes = apply_plan(plan, context_for(client, state), parallelism=parallelism)
        requests = client.requests_sent
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "requests": requests,
        "changes": changes,
    }


def bench(backend: str, projects: int, parallelism: int) -> dict[str, Any]:
    """Apply a fleet to a fresh server on ``backend``, then plan it unchanged and changed."""
    with tempfile.TemporaryDirectory(prefix=f"stead-fleet-{backend}-") as tmp:
        workdir = Path(tmp)
        with database(backend, workdir) as db_url:
            client_id, secret = create_super_admin(db_url)
            port = free_port()
            os.environ["STEAD_RATE_LIMIT_PER_MINUTE"] = "0"
            os.environ["STEAD_LOG_LEVEL"] = "WARNING"
            server = start_server(workdir, port, database_url=db_url)
            try:
                document = fleet(projects)
                path = write(workdir / "fleet.yaml", document)
                url = f"http://127.0.0.1:{port}"
                first: dict[str, Any] = {}
                with measured(server.pid, first):
                    first.update(apply_once(path, url, client_id, secret, parallelism))
                noop: dict[str, Any] = {}
                with measured(server.pid, noop):
                    noop.update(plan_once(path, url, client_id, secret))
                changed = copy.deepcopy(document)
                target = changed["projects"][projects // 2]
                props = target["environments"][1]["connectionOverrides"][0]
                props["connectionProperties"]["defaultSchema"] = {"value": "staging"}
                one: dict[str, Any] = {}
                with measured(server.pid, one):
                    one.update(
                        plan_once(write(workdir / "changed.yaml", changed), url, client_id, secret)
                    )
            finally:
                server.terminate()
                server.wait(timeout=30)
    expected = [f'projects["{target["name"]}"].environments["dev"]']
    results = {"apply": first, "noop_plan": noop, "one_change_plan": one}
    return {
        "load_average": os.getloadavg()[0],
        "backend": backend,
        "projects": projects,
        "parallelism": parallelism,
        **results,
        "noop_is_empty": noop["changes"] == [],
        "one_change_is_exact": one["changes"] == expected,
        "targets_met": {k: results[k]["seconds"] < v for k, v in TARGETS.items()},
    }


def main() -> None:
    """Run the benchmark on each backend and print one JSON line per backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    for backend in args.backend or ["sqlite", "postgresql"]:
        result = bench(backend, args.projects, args.parallelism)
        result["noop_plan"].pop("changes")
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
