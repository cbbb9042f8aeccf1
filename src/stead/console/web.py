"""The console's web layer: templates and :func:`render`, the logged-in user of a page
(:data:`ConsoleUser`), the CSRF check, form errors, and the headers and error pages of every
console answer (docs/console.md).

A page module declares a parameter ``console: ConsoleUser``: the request then has a live
session (else it is sent to the login page) and, for any method but GET/HEAD, a valid CSRF
token in the form field ``csrf_token`` or the header ``X-CSRF-Token`` (else 403). A POST whose
``Origin`` is another site's, or that a browser marks ``Sec-Fetch-Site: cross-site``, is
refused by :class:`ConsoleHeaders` before any of the app runs.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, unquote, urlencode, urlsplit

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stead.console import sessions, wording
from stead.db import READS_IN_PLACE, session_scope
from stead.errors import PROBLEM_JSON, AppError, BadRequest, Forbidden
from stead.identity.actor import Actor
from stead.identity.deps import environment_permission, project_permission, request_origin
from stead.identity.models import User
from stead.identity.permissions import PermissionDenied, account_allows
from stead.identity.service import user_actor
from stead.pipeline.admission import admit
from stead.pipeline.problems import validation_violations
from stead.settings import Settings

log = logging.getLogger("stead.console")

PREFIX = "/console"
TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["access_level"] = wording.access_level


def cookie_name(settings: Settings, base: str = "stead_session") -> str:
    """The name of a console cookie: ``base``, or ``__Host-`` + ``base`` when the public URL is
    https (the prefix makes browsers insist on Secure, path ``/`` and no Domain; RFC 6265bis,
    "Cookie Name Prefixes")."""
    return f"__Host-{base}" if secure_cookies(settings) else base


def secure_cookies(settings: Settings) -> bool:
    """True when the console is reached over https (``STEAD_PUBLIC_URL``): cookies get Secure."""
    return settings.public_url.lower().startswith("https://")


def set_cookie(response: Response, settings: Settings, base: str, value: str) -> None:
    """Set console cookie ``base`` (:func:`cookie_name`): HttpOnly, SameSite=Lax, path ``/``,
    Secure under https; it lasts as long as the browser session (the server decides expiry)."""
    response.set_cookie(
        cookie_name(settings, base),
        value,
        httponly=True,
        samesite="lax",
        path="/",
        secure=secure_cookies(settings),
    )


def delete_cookie(response: Response, settings: Settings, base: str) -> None:
    """Remove console cookie ``base`` from the browser."""
    response.delete_cookie(
        cookie_name(settings, base),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings),
    )


# --- the logged-in user ----------------------------------------------------------------------


@dataclass(frozen=True)
class Console:
    """The person a console request acts for.

    Attributes:
        actor: the same :class:`~stead.identity.actor.Actor` ``/v1`` would build for the user;
            pass it to services.
        email: the user's email; display_name: their display name.
        session_key: the table key of this browser's session (``sessions.hash_id`` of the
            cookie), to tell "this session" apart on the account page.
        csrf_token: the token every form of the page carries (``{{ csrf() }}`` puts it there).
        flash: a message left for this page by the previous request (:func:`flash`), or None.
    """

    actor: Actor
    email: str
    display_name: str
    session_key: str
    csrf_token: str
    flash: str | None = None

    def may(self, permission: str) -> bool:
        """True if the user's account role grants ``permission`` (the nav shows only these)."""
        return account_allows(self.actor.role, permission)


class LoginRequired(Exception):
    """No live session: the browser is sent to the login page (``next`` = this page)."""


class CsrfRefused(Forbidden):
    """403: a console POST without the session's CSRF token, or from another site."""

    def __init__(self) -> None:
        super().__init__(
            "The form is out of date or was not sent from this console; reload the page and try "
            "again",
            violations=[f"{CSRF_FIELD}: missing or invalid"],
        )


@dataclass(frozen=True)
class _Loaded:
    user_id: str
    actor: Actor
    email: str
    display_name: str
    session_key: str
    csrf_token: str
    flash: str | None


