"""``stead login``, ``stead whoami`` and ``stead logout`` (docs/cli.md).

``stead login`` stores API client credentials (``--client-id``/``--client-secret``), or logs a
person in: ``--email`` with their password (the token endpoint's password grant), or ``--sso``
in the browser. ``--sso`` follows RFC 8252 (OAuth 2.0 for native apps): the command listens on
``127.0.0.1`` on a random port (section 7.3), opens the console's ``/console/cli/authorize``
page with a PKCE ``S256`` challenge (RFC 7636) and a random ``state``, waits for the browser to
come back with a one-time code, checks the ``state`` and exchanges the code and its verifier
for the person's tokens. The console signs the person in however it is set up (password or
single sign-on), so the identity provider never sees the loopback address.

Everything a logged-in command does, it does as the person: their permissions, and the audit
trail names them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import typer

from stead.cli.config import (
    ClientConfig,
    ConfigError,
    config_file,
    profile_lock,
    read_profiles,
    resolve,
    write_profile,
)

if TYPE_CHECKING:
    from stead.identity.schemas import TokenResponse
    from stead.sdk import ApiError, Client

#: How long ``stead login --sso`` waits for the browser by default, in seconds.
SSO_TIMEOUT = 300

Url = Annotated[
    str | None,
    typer.Option("--url", envvar="STEAD_URL", help="server base URL", show_default=False),
]
Profile = Annotated[
    str, typer.Option("--profile", envvar="STEAD_PROFILE", help="profile of the config file")
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def describe(exc: ApiError) -> str:
    """An API error as every client command tells it: the server's explanation and each bad
    field on a line of its own; a server error (5xx) adds its status and request id, which the
    server's logs are searched by."""
    text = exc.detail + "".join(f"\n  {v}" for v in exc.violations)
    if exc.status >= 500:
        text += f" (server error {exc.status}, request id {exc.request_id or 'unknown'})"
    return text


# --- a stored login ---------------------------------------------------------------------------


def forget_login(profile: str, refused: str | None) -> None:
    """Forget the person's login of ``profile`` (the profile keeps its URL) if it still holds
    the refresh token ``refused``, which the server refused (``invalid_grant``: the login was
    revoked or has expired, or its user is disabled), so that later commands say that nobody
    is logged in."""
    path = config_file()
    with profile_lock(path):
        stored = read_profiles(path).get(profile, {})
        if refused is not None and stored.get("refresh_token") == refused:
            write_profile(path, profile, {"url": stored.get("url", "")})


def _save_tokens(path: Path, profile: str, url: str, answer: TokenResponse) -> None:
    """Store a person's tokens as profile ``profile`` (replacing what it held)."""
    write_profile(
        path,
        profile,
        {
            "url": url,
            "refresh_token": answer.refresh_token or "",
            "access_token": answer.access_token,
            "expires_at": str(int(time.time()) + answer.expires_in),
        },
    )


def user_client(config: ClientConfig, profile: str) -> Client:
    """A client acting as the person whose login ``config`` holds.

    Under the profile file's lock, the login is read again (another command may have refreshed
    it) and its access token refreshed when it has expired; every refresh, now or later, is
    written back to the file.

    Raises:
        ApiError: the server refused the refresh (the login was revoked or has expired, or
            its user is disabled: ``invalid_grant``, and the login is forgotten).
    """
    from stead.sdk import ApiError, Client

    path = config_file()

    def store(answer: TokenResponse) -> None:
        _save_tokens(path, profile, config.url, answer)

    with profile_lock(path):
        fresh = resolve(url=config.url, client_id=None, client_secret=None, profile=profile)
        if fresh.refresh_token is None:
            fresh = config
        client = Client(
            fresh.url,
            token=fresh.access_token,
            token_expires_at=fresh.expires_at,
            refresh_token=fresh.refresh_token,
            on_refresh=store,
        )
        try:
            client.access_token()
        except ApiError as exc:
            client.close()
            if exc.title == "invalid_grant":
                write_profile(path, profile, {"url": fresh.url})
            raise
        except BaseException:
            client.close()
            raise
    return client


def _end_stored_login(config: ClientConfig, profile: str) -> str:
    """Revoke on the server the person's login that ``config`` holds (best effort) and say
    how that went, for the message of the command."""
    from stead.sdk import ApiError, SteadError

    try:
        with user_client(config, profile) as client:
            current = next((g for g in client.users.grants() if g.current), None)
            if current is not None:
                client.users.revoke_grant(current.id)
    except ApiError as exc:
        if exc.title == "invalid_grant":
            return "the server had already ended it"
        return f"the server did not revoke it: {describe(exc)}"
    except SteadError as exc:
        return f"the server did not revoke it: {exc}"
    return "revoked on the server"


