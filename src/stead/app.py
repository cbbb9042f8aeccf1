"""The ASGI application: routers under ``/v1`` and ``/dpc/v1``, error handlers, service routes."""

from __future__ import annotations

import gc
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import configure_mappers
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stead import admission, bodylimit, openapi
from stead.agents.routes import router as agents_router
from stead.audit.routes import router as audit_router
from stead.audit.service import record_refused
from stead.connections.routes import router as connections_router
from stead.db import make_engine, make_sessionmaker
from stead.environments.routes import router as environments_router
from stead.errors import (
    PROBLEM_BASE,
    PROBLEM_JSON,
    AppError,
    ProblemResponse,
    Unauthorized,
    UnsupportedMediaType,
)
from stead.idempotency import service as idempotency
from stead.identity.keys import load_signing_key
from stead.identity.routes import api_router as identity_router
from stead.identity.routes import router as token_router
from stead.identity.service import ActorCache
from stead.logs import configure_logging
from stead.metrics import Metrics
from stead.projects.routes import router as projects_router
from stead.ratelimit import make_rate_limiter
from stead.repositories.routes import router as repositories_router
from stead.secrets.routes import hosted_router as hosted_secrets_router
from stead.secrets.routes import router as secret_references_router
from stead.secrets.routes import scope_router as secret_scopes_router
from stead.secrets.store import attach_keyring, load_keyring
from stead.settings import Settings, get_settings
from stead.warehouses.routes import router as warehouses_router

