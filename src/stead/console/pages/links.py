"""The pages one-time links open (docs/console.md, People):

- ``/console/invitations/{token}``, linked from an invitation mail: the project, the role, who
  invited and the expiry; a new user chooses a password there, an existing user logs in with
  theirs; either way the browser gets a fresh session and goes to the project.
- ``/console/reset/{token}``, an admin's password reset link: the user chooses a new password;
  the link is used up and every session of the user ends.

An unknown, revoked, used or expired link shows an error page and changes nothing. The pages
have no session yet, so their forms carry the login form's signed double-submit CSRF token
(:mod:`stead.console.pages.auth`). The token in the path is written to the access log redacted,
and ``Referrer-Policy: same-origin`` keeps it from other sites.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request, Response
from starlette.concurrency import run_in_threadpool

from stead.console import web
from stead.console.pages.auth import LOGIN_CSRF, login_csrf_ok, login_form, start_session
from stead.errors import AppError, BadRequest
from stead.identity import members, users
from stead.identity.deps import request_origin
from stead.identity.routes import throttled_login
from stead.identity.schemas import InvitationAccept, PasswordResetUse
from stead.identity.service import find_user, user_actor
from stead.pipeline.transaction import SessionDep, make_router

router = make_router()

#: Service field names -> the form's.
_FIELDS = {"displayName": "display_name", "confirmPassword": "confirm_password"}


def _check_csrf(request: Request, sent: str) -> None:
    """Refuse (403) a form whose CSRF token does not match the browser's seed cookie."""
    if not login_csrf_ok(request, sent):
        raise web.CsrfRefused


def _page(
    request: Request,
    db: SessionDep,
    token: str,
    *,
    errors: web.FormErrors | None = None,
    status: int = 200,
    display_name: str = "",
) -> Response:
    invitation, project = members.open_invitation(db, token=token)
    context = {
        "invitation": invitation,
        "project": project,
        "has_user": find_user(db, email=invitation.email) is not None,
        "errors": errors,
        "display_name": display_name,
        "action": f"{web.PREFIX}/invitations/{token}",
    }
    return login_form(request, "people/invitation.html", context, status=status)


@router.get("/invitations/{token}")
def invitation(request: Request, db: SessionDep, token: str) -> Response:
    """The invitation: project, role, inviter, expiry, and the form that accepts it (404 or
    409 error page when it cannot be used)."""
    return _page(request, db, token)


@router.post("/invitations/{token}")
async def accept(
    request: Request,
    db: SessionDep,
    token: str,
    password: Annotated[str, Form()] = "",
    confirm_password: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Accept the invitation: create the user with ``password`` (given twice), or log the
    existing user in with theirs; then start a new session and go to the project (303).

    The form again with errors at its fields when the passwords differ or are refused (400)
    or the login fails (401, 429); nothing is created then.
    """
    _check_csrf(request, csrf_token)
    try:
        invitation, _ = await run_in_threadpool(members.open_invitation, db, token=token)
        caller = None
        if await run_in_threadpool(find_user, db, email=invitation.email) is None:
            web.check_confirmation(password, confirm_password)
            data = web.validated(
                InvitationAccept,
                {"token": token, "password": password, "displayName": display_name or None},
            )
        else:
            known, refusal = await throttled_login(
                request, email=invitation.email, password=password, session=db
            )
            if refusal is not None or known is None:
                await run_in_threadpool(db.commit)  # keep the counted, audited failure
                detail = refusal.detail if refusal else "Invalid email or password"
                raise BadRequest(detail, violations=[f"password: {detail}"])
            caller = user_actor(known)
            data = web.validated(InvitationAccept, {"token": token})
        origin = request_origin(request)
        accepted, user, _ = await run_in_threadpool(
            lambda: members.accept(db, data=data, caller=caller, **origin)
        )
    except AppError as exc:
        if exc.status not in (400, 401, 429):
            raise  # unknown, used, expired: the error page
        await run_in_threadpool(db.rollback)
        errors, status = web.form_errors(exc, aliases=_FIELDS), exc.status
        return await run_in_threadpool(
            lambda: _page(
                request, db, token, errors=errors, status=status, display_name=display_name
            )
        )
    target = f"{web.PREFIX}/projects/{accepted.project_id}"
    return await start_session(request, db, user=user, target=target)


def _reset_page(
    request: Request,
    db: SessionDep,
    token: str,
    *,
    errors: web.FormErrors | None = None,
    status: int = 200,
) -> Response:
    _, user = users.open_password_reset(db, token=token)
    context = {"email": user.email, "errors": errors, "action": f"{web.PREFIX}/reset/{token}"}
    return login_form(request, "people/reset.html", context, status=status)


@router.get("/reset/{token}")
def reset(request: Request, db: SessionDep, token: str) -> Response:
    """The form that sets a new password with a reset link (404 or 409 error page when the
    link cannot be used)."""
    return _reset_page(request, db, token)


@router.post("/reset/{token}")
def use_reset(
    request: Request,
    db: SessionDep,
    token: str,
    password: Annotated[str, Form()] = "",
    confirm_password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Set the new password (given twice): the link is used up and every session and token of
    the user ends; then the login page. The form again with errors at its fields (400) when
    the passwords differ or are refused; nothing changes then."""
    _check_csrf(request, csrf_token)
    try:
        web.check_confirmation(password, confirm_password)
        data = web.validated(PasswordResetUse, {"token": token, "password": password})
        users.reset_password(
            db,
            token=data.token.get_secret_value(),
            password=data.password.get_secret_value(),
            **request_origin(request),
        )
    except AppError as exc:
        if exc.status != 400:
            raise
        db.rollback()
        return _reset_page(
            request, db, token, errors=web.form_errors(exc, aliases=_FIELDS), status=400
        )
    response = web.render(request, "people/reset_done.html", {})
    web.delete_cookie(response, request.app.state.settings, LOGIN_CSRF)
    return response
