"""``/console/audit``: the audit trail the user may read (the rule of ``GET /v1/audit-events``),
newest first, filtered by actor, action, project and time (the query string holds ``actor``,
``action``, ``project``, ``from``, ``to`` and the keyset cursors ``older`` / ``newer``), with
CSV and JSON exports of the same filters."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse

from stead.audit import service
from stead.audit.export import ExportFormat, stream_export
from stead.audit.service import AuditFilter, Cursor
from stead.console import web
from stead.console.web import ConsoleUser
from stead.errors import BadRequest
from stead.identity.deps import audit_scope, parse_uuid
from stead.pipeline.transaction import SessionDep, make_router

router = make_router(prefix="/audit")

PAGE_SIZE = 50
FILTERS = ("actor", "action", "project", "from", "to")


def _instant(value: str, name: str) -> datetime:
    """A date (``2026-01-15``), a date and time without zone (UTC, as a ``datetime-local``
    input sends it) or an RFC 3339 date-time, as an instant in UTC.

    Raises:
        BadRequest: not a date, or outside years 1-9999 once in UTC (the field named).
    """
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"{name!r} is not a date",
            violations=[f"{name}: must be a date or date and time, e.g. 2026-01-15T10:30 (UTC)"],
        ) from None
    try:
        return service.in_utc(at if at.tzinfo else at.replace(tzinfo=UTC))
    except ValueError as exc:
        raise BadRequest(f"{name!r} is out of range", violations=[f"{name}: {exc}"]) from None


def _where(db: Any, console: web.Console, form: dict[str, str]) -> AuditFilter:
    """The filters of ``form`` inside what the user may read.

    Raises:
        BadRequest: a malformed field (named by the form's field names).
        NotFound: ``project`` names a project the user cannot see.
        PermissionDenied: the user may not read that project's trail.
    """
    problems: list[str] = []
    times: dict[str, datetime | None] = {}
    for name in ("from", "to"):
        try:
            times[name] = _instant(form[name], name) if form[name] else None
        except BadRequest as exc:
            problems += exc.violations
    if len(form["actor"]) > 255:
        problems.append("actor: at most 255 characters")
    if len(form["action"]) > 64:
        problems.append("action: at most 64 characters")
    if form["project"]:
        try:
            parse_uuid(form["project"], field="project")
        except BadRequest:
            problems.append("project: must be a project id (a UUID)")
    if problems:
        raise BadRequest("The filters are not valid", violations=problems)
    scope = audit_scope(db, actor=console.actor, project_id=form["project"] or None)
    return replace(
        scope,
        actor=form["actor"] or None,
        action=form["action"] or None,
        since=times["from"],
        until=times["to"],
    )


def _url(path: str, form: dict[str, str], **extra: str) -> str:
    query = urlencode({k: v for k, v in {**form, **extra}.items() if v})
    return f"{web.PREFIX}/audit{path}" + (f"?{query}" if query else "")


def _form(**values: str | None) -> dict[str, str]:
    return {name: (values.get(name) or "").strip() for name in FILTERS}


Filter = Annotated[str | None, Query(max_length=1024)]


@router.get("")
def audit_page(
    request: Request,
    console: ConsoleUser,
    db: SessionDep,
    actor: Filter = None,
    action: Filter = None,
    project: Filter = None,
    since: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    until: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    older: Filter = None,
    newer: Filter = None,
) -> Response:
    """One page of events and the filter form; bad filters come back as a 400 with the
    messages at their fields (the whole page, which htmx swaps for ``<main>``). An htmx
    request (filters sent, a page link followed) gets the ``results`` block only."""
    form = _form(actor=actor, action=action, project=project, **{"from": since, "to": until})
    try:
        where = _where(db, console, form)
        page = service.page_events(
            db,
            actor=console.actor,
            where=where,
            limit=PAGE_SIZE,
            older_than=Cursor.parse(older, field="older") if older else None,
            newer_than=Cursor.parse(newer, field="newer") if newer else None,
        )
    except BadRequest as exc:
        # the whole page, also for htmx: the messages sit at the filters, outside the results
        # (htmx then swaps <main> for the page's <main>)
        errors = web.form_errors(exc)
        return web.render(
            request,
            "audit/list.html",
            {"form": form, "errors": errors, "events": [], "failed": True},
            status=400,
            headers={"HX-Retarget": "#main", "HX-Reselect": "#main", "HX-Reswap": "outerHTML"},
        )
    first = older is None and newer is None
    return web.render(
        request,
        "audit/list.html",
        {
            "form": form,
            "events": page.events,
            "failed": False,
            "next_url": _url("", form, older=page.older.token()) if page.older else None,
            "prev_url": _url("", form, newer=page.newer.token()) if page.newer else None,
            "first_url": None if first else _url("", form),
            "csv_url": _url("/export", form, format="csv"),
            "json_url": _url("/export", form, format="json"),
        },
        block="results",
    )


@router.get("/export")
def export_audit(
    request: Request,
    console: ConsoleUser,
    db: SessionDep,
    export_format: Annotated[ExportFormat, Query(alias="format")] = "csv",
    actor: Filter = None,
    action: Filter = None,
    project: Filter = None,
    since: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    until: Annotated[str | None, Query(alias="to", max_length=64)] = None,
) -> StreamingResponse:
    """The page's filters as a CSV or JSON download (the files of ``GET
    /v1/audit-events/export``), every matching event oldest first."""
    form = _form(actor=actor, action=action, project=project, **{"from": since, "to": until})
    where = _where(db, console, form)
    return stream_export(request, actor=console.actor, where=where, export_format=export_format)
