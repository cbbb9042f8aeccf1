"""HTTP: SCIM 2.0 at ``/scim/v2`` (RFC 7644) for identity providers, and
``/v1/scim-tokens`` for account admins to make and revoke the tokens they send (docs/scim.md).

SCIM answers are ``application/scim+json``; requests may be ``application/scim+json`` or
``application/json``. Every error on a ``/scim/`` path is a SCIM error body
(``urn:ietf:params:scim:api:messages:2.0:Error``, ``status`` as a string, RFC 7644 section 3.12),
never problem+json: :func:`install` wraps the app's error handlers for those paths.

Each ``/scim/v2`` route calls the function of the same name in :mod:`stead.scim.protocol`,
imported on the first SCIM request (``scim2-models`` takes 0.4 s of CPU to load).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from stead.db import session_scope, utcnow
from stead.errors import PROBLEM_JSON, AppError, Unauthorized
from stead.identity.actor import Actor
from stead.identity.deps import UserManager, request_origin
from stead.pagination import Page
from stead.pipeline.admission import admit
from stead.pipeline.paging import PageDep
from stead.pipeline.transaction import SessionDep, TransactionRoute, make_router
from stead.scim import PREFIX, ScimError, tokens
from stead.scim.schemas import ScimTokenCreate, ScimTokenCreated, ScimTokenRead


def _scim_errors(endpoint: Callable[..., Response]) -> Callable[..., Response]:
    @functools.wraps(endpoint)  # FastAPI reads the parameters through ``__wrapped__``
    def run(**kwargs: Any) -> Response:
        from stead.scim import protocol

        with protocol.scim_errors():
            return endpoint(**kwargs)

    return run


class ScimRoute(TransactionRoute):
    """The route class of ``/scim/v2``: a :class:`TransactionRoute` whose endpoint's
    ``SCIMException`` (``scim2-models``) leaves it as :class:`stead.scim.ScimError`, so that
    nothing is committed and the app answers with a SCIM error body."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _scim_errors(endpoint), **kwargs)


router = make_router(prefix=PREFIX, include_in_schema=False, route_class=ScimRoute)
tokens_router = make_router(prefix="/scim-tokens", tags=["scim tokens"])


def is_scim_path(path: str) -> bool:
    """True for a path under ``/scim/``."""
    return path == "/scim" or path.startswith("/scim/")


# --- authentication ----------------------------------------------------------------------------


def _authenticate(
    factory: sessionmaker[Session], write_factory: sessionmaker[Session], value: str
) -> Actor | None:
    with session_scope(factory, write=False) as session:
        token = tokens.find_token(session, value=value)
        if token is None:
            return None
        actor = tokens.token_actor(token)
        stale = token.last_used_at is None or (
            utcnow() - token.last_used_at >= tokens.LAST_USED_PRECISION
        )
    if stale:
        with session_scope(write_factory, write=True) as session:
            tokens.note_use(session, token_id=actor.id)
    return actor


async def scim_actor(request: Request) -> Actor:
    """Authenticate ``Authorization: Bearer <SCIM token>`` (RFC 7644 section 2): a live
    token of :func:`tokens.find_token`. The actor carries the request's id and address for
    audit events; then the request enters admission control like any API request.

    Raises:
        Unauthorized: no bearer token, or not a live SCIM token (401 SCIM error).
    """
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("A SCIM bearer token is required (Authorization: Bearer <token>)")
    state = request.app.state
    actor = await run_in_threadpool(
        _authenticate, state.sessionmaker, state.write_sessionmaker, value.strip()
    )
    if actor is None:
        raise Unauthorized("The SCIM token is not valid or has been revoked")
    actor = actor.with_request(**request_origin(request))
    request.state.actor = actor
    await admit(request.scope)
    return actor


ScimActor = Annotated[Actor, Depends(scim_actor)]
JsonBody = Annotated[Any, Body()]
IdPath = Annotated[str, Path(alias="resourceId")]


# --- discovery ---------------------------------------------------------------------------------


@router.get("/ServiceProviderConfig")
def service_provider_config(request: Request, actor: ScimActor) -> Response:
    """What this SCIM service supports (RFC 7644 section 4)."""
    from stead.scim import protocol

    return protocol.service_provider_config(request, actor)


