"""Audit events as the API shows them, and the CSV and JSON files of an export (docs/api.md,
Audit): shared by ``GET /v1/audit-events/export`` and the console's audit page."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Literal

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from stead.audit.models import AuditEvent
from stead.audit.schemas import AuditActor, AuditEventRead, AuditTarget
from stead.audit.service import AuditFilter, export_events
from stead.pipeline.admission import SCOPE_KEY, Admission

if TYPE_CHECKING:
    from stead.identity.actor import Actor

#: The export's file formats.
ExportFormat = Literal["csv", "json"]


def to_read(event: AuditEvent) -> AuditEventRead:
    """The wire form of ``event`` (what ``GET /v1/audit-events`` lists)."""
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
            writer.writerows(_csv_row(to_read(e)) for e in batch)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        yield out.getvalue()
        return
    separator = "["
    for batch in batches:
        items = (
            json.dumps(to_read(e).model_dump(mode="json", by_alias=True), separators=(",", ":"))
            for e in batch
        )
        yield separator + ",".join(items)
        separator = ","
    yield "[]" if separator == "[" else "]"


def export_headers(export_format: ExportFormat) -> dict[str, str]:
    """Headers of an export answer: its media type, a download file name, and no caching (the
    file holds what the caller may read now)."""
    media = "text/csv; charset=utf-8" if export_format == "csv" else "application/json"
    return {
        "Content-Type": media,
        "Content-Disposition": f'attachment; filename="audit-events.{export_format}"',
        "Cache-Control": "no-store",
    }


def stream_export(
    request: Request, *, actor: Actor, where: AuditFilter, export_format: ExportFormat
) -> StreamingResponse:
    """The answer of an export: every event ``actor`` may read that matches ``where``, oldest
    first, in ``export_format``.

    The request gives back its admission slot (:mod:`stead.pipeline.admission`) when the
    answer starts, and takes one only while it reads each batch: a download lasts as long as
    the client takes to read it, and must not hold a slot meanwhile.
    """
    admission = request.scope.get(SCOPE_KEY)
    gate = admission if isinstance(admission, Admission) else None
    chunks = export_chunks(
        export_events(request.app.state.read_sessionmaker, actor=actor, where=where),
        export_format,
    )

    async def body() -> AsyncIterator[str]:
        # on the event loop (asyncio's semaphore is not for worker threads)
        if gate is not None:
            gate.leave()
        while True:
            if gate is not None:
                await gate.enter()
            try:
                chunk = await run_in_threadpool(next, chunks, None)
            finally:
                if gate is not None:
                    gate.leave()
            if chunk is None:
                return
            yield chunk

    return StreamingResponse(body(), headers=export_headers(export_format))
