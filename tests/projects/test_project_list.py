"""Project list pages (docs/api.md) found through the account's list buckets: exact and in
creation order across bucket edges, after deletes and under concurrent creates, on SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.db import session_scope
from stead.identity.actor import Actor
from stead.identity.models import Account
from stead.projects import service
from stead.projects.models import BUCKET_SIZE, Project, ProjectListBucket
from stead.projects.schemas import ProjectCreate
from tests.reliability.servers import serve
from tests.support.factories import auth, example

#: Three buckets: seq 1-1023, 1024-2047 and 2048 onwards.
SEEDED = 2 * BUCKET_SIZE + 60


def _actor(factory: sessionmaker[Session]) -> Actor:
    with factory() as session:
        account_id = session.scalars(select(Account.id)).one()
    return Actor(
        type="api_client", id="seeder", name="seeder", role="SUPER_ADMIN", account_id=account_id
    )


def _create(factory: sessionmaker[Session], names: list[str]) -> list[str]:
    """Create projects through the project service, in order; return their ids."""
    actor = _actor(factory)
    ids = []
    with session_scope(factory, write=True) as session:
        for name in names:
            body = {"name": name, "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}
            data = ProjectCreate.model_validate(body)
            ids.append(service.create(session, actor=actor, data=data).id)
    return ids


def _delete(factory: sessionmaker[Session], ids: list[str]) -> None:
    """Delete projects through the project service."""
    actor = _actor(factory)
    with session_scope(factory, write=True) as session:
        for project_id in ids:
            project = session.get(Project, project_id)
            assert project is not None
            service.delete(session, actor=actor, project=project)


def _seqs(factory: sessionmaker[Session], ids: list[str]) -> list[int]:
    with factory() as session:
        seq = {row.id: row.seq for row in session.execute(select(Project.id, Project.seq))}
    return [seq[i] for i in ids]


def _assert_counts(factory: sessionmaker[Session]) -> None:
    """The account's count and every bucket's count agree with the projects that exist."""
    with factory() as session:
        count, last = session.execute(select(Account.project_count, Account.project_seq)).one()
        seqs = list(session.scalars(select(Project.seq)))
        rows = session.execute(select(ProjectListBucket.bucket, ProjectListBucket.count))
        buckets = {row.bucket: row.count for row in rows}
    assert count == len(seqs) == sum(buckets.values())
    assert len(set(seqs)) == len(seqs) and max(seqs, default=0) <= last
    per_bucket = Counter(seq // BUCKET_SIZE for seq in seqs)
    assert {b: n for b, n in buckets.items() if n} == dict(per_bucket)


def _assert_pages(http: TestClient, headers: dict[str, str], expected: list[str]) -> None:
    """Every page of every size tried concatenates to ``expected``; the page after is empty."""
    for size in (100, 37):
        pages = -(-len(expected) // size)
        seen: list[str] = []
        stamps: list[str] = []
        for page in range(pages + 1):
            params = {"page": page, "size": size}
            body = http.get("/v1/projects", params=params, headers=headers).json()
            assert (body["total"], body["page"], body["size"]) == (len(expected), page, size)
            assert len(body["results"]) == max(0, min(size, len(expected) - page * size))
            seen += [p["id"] for p in body["results"]]
            stamps += [p["createdAt"] for p in body["results"]]
        assert body["results"] == []
        assert seen == expected
        assert stamps == sorted(stamps)


def test_pages_across_buckets_after_creates_and_deletes(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    ids = _create(session_factory, [f"p{i}" for i in range(SEEDED)])
    seqs = _seqs(session_factory, ids)
    assert seqs == list(range(1, SEEDED + 1))
    _assert_counts(session_factory)
    _assert_pages(http, admin, ids)
    assert http.get("/v1/projects", params={"page": 10**6}, headers=admin).json() == {
        "page": 10**6,
        "size": 25,
        "total": SEEDED,
        "results": [],
    }

    # The first and last project, one in the middle of a bucket, and both sides of each edge.
    doomed = {1, 500, BUCKET_SIZE - 1, BUCKET_SIZE, 2 * BUCKET_SIZE - 1, 2 * BUCKET_SIZE, SEEDED}
    for seq in sorted(doomed):
        resp = http.delete(f"/v1/projects/{ids[seq - 1]}", headers=admin)
        assert resp.status_code == 204
    ids = [i for i, seq in zip(ids, seqs, strict=True) if seq not in doomed]
    seqs = [seq for seq in seqs if seq not in doomed]
    _assert_counts(session_factory)
    _assert_pages(http, admin, ids)

    # Every project of the middle bucket gone: its row stays, counting 0.
    middle = [i for i, seq in zip(ids, seqs, strict=True) if seq // BUCKET_SIZE == 1]
    _delete(session_factory, middle)
    ids = [i for i in ids if i not in set(middle)]
    _assert_counts(session_factory)
    with session_factory() as session:
        assert session.get(ProjectListBucket, (_actor(session_factory).account_id, 1)) is not None
    _assert_pages(http, admin, ids)

    # New projects go on after the highest seq ever handed out, never into a freed one.
    more = _create(session_factory, ["late-1", "late-2"])
    assert _seqs(session_factory, more) == [SEEDED + 1, SEEDED + 2]
    ids += more
    _assert_counts(session_factory)
    _assert_pages(http, admin, ids)


def test_list_after_every_project_is_deleted(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    ids = _create(session_factory, ["a", "b", "c"])
    _delete(session_factory, ids)
    _assert_counts(session_factory)
    body = http.get("/v1/projects", headers=admin).json()
    assert body == {"page": 0, "size": 25, "total": 0, "results": []}
    again = _create(session_factory, ["a"])
    assert http.get("/v1/projects", headers=admin).json()["results"][0]["id"] == again[0]


def test_a_refused_duplicate_leaves_no_trace_in_the_list(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    """The duplicate's seq and counts are taken in its statement and rolled back with it: the
    next project gets the next seq, and counts and pages stay exact."""
    project = example("01-create-project-redshift")
    first = http.post("/v1/projects", json={**project, "name": "Twin"}, headers=admin)
    dup = http.post("/v1/projects", json={**project, "name": "TWIN"}, headers=admin)
    assert dup.status_code == 409 and dup.json()["existingId"] == first.json()["projectId"]
    second = http.post("/v1/projects", json={**project, "name": "other"}, headers=admin)
    ids = [first.json()["projectId"], second.json()["projectId"]]
    assert _seqs(session_factory, ids) == [1, 2]
    _assert_counts(session_factory)
    _assert_pages(http, admin, ids)
    with session_factory() as session:
        events = session.scalars(
            select(AuditEvent.target_id).where(AuditEvent.action == "project.created")
        )
        assert sorted(events) == sorted(ids)


def test_member_lists_show_own_projects_in_creation_order(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    owner = auth(http, session_factory, "ADMIN")
    own = []
    for i in range(5):
        for creator, mine in ((admin, False), (owner, True)):
            body = {**example("01-create-project-redshift"), "name": f"{creator is owner}-{i}"}
            resp = http.post("/v1/projects", json=body, headers=creator)
            assert resp.status_code == 201
            if mine:
                own.append(resp.json()["projectId"])
    seen = []
    for page in range(3):
        body = http.get("/v1/projects", params={"page": page, "size": 2}, headers=owner).json()
        assert body["total"] == 5
        seen += [p["id"] for p in body["results"]]
    assert seen == own
    assert http.get("/v1/projects", params={"page": 3, "size": 2}, headers=owner).json() == {
        "page": 3,
        "size": 2,
        "total": 5,
        "results": [],
    }
    assert http.get("/v1/projects", headers=admin).json()["total"] == 10


@pytest.mark.process
def test_concurrent_creates_and_deletes_keep_seq_and_buckets_exact(
    db_url: str, tmp_path: Path
) -> None:
    """40 creates and 20 deletes against a real ``stead serve``, all released at once."""
    with serve(db_url, tmp_path / "srv") as srv:
        headers = srv.headers()
        project = example("01-create-project-redshift")
        with httpx.Client(base_url=srv.url, headers=headers, timeout=60) as client:
            doomed = [
                client.post("/v1/projects", json={**project, "name": f"old-{i}"}).json()[
                    "projectId"
                ]
                for i in range(20)
            ]
        work = [("POST", f"new-{i}") for i in range(40)] + [("DELETE", i) for i in doomed]
        barrier = threading.Barrier(len(work))
        limits = httpx.Limits(max_connections=len(work))
        with httpx.Client(base_url=srv.url, headers=headers, timeout=60, limits=limits) as client:
            client.get("/healthz")

            def one(item: tuple[str, str]) -> int:
                method, arg = item
                barrier.wait(timeout=30)
                if method == "POST":
                    return client.post("/v1/projects", json={**project, "name": arg}).status_code
                return client.delete(f"/v1/projects/{arg}").status_code

            with ThreadPoolExecutor(max_workers=len(work)) as pool:
                statuses = Counter(pool.map(one, work))
            assert statuses == {201: 40, 204: 20}
            listed = client.get("/v1/projects", params={"size": 100}).json()

    engine = create_engine(db_url)
    factory = sessionmaker(engine)
    _assert_counts(factory)
    with factory() as session:
        rows = list(session.execute(select(Project.id, Project.seq, Project.created_at)))
        assert session.scalar(select(func.max(Account.project_seq))) == 60
    engine.dispose()
    rows.sort(key=lambda row: row.seq)
    assert [row.created_at for row in rows] == sorted(row.created_at for row in rows)
    assert listed["total"] == 40
    assert [p["id"] for p in listed["results"]] == [row.id for row in rows]
