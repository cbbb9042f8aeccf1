"""Reading the audit trail in bulk and by keyset: ``GET /v1/audit-events/export`` (CSV and
JSON, streamed, the list's filters and visibility) and the newest-first keyset pages the
console shows (docs/api.md, Audit)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit import service
from stead.audit.models import AuditEvent
from stead.audit.service import AuditFilter, Cursor
from stead.db import session_scope
from stead.errors import BadRequest
from stead.identity.actor import Actor
from stead.identity.models import Account
from tests.support.factories import assert_problem, example, member_auth

CANARY = "canary-secret-9f1c2e77"


def _project(http: TestClient, admin: dict[str, str], name: str) -> str:
    body = {**example("01-create-project-redshift"), "name": name}
    resp = http.post("/v1/projects", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


def _listed(http: TestClient, headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    resp = http.get(f"/v1/audit-events?size=100{query}", headers=headers)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["results"])


def test_export_is_the_list_as_csv_and_json(http: TestClient, admin: dict[str, str]) -> None:
    project = _project(http, admin, "exported")
    secret = {"name": "warehouse", "type": "JSON", "value": json.dumps({"password": CANARY})}
    assert http.post(f"/v1/projects/{project}/secrets", json=secret, headers=admin).is_success
    listed = _listed(http, admin)

    resp = http.get("/v1/audit-events/export?format=json", headers=admin)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["content-disposition"] == 'attachment; filename="audit-events.json"'
    assert resp.headers["cache-control"] == "no-store"
    assert resp.json() == listed

    resp = http.get("/v1/audit-events/export?format=csv", headers=admin)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [int(r["id"]) for r in rows] == [e["id"] for e in listed]
    created = next(r for r in rows if r["action"] == "project.created")
    assert created["projectId"] == project
    assert json.loads(created["details"]) == next(
        e["details"] for e in listed if e["action"] == "project.created"
    )
    for body in (resp.text, http.get("/v1/audit-events/export?format=json", headers=admin).text):
        assert CANARY not in body


def test_a_formula_cell_starts_with_a_quote(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    with session_scope(session_factory, write=True) as session:
        account = session.scalars(select(Account.id)).one()
        service.record(
            session,
            actor=Actor(
                type="api_client", id="x", name="@SUM(A1)", role="ADMIN", account_id=account
            ),
            action="thing.made",
            target_type="project",
            target_id="-2+3",
        )
    resp = http.get("/v1/audit-events/export?action=thing.made", headers=admin)
    (row,) = list(csv.DictReader(io.StringIO(resp.text)))
    assert (row["actorName"], row["targetId"], row["actorId"]) == ("'@SUM(A1)", "'-2+3", "x")


def test_export_filters_and_visibility(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    mine = _project(http, admin, "mine")
    other = _project(http, admin, "other")
    owner = member_auth(http, session_factory, mine, "OWNER")
    viewer = member_auth(http, session_factory, mine, "VIEWER")
    http.patch(f"/v1/projects/{mine}", json={"description": "x"}, headers=owner)

    def exported(headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
        resp = http.get(f"/v1/audit-events/export?format=json{query}", headers=headers)
        assert resp.status_code == 200, resp.text
        return list(resp.json())

    seen = exported(owner)
    assert seen and {e["projectId"] for e in seen} == {mine}
    assert exported(owner) == _listed(http, owner)
    assert exported(viewer) == []
    assert exported(admin, "&action=project.updated") == _listed(
        http, admin, "&action=project.updated"
    )
    assert [e["action"] for e in exported(admin, f"&projectId={other}")] == ["project.created"]
    assert_problem(http.get(f"/v1/audit-events/export?projectId={other}", headers=owner), 404)
    assert_problem(http.get(f"/v1/audit-events/export?projectId={mine}", headers=viewer), 403)
    assert_problem(http.get("/v1/audit-events/export?format=xml", headers=admin), 400, "format")
    assert_problem(http.get("/v1/audit-events/export?from=yesterday", headers=admin), 400, "from")
    assert http.get("/v1/audit-events/export").status_code == 401


def _seed(factory: sessionmaker[Session], count: int) -> str:
    """``count`` events, three to a millisecond (ties in created_at), two actors."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(factory, write=True) as session:
        account = session.scalars(select(Account.id)).one()
        rows = [
            {
                "account_id": account,
                "actor_type": "user",
                "actor_id": f"id-{i % 2}",
                "actor_name": f"Person{i % 2}@example.com" if i % 5 else "id-0",
                "action": "thing.made",
                "target_type": "thing",
                "target_id": str(i),
                "project_id": None,
                "details": {},
                "created_at": start + timedelta(milliseconds=i // 3),
                "updated_at": start,
            }
            for i in range(count)
        ]
        session.execute(insert(AuditEvent), rows)
    return account


def _walk(session: Session, actor: Actor, where: AuditFilter) -> list[list[int]]:
    pages: list[list[int]] = []
    older: Cursor | None = None
    while True:
        page = service.page_events(session, actor=actor, where=where, limit=7, older_than=older)
        pages.append([e.id for e in page.events])
        if page.older is None:
            return pages
        older = Cursor.parse(page.older.token(), field="older")


def test_keyset_pages_walk_newest_first_both_ways(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    account = _seed(session_factory, 50)
    actor = Actor(type="user", id="a", name="a", role="SUPER_ADMIN", account_id=account)
    where = AuditFilter(project_ids=None, action="thing.made")
    with session_factory() as session:
        every = list(
            session.scalars(
                select(AuditEvent.id)
                .where(AuditEvent.action == "thing.made")
                .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
            )
        )
        pages = _walk(session, actor, where)
        assert [i for p in pages for i in p] == every and len(pages) == 8
        # back from the third page to the second and the first
        third = service.page_events(
            session,
            actor=actor,
            where=where,
            limit=7,
            older_than=Cursor.of(session.get_one(AuditEvent, pages[1][-1])),
        )
        assert [e.id for e in third.events] == pages[2] and third.newer is not None
        second = service.page_events(
            session, actor=actor, where=where, limit=7, newer_than=third.newer
        )
        assert [e.id for e in second.events] == pages[1] and second.newer is not None
        first = service.page_events(
            session, actor=actor, where=where, limit=7, newer_than=second.newer
        )
        assert [e.id for e in first.events] == pages[0] and first.newer is None
        # the actor filter matches its id, or its name in any case, each event once
        by_actor = [
            i for p in _walk(session, actor, AuditFilter(project_ids=None, actor="id-0")) for i in p
        ]
        expected = list(
            session.scalars(
                select(AuditEvent.id)
                .where((AuditEvent.actor_id == "id-0") | (AuditEvent.actor_name == "id-0"))
                .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
            )
        )
        assert by_actor == expected and len(expected) == 30
        by_name = _walk(session, actor, AuditFilter(project_ids=None, actor="PERSON1@EXAMPLE.COM"))
        assert sum(map(len, by_name)) == 20


@pytest.mark.parametrize(
    "token",
    ["", "not a cursor", "MTIz", "////", Cursor(datetime(2026, 1, 1, tzinfo=UTC), 2**62).token()],
)
def test_a_bad_cursor_is_a_bad_request(token: str) -> None:
    with pytest.raises(BadRequest) as caught:
        Cursor.parse(token, field="older")
    assert caught.value.violations == ["older: not a cursor of this list"]


def test_the_export_streams_every_batch(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    _seed(session_factory, service.EXPORT_BATCH * 2 + 5)
    resp = http.get("/v1/audit-events/export?format=csv&action=thing.made", headers=admin)
    ids = [int(r["id"]) for r in csv.DictReader(io.StringIO(resp.text))]
    assert len(ids) == service.EXPORT_BATCH * 2 + 5 == len(set(ids))
    json_ids = [
        e["id"]
        for e in http.get(
            "/v1/audit-events/export?format=json&action=thing.made", headers=admin
        ).json()
    ]
    assert json_ids == ids
