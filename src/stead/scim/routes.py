"""HTTP: SCIM 2.0 at ``/scim/v2`` (RFC 7644) for identity providers, and
``/v1/scim-tokens`` for account admins to make and revoke the tokens they send (docs/scim.md).

SCIM answers are ``application/scim+json``; requests may be ``application/scim+json`` or
``application/json``. Every error on a ``/scim/`` path is a SCIM error body
(``urn:ietf:params:scim:api:messages:2.0:Error``, ``status`` as a string, RFC 7644 section 3.12),
never problem+json: :func:`install` wraps the app's error handlers for those paths.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Body, Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from scim2_models import BaseModel as ScimModel
from scim2_models import (
    Context,
    Error,
    Group,
    InvalidSyntaxException,
    ListResponse,
    Meta,
    NotFoundException,
    NotImplementedException,
    PatchOp,
    ResourceType,
    Schema,
    SCIMException,
    SearchRequest,
)
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from stead.db import session_scope, utcnow
from stead.errors import PROBLEM_JSON, AppError, Unauthorized
from stead.identity.actor import Actor
from stead.identity.deps import UserManager, request_origin
from stead.identity.group_roles import apply_group_roles
from stead.identity.models import User as SteadUser
from stead.identity.routes import forget_after_commit
from stead.pagination import Page, PageDep
from stead.pipeline.admission import admit
from stead.pipeline.transaction import SessionDep, make_router
from stead.scim import service
from stead.scim.models import ScimGroupMember, ScimToken
from stead.scim.schemas import ScimTokenCreate, ScimTokenCreated, ScimTokenRead
from stead.settings import Settings

PREFIX = "/scim/v2"
SCIM_JSON = "application/scim+json"
_M = TypeVar("_M", bound=ScimModel)

router = make_router(prefix=PREFIX, include_in_schema=False)
tokens_router = make_router(prefix="/scim-tokens", tags=["scim tokens"])


def is_scim_path(path: str) -> bool:
    """True for a path under ``/scim/``."""
    return path == "/scim" or path.startswith("/scim/")


def base_url(settings: Settings) -> str:
    """The base of the ``meta.location`` of every resource: ``<public URL>/scim/v2``."""
    return settings.public_url.rstrip("/") + PREFIX


# --- authentication ----------------------------------------------------------------------------


def _authenticate(
    factory: sessionmaker[Session], write_factory: sessionmaker[Session], value: str
) -> Actor | None:
    with session_scope(factory, write=False) as session:
        token = service.find_token(session, value=value)
        if token is None:
            return None
        actor = service.token_actor(token)
        stale = token.last_used_at is None or (
            utcnow() - token.last_used_at >= service.LAST_USED_PRECISION
        )
    if stale:
        with session_scope(write_factory, write=True) as session:
            service.note_use(session, token_id=actor.id)
    return actor


async def scim_actor(request: Request) -> Actor:
    """Authenticate ``Authorization: Bearer <SCIM token>`` (RFC 7644 section 2): a live
    token of :func:`service.find_token`. The actor carries the request's id and address for
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


# --- payloads and answers ----------------------------------------------------------------------


def _validate(model: type[_M], data: Any, context: Context) -> _M:
    """``data`` as ``model`` in ``context`` under :data:`service.POLICY`.

    Raises:
        SCIMException: the payload is not valid (``invalidSyntax``, ``invalidValue`` ...).
    """
    if not isinstance(data, dict):
        raise InvalidSyntaxException(detail="The request body must be a JSON object")
    try:
        return model.model_validate(data, scim_ctx=context, scim_policy=service.POLICY)
    except ValidationError as exc:
        raise SCIMException.from_error(Error.from_validation_errors(exc)[0]) from None


def _search(model: type[Any], request: Request) -> SearchRequest[Any]:
    query = request.query_params
    data: dict[str, Any] = {}
    for name in ("filter", "startIndex", "count", "attributes", "excludedAttributes"):
        if name in query:
            data[name] = query[name]
    return _validate(SearchRequest[model], data, Context.SEARCH_REQUEST)  # type: ignore[valid-type]


