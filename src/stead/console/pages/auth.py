"""Logging in and out of the console (docs/console.md, Sessions).

The login form has no session yet, so its CSRF token is a signed double submit (OWASP CSRF
Prevention Cheat Sheet, "Signed Double-Submit Cookie"): a random value in the cookie
``stead_login_csrf`` and, in the form, its HMAC under the server's signing key. A successful
login starts a new session with a new id, ends any session the browser brought along and
sends the browser to ``next`` (a console path only).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Annotated, Any

from fastapi import Form, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from stead.console import sessions, web
from stead.console.web import ConsoleUser
from stead.errors import AppError
from stead.identity.models import User
from stead.identity.routes import throttled_login
from stead.pipeline.transaction import SessionDep, make_router

router = make_router()

LOGIN_CSRF = "stead_login_csrf"
LOGGED_OUT = "You have logged out."


def login_token(request: Request, seed: str) -> str:
    """The CSRF token of a form without a session (login, one-time link pages): URL-safe
    base64 of HMAC-SHA256 under the signing key of the browser's ``stead_login_csrf`` seed."""
    mac = hmac.new(request.app.state.signing_key, b"login:" + seed.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def login_form(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> Response:
    """Render ``template``, a form without a session (login, one-time link pages), with
    ``csrf_token`` (:func:`login_token`) added to ``context``, and set the browser's
    ``stead_login_csrf`` seed cookie (kept when it brought one, else a new random one)."""
    settings = request.app.state.settings
    seed = request.cookies.get(web.cookie_name(settings, LOGIN_CSRF)) or secrets.token_urlsafe(32)
    context = {**context, "csrf_token": login_token(request, seed)}
    response = web.render(request, template, context, status=status)
    web.set_cookie(response, settings, LOGIN_CSRF, seed)
    return response


def login_csrf_ok(request: Request, sent: str) -> bool:
    """True if ``sent`` is the :func:`login_token` of the browser's seed cookie (compared in
    constant time); False without the cookie."""
    seed = request.cookies.get(web.cookie_name(request.app.state.settings, LOGIN_CSRF), "")
    return bool(seed) and hmac.compare_digest(sent.encode(), login_token(request, seed).encode())


async def start_session(request: Request, db: Session, *, user: User, target: str) -> Response:
    """Start a new console session for ``user`` (ending the one the browser brought, so a
    session id is never carried over a login) and answer 303 to ``target`` with its cookie;
    the ``stead_login_csrf`` seed cookie is removed."""
    settings = request.app.state.settings
    brought = request.cookies.get(web.cookie_name(settings))

    def start() -> sessions.Started:
        if brought:
            sessions.end_session(db, id_hash=sessions.hash_id(brought))
        return sessions.start_session(
            db,
            user=user,
            user_agent=request.headers.get("user-agent", ""),
            address=request.client.host if request.client else None,
        )

    started = await run_in_threadpool(start)
    response = web.redirect(target)
    web.set_cookie(response, settings, "stead_session", started.cookie_value)
    web.delete_cookie(response, settings, LOGIN_CSRF)
    return response


def _login_page(
    request: Request,
    *,
    next_url: str,
    email: str = "",
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    errors = None
    if error is not None:
        errors = web.FormErrors()
        errors.add(None, error)
    settings = request.app.state.settings
    sso = None
    if settings.sso_enabled:
        sso = {
            "name": settings.oidc_display_name,
            "admins_only": settings.password_login == "super-admins",
        }
    context = {"next": next_url, "email": email, "errors": errors, "notice": notice, "sso": sso}
    return login_form(request, "login.html", context, status=status)


@router.get("/login")
def login_page(
    request: Request,
    next_url: Annotated[str | None, Query(alias="next")] = None,
    logged_out: Annotated[str | None, Query(alias="logged_out")] = None,
) -> Response:
    """The login form."""
    return _login_page(
        request, next_url=web.safe_next(next_url), notice=LOGGED_OUT if logged_out else None
    )


@router.post("/login")
async def log_in(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next_url: Annotated[str, Form(alias="next")] = "",
) -> Response:
    """Check the email and password with the login service (lockout, throttle, audit; the
    same answer for an unknown email and a wrong password), then start a session.

    Answers 303 to ``next`` with the new session cookie; the form again with a message
    otherwise: 401 wrong email or password, 429 throttled or locked, 403 a form that did not
    come from this console.
    """
    target = web.safe_next(next_url)
    if not login_csrf_ok(request, csrf_token):
        return _login_page(
            request,
            next_url=target,
            email=email,
            error="The login form had expired; please log in again.",
            status=403,
        )
    try:
        user, refusal = await throttled_login(
            request, email=email, password=password, session=session
        )
    except AppError as exc:  # throttled before the password was checked
        return _login_page(
            request,
            next_url=target,
            email=email,
            error=exc.detail,
            status=exc.status,
        )
    if refusal is not None or user is None:
        await run_in_threadpool(session.commit)  # keep the counted, audited failure
        detail = refusal.detail if refusal else "Invalid email or password"
        status = 429 if refusal is not None and "Retry-After" in refusal.headers else 401
        return _login_page(request, next_url=target, email=email, error=detail, status=status)
    return await start_session(request, session, user=user, target=target)


@router.post("/logout")
def log_out(console: ConsoleUser, session: SessionDep, request: Request) -> Response:
    """End this browser's session and go to the login page."""
    sessions.end_session(session, id_hash=console.session_key)
    response = web.redirect(f"{web.PREFIX}/login?logged_out=1")
    web.delete_cookie(response, request.app.state.settings, "stead_session")
    return response
