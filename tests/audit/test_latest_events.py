"""``stead.audit.service.latest_events``: keyset pages of the audit trail, newest first (the
console's project audit tab)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.audit.service import AuditFilter, latest_events
from stead.identity.actor import Actor
from stead.projects.models import Project
from tests.support.factories import example


def test_latest_events_pages_a_projects_trail_newest_first_by_keyset(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    """``latest_events`` (the console's project audit tab): only the project's events, newest
    first, each page below the previous one's cursor, the last page without a cursor."""
    ids = []
    for name in ("keyset-a", "keyset-b"):
        body = {**example("01-create-project-redshift"), "name": name}
        ids.append(http.post("/v1/projects", json=body, headers=admin).json()["projectId"])
    a, b = ids
    for n in range(4):
        resp = http.patch(f"/v1/projects/{a}", json={"description": f"d{n}"}, headers=admin)
        assert resp.status_code == 200
        http.patch(f"/v1/projects/{b}", json={"description": f"d{n}"}, headers=admin)
    with session_factory() as session:
        account_id = session.get(Project, a).account_id  # type: ignore[union-attr]
        expected = list(
            session.scalars(
                select(AuditEvent.id)
                .where(AuditEvent.project_id == a)
                .order_by(AuditEvent.id.desc())
            )
        )
        actor = Actor(
            type="user", id="reader", name="reader", role="SUPER_ADMIN", account_id=account_id
        )
        where = AuditFilter(project_ids=None, project_id=a)
        seen: list[int] = []
        before = None
        pages = 0
        while True:
            events, before = latest_events(session, actor=actor, where=where, before=before, size=2)
            pages += 1
            assert all(e.project_id == a for e in events)
            seen.extend(e.id for e in events)
            if before is None:
                break
            assert before == events[-1].id
    assert len(expected) == 5  # project.created and four project.updated
    assert seen == expected
    assert pages == 3
