"""Faults under load: PostgreSQL stopped and started, the server killed with SIGKILL, several
servers on one PostgreSQL. No answer is a 500, nobody hangs, and every acknowledged write is
there afterwards, complete."""

from __future__ import annotations

import base64
import itertools
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from stead.db import PING_AFTER_IDLE_SECONDS, make_engine
from stead.demo import create_super_admin
from tests.reliability.servers import Served, pg_cluster, provision, serve, start
from tests.reliability.test_races import race
from tests.support.factories import example

PG_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@dataclass
class Outcome:
    """What one request got: status (0 = no HTTP answer), seconds, and the body when JSON."""

    status: int
    seconds: float
    started: float
    body: Any = None


@dataclass
class Load:
    """Worker threads repeating ``step(client, n)`` until stopped; every outcome recorded."""

    step: Callable[[httpx.Client, int], list[Outcome]]
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, urls: list[str], headers: dict[str, str], workers: int) -> ThreadPoolExecutor:
        pool = ThreadPoolExecutor(max_workers=workers)
        for i in range(workers):
            pool.submit(self._worker, urls[i % len(urls)], headers)
        return pool

    def _worker(self, url: str, headers: dict[str, str]) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=15) as client:
            while not self.stop.is_set():
                got = self.step(client, next(self._counter))
                with self._lock:
                    self.outcomes.extend(got)
                if got and got[-1].status in (0, 503):
                    time.sleep(0.05)


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Outcome:
    """One request as an :class:`Outcome`; a transport error (no answer) is status 0."""
    started = time.monotonic()
    try:
        resp = client.request(method, path, **kwargs)
    except httpx.TransportError:
        return Outcome(0, time.monotonic() - started, started)
    body = resp.json() if resp.headers.get("content-type", "").endswith("json") else None
    if resp.status_code >= 400:
        assert resp.headers["content-type"].startswith("application/problem+json"), resp.text
    return Outcome(resp.status_code, time.monotonic() - started, started, body)


def create_project(client: httpx.Client, n: int) -> list[Outcome]:
    body = {**example("01-create-project-redshift"), "name": f"load-{n}"}
    got = call(client, "POST", "/v1/projects", json=body)
    if got.status == 201:
        got.body = {**got.body, "name": body["name"]}
    return [got]


@pytest.mark.postgresql
def test_database_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEAD_RATE_LIMIT_PER_MINUTE", "0")  # a load, not a rate-limit test
    # Not under tmp_path: the cluster runs as the postgres user, who cannot enter it.
    with pg_cluster(Path(tempfile.mkdtemp(prefix="stead-outage-"))) as cluster:
        admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE stead"))
        admin.dispose()
        db_url = cluster.url.rsplit("/", 1)[0] + "/stead"
        with serve(db_url, tmp_path / "srv") as srv:
            headers = srv.headers()
            load = Load(create_project)
            pool = load.run([srv.url], headers, workers=8)
            time.sleep(1.5)
            stopped_at = time.monotonic()
            cluster.stop()
            time.sleep(3)
            starting_at = time.monotonic()
            cluster.start()
            restarted_at = time.monotonic()
            time.sleep(4)
            load.stop.set()
            pool.shutdown(wait=True)

            statuses = Counter(o.status for o in load.outcomes)
            assert set(statuses) <= {201, 503}, statuses
            assert statuses[503] > 0, "the outage was not seen"
            during = [o for o in load.outcomes if stopped_at + 0.5 < o.started < starting_at]
            assert during, "no request during the outage"
            assert all(o.status == 503 for o in during), Counter(o.status for o in during)
            assert max(o.seconds for o in during) < 2, "a request hung during the outage"
            recovered = [o for o in load.outcomes if o.started > restarted_at + 2]
            assert recovered and all(o.status == 201 for o in recovered)

            acknowledged = [o.body for o in load.outcomes if o.status == 201]
            with httpx.Client(base_url=srv.url, headers=headers, timeout=30) as client:
                for project in acknowledged:
                    got = client.get(f"/v1/projects/{project['projectId']}")
                    assert got.status_code == 200 and got.json()["name"] == project["name"]
            log = (srv.data_dir / "server.log").read_text()
            assert '"status": 500' not in log and "Traceback" not in log


def provisioning_flow(client: httpx.Client, n: int) -> list[Outcome]:
    """The Redshift provisioning flow for project ``flow-n``; stops at the first failure."""
    outcomes = []
    project = call(
        client,
        "POST",
        "/v1/projects",
        json={**example("01-create-project-redshift"), "name": f"flow-{n}"},
    )
    outcomes.append(project)
    if project.status != 201:
        return outcomes
    agent = call(
        client, "POST", "/v1/agents", json={**example("02-create-agent"), "name": f"agent-{n}"}
    )
    outcomes.append(agent)
    if agent.status != 201:
        return outcomes
    agent_id, base = agent.body["agentId"], f"/v1/projects/{project.body['projectId']}"
    for path, body in [
        (f"{base}/data-platform-connections", example("03-create-connection-redshift")),
        (
            f"{base}/secret-references/finance-prod-redshift",
            example(
                "04-create-secret-reference-aws",
                agentId=agent_id,
                projectId=project.body["projectId"],
            ),
        ),
        (f"{base}/environments", example("05-create-environment-redshift", agentId=agent_id)),
    ]:
        step = call(client, "POST", path, json=body)
        step.body = {"path": path, "sent": body, "answer": step.body}
        outcomes.append(step)
        if step.status != 201:
            break
    return outcomes