log = logging.getLogger("stead")
access_log = structlog.get_logger("stead.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

API_ROUTERS: list[APIRouter] = [
    projects_router,
    agents_router,
    connections_router,
    secret_references_router,
    hosted_secrets_router,
    secret_scopes_router,
    environments_router,
    warehouses_router,
    repositories_router,
    identity_router,
    audit_router,
]


def _problem(
    status: int,
    kind: str,
    title: str,
    detail: str,
    instance: str,
    violations: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return ProblemResponse(
        {
            "type": PROBLEM_BASE + kind,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": instance,
            "violations": violations or [],
        },
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


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


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required",
}
_NOT_JSON = "body: not valid JSON"


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


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        headers = dict(exc.headers)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        await record_refused(request, exc)
        return ProblemResponse(
            exc.to_problem(request.url.path), status_code=exc.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        violations = validation_violations(exc.errors())
        if any(v.startswith(_NOT_JSON) for v in violations):
            detail = "The request body is not valid JSON"
        else:
            detail = "The request has invalid fields: " + "; ".join(violations)
        return _problem(400, "validation", "Invalid request", detail, request.url.path, violations)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not-found", 405: "method-not-allowed"}
        return _problem(
            exc.status_code,
            kinds.get(exc.status_code, "http-error"),
            str(exc.detail),
            str(exc.detail),
            request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        # A uniqueness race that slipped past the service's own check (ARCHITECTURE rule 5).
        return _problem(
            409,
            "conflict",
            "Conflict",
            "The request conflicts with a concurrent change; retry it",
            request.url.path,
        )

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot store that validation let through: still the caller's input.
        log.warning("database refused a value: %s", type(exc.orig).__name__ if exc.orig else "")
        return _problem(
            400,
            "validation",
            "Invalid request",
            "A value in the request cannot be stored",
            request.url.path,
        )

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database error: %s", type(exc.orig).__name__ if exc.orig else "unknown")
        return _problem(
            503,
            "unavailable",
            "Service unavailable",
            "The database is unavailable; retry shortly",
            request.url.path,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(PoolTimeout)
    async def database_busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.error("no database connection became free in time")
        return _problem(
            503,
            "unavailable",
            "Service unavailable",
            "The database is busy; retry shortly",
            request.url.path,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return _problem(
            500, "internal", "Internal error", "An unexpected error occurred", request.url.path
        )


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_API_PREFIXES = ("/v1/", "/dpc/v1/")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class RequestMiddleware:
    """ASGI middleware, per HTTP request: a request id (``X-Request-ID``, the caller's when it is
    well formed), the JSON-body check (415), metrics and one access log line.

    The token endpoint takes a form, so only ``/v1`` and ``/dpc/v1`` bodies must be JSON.
    Plain ASGI rather than ``BaseHTTPMiddleware``: the response streams through unchanged, with
    no extra task or body copy per request.

    Args:
        app: the wrapped ASGI app.
        metrics: where each request's method, route template, status and duration go.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        request_id = headers.get("x-request-id") or ""
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path: str = scope["path"]
        method: str = scope["method"]
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            if (
                method in _BODY_METHODS
                and path.startswith(_API_PREFIXES)
                and (headers.get("content-length", "0") != "0" or "transfer-encoding" in headers)
                and not _is_json(headers.get("content-type", ""))
            ):
                exc = UnsupportedMediaType(
                    "The request body must be application/json",
                    violations=["Content-Type: must be application/json"],
                )
                await ProblemResponse(exc.to_problem(path), status_code=415)(
                    scope, receive, send_with_id
                )
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            if route != "unmatched" and path.startswith(_API_PREFIXES):
                # API routes carry their router-relative template; put the mount prefix back.
                route = path[: path.index("/v1/") + 3] + route
            self.metrics.observe(method, route, status, elapsed)
            actor = state.get("actor")
            access_log.info(
                "request",
                method=method,
                path=path,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                request_id=request_id,
                actor=actor.id if actor else None,
            )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the Stead application for ``settings`` (default: from the environment).

    The database must already be migrated (``stead db upgrade``; ``stead serve`` does it).
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    engine = make_engine(settings.effective_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.rate_limiter.close()
        engine.dispose()

    app = FastAPI(
        title="Stead",
        version="0.1.0",
        summary="Self-hosted control plane that provisions data projects; "
        "wire-compatible with the DPC Project Provisioning API.",
        lifespan=lifespan,
        # "/x/" is not "/x": a redirect would resend a POST to another resource.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.write_sessionmaker = make_sessionmaker(engine, write=True)
    app.state.read_sessionmaker = make_sessionmaker(engine, read_only=True)
    app.state.signing_key = load_signing_key(settings)
    keyring = load_keyring(settings)
    for factory in (
        app.state.sessionmaker,
        app.state.write_sessionmaker,
        app.state.read_sessionmaker,
    ):
        attach_keyring(factory, keyring)
    app.state.rate_limiter = make_rate_limiter(engine, settings.rate_limit_per_minute)
    app.state.actor_cache = ActorCache(settings.actor_cache_seconds)
    app.state.metrics = Metrics()
    _install_error_handlers(app)
    admission.install(app, engine)
    bodylimit.install(app, settings.max_body_bytes)
    idempotency.install(app)
    app.add_middleware(RequestMiddleware, metrics=app.state.metrics)

    app.include_router(token_router)
    for router in API_ROUTERS:
        app.include_router(router, prefix="/v1", dependencies=idempotency.IDEMPOTENCY)
        app.include_router(
            router,
            prefix="/dpc/v1",
            include_in_schema=False,
            dependencies=idempotency.IDEMPOTENCY,
        )

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"], responses={503: {"description": "database unreachable"}})
    def readyz() -> dict[str, str]:
        """Readiness: the database answers a trivial query."""
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return {"status": "ok"}

    @app.get("/metrics", tags=["service"], response_class=Response)
    def metrics() -> Response:
        """Prometheus exposition of request counts and latencies."""
        return Response(app.state.metrics.render(), media_type=app.state.metrics.content_type)

    openapi.install(app)
    return app


def server_app() -> FastAPI:
    """The application as ``stead serve`` runs it (a uvicorn factory, once per worker process).

    Everything built at startup lives as long as the process, so it is frozen out of the garbage
    collector's full passes (Python docs, ``gc.freeze``), each of which would otherwise stop the
    server for tens of milliseconds. That includes what FastAPI and SQLAlchemy would build on
    first use, so it is built first: each route's state (about 19k objects) and the ORM mappers.
    """
    app = create_app()
    app.openapi()
    configure_mappers()
    gc.collect()
    gc.freeze()
    return app
