"""``/console/cli/authorize``: a person lets ``stead login --sso`` act as them (docs/cli.md).

Stead is the authorization server of its own command line (RFC 8252, OAuth 2.0 for native
apps): the CLI listens on a loopback port and opens this page with its redirect URI, PKCE
challenge and ``state``. The page needs a console session (else the login page, password or
single sign-on, brings the person back here) and asks "Allow the Stead CLI on <device> to act
as you?". Allow answers 303 to the loopback redirect URI with a one-time ``code`` and the
``state``; Deny with ``error=access_denied`` (RFC 6749 section 4.1.2.1). A redirect URI that is
not a loopback one, or a bad parameter, shows an error page and never redirects (RFC 6749
section 4.1.2.1: the client's identity is not established).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import Form, Query, Request, Response

from stead.console import web
from stead.console.web import ConsoleUser
from stead.errors import BadRequest
from stead.identity import grants
from stead.pipeline.transaction import SessionDep, make_router

router = make_router(prefix="/cli")

#: Longest ``state`` accepted (the CLI sends 43 characters).
STATE_MAX = 500


def _checked(*, client_id: str, redirect_uri: str, challenge: str, method: str, state: str) -> None:
    """Refuse an authorization request that is not Stead's CLI's (each check names its
    parameter).

    Raises:
        BadRequest: the page shows it; nothing is redirected.
    """
    if client_id != grants.CLI_CLIENT_ID:
        raise BadRequest(
            f"client_id must be {grants.CLI_CLIENT_ID}",
            violations=[f"client_id: must be {grants.CLI_CLIENT_ID}"],
        )
    grants.check_redirect_uri(redirect_uri)
    grants.check_challenge(challenge, method)
    if not state or len(state) > STATE_MAX or not state.isprintable():
        raise BadRequest(
            f"state must be 1-{STATE_MAX} printable characters",
            violations=[f"state: must be 1-{STATE_MAX} printable characters"],
        )


def _back_to_cli(redirect_uri: str, **parameters: str) -> Response:
    """303 to the CLI's loopback ``redirect_uri`` with ``parameters`` added to its query."""
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return web.redirect(redirect_uri + separator + urlencode(parameters))


@router.get("/authorize")
async def authorize_page(
    request: Request,
    client_id: str = "",
    redirect_uri: str = "",
    code_challenge: str = "",
    code_challenge_method: str = "",
    state: str = "",
    device_name: Annotated[str, Query(max_length=1000)] = "",
) -> Response:
    """ "Allow the Stead CLI on <device> to act as you?" with Allow and Deny. 400 page for a bad
    request (checked before the login, so a bad link never leads there); without a session,
    the login page with ``next`` back here."""
    _checked(
        client_id=client_id,
        redirect_uri=redirect_uri,
        challenge=code_challenge,
        method=code_challenge_method,
        state=state,
    )
    await web.current_console(request)
    parts = urlsplit(redirect_uri)
    # The Allow button's POST is answered with a redirect to the loopback address: a browser
    # applies the page's form-action to that redirect too (CSP Level 3, "form-action").
    csp = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        f"form-action 'self' {parts.scheme}://{parts.netloc}"
    )
    return web.render(
        request,
        "cli/authorize.html",
        {
            "device": grants.device_name(device_name),
            "fields": {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "code_challenge": code_challenge,
                "code_challenge_method": code_challenge_method,
                "state": state,
                "device_name": device_name,
            },
        },
        headers={"Content-Security-Policy": csp},
    )


@router.post("/authorize")
def authorize(
    console: ConsoleUser,
    db: SessionDep,
    client_id: Annotated[str, Form()] = "",
    redirect_uri: Annotated[str, Form()] = "",
    code_challenge: Annotated[str, Form()] = "",
    code_challenge_method: Annotated[str, Form()] = "",
    state: Annotated[str, Form()] = "",
    device_name: Annotated[str, Form(max_length=1000)] = "",
    decision: Annotated[str, Form()] = "",
) -> Response:
    """Allow (``decision=allow``): a one-time code for the CLI (60 s, bound to the challenge,
    the redirect URI and this user), 303 to the loopback with ``code`` and ``state``. Anything
    else denies: 303 with ``error=access_denied`` and ``state``. Audited either way."""
    _checked(
        client_id=client_id,
        redirect_uri=redirect_uri,
        challenge=code_challenge,
        method=code_challenge_method,
        state=state,
    )
    device = grants.device_name(device_name)
    if decision != "allow":
        grants.deny(db, actor=console.actor, device=device)
        return _back_to_cli(redirect_uri, error="access_denied", state=state)
    code = grants.start_code(
        db,
        actor=console.actor,
        redirect_uri=redirect_uri,
        challenge=code_challenge,
        device=device,
    )
    return _back_to_cli(redirect_uri, code=code, state=state)