def _replace_stored_login(path: Path, profile: str) -> None:
    """Before a new login is saved as ``profile``: revoke the person's login it held, if any
    (best effort), so that no live login is left that nobody holds."""
    if not read_profiles(path).get(profile, {}).get("refresh_token"):
        return
    old = resolve(url=None, client_id=None, client_secret=None, profile=profile, path=path)
    typer.echo(f"the login it replaces: {_end_stored_login(old, profile)}", err=True)


# --- the browser login --------------------------------------------------------------------------


@dataclass
class _Callback:
    """What the browser brought to the loopback listener: the query of ``/callback``."""

    query: dict[str, str] | None = None


def _listener(callback: _Callback, state: str) -> HTTPServer:
    """An HTTP server on ``127.0.0.1`` and a free port that records the query of the first
    ``/callback`` request carrying ``state`` (anything else on this machine may connect: a
    request without it is answered 400 and changes nothing) and answers the browser with a
    short page."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            parts = urlsplit(self.path)
            if parts.path != "/callback":
                self.send_error(404)
                return
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if not hmac.compare_digest(query.get("state", "").encode(), state.encode()):
                self.send_error(400, "not this login's state")
                return
            if callback.query is None:
                callback.query = query
            done = "code" in query
            page = (
                "<!doctype html><title>Stead CLI</title><h1>"
                + ("You are logged in" if done else "The login did not complete")
                + "</h1><p>You can close this window and go back to the terminal.</p>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Silent: the request line holds the one-time code."""

    return HTTPServer(("127.0.0.1", 0), Handler)