_Record = tuple[sessions.ConsoleSession, User]


def _find(request: Request, key: str) -> _Record | None:
    with session_scope(request.app.state.read_sessionmaker, write=False) as db:
        return sessions.find_session(db, id_hash=key)


def _maintain(request: Request, cookie_value: str) -> tuple[_Record, str | None] | None:
    """:func:`sessions.load_session` in a write transaction, and the flash message taken."""
    with session_scope(request.app.state.write_sessionmaker, write=True) as db:
        loaded = sessions.load_session(db, cookie_value=cookie_value)
        if loaded is None:
            return None
        record, user = loaded
        flash_text, record.flash = record.flash, None
        return (record, user), flash_text


async def _load(request: Request, cookie_value: str) -> _Loaded | None:
    """The session of ``cookie_value``: read it (on SQLite on the event loop, as
    :func:`stead.pipeline.transaction.run_read` does: a local read waits for no lock); write,
    in a worker thread, only when it is due (touch, expiry, a flash message to hand over)."""
    state = request.app.state
    key = sessions.hash_id(cookie_value)
    if state.read_sessionmaker.kw.get("info", {}).get(READS_IN_PLACE):
        found = _find(request, key)
    else:
        found = await run_in_threadpool(_find, request, key)
    if found is None:
        return None
    flash_text = None
    if sessions.needs_write(*found):
        maintained = await run_in_threadpool(_maintain, request, cookie_value)
        if maintained is None:
            return None
        found, flash_text = maintained
    record, user = found
    actor = user_actor(user).with_request(**request_origin(request))
    return _Loaded(
        user_id=user.id,
        actor=actor,
        email=user.email,
        display_name=user.display_name,
        session_key=key,
        csrf_token=sessions.csrf_token(record, state.signing_key),
        flash=flash_text,
    )


async def csrf_ok(request: Request, expected: str) -> bool:
    """True if the request carries ``expected`` in the header ``X-CSRF-Token`` or the form
    field ``csrf_token`` (compared in constant time)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())


async def current_console(request: Request) -> Console:
    """Dependency (:data:`ConsoleUser`): the logged-in user of a console request.

    Only the session cookie counts: an ``Authorization`` header is ignored (``/console`` takes
    no bearer token, ``/v1`` no cookie). A request that changes something must carry the
    session's CSRF token. Then the request enters admission control, like an API request.

    Raises:
        LoginRequired: no cookie, or its session ended (the user is sent to log in).
        CsrfRefused: a POST (PUT, PATCH, DELETE) without the right CSRF token.
    """
    known: Console | None = getattr(request.state, "console", None)
    if known is not None:
        return known
    value = request.cookies.get(cookie_name(request.app.state.settings))
    loaded = await _load(request, value) if value else None
    if loaded is None:
        raise LoginRequired
    if request.method not in _SAFE_METHODS and not await csrf_ok(request, loaded.csrf_token):
        raise CsrfRefused
    console = Console(
        actor=loaded.actor,
        email=loaded.email,
        display_name=loaded.display_name,
        session_key=loaded.session_key,
        csrf_token=loaded.csrf_token,
        flash=loaded.flash,
    )
    request.state.console = console
    request.state.actor = loaded.actor  # the access log names the actor
    await admit(request.scope)
    return console


ConsoleUser = Annotated[Console, Depends(current_console)]


def require(permission: str) -> Callable[[Request], Awaitable[Console]]:
    """Dependency factory: the logged-in user's account role must grant ``permission``
    (the same table as ``/v1``), else 403.

    Use: ``console: Annotated[Console, Depends(require("agent.write"))]``.
    """

    async def dependency(request: Request) -> Console:
        console = await current_console(request)
        if not console.may(permission):
            raise PermissionDenied(
                f"Your role {console.actor.role} may not do this ({permission})",
                permission=permission,
            )
        return console

    return dependency


async def _session_actor(console: ConsoleUser) -> Actor:
    """The console session's actor: what the permission dependencies judge."""
    return console.actor


