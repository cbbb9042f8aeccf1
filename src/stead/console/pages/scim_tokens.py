"""``/console/scim-tokens``: the tokens identity providers send to ``/scim/v2``
(``user.manage``, as ``/v1/scim-tokens``; docs/scim.md): make one (its value is shown once, on
the answer to that POST, with ``Cache-Control: no-store``), revoke one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request, Response

from stead.console import web
from stead.console.web import Console
from stead.errors import AppError
from stead.identity.deps import parse_uuid
from stead.pagination import MAX_SIZE, PageParams
from stead.pipeline.transaction import SessionDep, make_router
from stead.scim import PREFIX as SCIM_PREFIX
from stead.scim import tokens
from stead.scim.models import ScimToken
from stead.scim.schemas import ScimTokenCreate

router = make_router(prefix="/scim-tokens")

Manager = Annotated[Console, Depends(web.require("user.manage"))]


def _list(
    request: Request,
    db: SessionDep,
    console: Console,
    *,
    form: dict[str, str] | None = None,
    errors: web.FormErrors | None = None,
    status: int = 200,
) -> Response:
    total, rows = tokens.list_tokens(
        db, actor=console.actor, params=PageParams(page=0, size=MAX_SIZE)
    )
    return web.render(
        request,
        "scim/tokens.html",
        {
            "tokens": [tokens.token_read(t) for t in rows],
            "total": total,
            "endpoint": request.app.state.settings.public_url.rstrip("/") + SCIM_PREFIX,
            "form": form or {"name": ""},
            "errors": errors,
        },
        status=status,
    )


@router.get("")
def scim_tokens(request: Request, console: Manager, db: SessionDep) -> Response:
    """The SCIM tokens (revoked ones too), the SCIM endpoint and the form that makes a token."""
    return _list(request, db, console)


@router.post("")
def create_scim_token(
    request: Request,
    console: Manager,
    db: SessionDep,
    name: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Make a token and show it once; bad input comes back as the form with its errors."""
    form = {"name": name}
    try:
        data = web.validated(ScimTokenCreate, form)
        token, value = tokens.create_token(db, actor=console.actor, name=data.name)
    except AppError as exc:
        if exc.status != 400:
            raise
        db.rollback()
        errors = web.form_errors(exc, known=form.keys())
        return _list(request, db, console, form=form, errors=errors, status=exc.status)
    return web.render(
        request,
        "scim/token.html",
        {
            "token": tokens.token_read(token),
            "value": value,
            "endpoint": request.app.state.settings.public_url.rstrip("/") + SCIM_PREFIX,
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )


def _confirm_page(
    request: Request, token: ScimToken, *, errors: web.FormErrors | None = None, status: int = 200
) -> Response:
    return web.render(
        request,
        "scim/revoke.html",
        {"token": tokens.token_read(token), "errors": errors},
        status=status,
    )


@router.get("/{token_id}/revoke")
def confirm_revoke(request: Request, token_id: str, console: Manager, db: SessionDep) -> Response:
    """The page that asks to type the token's name before revoking it."""
    token = tokens.get_token(
        db, actor=console.actor, token_id=parse_uuid(token_id, field="tokenId")
    )
    return _confirm_page(request, token)


@router.post("/{token_id}/revoke")
def revoke(
    request: Request,
    token_id: str,
    console: Manager,
    db: SessionDep,
    confirm: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Revoke the token when ``confirm`` is its name (else the confirmation page again, 400),
    then back to the list."""
    token = tokens.get_token(
        db, actor=console.actor, token_id=parse_uuid(token_id, field="tokenId")
    )
    if confirm != token.name:
        errors = web.FormErrors()
        errors.add("confirm", f"Type the token's name, {token.name}, to revoke it.")
        return _confirm_page(request, token, errors=errors, status=400)
    tokens.revoke_token(db, actor=console.actor, token=token)
    web.flash(db, console, f"SCIM token {token.name} is revoked.")
    return web.redirect(f"{web.PREFIX}/scim-tokens")
