"""``/console/api-clients``: the account's API clients (``api_client.manage``, as
``/v1/api-clients``): create one or rotate its secret (the secret is shown once, on the answer
to that POST, with ``Cache-Control: no-store``), revoke one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Query, Request, Response

from stead.console import web
from stead.console.web import Console
from stead.errors import AppError
from stead.identity import service
from stead.identity.deps import parse_uuid
from stead.identity.models import ApiClient
from stead.identity.permissions import ACCOUNT_ROLES
from stead.identity.routes import forget_after_commit
from stead.identity.schemas import ApiClientCreate, ApiClientRead
from stead.pagination import PageParams
from stead.pipeline.transaction import SessionDep, make_router

router = make_router(prefix="/api-clients")

PAGE_SIZE = 50
Manager = Annotated[Console, Depends(web.require("api_client.manage"))]


def _roles(console: Console) -> list[tuple[str, str]]:
    """The roles this user may give a client (only a Super Admin makes Super Admin clients)."""
    return [
        (role, role.replace("_", " ").title())
        for role in ACCOUNT_ROLES
        if role != "SUPER_ADMIN" or console.may("api_client.super_admin")
    ]


def _list(
    request: Request,
    db: SessionDep,
    console: Console,
    *,
    q: str | None = None,
    page: int = 0,
    form: dict[str, str] | None = None,
    errors: web.FormErrors | None = None,
    status: int = 200,
) -> Response:
    total, rows = service.list_clients(
        db, actor=console.actor, params=PageParams(page=page, size=PAGE_SIZE), q=q
    )
    return web.render(
        request,
        "api_clients/list.html",
        {
            "clients": [ApiClientRead.model_validate(c) for c in rows],
            "total": total,
            **web.page_links("/api-clients", q=q, page=page, size=PAGE_SIZE, total=total),
            "roles": _roles(console),
            "form": form or {"name": "", "role": "MEMBER"},
            "errors": errors,
        },
        status=status,
        block="results",
    )


@router.get("")
def api_clients(
    request: Request,
    console: Manager,
    db: SessionDep,
    q: Annotated[str | None, Query(max_length=255)] = None,
    page: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    """The clients (revoked ones too), searched by name prefix (``q``), 50 a page, and the
    form that creates one; an htmx request gets the ``results`` block only."""
    return _list(request, db, console, q=(q or "").strip() or None, page=page)


def _shown_once(request: Request, client: ApiClient, secret: str, *, created: bool) -> Response:
    """The one page that shows ``secret``: never cached, never kept."""
    return web.render(
        request,
        "api_clients/secret.html",
        {"client": ApiClientRead.model_validate(client), "secret": secret, "created": created},
        status=201 if created else 200,
        headers={"Cache-Control": "no-store"},
    )


@router.post("")
def create_api_client(
    request: Request,
    console: Manager,
    db: SessionDep,
    name: Annotated[str, Form(max_length=1024)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Create a client and show its secret once; bad input comes back as the form with its
    errors (nothing created)."""
    form = {"name": name, "role": role}
    try:
        data = web.validated(ApiClientCreate, form)
        client, secret = service.register_client(
            db, actor=console.actor, name=data.name, role=data.role
        )
    except AppError as exc:
        if exc.status != 400:
            raise
        db.rollback()
        errors = web.form_errors(exc, known=form.keys())
        return _list(request, db, console, form=form, errors=errors, status=exc.status)
    return _shown_once(request, client, secret, created=True)


def _client(db: SessionDep, console: Console, client_id: str) -> ApiClient:
    return service.get_client(
        db, actor=console.actor, client_id=parse_uuid(client_id, field="clientId")
    )


@router.post("/{client_id}/secret")
def rotate_secret(request: Request, client_id: str, console: Manager, db: SessionDep) -> Response:
    """Give the client a new secret and show it once; its old secret and tokens stop
    working."""
    client = _client(db, console, client_id)
    secret = service.rotate_secret(db, actor=console.actor, client=client)
    forget_after_commit(db, request, client.id)
    return _shown_once(request, client, secret, created=False)


@router.post("/{client_id}/revoke")
def revoke(request: Request, client_id: str, console: Manager, db: SessionDep) -> Response:
    """Revoke the client (its secret and tokens stop working), then back to the list."""
    client = _client(db, console, client_id)
    service.revoke_client(db, actor=console.actor, client=client)
    forget_after_commit(db, request, client.id)
    web.flash(db, console, f"API client {client.name} is revoked.")
    return web.redirect(f"{web.PREFIX}/api-clients")
