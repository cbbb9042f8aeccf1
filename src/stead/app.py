"""The ASGI application: routers under ``/v1`` and ``/dpc/v1``, error handlers, service routes."""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import Engine
from sqlalchemy.orm import configure_mappers
from starlette.routing import BaseRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from stead import __version__, openapi
from stead.agents.routes import router as agents_router
from stead.audit.routes import router as audit_router
from stead.audit.service import record_refused
from stead.connections.routes import router as connections_router
from stead.console import web as console_web
from stead.console.routes import console_router, root_router
from stead.db import make_engine, make_sessionmaker
from stead.environments.routes import router as environments_router
from stead.errors import ServiceUnavailable
from stead.idempotency import service as idempotency
from stead.identity.keys import load_signing_key
from stead.identity.routes import api_router as identity_router
from stead.identity.routes import router as token_router
from stead.identity.service import ActorCache
from stead.keycheck import readiness_problem
from stead.logs import configure_logging
from stead.pipeline import admission, problems
from stead.pipeline.body import BodyReader
from stead.pipeline.metrics import Metrics, instrument_pool
from stead.pipeline.middleware import RequestMiddleware
from stead.pipeline.ratelimit import make_rate_limiter
from stead.pipeline.throttle import FailureThrottle
from stead.projects.routes import provisioning_router
from stead.projects.routes import router as projects_router
from stead.repositories.routes import router as repositories_router
from stead.scim import routes as scim
from stead.scim.routes import tokens_router as scim_tokens_router
from stead.secrets.routes import hosted_router as hosted_secrets_router
from stead.secrets.routes import router as secret_references_router
from stead.secrets.routes import scope_router as secret_scopes_router
from stead.secrets.store import attach_keyring, load_keyring
from stead.settings import Settings, get_settings
from stead.state.routes import router as state_router
from stead.warehouses.routes import router as warehouses_router

log = logging.getLogger("stead")

API_ROUTERS: list[APIRouter] = [
    state_router,  # before projects_router: /projects/state is not a /projects/{projectId}
    projects_router,
    provisioning_router,
    agents_router,
    connections_router,
    secret_references_router,
    hosted_secrets_router,
    secret_scopes_router,
    environments_router,
    warehouses_router,
    repositories_router,
    identity_router,
    scim_tokens_router,
    audit_router,
]


# The service routes are module-level functions reading the app from the request: FastAPI keeps
# every endpoint it has analysed in process-wide caches, so an endpoint closing over one app
# would keep that app, its engine and its routes alive after the app is gone.
service_router = APIRouter(tags=["service"])


@service_router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@service_router.get(
    "/readyz",
    responses={503: {"description": "database unreachable, or a key does not match it"}},
)
def readyz(request: Request) -> dict[str, str]:
    """Readiness: the database answers, and the server's signing key and master key are the ones
    its data depends on (docs/operations.md, "Keys")."""
    state = request.app.state
    with state.engine.connect() as conn:
        problem = readiness_problem(conn, signing_key=state.signing_key, keyring=state.keyring)
    if problem is not None:
        log.error("not ready: %s", problem)
        raise ServiceUnavailable(f"Not ready: {problem}")
    return {"status": "ok"}


@service_router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus exposition of request counts and latencies and of the operator metrics
    (docs/operations.md, "Metrics")."""
    app_metrics: Metrics = request.app.state.metrics
    return Response(app_metrics.render(), media_type=app_metrics.content_type)


@functools.cache
def _composed() -> tuple[BaseRoute, ...]:
    """Every router of the app, included once per process.

    FastAPI analyses an included router's routes (parameters, dependencies, response models) on
    first use, once per inclusion; apps built from these same inclusions share that work, so a
    process that builds several apps (the test suite builds one per case) does it once. Routes
    composed this way ignore ``app.dependency_overrides``, which Stead does not use.
    """
    composer = APIRouter()
    composer.include_router(scim.router)
    composer.include_router(token_router)
    for router in API_ROUTERS:
        composer.include_router(router, prefix="/v1", dependencies=idempotency.IDEMPOTENCY)
        composer.include_router(
            router,
            prefix="/dpc/v1",
            include_in_schema=False,
            dependencies=idempotency.IDEMPOTENCY,
        )
    composer.include_router(service_router)
    composer.include_router(root_router, include_in_schema=False)
    composer.include_router(console_router, include_in_schema=False)
    composer.include_router(openapi.docs_router)
    return tuple(composer.routes)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the Stead application for ``settings`` (default: from the environment).

    The database must already be migrated (``stead db upgrade``; ``stead serve`` does it).

    Args:
        engine: an engine on ``settings``' database made by :func:`stead.db.make_engine`, for
            apps built one after another in one process to share (default: a new one). The
            app closes the engine's pooled connections when it shuts down; the engine stays
            usable, with the statements it has compiled (SQLAlchemy keys its compiled cache on
            the engine's dialect, so a new engine compiles every statement again).
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    engine = engine or make_engine(settings.effective_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.rate_limiter.close()
        app.state.metrics.close()
        engine.dispose()

    app = FastAPI(
        title="Stead",
        version=__version__,
        summary="Self-hosted control plane that provisions data projects; "
        "wire-compatible with the DPC Project Provisioning API.",
        lifespan=lifespan,
        # /docs is served from the package's own files (openapi.install); no ReDoc (a CDN).
        docs_url=None,
        redoc_url=None,
        # "/x/" is not "/x": a redirect would resend a POST to another resource.
        redirect_slashes=False,
        routes=list(_composed()),
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.write_sessionmaker = make_sessionmaker(engine, write=True)
    app.state.read_sessionmaker = make_sessionmaker(engine, read_only=True)
    app.state.signing_key = load_signing_key(settings)
    keyring = app.state.keyring = load_keyring(settings)
    for factory in (
        app.state.sessionmaker,
        app.state.write_sessionmaker,
        app.state.read_sessionmaker,
    ):
        attach_keyring(factory, keyring)
    app.state.rate_limiter = make_rate_limiter(engine, settings.rate_limit_per_minute)
    app.state.actor_cache = ActorCache(settings.actor_cache_seconds)
    app.state.sign_in_throttle = FailureThrottle(
        per_name=settings.sign_in_failures_per_minute,
        per_address=settings.sign_in_failures_per_minute_per_address,
    )
    app.state.metrics = Metrics(settings.prometheus_multiproc_dir)
    instrument_pool(engine)
    problems.install(app, on_error=record_refused)
    # After problems.install: on console paths its answers become HTML pages.
    console_web.install(app)
    scim.install(app)  # SCIM error bodies on /scim/ paths
    # Middleware, innermost first (docs/request-lifecycle.md).
    admission.install(app, engine)
    idempotency.install(app)
    app.add_middleware(
        BodyReader, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout_seconds
    )
    # Console headers and the cross-site POST refusal, before anything but the request id.
    app.add_middleware(console_web.ConsoleHeaders, settings=settings)
    app.add_middleware(RequestMiddleware, metrics=app.state.metrics)
    if settings.trusted_proxy_list:
        # The client's address from the proxies' X-Forwarded-For, only when a trusted proxy sent
        # it; ``stead serve`` turns uvicorn's own handling (which trusts 127.0.0.1) off.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)

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
