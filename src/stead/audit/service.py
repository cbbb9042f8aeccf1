"""Audit events: writing one per change in the change's own transaction (ARCHITECTURE rule 4),
recording refused changes, and reading them back (docs/api.md, Audit)."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from fastapi import Request
from sqlalchemy import ColumnElement, Select, Table, and_, func, insert, or_, select, true, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from stead.audit.models import AuditEvent
from stead.db import session_scope, utcnow
from stead.errors import BadRequest
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


def in_utc(at: datetime) -> datetime:
    """``at`` (an aware ``datetime``) in UTC, as the trail stores and compares it.

    Raises:
        ValueError: an offset puts ``at`` outside the years a ``datetime`` holds (1-9999),
            e.g. ``0001-01-01T00:00:00+01:00``.
    """
    try:
        return at.astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall between years 1 and 9999 once in UTC") from None


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


def _conditions(account_id: str, f: AuditFilter) -> list[ColumnElement[bool]]:
    """``f``'s conditions but the actor's (see :func:`_actor_branches`)."""
    found = [AuditEvent.account_id == account_id]
    if f.project_ids is not None:
        found.append(AuditEvent.project_id.in_(f.project_ids))
    if f.project_id is not None:
        found.append(AuditEvent.project_id == f.project_id)
    if f.action is not None:
        found.append(AuditEvent.action == f.action)
    if f.since is not None:
        found.append(AuditEvent.created_at >= f.since)
    if f.until is not None:
        found.append(AuditEvent.created_at < f.until)
    return found


def _actor_branches(f: AuditFilter) -> list[ColumnElement[bool]]:
    """The actor filter as disjoint conditions, each served by an index of its own: the
    actor's id, or (another id with) its name in any case. No actor filter: one branch."""
    if f.actor is None:
        return [true()]
    return [
        AuditEvent.actor_id == f.actor,
        and_(func.lower(AuditEvent.actor_name) == f.actor.lower(), AuditEvent.actor_id != f.actor),
    ]


def _query(account_id: str, f: AuditFilter) -> Select[Any]:
    return (
        select(AuditEvent)
        .where(*_conditions(account_id, f), or_(*_actor_branches(f)))
        .order_by(AuditEvent.created_at, AuditEvent.id)
    )


def list_events(
    session: Session, *, actor: Actor, where: AuditFilter, params: PageParams
) -> tuple[int, list[AuditEvent]]:
    """One page of the audit events the caller may read that match ``where``, oldest first."""
    return paginate(session, _query(actor.account_id, where), params)


#: The largest event id (the column is a 32-bit integer on PostgreSQL).
_MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Cursor:
    """A position in the audit trail's order, ``(created_at, id)``: the event at which a page
    ends. Carried in URLs as an opaque token (:meth:`token`, :meth:`parse`)."""

    created_at: datetime
    id: int

    @classmethod
    def of(cls, event: AuditEvent) -> Cursor:
        """The position of ``event``."""
        return cls(created_at=event.created_at, id=event.id)

    def token(self) -> str:
        """URL-safe text of the cursor (base64url of ``<microseconds since epoch>.<id>``)."""
        micros = round(self.created_at.timestamp() * 1_000_000)
        return base64.urlsafe_b64encode(f"{micros}.{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str, *, field: str) -> Cursor:
        """The cursor :meth:`token` wrote.

        Raises:
            BadRequest: ``token`` is not one (the violation names ``field``).
        """
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            micros, _, ident = raw.partition(".")
            at = datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC)
            number = int(ident)
            if not 0 <= number <= _MAX_ID:
                raise ValueError(number)
            return cls(created_at=at, id=number)
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError):
            raise BadRequest(
                "Invalid paging cursor", violations=[f"{field}: not a cursor of this list"]
            ) from None


def _seek(
    session: Session,
    *,
    account_id: str,
    where: AuditFilter,
    limit: int,
    past: Cursor | None,
    descending: bool,
) -> list[AuditEvent]:
    """Up to ``limit`` matching events beyond ``past`` in the list's order (or its reverse):
    one ordered, limited index walk per actor branch, merged here."""
    key = tuple_(AuditEvent.created_at, AuditEvent.id)
    conditions = _conditions(account_id, where)
    if past is not None:
        position = (past.created_at, past.id)
        conditions.append(key < position if descending else key > position)
    order = (
        (AuditEvent.created_at.desc(), AuditEvent.id.desc())
        if descending
        else (AuditEvent.created_at, AuditEvent.id)
    )
    rows: list[AuditEvent] = []
    for branch in _actor_branches(where):
        query = select(AuditEvent).where(*conditions, branch).order_by(*order).limit(limit)
        rows += session.scalars(query)
    rows.sort(key=lambda e: (e.created_at, e.id), reverse=descending)
    return rows[:limit]


@dataclass(frozen=True)
class EventPage:
    """One page of audit events, newest first.

    Attributes:
        events: at most the requested number of events.
        older: cursor of the page after this one (older events), None on the last page.
        newer: cursor of the page before this one (newer events), None on the first page.
    """

    events: list[AuditEvent]
    older: Cursor | None
    newer: Cursor | None


def page_events(
    session: Session,
    *,
    actor: Actor,
    where: AuditFilter,
    limit: int,
    older_than: Cursor | None = None,
    newer_than: Cursor | None = None,
) -> EventPage:
    """One page of the events the caller may read that match ``where``, newest first, by
    keyset (seek) paging on ``(created_at, id)``: each page costs the same however deep it is,
    and nothing is counted.

    Args:
        limit: events per page (1-100).
        older_than: the page that follows this position (the "older" link of a page).
        newer_than: the page that precedes this position (the "newer" link); ignored when
            ``older_than`` is given.
    """
    if older_than is None and newer_than is not None:
        rows = _seek(
            session,
            account_id=actor.account_id,
            where=where,
            limit=limit + 1,
            past=newer_than,
            descending=False,
        )
        events = rows[:limit][::-1]
        return EventPage(
            events=events,
            older=Cursor.of(events[-1]) if events else None,
            newer=Cursor.of(events[0]) if len(rows) > limit else None,
        )
    rows = _seek(
        session,
        account_id=actor.account_id,
        where=where,
        limit=limit + 1,
        past=older_than,
        descending=True,
    )
    events = rows[:limit]
    return EventPage(
        events=events,
        older=Cursor.of(events[-1]) if len(rows) > limit else None,
        newer=Cursor.of(events[0]) if events and older_than is not None else None,
    )


#: Events read per query while exporting.
EXPORT_BATCH = 1000


def export_events(
    factory: sessionmaker[Session], *, actor: Actor, where: AuditFilter
) -> Iterator[list[AuditEvent]]:
    """Every event the caller may read that match ``where``, oldest first, in batches of
    :data:`EXPORT_BATCH` read by keyset, each batch in a short read transaction of its own (an
    export of a million events holds no connection between batches while the client reads).

    Events are detached from their session: read their columns only.
    """
    last: Cursor | None = None
    while True:
        with session_scope(factory, write=False) as session:
            batch = _seek(
                session,
                account_id=actor.account_id,
                where=where,
                limit=EXPORT_BATCH,
                past=last,
                descending=False,
            )
            session.expunge_all()
        if not batch:
            return
        yield batch
        if len(batch) < EXPORT_BATCH:
            return
        last = Cursor.of(batch[-1])