def project_access(permission: str) -> Any:
    """``Depends`` on the path's project (``{projectId}``) as the logged-in user sees it, whose
    project role must grant ``permission``: :func:`stead.identity.deps.project_permission`
    with the console's session as the actor (404 for a project the user may not see, 403 for
    a permission the role lacks, as in ``/v1``).

    Use: ``ctx: Annotated[ProjectContext, web.project_access("member.read")]``.
    """
    return Depends(project_permission(permission, _session_actor))


def environment_access(permission: str) -> Any:
    """``Depends`` on the path's project and environment (``{environmentName}``), in which the
    logged-in user's access level must grant ``permission``:
    :func:`stead.identity.deps.environment_permission` with the console's session as the
    actor."""
    return Depends(environment_permission(permission, _session_actor))


def flash(db: Any, console: Console, message: str) -> None:
    """Leave ``message`` for the next page this user's browser shows (after a redirect).
    ``db`` is the request's write session; the message must hold no secret."""
    sessions.set_flash(db, id_hash=console.session_key, message=message)


# --- form errors -----------------------------------------------------------------------------


@dataclass
class FormErrors:
    """Errors to show on a form: messages at their fields and a summary at the top.

    Attributes:
        fields: form field name -> its messages (``aria-invalid`` / ``aria-describedby``).
        summary: ``(field or None, message)`` in order; an entry with a field links to it.
    """

    fields: dict[str, list[str]] = field(default_factory=dict)
    summary: list[tuple[str | None, str]] = field(default_factory=list)

    def add(self, name: str | None, message: str, *, summary: str | None = None) -> None:
        """Add ``message`` at field ``name`` (None: the summary only); the summary gets
        ``summary`` when given (the message with the field's label), else ``message``."""
        if name is not None:
            self.fields.setdefault(name, []).append(message)
        self.summary.append((name, summary or message))

    def __bool__(self) -> bool:
        return bool(self.summary)


