"""Audit events: writing one per change in the change's own transaction (ARCHITECTURE rule 4),
recording refused changes, and reading them back (docs/api.md, Audit)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from fastapi import Request
from sqlalchemy import Select, Table, func, insert, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from stead.audit.models import AuditEvent
from stead.db import session_scope, utcnow
from stead.identity.permissions import PermissionDenied
from stead.pagination import PageParams, paginate

if TYPE_CHECKING:
    from stead.identity.actor import Actor

log = logging.getLogger(__name__)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


_INSERT = insert(cast(Table, AuditEvent.__table__))


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str,
    project_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write an audit event in the session's transaction (committed or rolled back with the
    change).

    The actor's name, request id and source IP are copied into the event. The row is inserted
    at once with a plain table statement on the session's connection (no ORM bookkeeping:
    nothing reads an event back through the session that wrote it).

    Args:
        action: ``<noun>.<past verb>``, e.g. ``environment.created``.
        details: non-secret facts about the change (never a credential).
    """
    now = utcnow()
    session.connection().execute(
        _INSERT,
        {
            "account_id": actor.account_id,
            "actor_type": actor.type,
            "actor_id": actor.id,
            "actor_name": actor.name,
            "action": action,
            "target_type": target_type,
            "target_id": target_id[:255],
            "project_id": project_id,
            "details": details or {},
            "request_id": actor.request_id,
            "source_ip": actor.source_ip,
            "created_at": now,
            "updated_at": now,
        },
    )


def record_refusal(session: Session, *, actor: Actor, exc: PermissionDenied, target: str) -> None:
    """Audit a refused attempt to change something as ``access.denied``: ``target`` is the
    request (``"POST /v1/projects"``), the details the permission it lacked and the refusal's
    detail. Write it in a transaction the refused change does not roll back."""
    record(
        session,
        actor=actor,
        action="access.denied",
        target_type="request",
        target_id=target,
        project_id=exc.project_id,
        details={"permission": exc.permission, "detail": exc.detail},
    )


def _write_refusal(
    factory: sessionmaker[Session], *, actor: Actor, exc: PermissionDenied, target: str
) -> None:
    with session_scope(factory, write=True) as session:
        record_refusal(session, actor=actor, exc=exc, target=target)


async def record_refused(request: Request, exc: Exception) -> None:
    """Audit a refused attempt to change something: a :class:`PermissionDenied` (403) on a
    request that is not a read. Called from the error handler, after the request's own
    transaction was rolled back, so the event is written in a transaction of its own."""
    actor = getattr(request.state, "actor", None)
    if not isinstance(exc, PermissionDenied) or request.method in _SAFE_METHODS or actor is None:
        return
    try:
        await run_in_threadpool(
            _write_refusal,
            request.app.state.sessionmaker,
            actor=actor,
            exc=exc,
            target=f"{request.method} {request.url.path}",
        )
    except SQLAlchemyError as err:
        # The caller still gets its 403; the lost record is logged instead of becoming a 500.
        log.error("could not record a refused request: %s", type(err).__name__)


@dataclass(frozen=True)
class AuditFilter:
    """Filters of ``GET /v1/audit-events``; None means "any".

    Attributes:
        project_ids: the projects whose events the caller may read; None means every event of
            the account (Super Admins and Admins).
        project_id: only this project's events.
        actor: the actor's id or name (a client's name, a user's email; case-insensitive).
        action: exact action, e.g. ``environment.created``.
        since: events at or after this instant.
        until: events before this instant.
    """

    project_ids: list[str] | None
    project_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _query(account_id: str, f: AuditFilter) -> Select[Any]:
    query = select(AuditEvent).where(AuditEvent.account_id == account_id)
    if f.project_ids is not None:
        query = query.where(AuditEvent.project_id.in_(f.project_ids))
    if f.project_id is not None:
        query = query.where(AuditEvent.project_id == f.project_id)
    if f.actor is not None:
        query = query.where(
            or_(
                AuditEvent.actor_id == f.actor,
                func.lower(AuditEvent.actor_name) == f.actor.lower(),
            )
        )
    if f.action is not None:
        query = query.where(AuditEvent.action == f.action)
    if f.since is not None:
        query = query.where(AuditEvent.created_at >= f.since)
    if f.until is not None:
        query = query.where(AuditEvent.created_at < f.until)
    return query.order_by(AuditEvent.created_at, AuditEvent.id)


def list_events(
    session: Session, *, actor: Actor, where: AuditFilter, params: PageParams
) -> tuple[int, list[AuditEvent]]:
    """One page of the audit events the caller may read that match ``where``, oldest first."""
    return paginate(session, _query(actor.account_id, where), params)
