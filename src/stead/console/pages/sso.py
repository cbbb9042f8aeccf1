"""Single sign-on pages (docs/sso.md): ``/console/sso/login`` sends the browser to the identity
provider, ``/console/sso/callback`` is where it comes back (register
``<public URL>/console/sso/callback`` at the provider).

A login that goes through gets a fresh console session exactly like a password login
(:func:`stead.console.pages.auth.start_session`). A refused one shows a page that says why
(never a token or code), is audited as ``user.sso_refused`` and changes nothing else. Both
pages answer 404 while single sign-on is not configured.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from stead.console import web
from stead.console.pages.auth import start_session
from stead.db import session_scope
from stead.errors import NotFound
from stead.identity import sso
from stead.identity.deps import request_origin
from stead.identity.routes import forget_after_commit
from stead.pipeline.transaction import WriteSessionDep, make_router

router = make_router()
log = logging.getLogger("stead.sso")

#: What a person sees when the server cannot use its identity provider (HTTP 502): the cause
#: (an outbound policy that refuses the issuer, a provider that is down or misconfigured) is for
#: an administrator, in the server log and the audit event.
MISCONFIGURED = "Single sign-on is not set up correctly; tell your administrator."


def provider(request: Request) -> sso.Provider:
    """The app's :class:`~stead.identity.sso.Provider`, made on first use.

    Raises:
        NotFound: single sign-on is not configured.
    """
    state = request.app.state
    found: sso.Provider | None = getattr(state, "sso_provider", None)
    if found is None:
        if not state.settings.sso_enabled:
            raise NotFound("Single sign-on is not configured on this server")
        found = state.sso_provider = sso.Provider(state.settings)
    return found


async def _refused(request: Request, refusal: sso.SsoRefused) -> Response:
    """Audit ``refusal`` in a transaction of its own and show the refusal page. A 429 (too
    many sign-ins under way from one address) is not audited: it answers a flood, which would
    otherwise fill the audit trail instead."""
    settings = request.app.state.settings
    origin = request_origin(request)

    def note() -> None:
        with session_scope(request.app.state.sessionmaker, write=True) as session:
            sso.record_refusal(session, refusal=refusal, **origin)

    if refusal.status != 429:
        await run_in_threadpool(note)
    detail = refusal.detail
    if refusal.status == 502:
        log.warning("single sign-on failed: %s (%s)", detail, refusal.reason)
        detail = MISCONFIGURED
    context = {"detail": detail, "status": refusal.status}
    response = web.render(request, "sso_refused.html", context, status=refusal.status)
    web.delete_cookie(response, settings, sso.COOKIE)
    return response


async def _signed_in(request: Request) -> bool:
    """Whether the browser has a live console session."""
    try:
        await web.current_console(request)
    except web.LoginRequired:
        return False
    return True


@router.get("/sso/login")
async def sso_login(
    request: Request, next_url: Annotated[str | None, Query(alias="next")] = None
) -> Response:
    """Send the browser to the identity provider (303), with the ``stead_sso`` cookie that
    binds the login to it; ``next`` is the console path to go to afterwards (another is
    ignored, like the login page's)."""
    found = provider(request)
    target = web.safe_next(next_url)

    def run() -> tuple[str, str]:
        found.metadata()  # read before the write transaction, not inside it
        with session_scope(request.app.state.sessionmaker, write=True) as session:
            return sso.begin(
                session,
                provider=found,
                next_url=target,
                address=request.client.host if request.client else None,
            )

    try:
        url, verifier = await run_in_threadpool(run)
    except sso.SsoRefused as exc:
        return await _refused(request, exc)
    response = RedirectResponse(url, status_code=303)
    web.set_cookie(response, request.app.state.settings, sso.COOKIE, verifier)
    return response


@router.get("/sso/callback")
async def sso_callback(
    request: Request,
    db: WriteSessionDep,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
    iss: str | None = None,
) -> Response:
    """Finish a login: the ``state`` is used up, the ``code`` exchanged, the ID token checked,
    the user found, linked or made (:func:`stead.identity.sso.sign_in`), then a new session
    and 303 to the ``next`` path given at the start. Any refusal: the refusal page (400, 403,
    or 502 when the provider cannot be reached)."""
    found = provider(request)
    settings = request.app.state.settings
    cookie = request.cookies.get(web.cookie_name(settings, sso.COOKIE))

    def use() -> sso.Pending:
        with session_scope(request.app.state.sessionmaker, write=True) as session:
            return sso.take(session, state=state)

    try:
        if error is not None:
            # The person cancelled, or the provider refused: say so (its state, if it sent
            # one as RFC 6749 section 4.1.2.1 asks, is used up all the same).
            with contextlib.suppress(sso.SsoRefused):
                await run_in_threadpool(use)
            raise sso.provider_error(error)
        pending = await run_in_threadpool(use)
        verifier = sso.check(pending, cookie=cookie)
        if iss is not None and iss != (await run_in_threadpool(found.metadata))["issuer"]:
            # RFC 9207: the answer names the provider that sent it (mix-up attacks).
            raise sso.SsoRefused(
                "The answer came from another identity provider.", reason="wrong issuer"
            )
        if not code:
            raise sso.SsoRefused(
                "The identity provider's answer has no code; please log in again.",
                reason="code missing",
            )
        claims = await run_in_threadpool(
            found.redeem, code=code, verifier=verifier, nonce=pending.nonce
        )
        user = await run_in_threadpool(
            sso.sign_in, db, settings=settings, claims=claims, **request_origin(request)
        )
    except sso.SsoRefused as exc:
        await run_in_threadpool(db.rollback)
        if exc.reason == "state unknown or used" and await _signed_in(request):
            # The Back button brought a signed-in person to a used login link: not a refusal.
            return web.redirect(f"{web.PREFIX}/projects")
        return await _refused(request, exc)
    forget_after_commit(db, request, user.id)
    response = await start_session(request, db, user=user, target=pending.next_url)
    web.delete_cookie(response, settings, sso.COOKIE)
    return response
