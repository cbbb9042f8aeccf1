"""HTTP routes of the project's repository association (docs/api.md, Repository)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Header, Query, Request, Response
from pydantic import SecretStr
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from stead.identity.deps import ProjectReader, ProjectWriter
from stead.pipeline.transaction import SessionDep, make_router, stepped_out
from stead.repositories import service
from stead.repositories.provider import TOKEN_HEADER, read_token
from stead.repositories.schemas import RepositoryCreate, RepositoryRead

T = TypeVar("T")

router = make_router(prefix="/projects/{projectId}/repositories", tags=["repositories"])


def _token(
    value: Annotated[
        str | None,
        Header(
            alias=TOKEN_HEADER,
            description="The provider's personal access token; used for this "
            "check only, never stored or logged",
        ),
    ] = None,
) -> SecretStr:
    return read_token(value)


ProviderToken = Annotated[SecretStr, Depends(_token)]


def _optional_token(
    value: Annotated[
        str | None,
        Header(
            alias=TOKEN_HEADER,
            description="Optional: the provider's access token, to remove the deploy key "
            "from the provider too; used for this request only, never stored or logged",
        ),
    ] = None,
) -> SecretStr | None:
    return None if value is None else read_token(value)


OptionalProviderToken = Annotated[SecretStr | None, Depends(_optional_token)]


def _outside(session: Session, request: Request) -> service.Outside:
    """Provider calls outside the request's transaction and admission slot
    (:func:`stead.pipeline.transaction.stepped_out`: nothing is written before the calls), so
    neither the write lock nor the writer's turn is held while a provider answers. The commit
    takes an ``Idempotency-Key``'s claim with it: the key is in progress until the response is
    recorded, and released if the request fails (see :mod:`stead.idempotency.service`)."""

    def run(work: Callable[[], T]) -> T:
        return anyio.from_thread.run(stepped_out, request, session, lambda: run_in_threadpool(work))

    return run


_CHECK_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid body, missing or rejected token, or repository not found"},
    403: {"description": "The token lacks a permission on the repository"},
    502: {"description": "The provider failed or could not be reached"},
    503: {"description": "The provider is rate limiting the token (see Retry-After)"},
    504: {"description": "The provider did not answer in time"},
}


@router.post(
    "",
    status_code=201,
    response_model=RepositoryRead,
    responses={
        **_CHECK_RESPONSES,
        409: {
            "description": "The project has a repository, or initialize=true and the "
            "repository is not empty"
        },
    },
)
def associate_repository(
    data: RepositoryCreate,
    ctx: ProjectWriter,
    token: ProviderToken,
    session: SessionDep,
    request: Request,
    response: Response,
    initialize: Annotated[
        bool,
        Query(
            description="Push a first commit (README, one folder per environment, stead.yaml) "
            "to the empty repository's default branch, the one its HEAD names (main if the "
            "server does not say), so a clone checks it out; 409 if it is not empty"
        ),
    ] = False,
) -> RepositoryRead:
    """Associate a git repository with the project, once the provider confirms that the token
    can read it (DPC). One repository per project. When the token may manage deploy keys, a
    read-only deploy key is created, its private half kept as a hosted secret [Stead]."""
    repository = service.associate(
        session,
        actor=ctx.actor,
        project=ctx.project,
        data=data,
        token=token,
        settings=request.app.state.settings,
        initialize=initialize,
        outside=_outside(session, request),
    )
    response.headers["Location"] = f"/v1/projects/{ctx.project.id}/repositories"
    return RepositoryRead.model_validate(repository)


@router.get("", response_model=RepositoryRead)
def get_repository(ctx: ProjectReader, session: SessionDep) -> RepositoryRead:
    """Read the project's repository (404 when it has none)."""
    return RepositoryRead.model_validate(service.get(session, project=ctx.project))


@router.delete("", status_code=204, responses=_CHECK_RESPONSES)
def remove_repository(
    ctx: ProjectWriter, token: OptionalProviderToken, session: SessionDep, request: Request
) -> Response:
    """Remove the project's repository association and its deploy key's hosted secret; with the
    token header, the deploy key is removed from the provider too [Stead]."""
    service.remove(
        session,
        actor=ctx.actor,
        project=ctx.project,
        token=token,
        settings=request.app.state.settings,
        outside=_outside(session, request),
    )
    return Response(status_code=204)


@router.post("/token", status_code=204, responses=_CHECK_RESPONSES)
def check_repository_token(
    ctx: ProjectWriter, token: ProviderToken, session: SessionDep, request: Request
) -> Response:
    """Re-check the project's repository with a new access token (DPC), and rotate the deploy
    key when the token may manage deploy keys [Stead]."""
    service.check_token(
        session,
        actor=ctx.actor,
        project=ctx.project,
        token=token,
        settings=request.app.state.settings,
        outside=_outside(session, request),
    )
    return Response(status_code=204)
