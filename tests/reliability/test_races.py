"""Races: 50 clients create the same name at the same moment against a real ``stead serve``.

Exactly one wins (201), every other gets 409, nobody gets a 5xx, and one row exists.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.servers import Served, provision, serve
from tests.support.factories import example

CLIENTS = 50


def race(
    srv: Served, headers: dict[str, str], path: str, bodies: list[Any]
) -> list[httpx.Response]:
    """POST ``bodies[i]`` from client ``i``, all released at once; every answer is a 201 or a
    409 problem."""
    barrier = threading.Barrier(len(bodies))
    limits = httpx.Limits(max_connections=len(bodies))
    with httpx.Client(base_url=srv.url, headers=headers, timeout=60, limits=limits) as client:
        client.get("/healthz")

        def one(body: Any) -> httpx.Response:
            barrier.wait(timeout=30)
            return client.post(path, json=body)

        with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
            responses = list(pool.map(one, bodies))
    for resp in responses:
        assert resp.status_code in (201, 409), resp.text
        if resp.status_code == 409:
            assert resp.headers["content-type"].startswith("application/problem+json")
    return responses


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    """How many responses had each status."""
    return Counter(r.status_code for r in responses)


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Any:
    with serve(db_url, tmp_path / "srv") as srv:
        yield srv


@pytest.mark.process
def test_same_names_created_at_once(served: Served) -> None:
    headers = served.headers()
    with httpx.Client(base_url=served.url, headers=headers, timeout=30) as client:
        made = provision(client, name="base")
    base = f"/v1/projects/{made['project_id']}"

    # Case and Unicode normalisation make these one name (docs/api.md: names).
    spellings = ["Race Project", "race project", "RACE PROJECT", "Race Project"]
    project = example("01-create-project-redshift")
    bodies = [{**project, "name": spellings[i % len(spellings)]} for i in range(CLIENTS)]
    responses = race(served, headers, "/v1/projects", bodies)
    assert statuses(responses) == {201: 1, 409: CLIENTS - 1}
    # Every loser is told which project holds the name (the unique index decides, not a query
    # that a concurrent create could pass).
    (winner,) = [r.json()["projectId"] for r in responses if r.status_code == 201]
    assert {r.json().get("existingId") for r in responses if r.status_code == 409} == {winner}

    connection = {**example("03-create-connection-redshift"), "name": "race-dwh"}
    answers = race(served, headers, f"{base}/data-platform-connections", [connection] * CLIENTS)
    assert statuses(answers) == {201: 1, 409: CLIENTS - 1}

    environment = {
        **example("05-create-environment-redshift", agentId=made["agent_id"]),
        "name": "race-env",
    }
    answers = race(served, headers, f"{base}/environments", [environment] * CLIENTS)
    assert statuses(answers) == {201: 1, 409: CLIENTS - 1}

    with httpx.Client(base_url=served.url, headers=headers, timeout=30) as client:
        names = [p["name"] for p in client.get("/v1/projects?size=100").json()["results"]]
        assert len(names) == 2 and {n.casefold() for n in names} == {"race project", "base"}
        connections = client.get(f"{base}/data-platform-connections?size=100").json()
        assert sorted(c["name"] for c in connections["results"]) == ["finance-dwh-prod", "race-dwh"]
        environments = client.get(f"{base}/environments?size=100").json()
        assert sorted(e["name"] for e in environments["results"]) == ["prod", "race-env"]
        events = client.get("/v1/audit-events?action=environment.created&size=100").json()
        assert events["total"] == 2


@pytest.mark.process
def test_many_concurrent_reads_and_writes(served: Served) -> None:
    # More concurrent requests than worker threads and pooled connections: they queue and all
    # finish (this once stalled until the connection pool's 30 s checkout timeout).
    headers = served.headers()
    with httpx.Client(base_url=served.url, headers=headers, timeout=30) as client:
        made = provision(client, name="busy")
    paths = [f"/v1/projects/{made['project_id']}", "/v1/projects", "/v1/agents"] * 30
    barrier = threading.Barrier(len(paths) + 30)
    limits = httpx.Limits(max_connections=len(paths) + 30)
    started = time.monotonic()
    with httpx.Client(base_url=served.url, headers=headers, timeout=60, limits=limits) as client:

        def read(path: str) -> int:
            barrier.wait(timeout=30)
            return client.get(path).status_code

        def write(i: int) -> int:
            barrier.wait(timeout=30)
            body = {**example("01-create-project-redshift"), "name": f"busy-{i}"}
            return client.post("/v1/projects", json=body).status_code

        with ThreadPoolExecutor(max_workers=len(paths) + 30) as pool:
            reads = pool.map(read, paths)
            writes = pool.map(write, range(30))
            statuses = Counter([*reads, *writes])
    assert statuses == {200: len(paths), 201: 30}
    assert time.monotonic() - started < 20
