"""HTTP route of the audit trail (docs/api.md, Audit)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from stead.audit import service
from stead.audit.export import ExportFormat, stream_export, to_read
from stead.audit.schemas import AuditEventRead
from stead.audit.service import AuditFilter
from stead.identity.deps import ActorDep, AuditReader
from stead.pagination import Page
from stead.pipeline.paging import PageDep
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


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(service.in_utc)]


def _filter(
    scope: AuditReader,
    by: Annotated[
        Text | None,
        Query(alias="actor", max_length=255, description="actor id or name (email, client name)"),
    ] = None,
    action: Annotated[
        Text | None, Query(max_length=64, description="e.g. environment.created")
    ] = None,
    since: Annotated[Instant | None, Query(alias="from", description="RFC 3339; inclusive")] = None,
    until: Annotated[Instant | None, Query(alias="to", description="RFC 3339; exclusive")] = None,
) -> AuditFilter:
    """The query's filters inside what the caller may read (:data:`AuditReader`)."""
    return replace(scope, actor=by, action=action, since=since, until=until)


FilterDep = Annotated[AuditFilter, Depends(_filter)]


@router.get("", response_model=Page[AuditEventRead])
def list_audit_events(
    actor: ActorDep, where: FilterDep, session: SessionDep, params: PageDep
) -> Page[AuditEventRead]:
    """List audit events, oldest first. Super Admins and Admins read every event; anyone else
    the events of projects they own. ``projectId`` narrows to one project (404 if invisible,
    403 if the caller may not read its trail)."""
    total, rows = service.list_events(session, actor=actor, where=where, params=params)
    return Page(page=params.page, size=params.size, total=total, results=[to_read(e) for e in rows])


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}, "application/json": {}},
            "description": "every matching event, oldest first, as a download",
        }
    },
)
def export_audit_events(
    request: Request,
    actor: ActorDep,
    where: FilterDep,
    export_format: Annotated[
        ExportFormat, Query(alias="format", description="csv or json")
    ] = "csv",
) -> StreamingResponse:
    """Every audit event the caller may read that matches the filters of ``GET
    /v1/audit-events``, oldest first, streamed as a CSV or JSON file (docs/api.md, Audit)."""
    return stream_export(request, actor=actor, where=where, export_format=export_format)
