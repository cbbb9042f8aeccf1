"""HTTP route of the audit trail (docs/api.md, Audit)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BeforeValidator

from stead.audit import service
from stead.audit.models import AuditEvent
from stead.audit.schemas import AuditActor, AuditEventRead, AuditTarget
from stead.audit.service import AuditFilter
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
    return Page(page=params.page, size=params.size, total=total, results=[_read(e) for e in rows])


#: Columns of the CSV export, in order.
CSV_COLUMNS = (
    "id",
    "createdAt",
    "action",
    "actorType",
    "actorId",
    "actorName",
    "targetType",
    "targetId",
    "projectId",
    "requestId",
    "sourceIp",
    "details",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell. Text a spreadsheet would run as a formula (it starts with ``=``, ``+``,
    ``-``, ``@``, tab or carriage return) gets a leading ``'``, as OWASP's "CSV Injection"
    page advises: names and ids in events are chosen by callers."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_row(event: AuditEventRead) -> list[str]:
    return [
        str(event.id),
        event.model_dump(mode="json", by_alias=True)["createdAt"],
        _cell(event.action),
        _cell(event.actor.type),
        _cell(event.actor.id),
        _cell(event.actor.name),
        _cell(event.target.type),
        _cell(event.target.id),
        _cell(event.project_id),
        _cell(event.request_id),
        _cell(event.source_ip),
        _cell(json.dumps(event.details, separators=(",", ":"), sort_keys=True)),
    ]


def export_chunks(
    batches: Iterator[list[AuditEvent]], export_format: ExportFormat
) -> Iterator[str]:
    """The text of an export, a chunk per batch of events: CSV (RFC 4180, a header row, CRLF
    line ends) or a JSON array of the objects ``GET /v1/audit-events`` lists."""
    if export_format == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for batch in batches:
            writer.writerows(_csv_row(_read(e)) for e in batch)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        yield out.getvalue()
        return
    separator = "["
    for batch in batches:
        items = (
            json.dumps(_read(e).model_dump(mode="json", by_alias=True), separators=(",", ":"))
            for e in batch
        )
        yield separator + ",".join(items)
        separator = ","
    yield "[]" if separator == "[" else "]"


ExportFormat = Literal["csv", "json"]


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
    batches = service.export_events(request.app.state.read_sessionmaker, actor=actor, where=where)
    media = "text/csv; charset=utf-8" if export_format == "csv" else "application/json"
    return StreamingResponse(
        export_chunks(batches, export_format),
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="audit-events.{export_format}"',
            "Cache-Control": "no-store",
        },
    )
