"""HTTP route of the audit trail (docs/api.md, Audit)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated

from fastapi import Query
from pydantic import AwareDatetime, BeforeValidator

from stead.audit import service
from stead.audit.models import AuditEvent
from stead.audit.schemas import AuditActor, AuditEventRead, AuditTarget
from stead.identity.deps import ActorDep, AuditReader
from stead.pagination import Page, PageDep
from stead.pipeline.transaction import SessionDep, make_router
from stead.wire import Text

router = make_router(prefix="/audit-events", tags=["audit"])

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    """Only an RFC 3339 date-time with a zone (pydantic alone would take ``3`` as a Unix time)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with a time zone, e.g. 2026-01-15T10:30:00Z"
        )
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


def _read(event: AuditEvent) -> AuditEventRead:
    return AuditEventRead(
        id=event.id,
        created_at=event.created_at,
        action=event.action,
        actor=AuditActor(type=event.actor_type, id=event.actor_id, name=event.actor_name),
        target=AuditTarget(type=event.target_type, id=event.target_id),
        project_id=event.project_id,
        request_id=event.request_id,
        source_ip=event.source_ip,
        details=event.details,
    )


@router.get("", response_model=Page[AuditEventRead])
def list_audit_events(
    actor: ActorDep,
    scope: AuditReader,
    session: SessionDep,
    params: PageDep,
    by: Annotated[
        Text | None,
        Query(alias="actor", max_length=255, description="actor id or name (email, client name)"),
    ] = None,
    action: Annotated[
        Text | None, Query(max_length=64, description="e.g. environment.created")
    ] = None,
    since: Annotated[Instant | None, Query(alias="from", description="RFC 3339; inclusive")] = None,
    until: Annotated[Instant | None, Query(alias="to", description="RFC 3339; exclusive")] = None,
) -> Page[AuditEventRead]:
    """List audit events, oldest first. Super Admins and Admins read every event; anyone else
    the events of projects they own. ``projectId`` narrows to one project (404 if invisible,
    403 if the caller may not read its trail)."""
    where = replace(scope, actor=by, action=action, since=since, until=until)
    total, rows = service.list_events(session, actor=actor, where=where, params=params)
    return Page(page=params.page, size=params.size, total=total, results=[_read(e) for e in rows])
