"""``projects.service.browse``: the console's keyset-paged, prefix-searched project list, on
both backends."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from stead.db import session_scope
from stead.identity.actor import Actor
from stead.identity.service import get_account
from stead.projects import service
from stead.projects.schemas import ProjectCreate


def _admin(session: Session) -> Actor:
    return Actor(
        type="api_client",
        id=str(uuid.uuid4()),
        name="tests",
        role="SUPER_ADMIN",
        account_id=get_account(session).id,
    )


def _create(factory: sessionmaker[Session], names: list[str]) -> None:
    with session_scope(factory, write=True) as session:
        actor = _admin(session)
        for name in names:
            data = ProjectCreate.model_validate(
                {"name": name, "warehouse": "snowflake", "agentDeploymentType": "FULL_SAAS"}
            )
            service.create(session, actor=actor, data=data)


def test_prefix_search_is_case_insensitive_and_pages_by_name(
    session_factory: sessionmaker[Session],
) -> None:
    _create(session_factory, ["Zeta", "alpha-2", "ALPHA-1", "Älpha", "alpha_3", "beta", "al%"])
    with session_factory() as session:
        actor = _admin(session)
        found = service.browse(session, actor=actor, q="Alpha", size=2)
        assert [p.name for p in found.projects] == ["ALPHA-1", "alpha-2"]
        assert found.total == 3 and found.prev_before is None and found.next_after
        rest = service.browse(session, actor=actor, q="alpha", after=found.next_after, size=2)
        assert [p.name for p in rest.projects] == ["alpha_3"]
        assert rest.next_after is None and rest.prev_before == "alpha_3"
        back = service.browse(session, actor=actor, q="alpha", before=rest.prev_before, size=2)
        assert [p.name for p in back.projects] == ["ALPHA-1", "alpha-2"]
        # LIKE's wildcards are plain characters in a prefix.
        assert [p.name for p in service.browse(session, actor=actor, q="al%").projects] == ["al%"]
        assert [p.name for p in service.browse(session, actor=actor, q="ä").projects] == ["Älpha"]
        everything = service.browse(session, actor=actor, size=3, last=True)
        assert [p.name for p in everything.projects] == ["alpha_3", "beta", "al%"]
        assert everything.total == 7 and everything.next_after is None


def test_prefix_search_is_an_index_range(session_factory: sessionmaker[Session]) -> None:
    _create(session_factory, [f"proj-{i:04d}" for i in range(3000)])
    statements: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "ORDER BY" in statement and "FROM projects" in statement:
            statements.append((statement, parameters))

    with session_factory() as session:
        engine = session.get_bind().engine
        postgresql = engine.dialect.name == "postgresql"
        if postgresql:
            session.execute(text("ANALYZE projects"))
        event.listen(engine, "before_cursor_execute", keep)
        try:
            found = service.browse(session, actor=_admin(session), q="PROJ-1", size=50)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        assert found.projects[0].name == "proj-1000" and len(found.projects) == 50
        ((statement, parameters),) = statements
        explain = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
        plan = str(session.connection().exec_driver_sql(explain + statement, parameters).all())
    index = "ix_projects_account_name_c" if postgresql else "INDEX"
    assert index in plan, plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
