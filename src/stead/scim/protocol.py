"""The SCIM 2.0 protocol's answers (RFC 7643, RFC 7644; docs/scim.md), with ``scim2-models``:
payloads are checked, PATCH applied and filters parsed by its models, and each answer is one of
them dumped as ``application/scim+json``.

:mod:`stead.scim.routes` declares the ``/scim/v2`` routes and calls the function of the same
name here on the route's first request, so that a server or a command that serves no SCIM
request never loads ``scim2-models`` (0.4 s of CPU at each start). ``scim2-models`` reports
a bad request as a ``SCIMException``; :func:`scim_errors` turns it into
:class:`stead.scim.ScimError`, which the app renders.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import Request
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
from sqlalchemy.orm import Session

from stead.identity.actor import Actor
from stead.identity.group_roles import apply_group_roles
from stead.identity.models import User as SteadUser
from stead.identity.routes import forget_after_commit
from stead.scim import PREFIX, ScimError, service
from stead.scim.models import ScimGroupMember
from stead.settings import Settings

SCIM_JSON = "application/scim+json"
_M = TypeVar("_M", bound=ScimModel)


def base_url(settings: Settings) -> str:
    """The base of the ``meta.location`` of every resource: ``<public URL>/scim/v2``."""
    return settings.public_url.rstrip("/") + PREFIX


@contextmanager
def scim_errors() -> Iterator[None]:
    """Raise a ``SCIMException`` of the block as :class:`stead.scim.ScimError`: its status,
    ``scimType`` and ``detail`` (RFC 7644 section 3.12).

    Raises:
        ScimError: the block raised a ``SCIMException``.
    """
    try:
        yield
    except SCIMException as exc:
        error = exc.to_error()
        raise ScimError(error.status or 400, error.scim_type, error.detail or "") from None


def error_response(
    status: int, scim_type: str | None, detail: str, headers: Any = None
) -> Response:
    """A SCIM error body (``urn:ietf:params:scim:api:messages:2.0:Error``, RFC 7644 section
    3.12) with ``status``, ``scimType`` and ``detail``."""
    return scim_response(
        Error(status=status, scim_type=scim_type, detail=detail),
        context=Context.RESOURCE_QUERY_RESPONSE,
        status=status,
        headers=headers,
    )


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


def service_provider_config(request: Request, actor: Actor) -> Response:
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


def resource_types(request: Request, actor: Actor) -> Response:
    """The resource types served: ``User`` (with the enterprise extension) and ``Group``."""
    return scim_response(
        _list(_resource_types(request), ResourceType), context=Context.SEARCH_RESPONSE
    )


def resource_type(resource_id: str, request: Request, actor: Actor) -> Response:
    """One resource type by id (``User`` or ``Group``).

    Raises:
        NotFoundException: no such resource type (404).
    """
    for item in _resource_types(request):
        if item.id == resource_id:
            return scim_response(item, context=Context.RESOURCE_QUERY_RESPONSE)
    raise NotFoundException(detail=f"Resource type {resource_id} not found")


def schemas(request: Request, actor: Actor) -> Response:
    """The schemas of the resources served (RFC 7643 section 7)."""
    return scim_response(_list(_schemas(request), Schema), context=Context.SEARCH_RESPONSE)


def schema(resource_id: str, request: Request, actor: Actor) -> Response:
    """One schema by its URN.

    Raises:
        NotFoundException: no such schema (404).
    """
    for item in _schemas(request):
        if item.id == resource_id:
            return scim_response(item, context=Context.RESOURCE_QUERY_RESPONSE)
    raise NotFoundException(detail=f"Schema {resource_id} not found")


def search_everything(request: Request, actor: Actor) -> Response:
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


def list_users(request: Request, actor: Actor, session: Session) -> Response:
    """Users matching ``filter``, paged by ``startIndex`` (1-based) and ``count``
    (RFC 7644 section 3.4.2)."""
    return _list_users(session, actor, request, _search(service.UserResource, request))


def search_users(body: Any, request: Request, actor: Actor, session: Session) -> Response:
    """:func:`list_users` with the query in a ``SearchRequest`` body (RFC 7644 section
    3.4.3)."""
    search = _validate(SearchRequest[service.UserResource], body, Context.SEARCH_REQUEST)
    return _list_users(session, actor, request, search)


def create_user(body: Any, request: Request, actor: Actor, session: Session) -> Response:
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


def get_user(resource_id: str, request: Request, actor: Actor, session: Session) -> Response:
    """One user (RFC 7644 section 3.4.1)."""
    resource = service.read_user(
        session, actor=actor, user_id=resource_id, base_url=base_url(request.app.state.settings)
    )
    return _resource_answer(resource, context=Context.RESOURCE_QUERY_RESPONSE, request=request)


def replace_user(
    resource_id: str, body: Any, request: Request, actor: Actor, session: Session
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


def patch_user(
    resource_id: str, body: Any, request: Request, actor: Actor, session: Session
) -> Response:
    """Modify a user (RFC 7644 section 3.5.2), as Okta and Entra ID send it (docs/scim.md)."""
    user, row = service.get_user(session, actor=actor, user_id=resource_id)
    patch = _validate(PatchOp[service.UserResource], body, Context.RESOURCE_PATCH_REQUEST)
    root = base_url(request.app.state.settings)
    service.patch_user(session, actor=actor, user=user, row=row, patch=patch, base_url=root)
    _forget_users(session, request, user.id)
    updated = service.read_user(session, actor=actor, user_id=user.id, base_url=root)
    return _resource_answer(updated, context=Context.RESOURCE_PATCH_RESPONSE, request=request)


def delete_user(resource_id: str, request: Request, actor: Actor, session: Session) -> Response:
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


def list_groups(request: Request, actor: Actor, session: Session) -> Response:
    """Groups matching ``filter``, paged by ``startIndex`` and ``count``."""
    return _list_groups(session, actor, request, _search(Group, request))


def search_groups(body: Any, request: Request, actor: Actor, session: Session) -> Response:
    """:func:`list_groups` with the query in a ``SearchRequest`` body."""
    search = _validate(SearchRequest[Group], body, Context.SEARCH_REQUEST)
    return _list_groups(session, actor, request, search)


def _group_users(session: Session, group_id: str) -> list[str]:
    return list(
        session.scalars(select(ScimGroupMember.user_id).where(ScimGroupMember.group_id == group_id))
    )


def create_group(body: Any, request: Request, actor: Actor, session: Session) -> Response:
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


def get_group(resource_id: str, request: Request, actor: Actor, session: Session) -> Response:
    """One group."""
    resource = service.read_group(
        session, actor=actor, group_id=resource_id, base_url=base_url(request.app.state.settings)
    )
    return _resource_answer(resource, context=Context.RESOURCE_QUERY_RESPONSE, request=request)


def replace_group(
    resource_id: str, body: Any, request: Request, actor: Actor, session: Session
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


def patch_group(
    resource_id: str, body: Any, request: Request, actor: Actor, session: Session
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


def delete_group(resource_id: str, request: Request, actor: Actor, session: Session) -> Response:
    """Delete a group; its members lose the roles only it gave them."""
    group = service.get_group(session, actor=actor, group_id=resource_id)
    before = _group_users(session, group.id)
    service.delete_group(session, actor=actor, group=group, role_sync=_role_sync(request))
    _forget_users(session, request, *before)
    return Response(status_code=204)
