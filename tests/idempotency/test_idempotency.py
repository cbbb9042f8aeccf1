"""``Idempotency-Key`` on POST (docs/api.md), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.db import utcnow
from stead.idempotency.models import IdempotencyKey
from stead.projects.models import Project
from stead.settings import Settings
from tests.support.factories import assert_problem, auth, create_agent, example
from tests.support.served import Served, serve_here

PROJECT = {"name": "idem", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}


def _count(factory: sessionmaker[Session], model: Any = Project) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_same_key_same_body_replays_the_first_response(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    headers = {**admin, "Idempotency-Key": "k-1"}
    first = http.post("/v1/projects", json=PROJECT, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # the same JSON written differently, and through the DPC base path, is the same request
    same = b'{ "agentDeploymentType": "HYBRID", "warehouse": "REDSHIFT", "name": "idem" }'
    for path in ("/v1/projects", "/dpc/v1/projects"):
        again = http.post(
            path, content=same, headers={**headers, "content-type": "application/json"}
        )
        assert again.status_code == 201, again.text
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["idempotent-replayed"] == "true"
    assert _count(session_factory) == 1
    with session_factory() as session:
        actions = list(session.scalars(select(AuditEvent.action)))
    assert actions == ["project.created"]


def test_same_key_different_request_is_a_conflict(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    headers = {**admin, "Idempotency-Key": "k-2"}
    assert http.post("/v1/projects", json=PROJECT, headers=headers).status_code == 201
    other = {**PROJECT, "name": "other"}
    assert_problem(http.post("/v1/projects", json=other, headers=headers), 409, "Idempotency-Key")
    agent = {**example("02-create-agent"), "name": "a"}
    assert_problem(http.post("/v1/agents", json=agent, headers=headers), 409, "Idempotency-Key")
    assert _count(session_factory) == 1
    # another principal has its own keys
    admin2 = auth(http, session_factory, "SUPER_ADMIN")
    resp = http.post("/v1/projects", json=other, headers={**admin2, "Idempotency-Key": "k-2"})
    assert resp.status_code == 201
    assert _count(session_factory) == 2


def test_a_failed_request_does_not_keep_its_key(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    headers = {**admin, "Idempotency-Key": "k-3"}
    bad = {**PROJECT, "warehouse": "BIGQUERY"}
    assert_problem(http.post("/v1/projects", json=bad, headers=headers), 400, "warehouse")
    assert http.post("/v1/projects", json=PROJECT, headers=admin).status_code == 201
    # a conflict is not kept either: the same key may carry the corrected request
    assert_problem(http.post("/v1/projects", json=PROJECT, headers=headers), 409, "name")
    fixed = http.post("/v1/projects", json={**PROJECT, "name": "fixed"}, headers=headers)
    assert fixed.status_code == 201
    assert _count(session_factory) == 2
    assert _count(session_factory, IdempotencyKey) == 1


def test_keys_expire_after_24_hours(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    headers = {**admin, "Idempotency-Key": "k-4"}
    assert http.post("/v1/projects", json=PROJECT, headers=headers).status_code == 201
    with session_factory.begin() as session:
        session.execute(
            update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=24, seconds=1))
        )
    # forgotten: the key now carries a new request, which runs
    other = http.post("/v1/projects", json={**PROJECT, "name": "later"}, headers=headers)
    assert other.status_code == 201
    assert "idempotent-replayed" not in other.headers
    assert _count(session_factory) == 2
    assert _count(session_factory, IdempotencyKey) == 1


def test_malformed_keys_are_refused(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    for key in ("", "with space", "x" * 256, "é"):
        resp = http.post(
            "/v1/projects", json=PROJECT, headers={**admin, "Idempotency-Key": key.encode()}
        )
        assert_problem(resp, 400, "Idempotency-Key")
    assert _count(session_factory) == 0
    # the structured-field string form is the same key as the bare token
    assert (
        http.post(
            "/v1/projects", json=PROJECT, headers={**admin, "Idempotency-Key": '"k-5"'}
        ).status_code
        == 201
    )
    replay = http.post("/v1/projects", json=PROJECT, headers={**admin, "Idempotency-Key": "k-5"})
    assert replay.headers["idempotent-replayed"] == "true"


def test_other_methods_and_unauthenticated_requests_ignore_the_key(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    pid = http.post("/v1/projects", json=PROJECT, headers=admin).json()["projectId"]
    headers = {**admin, "Idempotency-Key": "k-6"}
    for description in ("one", "two"):
        resp = http.patch(f"/v1/projects/{pid}", json={"description": description}, headers=headers)
        assert resp.json()["description"] == description
    no_token = http.post("/v1/projects", json=PROJECT, headers={"Idempotency-Key": "k-6"})
    assert_problem(no_token, 401)
    bad_token = http.post(
        "/v1/projects",
        json=PROJECT,
        headers={"Idempotency-Key": "k-6", "Authorization": "Bearer nope"},
    )
    assert_problem(bad_token, 401)
    assert _count(session_factory, IdempotencyKey) == 0


def test_one_time_secrets_are_never_stored(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    agent_id = create_agent(http, admin)["agentId"]
    headers = {**admin, "Idempotency-Key": "k-7"}
    url = f"/v1/agents/{agent_id}/credentials"
    first = http.post(url, json={"action": "SECRET_REFRESH"}, headers=headers)
    second = http.post(url, json={"action": "SECRET_REFRESH"}, headers=headers)
    assert first.status_code == second.status_code == 200
    # the key was released: the retry ran again and its secret is the valid one
    assert first.json()["clientSecret"] != second.json()["clientSecret"]
    assert "idempotent-replayed" not in second.headers
    headers = {**admin, "Idempotency-Key": "k-7b"}
    created = [
        http.post("/v1/api-clients", json={"name": "ci", "role": "MEMBER"}, headers=headers)
        for _ in range(2)
    ]
    assert [r.status_code for r in created] == [201, 201]
    assert created[0].json()["clientSecret"] != created[1].json()["clientSecret"]
    with session_factory() as session:
        rows = [
            repr([r.response_body, r.response_headers, r.request_hash, r.path])
            for r in session.scalars(select(IdempotencyKey))
        ]
    assert rows == []
    # an ordinary response is stored, but never the request body, only a keyed hash of it
    canary = "CANARY-description-7f3a"
    headers = {**admin, "Idempotency-Key": "k-8"}
    http.post("/v1/projects", json={**PROJECT, "description": canary}, headers=headers)
    with session_factory() as session:
        stored = [
            repr([r.response_body, r.response_headers, r.request_hash, r.path, r.key])
            for r in session.scalars(select(IdempotencyKey))
        ]
    assert len(stored) == 1 and canary not in stored[0]


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    with serve_here(settings) as running:
        yield running


def test_concurrent_requests_with_one_key_create_one_object(served: Served) -> None:
    headers = served.headers()
    rounds, callers = 6, 3
    answers: dict[int, list[httpx.Response]] = {i: [] for i in range(rounds)}
    with httpx.Client(base_url=served.url, headers=headers, timeout=30) as http:
        for i in range(rounds):
            barrier = threading.Barrier(callers)

            def post(i: int = i, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                answers[i].append(
                    http.post(
                        "/v1/projects",
                        json={**PROJECT, "name": f"race-{i}"},
                        headers={"Idempotency-Key": f"race-{i}"},
                    )
                )

            threads = [threading.Thread(target=post) for _ in range(callers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        listed = http.get("/v1/projects", params={"size": 100}).json()
    for i in range(rounds):
        assert [r.status_code for r in answers[i]] == [201] * callers, [r.text for r in answers[i]]
        assert len({r.json()["projectId"] for r in answers[i]}) == 1
        assert sum("idempotent-replayed" in r.headers for r in answers[i]) == callers - 1
    assert listed["total"] == rounds


def test_the_response_is_recorded_in_the_change_s_own_transaction(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    engine = session_factory.kw["bind"]
    commits: list[int] = []

    def count(_conn: Any) -> None:
        commits.append(1)

    event.listen(engine, "commit", count)
    try:
        counted = []
        for i, headers in enumerate([admin, {**admin, "Idempotency-Key": "k-one-tx"}]):
            commits.clear()
            body = {**PROJECT, "name": f"one-tx-{i}"}
            assert http.post("/v1/projects", json=body, headers=headers).status_code == 201
            counted.append(len(commits))
    finally:
        event.remove(engine, "commit", count)
    # a keyed create commits as often as a plain one: no transaction of its own for the record
    assert counted[1] == counted[0], counted
    with session_factory() as session:
        row = session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == "k-one-tx")).one()
    assert row.status == 201