def scim_response(
    body: ScimModel,
    *,
    context: Context,
    status: int = 200,
    search: SearchRequest[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """``body`` dumped for ``context`` (honouring ``attributes``/``excludedAttributes`` of
    ``search``) as ``application/scim+json``."""
    content = body.model_dump(
        scim_ctx=context, response_parameters=search, scim_policy=service.POLICY
    )
    return Response(
        json.dumps(content, ensure_ascii=True, separators=(",", ":")),
        status_code=status,
        media_type=SCIM_JSON,
        headers=headers,
    )


def _resource_answer(
    resource: Any, *, context: Context, request: Request, status: int = 200
) -> Response:
    search = _search(type(resource), request)
    headers = {}
    meta = getattr(resource, "meta", None)
    if meta is not None and meta.location:
        headers["Location" if status == 201 else "Content-Location"] = str(meta.location)
    if meta is not None and meta.version:
        headers["ETag"] = str(meta.version)
    return scim_response(resource, context=context, status=status, search=search, headers=headers)


def _role_sync(request: Request) -> service.RoleSync:
    """The roles of ``STEAD_OIDC_GROUP_ROLES`` (the mapping single sign-on uses too) for a
    user's SCIM groups (:func:`stead.identity.group_roles.apply_group_roles`)."""
    mapping = request.app.state.settings.group_roles

    def sync(session: Session, user: SteadUser, groups: list[str], actor: Actor) -> None:
        apply_group_roles(session, user=user, groups=groups, mapping=mapping, actor=actor)

    return sync


def _forget_users(session: Session, request: Request, *user_ids: str) -> None:
    for user_id in user_ids:
        forget_after_commit(session, request, user_id)


# --- discovery ---------------------------------------------------------------------------------


def _provider(request: Request) -> Any:
    return service.provider(
        documentation_uri=request.app.state.settings.public_url.rstrip("/") + "/docs"
    )


@router.get("/ServiceProviderConfig")
def service_provider_config(request: Request, actor: ScimActor) -> Response:
    """What this SCIM service supports (RFC 7644 section 4)."""
    config = _provider(request).config
    config = config.model_copy(
        update={
            "meta": Meta(
                resource_type="ServiceProviderConfig",
                location=f"{base_url(request.app.state.settings)}/ServiceProviderConfig",
            )
        }
    )
    return scim_response(config, context=Context.RESOURCE_QUERY_RESPONSE)


def _resource_types(request: Request) -> list[ResourceType]:
    root = base_url(request.app.state.settings)
    return [
        rt.model_copy(
            update={
                "meta": Meta(resource_type="ResourceType", location=f"{root}/ResourceTypes/{rt.id}")
            }
        )
        for rt in _provider(request).resource_types
    ]


def _schemas(request: Request) -> list[Schema]:
    root = base_url(request.app.state.settings)
    return [
        schema.model_copy(
            update={"meta": Meta(resource_type="Schema", location=f"{root}/Schemas/{schema.id}")}
        )
        for schema in _provider(request).schemas
    ]


def _list(items: list[Any], model: type[Any]) -> Any:
    return ListResponse[model](  # type: ignore[valid-type]
        total_results=len(items), start_index=1, items_per_page=len(items), resources=items
    )


@router.get("/ResourceTypes")
def resource_types(request: Request, actor: ScimActor) -> Response:
    """The resource types served: ``User`` (with the enterprise extension) and ``Group``."""
    return scim_response(
        _list(_resource_types(request), ResourceType), context=Context.SEARCH_RESPONSE
    )


@router.get("/ResourceTypes/{resourceId}")
def resource_type(resource_id: IdPath, request: Request, actor: ScimActor) -> Response:
    """One resource type by id (``User`` or ``Group``).

    Raises:
        NotFoundException: no such resource type (404).
    """
    for item in _resource_types(request):
        if item.id == resource_id:
            return scim_response(item, context=Context.RESOURCE_QUERY_RESPONSE)
    raise NotFoundException(detail=f"Resource type {resource_id} not found")


@router.get("/Schemas")
def schemas(request: Request, actor: ScimActor) -> Response:
    """The schemas of the resources served (RFC 7643 section 7)."""
    return scim_response(_list(_schemas(request), Schema), context=Context.SEARCH_RESPONSE)


@router.get("/Schemas/{resourceId}")
def schema(resource_id: IdPath, request: Request, actor: ScimActor) -> Response:
    """One schema by its URN.

    Raises:
        NotFoundException: no such schema (404).
    """
    for item in _schemas(request):
        if item.id == resource_id:
            return scim_response(item, context=Context.RESOURCE_QUERY_RESPONSE)
    raise NotFoundException(detail=f"Schema {resource_id} not found")


@router.post("/.search")
def search_everything(request: Request, actor: ScimActor) -> Response:
    """A search across resource types (RFC 7644 section 3.4.3) is not offered: 501.

    Raises:
        NotImplementedException: always.
    """
    raise NotImplementedException(
        detail="Search one resource type: POST /Users/.search or /Groups/.search"
    )


# --- users -------------------------------------------------------------------------------------


def _list_users(
    session: Session, actor: Actor, request: Request, search: SearchRequest[Any]
) -> Response:
    found = service.search_users(
        session, actor=actor, search=search, base_url=base_url(request.app.state.settings)
    )
    return scim_response(found, context=Context.SEARCH_RESPONSE, search=search)


@router.get("/Users")
def list_users(request: Request, actor: ScimActor, session: SessionDep) -> Response:
    """Users matching ``filter``, paged by ``startIndex`` (1-based) and ``count``
    (RFC 7644 section 3.4.2)."""
    return _list_users(session, actor, request, _search(service.UserResource, request))


@router.post("/Users/.search")
def search_users(
    body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """:func:`list_users` with the query in a ``SearchRequest`` body (RFC 7644 section
    3.4.3)."""
    search = _validate(SearchRequest[service.UserResource], body, Context.SEARCH_REQUEST)
    return _list_users(session, actor, request, search)


@router.post("/Users", status_code=201)
def create_user(
    body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Create a user (RFC 7644 section 3.3)."""
    resource = _validate(service.UserResource, body, Context.RESOURCE_CREATION_REQUEST)
    user = service.create_scim_user(
        session, actor=actor, resource=resource, role_sync=_role_sync(request)
    )
    created = service.read_user(
        session, actor=actor, user_id=user.id, base_url=base_url(request.app.state.settings)
    )
    return _resource_answer(
        created, context=Context.RESOURCE_CREATION_RESPONSE, request=request, status=201
    )


@router.get("/Users/{resourceId}")
def get_user(
    resource_id: IdPath, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """One user (RFC 7644 section 3.4.1)."""
    resource = service.read_user(
        session, actor=actor, user_id=resource_id, base_url=base_url(request.app.state.settings)
    )
    return _resource_answer(resource, context=Context.RESOURCE_QUERY_RESPONSE, request=request)


@router.put("/Users/{resourceId}")
def replace_user(
    resource_id: IdPath, body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Replace a user (RFC 7644 section 3.5.1); ``active: false`` disables them and ends their
    sessions and tokens at once."""
    user, row = service.get_user(session, actor=actor, user_id=resource_id)
    resource = _validate(service.UserResource, body, Context.RESOURCE_REPLACEMENT_REQUEST)
    service.replace_user(session, actor=actor, user=user, row=row, resource=resource)
    _forget_users(session, request, user.id)
    updated = service.read_user(
        session, actor=actor, user_id=user.id, base_url=base_url(request.app.state.settings)
    )
    return _resource_answer(updated, context=Context.RESOURCE_REPLACEMENT_RESPONSE, request=request)


@router.patch("/Users/{resourceId}")
def patch_user(
    resource_id: IdPath, body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Modify a user (RFC 7644 section 3.5.2), as Okta and Entra ID send it (docs/scim.md)."""
    user, row = service.get_user(session, actor=actor, user_id=resource_id)
    patch = _validate(PatchOp[service.UserResource], body, Context.RESOURCE_PATCH_REQUEST)
    root = base_url(request.app.state.settings)
    service.patch_user(session, actor=actor, user=user, row=row, patch=patch, base_url=root)
    _forget_users(session, request, user.id)
    updated = service.read_user(session, actor=actor, user_id=user.id, base_url=root)
    return _resource_answer(updated, context=Context.RESOURCE_PATCH_RESPONSE, request=request)


@router.delete("/Users/{resourceId}", status_code=204)
def delete_user(
    resource_id: IdPath, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Delete a user (RFC 7644 section 3.6): signed out everywhere, then removed."""
    user, _ = service.get_user(session, actor=actor, user_id=resource_id)
    service.delete_scim_user(session, actor=actor, user=user)
    _forget_users(session, request, resource_id)
    return Response(status_code=204)


# --- groups ------------------------------------------------------------------------------------


def _list_groups(
    session: Session, actor: Actor, request: Request, search: SearchRequest[Any]
) -> Response:
    found = service.search_groups(
        session, actor=actor, search=search, base_url=base_url(request.app.state.settings)
    )
    return scim_response(found, context=Context.SEARCH_RESPONSE, search=search)


@router.get("/Groups")
def list_groups(request: Request, actor: ScimActor, session: SessionDep) -> Response:
    """Groups matching ``filter``, paged by ``startIndex`` and ``count``."""
    return _list_groups(session, actor, request, _search(Group, request))


@router.post("/Groups/.search")
def search_groups(
    body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """:func:`list_groups` with the query in a ``SearchRequest`` body."""
    search = _validate(SearchRequest[Group], body, Context.SEARCH_REQUEST)
    return _list_groups(session, actor, request, search)


def _group_users(session: Session, group_id: str) -> list[str]:
    return list(
        session.scalars(select(ScimGroupMember.user_id).where(ScimGroupMember.group_id == group_id))
    )


@router.post("/Groups", status_code=201)
def create_group(
    body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Create a group (RFC 7644 section 3.3); its members get the roles it maps to."""
    resource = _validate(Group, body, Context.RESOURCE_CREATION_REQUEST)
    group = service.create_group(
        session, actor=actor, resource=resource, role_sync=_role_sync(request)
    )
    _forget_users(session, request, *_group_users(session, group.id))
    created = service.read_group(
        session, actor=actor, group_id=group.id, base_url=base_url(request.app.state.settings)
    )
    return _resource_answer(
        created, context=Context.RESOURCE_CREATION_RESPONSE, request=request, status=201
    )


@router.get("/Groups/{resourceId}")
def get_group(
    resource_id: IdPath, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """One group."""
    resource = service.read_group(
        session, actor=actor, group_id=resource_id, base_url=base_url(request.app.state.settings)
    )
    return _resource_answer(resource, context=Context.RESOURCE_QUERY_RESPONSE, request=request)


@router.put("/Groups/{resourceId}")
def replace_group(
    resource_id: IdPath, body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Replace a group: name, ``externalId`` and members."""
    group = service.get_group(session, actor=actor, group_id=resource_id)
    before = _group_users(session, group.id)
    resource = _validate(Group, body, Context.RESOURCE_REPLACEMENT_REQUEST)
    service.replace_group(
        session, actor=actor, group=group, resource=resource, role_sync=_role_sync(request)
    )
    _forget_users(session, request, *before, *_group_users(session, group.id))
    updated = service.read_group(
        session, actor=actor, group_id=group.id, base_url=base_url(request.app.state.settings)
    )
    return _resource_answer(updated, context=Context.RESOURCE_REPLACEMENT_RESPONSE, request=request)


@router.patch("/Groups/{resourceId}")
def patch_group(
    resource_id: IdPath, body: JsonBody, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Modify a group: add or remove members, rename it."""
    group = service.get_group(session, actor=actor, group_id=resource_id)
    before = _group_users(session, group.id)
    patch = _validate(PatchOp[Group], body, Context.RESOURCE_PATCH_REQUEST)
    root = base_url(request.app.state.settings)
    service.patch_group(
        session, actor=actor, group=group, patch=patch, base_url=root, role_sync=_role_sync(request)
    )
    _forget_users(session, request, *before, *_group_users(session, group.id))
    updated = service.read_group(session, actor=actor, group_id=group.id, base_url=root)
    return _resource_answer(updated, context=Context.RESOURCE_PATCH_RESPONSE, request=request)


@router.delete("/Groups/{resourceId}", status_code=204)
def delete_group(
    resource_id: IdPath, request: Request, actor: ScimActor, session: SessionDep
) -> Response:
    """Delete a group; its members lose the roles only it gave them."""
    group = service.get_group(session, actor=actor, group_id=resource_id)
    before = _group_users(session, group.id)
    service.delete_group(session, actor=actor, group=group, role_sync=_role_sync(request))
    _forget_users(session, request, *before)
    return Response(status_code=204)


# --- /v1/scim-tokens ---------------------------------------------------------------------------

TokenIdPath = Annotated[str, Path(alias="tokenId", description="SCIM token id")]


def token_read(token: ScimToken) -> ScimTokenRead:
    """The wire form of a SCIM token: never its value."""
    return ScimTokenRead(
        id=token.id,
        name=token.name,
        created_by=token.created_by,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
        created_at=token.created_at,
    )


@tokens_router.post("", status_code=201, response_model=ScimTokenCreated)
def create_scim_token(
    data: ScimTokenCreate, actor: UserManager, session: SessionDep
) -> ScimTokenCreated:
    """Make a SCIM token for an identity provider; ``token`` is in this answer only."""
    token, value = service.create_token(session, actor=actor, name=data.name)
    return ScimTokenCreated(**token_read(token).model_dump(), token=value)


@tokens_router.get("", response_model=Page[ScimTokenRead])
def list_scim_tokens(
    actor: UserManager, session: SessionDep, params: PageDep
) -> Page[ScimTokenRead]:
    """The account's SCIM tokens, revoked ones included (never their values)."""
    total, tokens = service.list_tokens(session, actor=actor, params=params)
    return Page(
        page=params.page, size=params.size, total=total, results=[token_read(t) for t in tokens]
    )


@tokens_router.delete("/{tokenId}", status_code=204)
def revoke_scim_token(token_id: TokenIdPath, actor: UserManager, session: SessionDep) -> Response:
    """Revoke a SCIM token: the next request that sends it is refused."""
    token = service.get_token(session, actor=actor, token_id=token_id)
    service.revoke_token(session, actor=actor, token=token)
    return Response(status_code=204)


# --- errors ------------------------------------------------------------------------------------


def _error_response(
    status: int, scim_type: str | None, detail: str, headers: Any = None
) -> Response:
    return scim_response(
        Error(status=status, scim_type=scim_type, detail=detail),
        context=Context.RESOURCE_QUERY_RESPONSE,
        status=status,
        headers=headers,
    )


#: The scimType of a Stead error raised on a SCIM path, by status (RFC 7644 section 3.12).
_SCIM_TYPES = {400: "invalidValue", 409: "uniqueness"}


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


async def _scim_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SCIMException)
    error = exc.to_error()
    return _error_response(error.status or 400, error.scim_type, error.detail or "")


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
    app.add_exception_handler(SCIMException, _scim_exception)