def _pkce() -> tuple[str, str]:
    """A PKCE verifier (64 unreserved characters) and its S256 challenge (RFC 7636 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _can_open_a_browser() -> bool:
    """Whether ``webbrowser`` would open a graphical browser: on Linux and the BSDs only with
    a display or ``BROWSER`` (else it would start a text browser in this terminal)."""
    if sys.platform in ("darwin", "win32") or os.environ.get("BROWSER"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _browser_login(client: Client, url: str, timeout: float, *, browser: bool) -> TokenResponse:
    """Run the loopback login against ``url`` (module docstring) and return the tokens;
    ``browser``: open the page in a browser (else only print its address).

    Raises:
        typer.Exit: the browser did not come back in ``timeout`` seconds, or came back with
            an error (Deny).
    """
    import webbrowser

    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(32)
    callback = _Callback()
    server = _listener(callback, state)
    with server:
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
        query = urlencode(
            {
                "client_id": "stead-cli",
                "redirect_uri": redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": state,
                "device_name": socket.gethostname(),
            }
        )
        authorize = f"{url.rstrip('/').removesuffix('/dpc')}/console/cli/authorize?{query}"
        opening = browser and _can_open_a_browser()
        typer.echo(
            ("Opening your browser to log in. If it does not open, visit" if opening else "Visit")
            + f" this address (in a browser on this machine):\n  {authorize}",
            err=True,
        )
        if opening:
            webbrowser.open(authorize)
        deadline = time.monotonic() + timeout
        while callback.query is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _fail(f"no answer from the browser within {timeout:g} s; run it again")
            server.timeout = left
            server.handle_request()
    answer = callback.query
    if "code" not in answer:
        raise _fail(f"the login was not allowed ({answer.get('error', 'no code')})")
    return client.auth.cli_code_login(answer["code"], verifier, redirect_uri)


# --- the commands -------------------------------------------------------------------------------


@contextmanager
def _anonymous(url: str) -> Iterator[Client]:
    """A client without credentials (for the token endpoint); API errors end the command."""
    from stead.sdk import ApiError, Client, SteadError

    try:
        with Client(url) as client:
            yield client
    except ApiError as exc:
        raise _fail(describe(exc)) from None
    except SteadError as exc:
        raise _fail(str(exc)) from None


def login(
    url: Url = None,
    client_id: Annotated[
        str | None,
        typer.Option(
            "--client-id", envvar="STEAD_CLIENT_ID", help="API client id", show_default=False
        ),
    ] = None,
    client_secret: Annotated[
        str | None,
        typer.Option(
            "--client-secret",
            envvar="STEAD_CLIENT_SECRET",
            help="API client secret",
            show_default=False,
        ),
    ] = None,
    profile: Profile = "default",
    email: Annotated[
        str | None,
        typer.Option(
            "--email",
            help="log in as yourself with your password (prompted, or STEAD_PASSWORD)",
            show_default=False,
        ),
    ] = None,
    sso: Annotated[
        bool, typer.Option("--sso", help="log in as yourself in the browser (the console's login)")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="seconds --sso waits for the browser")
    ] = SSO_TIMEOUT,
    browser: Annotated[
        bool,
        typer.Option(
            "--browser/--no-browser", help="--sso opens the browser (else prints the address)"
        ),
    ] = True,
) -> None:
    """Save API client credentials, or log in as yourself (--email or --sso), in the profile
    file.

    The file (mode 0600) is read by every client command after its flags and environment. A
    person's login lasts 30 days after its last use (90 days at most); `stead logout` ends it.
    """
    path = config_file()
    if email is None and not sso:
        url = url or typer.prompt("Server URL")
        client_id = client_id or typer.prompt("Client id")
        client_secret = client_secret or typer.prompt("Client secret", hide_input=True)
        with _anonymous(url) as client:
            client.token(
                {
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": client_secret,
                }
            )
        _replace_stored_login(path, profile)
        write_profile(
            path, profile, {"url": url, "client_id": client_id, "client_secret": client_secret}
        )
        typer.echo(f"credentials checked and saved to {path} (profile {profile!r})")
        return
    if email is not None and sso:
        raise _fail("give --email or --sso, not both", 2)
    url = url or read_profiles(path).get(profile, {}).get("url") or typer.prompt("Server URL")
    with _anonymous(url) as client:
        if sso:
            answer = _browser_login(client, url, timeout, browser=browser)
        else:
            assert email is not None
            password = os.environ.get("STEAD_PASSWORD") or typer.prompt("Password", hide_input=True)
            answer = client.auth.cli_password_login(
                email, password, device_name=socket.gethostname()
            )
    _replace_stored_login(path, profile)
    with profile_lock(path):
        _save_tokens(path, profile, url, answer)
    from stead.sdk import Client

    with Client(url, token=answer.access_token) as client:
        me = client.users.me()
    typer.echo(
        f"logged in to {url} as {me.email} ({me.role}); saved to {path} (profile {profile!r})"
    )


def whoami(url: Url = None, profile: Profile = "default") -> None:
    """Show who the stored login (or the API client) is: email, role, how they logged in and
    when the login expires."""
    from stead.sdk import ApiError, SteadError

    config = _stored(url, profile)
    if config is None:
        raise _fail(f"not logged in (profile {profile!r}): run `stead login`")
    if config.refresh_token is None:
        typer.echo(f"API client {config.client_id} on {config.url}")
        return
    client: Client | None = None
    try:
        client = user_client(config, profile)
        me = client.users.me()
        current = next((g for g in client.users.grants() if g.current), None)
    except ApiError as exc:
        if exc.title == "invalid_grant":
            forget_login(profile, client.refresh_token if client else None)
        raise _fail(describe(exc)) from None
    except SteadError as exc:
        raise _fail(str(exc)) from None
    finally:
        if client is not None:
            client.close()
    typer.echo(f"{me.email} ({me.display_name}), role {me.role}, on {config.url}")
    if current is not None:
        how = "the browser (--sso)" if current.method == "browser" else "a password (--email)"
        typer.echo(
            f"logged in with {how} as {current.name!r}; the login expires "
            f"{current.expires_at:%Y-%m-%d %H:%M} UTC if not used; each use extends it to "
            "30 days (90 days after logging in at most)"
        )


def _stored(url: str | None, profile: str) -> ClientConfig | None:
    """What profile ``profile`` holds (a person's login or API client credentials), or None
    when it holds neither (never logged in, or logged out).

    Raises:
        typer.Exit: the profile file cannot be read.
    """
    try:
        return resolve(url=url, client_id=None, client_secret=None, profile=profile)
    except ConfigError as exc:
        try:
            read_profiles(config_file())
        except ConfigError:
            raise _fail(str(exc)) from None
        return None


def logout(url: Url = None, profile: Profile = "default") -> None:
    """Log this command line out: revoke the stored login on the server and forget it (the
    profile keeps the server URL). Stored API client credentials are forgotten too."""
    path = config_file()
    config = _stored(url, profile)
    if config is None:
        typer.echo(f"not logged in (profile {profile!r}): nothing to forget")
        return
    note = "forgot the API client credentials"
    if config.refresh_token is not None:
        ended = _end_stored_login(config, profile)
        note = (
            "logged out (the login is revoked)"
            if ended == "revoked on the server"
            else f"forgot the login ({ended})"
        )
    with profile_lock(path):
        write_profile(path, profile, {"url": config.url})
    typer.echo(f"{note}; profile {profile!r} keeps {config.url}")