@router.get("/ResourceTypes")
def resource_types(request: Request, actor: ScimActor) -> Response:
    """The resource types served: ``User`` (with the enterprise extension) and ``Group``."""
    from stead.scim import protocol

    return protocol.resource_types(request, actor)


@router.get("/ResourceTypes/{resourceId}")
def resource_type(resource_id: IdPath, request: Request, actor: ScimActor) -> Response:
    """One resource type by id (``User`` or ``Group``); 404 for another."""
    from stead.scim import protocol

    return protocol.resource_type(resource_id, request, actor)


@router.get("/Schemas")
def schemas(request: Request, actor: ScimActor) -> Response:
    """The schemas of the resources served (RFC 7643 section 7)."""
    from stead.scim import protocol

    return protocol.schemas(request, actor)


@router.get("/Schemas/{resourceId}")
def schema(resource_id: IdPath, request: Request, actor: ScimActor) -> Response:
    """One schema by its URN; 404 for another."""
    from stead.scim import protocol

    return protocol.schema(resource_id, request, actor)


@router.post("/.search")
def search_everything(request: Request, actor: ScimActor) -> Response:
    """A search across resource types (RFC 7644 section 3.4.3): not offered, 501."""
    from stead.scim import protocol

    return protocol.search_everything(request, actor)


# --- users -------------------------------------------------------------------------------------


@router.get("/Users")
def list_users(request: Request, actor: ScimActor, session: SessionDep) -> Response:
    """Users matching ``filter``, paged by ``startIndex`` (1-based) and ``count``
    (RFC 7644 section 3.4.2)."""
    from stead.scim import protocol

    return protocol.list_users(request, actor, session)


