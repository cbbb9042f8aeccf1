"""``/console/plan``: paste or upload a declarative YAML file, see its plan (what would be
created, updated, replaced or deleted, and the document's problems at their lines), then Apply,
which plans again and refuses when the plan is not the one previewed.

Planning and applying run the declarative tooling as the logged-in person through ``/v1`` in
this process (:mod:`stead.console.planner`, imported on use: the server does not load the SDK
at start). While it runs, the page's own request steps out of its transaction and admission
slot, so the API calls it makes are admitted like any other request.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import File, Form, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from stead.console import web
from stead.console.web import Console, ConsoleUser
from stead.identity.models import User
from stead.identity.service import issue_token
from stead.pipeline.transaction import SessionDep, make_router, stepped_out

if TYPE_CHECKING:
    from stead.console.planner import Outcome

router = make_router(prefix="/plan")

#: The largest document the page takes, in bytes.
MAX_DOCUMENT = 1_000_000


def _page(
    request: Request,
    *,
    document: str = "",
    prune: bool = False,
    outcome: Outcome | None = None,
    notice: str | None = None,
    errors: web.FormErrors | None = None,
    status: int = 200,
) -> Response:
    pending = outcome is not None and any(r.action != "no change" for r in outcome.rows)
    return web.render(
        request,
        "plan/page.html",
        {
            "document": document,
            "prune": prune,
            "outcome": outcome,
            "may_apply": outcome is not None and not outcome.problems and pending,
            "notice": notice,
            "errors": errors,
        },
        status=status,
        headers={"Cache-Control": "no-store"},
    )


@router.get("")
def plan_form(request: Request, console: ConsoleUser) -> Response:
    """The empty form."""
    return _page(request)


def _document(text: str, upload: UploadFile | None) -> tuple[str, web.FormErrors | None]:
    if upload is not None and upload.filename:
        raw = upload.file.read(MAX_DOCUMENT + 1)
        field = "file"
    else:
        raw, field = text.encode(), "document"
    errors = web.FormErrors()
    if len(raw) > MAX_DOCUMENT:
        errors.add(field, f"The document is larger than {MAX_DOCUMENT:,} bytes.")
    elif not raw.strip():
        errors.add("document", "Paste a YAML document or choose a file.")
    else:
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError:
            errors.add(field, "The file is not UTF-8 text.")
    return "", errors


def _plan(
    request: Request,
    db: SessionDep,
    console: Console,
    document: str,
    *,
    prune: bool,
    apply_digest: str | None,
) -> Response:
    from stead.console import planner

    reading = planner.read_document(document)
    shown = document if reading.shown else ""
    if reading.secrets:
        errors = web.FormErrors()
        errors.add(
            "document",
            "The document holds secret values (" + ", ".join(reading.secrets) + "); the "
            "console does not take them, so it is not shown again. Name secrets by reference, "
            "and set their values on the project's pages, with the API or with stead apply.",
        )
        return _page(request, prune=prune, errors=errors, status=400)
    spec = reading.spec
    if spec is None:
        errors = web.FormErrors()
        for p in reading.problems:
            where = " ".join(
                part for part in (f"line {p.line}" if p.line else "", p.field or "") if part
            )
            errors.add("document", f"{where}: {p.message}" if where else p.message)
        if not reading.shown:
            errors.add(
                None,
                "The document is not shown again: it is not YAML, so it might hold a secret. "
                "Fix it in your editor and paste it again.",
            )
        return _page(request, document=shown, prune=prune, errors=errors, status=400)

    user = db.get_one(User, console.actor.id)
    token = issue_token(user, key=request.app.state.signing_key, ttl_seconds=planner.TOKEN_TTL)
    peer = (request.client.host, request.client.port) if request.client else ("127.0.0.1", 0)
    app = request.app

    def blocking(loop: asyncio.AbstractEventLoop) -> Outcome:
        with planner.person_client(
            app,
            loop,
            base_url=str(request.base_url),
            token=token,
            client=peer,
            request_id=getattr(request.state, "request_id", None),
        ) as sdk:
            return planner.run(sdk, spec, prune=prune, apply_digest=apply_digest)

    async def work() -> Outcome:
        return await run_in_threadpool(blocking, asyncio.get_running_loop())

    try:
        outcome = anyio.from_thread.run(stepped_out, request, db, work)
    except planner.PlanChanged as changed:
        notice = (
            "The plan changed since the preview, so nothing was applied. Review the plan "
            "below and apply it again."
        )
        return _page(
            request,
            document=document,
            prune=prune,
            outcome=changed.outcome,
            notice=notice,
            status=409,
        )
    except planner.SteadError as exc:
        status = getattr(exc, "status", 502)
        errors = web.FormErrors()
        errors.add(None, f"The server refused a change: {exc}")
        return _page(
            request,
            document=document,
            prune=prune,
            errors=errors,
            status=status if 400 <= status < 500 else 502,
        )
    if outcome.applied is not None:
        web.flash(db, console, f"Applied {outcome.applied} change(s).")
        return web.redirect(f"{web.PREFIX}/plan")
    return _page(request, document=document, prune=prune, outcome=outcome)


@router.post("")
def preview(
    request: Request,
    console: ConsoleUser,
    db: SessionDep,
    document: Annotated[str, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
    prune: Annotated[bool, Form()] = False,
) -> Response:
    """Plan the pasted or uploaded document (changes nothing)."""
    text, errors = _document(document, file)
    if errors:
        return _page(request, prune=prune, errors=errors, status=400)
    return _plan(request, db, console, text, prune=prune, apply_digest=None)


@router.post("/apply")
def apply(
    request: Request,
    console: ConsoleUser,
    db: SessionDep,
    document: Annotated[str, Form()] = "",
    digest: Annotated[str, Form(max_length=64)] = "",
    prune: Annotated[bool, Form()] = False,
) -> Response:
    """Plan the document again and apply it if the plan is the one previewed (``digest``);
    otherwise show the new plan, change nothing, and answer 409."""
    text, errors = _document(document, None)
    if errors:
        return _page(request, prune=prune, errors=errors, status=400)
    return _plan(request, db, console, text, prune=prune, apply_digest=digest)