@pytest.mark.slow
def test_kill_9_during_provisioning(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEAD_RATE_LIMIT_PER_MINUTE", "0")  # a load, not a rate-limit test
    srv = start(db_url, tmp_path / "srv")
    try:
        headers = srv.headers()
        load = Load(provisioning_flow)
        pool = load.run([srv.url], headers, workers=6)
        time.sleep(3)
        srv.kill()
        load.stop.set()
        pool.shutdown(wait=True)
        srv.restart()
        statuses = Counter(o.status for o in load.outcomes)
        assert statuses[201] > 5 and statuses[0] > 0, statuses
        assert set(statuses) <= {201, 0}, statuses
        with httpx.Client(base_url=srv.url, headers=headers, timeout=30) as client:
            for o in load.outcomes:
                if o.status != 201 or "path" not in (o.body or {}):
                    continue
                path, sent = o.body["path"], o.body["sent"]
                if path.endswith("/environments"):
                    got = client.get(f"{path}/prod").json()
                    assert got["connectionOverrides"] == sent["connectionOverrides"]
                    assert got["defaultConnections"] == sent["defaultConnections"]
                elif path.endswith("/data-platform-connections"):
                    assert client.get(f"{path}/{sent['name']}").status_code == 200
                else:
                    assert client.get(path).status_code == 200
            # Whatever exists, acknowledged or not, is whole: every environment reads back with
            # its connection and all of its properties.
            projects = client.get("/v1/projects?size=100").json()
            assert projects["total"] >= statuses[201] // 5
            for page in range(projects["total"] // 100 + 1):
                for p in client.get(f"/v1/projects?size=100&page={page}").json()["results"]:
                    envs = client.get(f"/v1/projects/{p['id']}/environments").json()["results"]
                    for env in envs:
                        got = client.get(f"/v1/projects/{p['id']}/environments/{env['name']}")
                        props = got.json()["connectionOverrides"][0]["connectionProperties"]
                        assert set(props) >= {"url", "port", "username", "password"}
    finally:
        srv.stop()


@PG_ONLY
def test_several_servers_share_races_and_the_rate_limit(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 60
    monkeypatch.setenv("STEAD_RATE_LIMIT_PER_MINUTE", str(limit))
    # Servers behind one address share their keys (a token from one is good at every other).
    monkeypatch.setenv("STEAD_SIGNING_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("STEAD_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    credentials = create_super_admin(db_url)
    servers = [start(db_url, tmp_path / f"srv{i}", credentials) for i in range(3)]
    try:
        headers = servers[0].headers()
        with httpx.Client(base_url=servers[1].url, headers=headers, timeout=30) as client:
            made = provision(client, name="shared")

        # 48 creates of one environment name, spread over the three servers: one 201.
        environment = {
            **example("05-create-environment-redshift", agentId=made["agent_id"]),
            "name": "everywhere",
        }
        path = f"/v1/projects/{made['project_id']}/environments"
        statuses = Counter[int]()
        barrier = threading.Barrier(48)

        def one(i: int) -> int:
            with httpx.Client(base_url=servers[i % 3].url, headers=headers, timeout=60) as c:
                barrier.wait(timeout=30)
                return c.post(path, json=environment).status_code

        with ThreadPoolExecutor(max_workers=48) as pool:
            statuses.update(pool.map(one, range(48)))
        assert statuses == {201: 1, 409: 47}
        headers = Served(
            servers[2].url, *create_super_admin(db_url), tmp_path, db_url, 0, servers[2].proc
        ).headers()
        projects = [example("01-create-project-snowflake")] * 30
        created = race(servers[2], headers, "/v1/projects", projects)
        assert Counter(r.status_code for r in created) == {201: 1, 409: 29}

        # One client, its requests spread over the servers: the limit holds across processes
        # (a per-process count would let every server answer ``limit`` requests).
        other = create_super_admin(db_url)
        if time.time() % 60 > 50:  # stay inside one window
            time.sleep(61 - time.time() % 60)
        headers = Served(servers[0].url, *other, tmp_path, db_url, 0, servers[0].proc).headers()
        answers = Counter[int]()
        for i in range(limit + 20):
            resp = httpx.get(f"{servers[i % 3].url}/v1/projects", headers=headers, timeout=30)
            answers[resp.status_code] += 1
            if resp.status_code == 429:
                assert 1 <= int(resp.headers["Retry-After"]) <= 60
        assert answers == {200: limit, 429: 20}
    finally:
        for srv in servers:
            srv.stop()


@PG_ONLY
def test_a_pooled_connection_killed_while_idle_is_replaced_unseen(db_url: str) -> None:
    """A connection idle for over ``PING_AFTER_IDLE_SECONDS`` is pinged at checkout: one the
    server dropped meanwhile (here: ``pg_terminate_backend``, as a restart or a proxy's idle
    timeout would) is replaced before the request sees it. One in use moments ago is not
    pinged: the request on it fails with a disconnect, and the pool starts over."""
    engine = make_engine(db_url)
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")

    def pid_of_pooled_connection() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("select pg_backend_pid()")).scalar_one())

    def kill(pid: int) -> None:
        with admin.connect() as conn:
            assert conn.execute(text("select pg_terminate_backend(:p)"), {"p": pid}).scalar()

    try:
        first = pid_of_pooled_connection()
        kill(first)
        time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
        replaced = pid_of_pooled_connection()
        assert replaced != first

        kill(replaced)
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("select 1"))
        assert pid_of_pooled_connection() not in (first, replaced)
    finally:
        engine.dispose()
        admin.dispose()
