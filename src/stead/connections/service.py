"""Data-platform connection rules (docs/api.md, Connections)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.connections.models import Connection
from stead.connections.schemas import ConnectionCreate
from stead.db import named_in_project
from stead.environments.models import Environment
from stead.errors import BLOCKERS_SHOWN, BadRequest, Blocker, Conflict, NotFound, in_use
from stead.identity.actor import Actor
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.warehouses import spec_for
from stead.wire import lookup_key, name_key


def find(session: Session, *, project_id: str, name: str) -> Connection | None:
    """The project's connection named ``name`` (case-insensitive, NFC), or None."""
    key = lookup_key(name)
    if key is None:
        return None
    return session.scalar(named_in_project(Connection), {"project_id": project_id, "name_key": key})


def get(session: Session, *, project: Project, name: str) -> Connection:
    """The project's connection named ``name``.

    Raises:
        NotFound: no such connection in the project.
    """
    connection = find(session, project_id=project.id, name=name)
    if connection is None:
        raise NotFound(f"Connection {name!r} not found in project {project.name!r}")
    return connection


def create(
    session: Session, *, actor: Actor, project: Project, data: ConnectionCreate
) -> Connection:
    """Create the project's DWH connection (docs/api.md, Connections).

    Raises:
        BadRequest: ``authProvider`` is not the project's warehouse, or ``authType`` is not the
            one that warehouse takes (``KEY_PAIR`` for Snowflake, ``PASSWORD`` for Redshift).
        Conflict: the name is taken in the project (case-insensitive).
    """
    violations = []
    if data.auth_provider != project.warehouse:
        violations.append(f"authProvider: must be the project's warehouse {project.warehouse}")
    expected = spec_for(data.auth_provider).auth_type
    if data.auth_type != expected:
        violations.append(f"authType: a {data.auth_provider} connection takes {expected}")
    if violations:
        raise BadRequest("The connection does not fit the project", violations=violations)
    if find(session, project_id=project.id, name=data.name) is not None:
        raise Conflict(
            f"A connection named {data.name!r} already exists in this project",
            violations=["name: already used in this project"],
        )
    connection = Connection(
        project_id=project.id,
        name=data.name,
        name_key=name_key(data.name),
        platform_connection_type=data.platform_connection_type,
        auth_provider=data.auth_provider,
        auth_type=data.auth_type,
    )
    session.add(connection)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="connection.created",
        target_type="connection",
        target_id=connection.name,
        project_id=project.id,
        details={"name": connection.name, "authProvider": connection.auth_provider},
    )
    return connection


def list_page(
    session: Session, *, project: Project, params: PageParams
) -> tuple[int, list[Connection]]:
    """One page of the project's connections, oldest first: ``(total, connections)``."""
    query = (
        select(Connection)
        .where(Connection.project_id == project.id)
        .order_by(Connection.created_at, Connection.id)
    )
    return paginate(session, query, params)


def delete(session: Session, *, actor: Actor, project: Project, name: str) -> None:
    """Delete a connection (docs/api.md, Connections).

    Raises:
        NotFound: no such connection.
        Conflict: an environment still uses it; the message names the environments.
    """
    connection = get(session, project=project, name=name)
    users = list(
        session.scalars(
            select(Environment.name)
            .where(Environment.connection_id == connection.id)
            .order_by(Environment.created_at, Environment.id)
        )
    )
    if users:
        raise in_use(
            f"Connection {connection.name!r}",
            [Blocker("environment", user, project.name) for user in users[:BLOCKERS_SHOWN]],
            more=len(users) > BLOCKERS_SHOWN,
            then="delete them or move them to another connection first",
        )
    audit.record(
        session,
        actor=actor,
        action="connection.deleted",
        target_type="connection",
        target_id=connection.name,
        project_id=project.id,
        details={"name": connection.name},
    )
    session.delete(connection)
    session.flush()