def form_errors(
    exc: AppError,
    *,
    aliases: Mapping[str, str] | Callable[[str], str | None] | None = None,
    known: Collection[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> FormErrors:
    """Turn a service error into :class:`FormErrors`, in the words the person sees.

    Each violation ``"<json.path>: <message>"`` goes to the form field named by ``aliases``
    (wire path -> field name, e.g. ``{"defaultAgentId": "agent"}``, or a function of the path
    that returns None for the summary only) or by the path itself; when ``known`` is given, a
    field not in it goes to the summary only. Wire names in a message become labels
    (:func:`stead.console.wording.reword`), and each summary line starts with its field's label:
    ``labels[field]`` when given, else the path's (:func:`stead.console.wording.label`), so no
    line speaks ``connectionProperties.port``. An error without violations gives one summary
    line, its ``detail``.
    """
    errors = FormErrors()
    for violation in exc.violations:
        path, sep, message = violation.partition(": ")
        if not sep:
            errors.add(None, wording.reword(violation))
            continue
        message = wording.reword(message)
        if callable(aliases):
            name = aliases(path)
        else:
            name = (aliases or {}).get(path, path)
            if known is not None and name not in known:
                name = None
        if name is None:
            errors.add(None, f"{wording.label(path)}: {message}")
            continue
        shown = (labels or {}).get(name) or wording.label(path)
        errors.add(name, message, summary=f"{shown}: {message}")
    if not errors:
        errors.add(None, wording.reword(exc.detail))
    return errors


_M = TypeVar("_M", bound=BaseModel)


def validated(model: type[_M], data: Mapping[str, Any]) -> _M:
    """``model`` validated from form ``data`` (wire names).

    Raises:
        BadRequest: one violation per invalid field, as ``/v1`` would answer it.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        violations = validation_violations(exc.errors())
        raise BadRequest(
            "The form has invalid fields: " + "; ".join(violations), violations=violations
        ) from None


def check_confirmation(password: str, again: str, *, noun: str = "password") -> None:
    """Refuse a form whose ``confirm_password`` field (``again``) differs from ``password``.

    Raises:
        BadRequest: at ``confirmPassword``, "does not match the <noun>".
    """
    if password != again:
        raise BadRequest(
            f"The {noun}s do not match",
            violations=[f"confirmPassword: does not match the {noun}"],
        )


# --- rendering -------------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    block: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` (a path under ``console/templates``) as the answer to ``request``.

    The template also gets ``console`` (the :class:`Console`, or None before login), ``csrf``
    (the token), ``request`` and ``errors`` (None unless ``context`` has them). For an htmx
    request (``HX-Request``) with ``block`` given, only that ``{% block %}`` is rendered: the
    fragment htmx swaps in; not for htmx's own request of a page to restore from history
    (``HX-History-Restore-Request``), which needs the whole page.
    """
    console: Console | None = getattr(request.state, "console", None)
    values: dict[str, Any] = {
        "request": request,
        "console": console,
        "csrf_token": console.csrf_token if console else "",
        "errors": None,
    }
    values.update(context or {})
    tmpl = templates.get_template(template)
    headers_in = request.headers
    fragment = headers_in.get("hx-request") == "true"
    if block is not None and fragment and headers_in.get("hx-history-restore-request") != "true":
        # A block alone runs none of its template's top-level statements: give it the macros
        # the page imports (``{% import "_macros.html" as ui with context %}``).
        values["ui"] = templates.get_template("_macros.html").make_module(values)
        body = "".join(tmpl.blocks[block](tmpl.new_context(values)))
    else:
        body = tmpl.render(values)
    return HTMLResponse(body, status_code=status, headers=dict(headers or {}))


def page_links(path: str, *, q: str | None, page: int, size: int, total: int) -> dict[str, Any]:
    """``q``, ``next_url`` and ``prev_url`` of a list paged by number (``?q=...&page=N``, from
    0, ``size`` a page) at ``PREFIX + path``: the context of its search box and of the
    ``pager`` macro's links (None where there is no such page)."""

    def url(number: int) -> str:
        query = urlencode({k: v for k, v in {"q": q, "page": number or None}.items() if v})
        return f"{PREFIX}{path}" + (f"?{query}" if query else "")

    return {
        "q": q or "",
        "next_url": url(page + 1) if (page + 1) * size < total else None,
        "prev_url": url(page - 1) if page > 0 else None,
    }


def redirect(url: str) -> RedirectResponse:
    """303 See Other to ``url`` (after a POST: the browser GETs it)."""
    return RedirectResponse(url, status_code=303)


def safe_next(value: str | None) -> str:
    """``value`` if it is a path of this console (``/console...``, no scheme, host, ``//``,
    backslash or dot segment), else ``/console/projects``: a login link cannot send people
    elsewhere."""
    default = f"{PREFIX}/projects"
    if not value or "\\" in value or any(ord(c) < 0x20 for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return default
    if parts.path != PREFIX and not parts.path.startswith(PREFIX + "/"):
        return default
    # A browser resolves "..", also written "%2e%2e", before it follows the redirect.
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        return default
    return value


# --- every console answer: headers, Origin check, error pages ---------------------------------

#: The headers of every console answer (docs/console.md, Headers). ``img-src data:``: Pico
#: draws its icons (search, select, checkbox) as inline SVG images; scripts and styles stay
#: ``'self'`` only.
CONSOLE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


_CSP = b"content-security-policy"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_console_path(path: str) -> bool:
    """True for ``/console`` and everything under it."""
    return path == PREFIX or path.startswith(PREFIX + "/")


class ConsoleHeaders:
    """ASGI middleware for console paths: :data:`CONSOLE_HEADERS` (the CSP unless the answer
    sets its own), ``Cache-Control: no-store`` unless the answer sets its own,
    ``Server-Timing: app;dur=<ms>`` (the time until the answer started, W3C Server Timing),
    and the refusal of a cross-site POST.

    A request that may change something (any method but GET/HEAD/OPTIONS) is refused with 403
    before anything else runs when its ``Origin`` is neither this server's (as the request
    reached it) nor ``STEAD_PUBLIC_URL``'s, or when the browser says ``Sec-Fetch-Site:
    cross-site`` (OWASP CSRF Prevention Cheat Sheet, "Verifying Origin with standard headers"
    and "Fetch Metadata headers"). A request without ``Origin`` is left to the CSRF token.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.public_origin = _origin(settings.public_url)

    def _foreign(self, scope: Scope, headers: Headers) -> bool:
        if headers.get("sec-fetch-site") == "cross-site":
            return True
        origin = headers.get("origin")
        if origin is None:
            return False
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
        return origin.lower() not in (own, self.public_origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_console_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", ()))
                # A page may widen its own policy (the CLI's authorize page: form-action).
                own_csp = any(name.lower() == _CSP for name, _ in raw)
                raw.extend(h for h in CONSOLE_HEADERS if not (own_csp and h[0] == _CSP))
                if not any(name.lower() == b"cache-control" for name, _ in raw):
                    raw.append((b"cache-control", b"no-store"))
                dur = (time.perf_counter() - started) * 1000
                raw.append((b"server-timing", f"app;dur={dur:.1f}".encode()))
                message["headers"] = raw
            await send(message)

        headers = Headers(scope=scope)
        if scope["method"] not in _SAFE_METHODS and self._foreign(scope, headers):
            response = _error_page(
                403, "Forbidden", "This form was not sent from this console.", console=None
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


class VendorFiles(StaticFiles):
    """Static files whose names carry their version: cached for a year, never revalidated."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


class OwnFiles(StaticFiles):
    """The console's own static files: revalidated on every use (their names do not change)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def _error_page(
    status: int, title: str, detail: str, *, console: Console | None, headers: Any = None
) -> HTMLResponse:
    body = templates.get_template("error.html").render(
        {"console": console, "status": status, "title": title, "detail": detail, "errors": None}
    )
    return HTMLResponse(body, status_code=status, headers=headers)


_PAGE_TITLES = {403: "Forbidden", 404: "Page not found", 500: "Something went wrong"}


def _as_page(handler: Callable[[Request, Any], Response | Awaitable[Response]]) -> Any:
    """Wrap one of the app's problem+json handlers: on a console path, the same answer becomes
    an HTML page with the same status (the problem's title and detail; never a stack trace)."""

    async def render_page(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        response = await answer if inspect.isawaitable(answer) else answer
        if not is_console_path(request.url.path) or response.media_type != PROBLEM_JSON:
            return response
        problem = json.loads(bytes(response.body))
        status = response.status_code
        title = _PAGE_TITLES.get(status, str(problem.get("title", "Error")))
        detail = str(problem.get("detail", ""))
        if status >= 500:
            detail = "The console could not show this page. The error has been logged."
        keep = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
        console: Console | None = getattr(request.state, "console", None)
        return _error_page(status, title, detail, console=console, headers=keep)

    return render_page


async def _login_required(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"{PREFIX}/login?next={quote(target, safe='')}"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": login})
    return redirect(login)


def install(app: FastAPI) -> None:
    """Serve the console's static files and make the app's error answers HTML pages on
    console paths (call after :func:`stead.pipeline.problems.install`). The app adds
    :class:`ConsoleHeaders` itself, among its middlewares."""
    app.mount(
        f"{PREFIX}/static/vendor", VendorFiles(directory=STATIC_DIR / "vendor"), name="vendor"
    )
    app.mount(f"{PREFIX}/static", OwnFiles(directory=STATIC_DIR), name="console-static")
    for exc_class in (
        AppError,
        RequestValidationError,
        StarletteHTTPException,
        SQLAlchemyError,
        Exception,
    ):
        app.exception_handlers[exc_class] = _as_page(app.exception_handlers[exc_class])
    app.add_exception_handler(LoginRequired, _login_required)
