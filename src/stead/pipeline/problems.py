"""Every error answer is rendered here, as problem+json (RFC 9457; the shape is
:mod:`stead.errors`'s).

Whatever goes wrong becomes an :class:`~stead.errors.AppError` first and then one response:
services raise them; request validation, the framework's own 404/405 and the database's errors
(:func:`database_error`) are translated into one; the ASGI middlewares that answer before
routing (a body too large, a wrong media type) render theirs with :func:`problem_response` too.
Anything else is a bug: 500, logged, no detail.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from stead.errors import (
    AppError,
    BadRequest,
    Conflict,
    HTTPProblem,
    ProblemResponse,
    ServiceUnavailable,
    Unauthorized,
)
from stead.pipeline.metrics import DATABASE_ERRORS

log = logging.getLogger("stead")

_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required",
}
_NOT_JSON = "body: not valid JSON"


def _json_path(loc: tuple[Any, ...]) -> str:
    """``("body", "connectionOverrides", 0, "port")`` -> ``connectionOverrides[0].port``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        kind = parts.pop(0)
        if not parts:
            return "body" if kind == "body" else kind
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validation_violations(errors: Any) -> list[str]:
    """Turn pydantic/FastAPI validation errors into ``"<json.path>: <message>"`` strings; a
    body that is not JSON is ``"body: not valid JSON (at character N)"``, N counted from 0."""
    violations = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            at = f" (at character {loc[-1]})" if loc and isinstance(loc[-1], int) else ""
            violations.append(_NOT_JSON + at)
            continue
        message = _MESSAGES.get(err.get("type", ""), err.get("msg", "invalid"))
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        violations.append(f"{_json_path(loc)}: {message}")
    return violations


def validation_error(exc: RequestValidationError) -> BadRequest:
    """400 with one violation per invalid field (or the body that is not JSON)."""
    violations = validation_violations(exc.errors())
    if any(v.startswith(_NOT_JSON) for v in violations):
        detail = "The request body is not valid JSON"
    else:
        detail = "The request has invalid fields: " + "; ".join(violations)
    return BadRequest(detail, violations=violations)


def database_error(exc: SQLAlchemyError) -> AppError | None:
    """The answer to a database error that reached the request's edge, or None (a bug: 500).

    - ``IntegrityError``: a uniqueness race that slipped past the service's own check -> 409.
    - ``DataError``: a value the database cannot store that validation let through: still the
      caller's input -> 400.
    - ``OperationalError`` (the database is down) and the pool's ``TimeoutError`` (no connection
      became free in time) -> 503 with ``Retry-After: 1``.
    """
    reason = type(getattr(exc, "orig", None) or exc).__name__
    if isinstance(exc, IntegrityError):
        DATABASE_ERRORS.labels("conflict").inc()
        return Conflict("The request conflicts with a concurrent change; retry it")
    if isinstance(exc, DataError):
        DATABASE_ERRORS.labels("data").inc()
        log.warning("database refused a value: %s", reason)
        return BadRequest("A value in the request cannot be stored")
    if isinstance(exc, OperationalError):
        DATABASE_ERRORS.labels("unavailable").inc()
        log.error("database error: %s", reason)
        return ServiceUnavailable(
            "The database is unavailable; retry shortly", headers={"Retry-After": "1"}
        )
    if isinstance(exc, PoolTimeout):
        DATABASE_ERRORS.labels("pool_timeout").inc()
        log.error("no database connection became free in time")
        return ServiceUnavailable(
            "The database is busy; retry shortly", headers={"Retry-After": "1"}
        )
    return None


def problem_response(exc: AppError, path: str) -> ProblemResponse:
    """The one rendering of an error: ``exc`` as problem+json for a request to ``path``, with
    its headers (and ``WWW-Authenticate: Bearer`` on a 401, RFC 6750 section 3)."""
    headers = dict(exc.headers)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return ProblemResponse(exc.to_problem(path), status_code=exc.status, headers=headers)


_INTERNAL = AppError("An unexpected error occurred")


def install(app: FastAPI, *, on_error: Callable[[Request, AppError], Awaitable[None]]) -> None:
    """Register the exception handlers of ``app``.

    Args:
        on_error: awaited with every :class:`AppError` a route or dependency raised, before it
            is rendered (the audit trail records refused changes).
    """

    async def app_error(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, AppError)
        await on_error(request, exc)
        return problem_response(exc, request.url.path)

    async def invalid(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(validation_error(exc), request.url.path)

    async def http_error(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        problem = HTTPProblem(exc.status_code, str(exc.detail), headers=headers)
        return problem_response(problem, request.url.path)

    async def database(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, SQLAlchemyError)
        problem = database_error(exc)
        if problem is None:
            return await unexpected(request, exc)
        return problem_response(problem, request.url.path)

    async def unexpected(request: Request, exc: Exception) -> ProblemResponse:
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return problem_response(_INTERNAL, request.url.path)

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(SQLAlchemyError, database)
    app.add_exception_handler(Exception, unexpected)