@router.post("/Users/.search")
def search_users(
    body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """:func:`list_users` with the query in a ``SearchRequest`` body (RFC 7644 section
    3.4.3)."""
    from stead.scim import protocol

    return protocol.search_users(body, request, actor, session)


@router.post("/Users", status_code=201)
def create_user(
    body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Create a user (RFC 7644 section 3.3)."""
    from stead.scim import protocol

    return protocol.create_user(body, request, actor, session)


@router.get("/Users/{resourceId}")
def get_user(
    resource_id: IdPath, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """One user (RFC 7644 section 3.4.1)."""
    from stead.scim import protocol

    return protocol.get_user(resource_id, request, actor, session)


@router.put("/Users/{resourceId}")
def replace_user(
    resource_id: IdPath, body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Replace a user (RFC 7644 section 3.5.1); ``active: false`` disables them and ends their
    sessions and tokens at once."""
    from stead.scim import protocol

    return protocol.replace_user(resource_id, body, request, actor, session)


@router.patch("/Users/{resourceId}")
def patch_user(
    resource_id: IdPath, body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Modify a user (RFC 7644 section 3.5.2), as Okta and Entra ID send it (docs/scim.md)."""
    from stead.scim import protocol

    return protocol.patch_user(resource_id, body, request, actor, session)


@router.delete("/Users/{resourceId}", status_code=204)
def delete_user(
    resource_id: IdPath, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Delete a user (RFC 7644 section 3.6): signed out everywhere, then removed."""
    from stead.scim import protocol

    return protocol.delete_user(resource_id, request, actor, session)


# --- groups ------------------------------------------------------------------------------------


@router.get("/Groups")
def list_groups(request: Request, actor: ScimActor, session: SessionDep) -> Response:
    """Groups matching ``filter``, paged by ``startIndex`` and ``count``."""
    from stead.scim import protocol

    return protocol.list_groups(request, actor, session)


@router.post("/Groups/.search")
def search_groups(
    body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """:func:`list_groups` with the query in a ``SearchRequest`` body."""
    from stead.scim import protocol

    return protocol.search_groups(body, request, actor, session)


@router.post("/Groups", status_code=201)
def create_group(
    body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Create a group (RFC 7644 section 3.3); its members get the roles it maps to."""
    from stead.scim import protocol

    return protocol.create_group(body, request, actor, session)


@router.get("/Groups/{resourceId}")
def get_group(
    resource_id: IdPath, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """One group."""
    from stead.scim import protocol

    return protocol.get_group(resource_id, request, actor, session)


@router.put("/Groups/{resourceId}")
def replace_group(
    resource_id: IdPath, body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Replace a group: name, ``externalId`` and members."""
    from stead.scim import protocol

    return protocol.replace_group(resource_id, body, request, actor, session)


@router.patch("/Groups/{resourceId}")
def patch_group(
    resource_id: IdPath, body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Modify a group: add or remove members, rename it."""
    from stead.scim import protocol

    return protocol.patch_group(resource_id, body, request, actor, session)


@router.delete("/Groups/{resourceId}", status_code=204)
def delete_group(
    resource_id: IdPath, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Delete a group; its members lose the roles only it gave them."""
    from stead.scim import protocol

    return protocol.delete_group(resource_id, request, actor, session)


# --- /v1/scim-tokens ---------------------------------------------------------------------------

TokenIdPath = Annotated[str, Path(alias="tokenId", description="SCIM token id")]


@tokens_router.post("", status_code=201, response_model=ScimTokenCreated)
def create_scim_token(
    data: ScimTokenCreate, actor: UserManager, session: SessionDep
) -> ScimTokenCreated:
    """Make a SCIM token for an identity provider; ``token`` is in this answer only."""
    token, value = tokens.create_token(session, actor=actor, name=data.name)
    return ScimTokenCreated(**tokens.token_read(token).model_dump(), token=value)


@tokens_router.get("", response_model=Page[ScimTokenRead])
def list_scim_tokens(
    actor: UserManager, session: SessionDep, params: PageDep
) -> Page[ScimTokenRead]:
    """The account's SCIM tokens, revoked ones included (never their values)."""
    total, rows = tokens.list_tokens(session, actor=actor, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[tokens.token_read(t) for t in rows],
    )


@tokens_router.delete("/{tokenId}", status_code=204)
def revoke_scim_token(token_id: TokenIdPath, actor: UserManager, session: SessionDep) -> Response:
    """Revoke a SCIM token: the next request that sends it is refused."""
    token = tokens.get_token(session, actor=actor, token_id=token_id)
    tokens.revoke_token(session, actor=actor, token=token)
    return Response(status_code=204)


# --- errors ------------------------------------------------------------------------------------

#: The scimType of a Stead error raised on a SCIM path, by status (RFC 7644 section 3.12).
_SCIM_TYPES = {400: "invalidValue", 409: "uniqueness"}


def _error_response(
    status: int, scim_type: str | None, detail: str, headers: Any = None
) -> Response:
    from stead.scim import protocol

    return protocol.error_response(status, scim_type, detail, headers)


def _as_scim(handler: Callable[[Request, Any], Response | Awaitable[Response]]) -> Any:
    """Wrap one of the app's error handlers: on a ``/scim/`` path the answer becomes a SCIM
    error body with the same status and headers (``WWW-Authenticate``, ``Retry-After``)."""

    async def render(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        response = await answer if inspect.isawaitable(answer) else answer
        if not is_scim_path(request.url.path) or response.media_type != PROBLEM_JSON:
            return response
        problem = json.loads(bytes(response.body))
        status = response.status_code
        keep = {
            k: v
            for k, v in response.headers.items()
            if k.lower() in ("www-authenticate", "retry-after")
        }
        if isinstance(exc, RequestValidationError):
            return _error_response(400, "invalidSyntax", str(problem.get("detail", "")), keep)
        detail = str(problem.get("detail", ""))
        if status >= 500:
            detail = "An unexpected error occurred"
        scim_type = _SCIM_TYPES.get(status) if isinstance(exc, AppError) else None
        return _error_response(status, scim_type, detail, keep)

    return render


async def _scim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ScimError)
    return _error_response(exc.status, exc.scim_type, exc.detail)


def install(app: FastAPI) -> None:
    """Answer with SCIM error bodies on ``/scim/`` paths (call after
    :func:`stead.pipeline.problems.install`). The app routes :data:`router` (``/scim/v2``) and
    :data:`tokens_router`, one of its API routers, itself."""
    for exc_class in (
        AppError,
        RequestValidationError,
        StarletteHTTPException,
        SQLAlchemyError,
        Exception,
    ):
        app.exception_handlers[exc_class] = _as_scim(app.exception_handlers[exc_class])
    app.add_exception_handler(ScimError, _scim_error)
