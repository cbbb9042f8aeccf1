"""HTTP routes of identity: the OAuth 2.0 token endpoint (docs/api.md; RFC 6749 sections
4.1.3, 4.3, 4.4, 5 and 6), user login, the caller's CLI grants, API client management,
project members, invitations and per-user environment access (docs/api.md, People)."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from typing import Annotated
from urllib.parse import unquote_plus

import anyio
import anyio.to_thread
from fastapi import APIRouter, Form, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from stead.db import session_scope, utcnow
from stead.errors import Unauthorized
from stead.identity import grants, members, service, users
from stead.identity.actor import Actor
from stead.identity.deps import (
    ActorDep,
    ApiClientManager,
    MemberManager,
    MemberReader,
    OptionalActorDep,
    UserManager,
    UserReader,
    parse_uuid,
    request_origin,
)
from stead.identity.models import ApiClient, CliGrant, User
from stead.identity.schemas import (
    ApiClientCreate,
    ApiClientCreated,
    ApiClientRead,
    CliGrantRead,
    EnvironmentAccessRead,
    EnvironmentAccessSet,
    InvitationAccept,
    InvitationAccepted,
    InvitationCreate,
    InvitationCreated,
    InvitationRead,
    LoginRequest,
    MemberRead,
    MemberUpdate,
    PasswordChange,
    PasswordResetCreated,
    PasswordResetUse,
    TokenResponse,
    UserRead,
    UserUpdate,
)
from stead.identity.service import ActorCache, issue_token
from stead.pagination import Page
from stead.pipeline.metrics import SIGN_IN_FAILURES
from stead.pipeline.paging import PageDep
from stead.pipeline.throttle import FailureThrottle, hash_limiter
from stead.pipeline.transaction import SessionDep, make_router

router = APIRouter(tags=["auth"])


def _oauth_error(error: str, description: str, status: int) -> JSONResponse:
    """An RFC 6749 section 5.2 error response."""
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="stead"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """Client credentials from ``Authorization: Basic`` (RFC 6749 section 2.3.1), if present.

    Both halves arrive form-urlencoded (section 2.3.1; Go's ``golang.org/x/oauth2``, which
    Terraform providers use, encodes them so) and are decoded here.
    """
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (unquote_plus(user), unquote_plus(password)) if sep else None


def _token_response(
    request: Request,
    principal: ApiClient | User,
    *,
    grant: CliGrant | None = None,
    refresh_token: str | None = None,
) -> JSONResponse:
    """RFC 6749 section 5.1: the access token, and for a CLI grant its refresh token (the
    access token then ends no later than the grant)."""
    ttl = request.app.state.settings.token_ttl_seconds
    if grant is not None:
        ttl = max(1, min(ttl, int((grant.expires_at - utcnow()).total_seconds())))
    access = issue_token(
        principal,
        key=request.app.state.signing_key,
        ttl_seconds=ttl,
        grant_id=grant.id if grant is not None else None,
    )
    body: dict[str, object] = {"access_token": access, "token_type": "Bearer", "expires_in": ttl}
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.post(
    "/oauth/dpc/token",
    response_model=TokenResponse,
    responses={
        400: {"description": "invalid_request / unsupported_grant_type / invalid_grant"},
        401: {"description": "invalid_client"},
    },
)
@router.post("/oauth/token", response_model=TokenResponse, include_in_schema=False)
async def token(
    request: Request,
    grant_type: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    audience: Annotated[str | None, Form()] = None,
    refresh_token: Annotated[str | None, Form()] = None,
    code: Annotated[str | None, Form()] = None,
    code_verifier: Annotated[str | None, Form()] = None,
    redirect_uri: Annotated[str | None, Form()] = None,
    device_name: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    """Exchange credentials for a bearer token valid 1800 s.

    ``grant_type=client_credentials`` (DPC): ``client_id`` and ``client_secret`` in the form or
    as HTTP Basic client authentication. ``grant_type=password`` (RFC 6749 section 4.3): a
    user's email as ``username`` and ``password``; repeated failures lock the user; any other
    ``client_id`` is ignored. With ``client_id=stead-cli`` (Stead's command line, a public
    client) the password grant also starts a CLI grant named after ``device_name`` and answers
    a ``refresh_token``.
    ``grant_type=authorization_code`` (RFC 6749 section 4.1.3, RFC 7636): ``client_id=stead-cli``,
    the ``code`` the console's ``/console/cli/authorize`` page gave, its ``code_verifier`` and
    ``redirect_uri``. ``grant_type=refresh_token`` (RFC 6749 section 6): a CLI grant's refresh
    token, exchanged for a new one (the old one is used up; using it again revokes the grant).
    ``audience`` is accepted for DPC compatibility and not checked. The body is a form (RFC
    6749 section 4.4.2); a JSON body is refused with ``invalid_request`` saying so. Failed
    attempts are throttled per client id (or user) and per address
    (:mod:`stead.pipeline.throttle`): 429 with ``Retry-After``, checking nothing.
    """
    state = request.app.state
    if grant_type is None:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            return _oauth_error(
                "invalid_request",
                "the token endpoint takes an application/x-www-form-urlencoded body, not JSON "
                "(RFC 6749 section 4.4.2)",
                400,
            )
        return _oauth_error("invalid_request", "grant_type is required", 400)
    if grant_type == "password":
        if not username or not password:
            return _oauth_error("invalid_request", "username and password are required", 400)
        if client_id != grants.CLI_CLIENT_ID:
            user, refusal = await throttled_login(request, email=username, password=password)
            if refusal is not None or user is None:
                return _oauth_error("invalid_grant", refusal.detail if refusal else "", 400)
            return _token_response(request, user)
        return await _cli_password_grant(
            request, email=username, password=password, device=device_name
        )
    if grant_type in ("authorization_code", "refresh_token"):
        if client_id != grants.CLI_CLIENT_ID:
            return _oauth_error(
                "unsupported_grant_type",
                f"grant_type {grant_type} is for client_id {grants.CLI_CLIENT_ID} only",
                400,
            )
        if grant_type == "refresh_token":
            if not refresh_token:
                return _oauth_error("invalid_request", "refresh_token is required", 400)
            return await _cli_exchange(
                request, grants.refresh, refresh_token=refresh_token, **request_origin(request)
            )
        if not code or not code_verifier or not redirect_uri:
            return _oauth_error(
                "invalid_request", "code, code_verifier and redirect_uri are required", 400
            )
        return await _cli_exchange(
            request,
            grants.exchange_code,
            code=code,
            verifier=code_verifier,
            redirect_uri=redirect_uri,
            **request_origin(request),
        )
    if grant_type != "client_credentials":
        return _oauth_error(
            "unsupported_grant_type",
            "grant_type must be client_credentials, password, authorization_code or "
            "refresh_token",
            400,
        )
    basic = _basic_credentials(request)
    if basic is not None:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        return _oauth_error("invalid_request", "client_id and client_secret are required", 400)
    throttle: FailureThrottle = state.sign_in_throttle
    address = _address(request)
    throttle.check(name=client_id, address=address)
    client = await run_in_threadpool(_find_client, state.sessionmaker, client_id)
    ok = await anyio.to_thread.run_sync(
        service.client_authenticates, client, client_secret, limiter=hash_limiter(state)
    )
    if client is None or not ok:
        throttle.failed(name=client_id, address=address)
        SIGN_IN_FAILURES.labels("client").inc()
        return _oauth_error("invalid_client", "client authentication failed", 401)
    return _token_response(request, client)


async def _cli_password_grant(
    request: Request, *, email: str, password: str, device: str | None
) -> JSONResponse:
    """The password grant of ``stead login --email``: the login service's checks (lockout,
    throttle, audit), then a new CLI grant."""
    user, refusal = await throttled_login(request, email=email, password=password)
    if refusal is not None or user is None:
        return _oauth_error("invalid_grant", refusal.detail if refusal else "", 400)
    user_id, origin = user.id, request_origin(request)

    def issue() -> tuple[CliGrant, User, str]:
        with session_scope(request.app.state.sessionmaker, write=True) as session:
            person = session.get(User, user_id)
            assert person is not None
            grant, refresh = grants.issue_grant(
                session,
                user=person,
                device=grants.device_name(device),
                method="password",
                actor=service.user_actor(person).with_request(**origin),
            )
            return grant, person, refresh

    grant, person, refresh = await run_in_threadpool(issue)
    return _token_response(request, person, grant=grant, refresh_token=refresh)


async def _cli_exchange(
    request: Request,
    exchange: Callable[..., tuple[CliGrant, User, str]],
    **arguments: str | None,
) -> JSONResponse:
    """Run ``exchange`` (:func:`grants.refresh` or :func:`grants.exchange_code`) in a
    transaction of its own, committed also when it refuses (a replay's revocation is kept),
    and answer the new tokens or ``invalid_grant``."""
    state = request.app.state

    def run() -> tuple[CliGrant, User, str] | grants.GrantRefused:
        with session_scope(state.sessionmaker, write=True) as session:
            try:
                return exchange(session, **arguments)
            except grants.GrantRefused as refused:
                if refused.revoked_user_id is not None:
                    # A replay revoked a grant: this process refuses its access tokens at once.
                    forget_after_commit(session, request, refused.revoked_user_id)
                return refused

    result = await run_in_threadpool(run)
    if isinstance(result, grants.GrantRefused):
        SIGN_IN_FAILURES.labels("user").inc()
        return _oauth_error("invalid_grant", result.description, 400)
    grant, user, refresh = result
    return _token_response(request, user, grant=grant, refresh_token=refresh)


def _find_client(factory: sessionmaker[Session], client_id: str) -> ApiClient | None:
    with session_scope(factory, write=False) as session:
        return service.find_client(session, client_id=client_id)


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def throttled_login(
    request: Request, *, email: str, password: str, session: Session | None = None
) -> tuple[User | None, Unauthorized | None]:
    """:func:`stead.identity.users.login` throttled (:mod:`stead.pipeline.throttle`), its
    password check under the hash limit; in ``session`` (left for the caller to commit), else in
    a transaction of its own.

    Raises:
        TooManyRequests: too many failed sign-ins for this email or from this address.
    """
    state = request.app.state
    throttle: FailureThrottle = state.sign_in_throttle
    name, address = service.email_key(email), _address(request)
    throttle.check(name=name, address=address)

    def run(session: Session) -> tuple[User | None, Unauthorized | None]:
        user, refusal = users.login(
            session,
            email=email,
            password=password,
            settings=state.settings,
            **request_origin(request),
        )
        if refusal is not None and "Retry-After" in refusal.headers:
            # A lock signs the user out everywhere: this process forgets them once committed.
            locked = service.find_user(session, email=email)
            if locked is not None:
                forget_after_commit(session, request, locked.id)
        return user, refusal

    def in_own_transaction() -> tuple[User | None, Unauthorized | None]:
        with session_scope(state.sessionmaker, write=True) as own:
            return run(own)

    work = in_own_transaction if session is None else functools.partial(run, session)
    user, refusal = await anyio.to_thread.run_sync(work, limiter=hash_limiter(state))
    if refusal is not None or user is None:
        throttle.failed(name=name, address=address)
        SIGN_IN_FAILURES.labels("user").inc()
    return user, refusal


api_router = make_router()

ClientIdPath = Annotated[str, Path(alias="clientId", description="the API client's clientId")]
MemberIdPath = Annotated[
    str, Path(alias="memberId", description="the member's user id or API client id")
]
InvitationIdPath = Annotated[str, Path(alias="invitationId", description="invitation UUID")]
UserIdPath = Annotated[str, Path(alias="userId", description="user UUID")]
EnvironmentNamePath = Annotated[str, Path(alias="environmentName", description="environment name")]
_ACCESS = "/projects/{projectId}/environments/{environmentName}/access"


@api_router.post(
    "/auth/login",
    tags=["auth"],
    response_model=TokenResponse,
    responses={401: {"description": "wrong email or password, or the user is locked"}},
)
async def log_in(data: LoginRequest, session: SessionDep, request: Request) -> JSONResponse:
    """Log a user in with email and password; the answer is a bearer token valid 1800 s.

    After ``STEAD_LOGIN_MAX_FAILURES`` consecutive failures for one email from one address that
    pair is locked, ``STEAD_LOGIN_BACKOFF_SECONDS`` at first, doubling with each further
    failure up to ``STEAD_LOGIN_LOCK_SECONDS`` (``Retry-After`` says how long); every failure is
    counted and audited although the request is refused. Unknown emails are answered alike.
    Failed attempts are also throttled as the token endpoint's are (429, ``Retry-After``).
    """
    user, refusal = await throttled_login(
        request, email=data.email, password=data.password.get_secret_value(), session=session
    )
    if refusal is not None or user is None:
        await run_in_threadpool(session.commit)  # keep the counted, audited failure
        raise refusal or Unauthorized("Invalid email or password")
    return _token_response(request, user)


def _client_read(client: ApiClient, secret: str | None = None) -> ApiClientRead:
    read = ApiClientRead.model_validate(client)
    if secret is None:
        return read
    return ApiClientCreated(**read.model_dump(), client_secret=secret)


@api_router.post(
    "/api-clients", tags=["api clients"], status_code=201, response_model=ApiClientCreated
)
def create_api_client(
    data: ApiClientCreate, actor: ApiClientManager, session: SessionDep, response: Response
) -> ApiClientRead:
    """Create an API client; its secret is in this response only. Super Admins and Admins;
    only a Super Admin creates ``SUPER_ADMIN`` clients."""
    client, secret = service.register_client(session, actor=actor, name=data.name, role=data.role)
    response.headers["Location"] = f"/v1/api-clients/{client.client_id}"
    response.headers["Cache-Control"] = "no-store"
    return _client_read(client, secret)


@api_router.get("/api-clients", tags=["api clients"], response_model=Page[ApiClientRead])
def list_api_clients(
    actor: ApiClientManager, session: SessionDep, params: PageDep
) -> Page[ApiClientRead]:
    """List the account's API clients, revoked ones included, oldest first."""
    total, rows = service.list_clients(session, actor=actor, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[ApiClientRead.model_validate(c) for c in rows],
    )


def _client(session: SessionDep, actor: Actor, client_id: str) -> ApiClient:
    return service.get_client(
        session, actor=actor, client_id=parse_uuid(client_id, field="clientId")
    )


@api_router.get("/api-clients/{clientId}", tags=["api clients"], response_model=ApiClientRead)
def get_api_client(
    client_id: ClientIdPath, actor: ApiClientManager, session: SessionDep
) -> ApiClientRead:
    """Read one API client (never its secret)."""
    return _client_read(_client(session, actor, client_id))


@api_router.post(
    "/api-clients/{clientId}/secret", tags=["api clients"], response_model=ApiClientCreated
)
def rotate_api_client_secret(
    client_id: ClientIdPath,
    actor: ApiClientManager,
    session: SessionDep,
    request: Request,
    response: Response,
) -> ApiClientRead:
    """Issue a new secret, shown only in this response; the old one and every token issued
    before stop working at once (on other server processes within ``actor_cache_seconds``)."""
    client = _client(session, actor, client_id)
    secret = service.rotate_secret(session, actor=actor, client=client)
    forget_after_commit(session, request, client.id)
    response.headers["Cache-Control"] = "no-store"
    return _client_read(client, secret)


@api_router.delete("/api-clients/{clientId}", tags=["api clients"], status_code=204)
def revoke_api_client(
    client_id: ClientIdPath, actor: ApiClientManager, session: SessionDep, request: Request
) -> Response:
    """Revoke an API client: its secret and its tokens stop working at once (on other server
    processes within ``actor_cache_seconds``)."""
    client = _client(session, actor, client_id)
    service.revoke_client(session, actor=actor, client=client)
    forget_after_commit(session, request, client.id)
    return Response(status_code=204)


def forget_after_commit(session: Session, request: Request, principal_id: str) -> None:
    """Drop the principal from this process's actor cache once ``session``'s change is
    committed (a revoked client, a user signed out everywhere), so that its tokens are refused
    at once here; other processes within ``actor_cache_seconds``."""
    cache: ActorCache = request.app.state.actor_cache
    event.listen(session, "after_commit", lambda _: cache.forget(principal_id), once=True)


def _user_reads(session: Session, rows: list[User]) -> list[UserRead]:
    locked = users.locked_user_ids(session, users=rows)
    return [
        UserRead(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            role=user.role,
            disabled=user.disabled_at is not None,
            locked=user.id in locked,
            last_login_at=user.last_login_at,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )
        for user in rows
    ]


def _user_read(session: Session, user: User) -> UserRead:
    return _user_reads(session, [user])[0]


@api_router.get("/users", tags=["users"], response_model=Page[UserRead])
def list_users(
    actor: UserReader,
    session: SessionDep,
    params: PageDep,
    q: Annotated[
        str | None,
        Query(max_length=320, description="only users whose email starts with this"),
    ] = None,
) -> Page[UserRead]:
    """List the account's users, disabled ones included, oldest first (Super Admins and
    Admins); ``q`` keeps those whose email starts with it (case-insensitive)."""
    total, rows = users.list_users(session, actor=actor, params=params, q=q)
    return Page(page=params.page, size=params.size, total=total, results=_user_reads(session, rows))


@api_router.get(
    "/users/me",
    tags=["users"],
    response_model=UserRead,
    responses={404: {"description": "the caller is an API client"}},
)
def read_me(actor: ActorDep, session: SessionDep) -> UserRead:
    """The calling user (any user; an API client gets 404)."""
    return _user_read(session, users.me(session, actor=actor))


GrantIdPath = Annotated[str, Path(alias="grantId", description="CLI grant UUID")]


@api_router.get(
    "/users/me/grants",
    tags=["users"],
    response_model=Page[CliGrantRead],
    responses={404: {"description": "the caller is an API client"}},
)
def list_my_grants(actor: ActorDep, session: SessionDep, params: PageDep) -> Page[CliGrantRead]:
    """The calling user's live CLI grants (``stead login`` on each machine), the most recently
    used first; ``current`` marks the one this request's token belongs to."""
    user = users.me(session, actor=actor)
    total, rows = grants.page_of_grants(session, user_id=user.id, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[
            CliGrantRead.model_validate(g).model_copy(update={"current": g.id == actor.grant_id})
            for g in rows
        ],
    )


@api_router.delete(
    "/users/me/grants/{grantId}",
    tags=["users"],
    status_code=204,
    responses={404: {"description": "no such grant of the caller"}},
)
def revoke_my_grant(
    grant_id: GrantIdPath, actor: ActorDep, session: SessionDep, request: Request
) -> Response:
    """Revoke one of the calling user's CLI grants (``stead logout`` revokes its own): its
    refresh token and access tokens stop working at once (on other server processes within
    ``actor_cache_seconds``). Revoking a revoked grant changes nothing."""
    grant = grants.get_own_grant(
        session, actor=actor, grant_id=parse_uuid(grant_id, field="grantId")
    )
    reason = "logout" if grant.id == actor.grant_id else "api"
    grants.revoke(session, grant=grant, actor=actor, reason=reason)
    forget_after_commit(session, request, actor.id)
    return Response(status_code=204)


@api_router.post(
    "/users/me/password",
    tags=["users"],
    status_code=204,
    responses={
        400: {"description": "the current password is wrong or the new one is refused"},
        404: {"description": "the caller is an API client"},
    },
)
def change_my_password(
    data: PasswordChange, actor: ActorDep, session: SessionDep, request: Request
) -> Response:
    """Change the calling user's password: every token issued to them so far stops working
    and their console sessions end (they log in again with the new password)."""
    user = users.me(session, actor=actor)
    users.change_password(
        session,
        actor=actor,
        user=user,
        current=data.current_password.get_secret_value(),
        new=data.new_password.get_secret_value(),
    )
    forget_after_commit(session, request, user.id)
    return Response(status_code=204)


def _user(session: SessionDep, actor: Actor, user_id: str) -> User:
    return users.get_user(session, actor=actor, user_id=parse_uuid(user_id, field="userId"))


@api_router.get("/users/{userId}", tags=["users"], response_model=UserRead)
def read_user(user_id: UserIdPath, actor: UserReader, session: SessionDep) -> UserRead:
    """Read one user of the account (Super Admins and Admins)."""
    return _user_read(session, _user(session, actor, user_id))


@api_router.patch(
    "/users/{userId}",
    tags=["users"],
    response_model=UserRead,
    responses={409: {"description": "the caller disables or re-roles themselves"}},
)
def update_user(
    user_id: UserIdPath,
    data: UserUpdate,
    actor: UserManager,
    session: SessionDep,
    request: Request,
) -> UserRead:
    """Disable or enable a user, or change their account role. Disabling and a new role
    sign the user out everywhere: their tokens stop working at once (on other server
    processes within ``actor_cache_seconds``) and their console sessions end. Only a Super
    Admin changes a Super Admin or makes one."""
    user = _user(session, actor, user_id)
    users.update_user(session, actor=actor, user=user, disabled=data.disabled, role=data.role)
    forget_after_commit(session, request, user.id)
    return _user_read(session, user)


@api_router.post("/users/{userId}/revoke-tokens", tags=["users"], status_code=204)
def revoke_user_tokens(
    user_id: UserIdPath, actor: UserManager, session: SessionDep, request: Request
) -> Response:
    """Sign the user out everywhere: every token they hold stops working and every console
    session ends (they can log in again). Only a Super Admin signs out a Super Admin."""
    user = _user(session, actor, user_id)
    users.revoke_tokens(session, actor=actor, user=user)
    forget_after_commit(session, request, user.id)
    return Response(status_code=204)


@api_router.post("/users/{userId}/unlock", tags=["users"], response_model=UserRead)
def unlock_user(user_id: UserIdPath, actor: UserManager, session: SessionDep) -> UserRead:
    """Clear the user's login lockouts from every address: they may log in again at once.
    Only a Super Admin unlocks a Super Admin."""
    user = _user(session, actor, user_id)
    return _user_read(session, users.unlock(session, actor=actor, user=user))


@api_router.post(
    "/users/{userId}/password-reset",
    tags=["users"],
    response_model=PasswordResetCreated,
    responses={
        409: {"description": "the user is disabled, or is the caller"},
        502: {"description": "the mail server failed"},
    },
)
def start_password_reset(
    user_id: UserIdPath,
    actor: UserManager,
    session: SessionDep,
    request: Request,
    response: Response,
) -> PasswordResetCreated:
    """Make a one-time link for the user to set a new password, and sign them out everywhere.

    The link works once, for ``STEAD_PASSWORD_RESET_TTL_SECONDS`` (24 h), and replaces any
    earlier one. It is in this response only (pass it on), and is also mailed to the user when
    a mail server is configured. The old password works until the link is used. Only a Super
    Admin resets a Super Admin.
    """
    user = _user(session, actor, user_id)
    reset, url, mail_sent = users.start_password_reset(
        session, actor=actor, user=user, settings=request.app.state.settings
    )
    forget_after_commit(session, request, user.id)
    response.headers["Cache-Control"] = "no-store"
    return PasswordResetCreated(
        user_id=user.id,
        email=user.email,
        expires_at=reset.expires_at,
        reset_url=url,
        mail_sent=mail_sent,
    )


@api_router.post(
    "/auth/password-reset",
    tags=["auth"],
    status_code=204,
    responses={
        404: {"description": "no password reset has this token"},
        409: {"description": "used already, expired, or the user is disabled"},
    },
)
def use_password_reset(data: PasswordResetUse, session: SessionDep, request: Request) -> Response:
    """Set a new password with a password reset link's token (no bearer token: the link is
    the credential). The link is used up, the user's lockouts are cleared and every session
    and token they had ends; they log in with the new password."""
    user = users.reset_password(
        session,
        token=data.token.get_secret_value(),
        password=data.password.get_secret_value(),
        **request_origin(request),
    )
    forget_after_commit(session, request, user.id)
    return Response(status_code=204)


@api_router.get("/projects/{projectId}/members", tags=["members"], response_model=Page[MemberRead])
def list_members(ctx: MemberReader, session: SessionDep, params: PageDep) -> Page[MemberRead]:
    """List the project's members (users and API clients) with their project roles."""
    total, rows = members.list_members(session, project=ctx.project, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[members.member_read(m, name) for m, name in rows],
    )


@api_router.patch(
    "/projects/{projectId}/members/{memberId}", tags=["members"], response_model=MemberRead
)
def change_member_role(
    member_id: MemberIdPath, data: MemberUpdate, ctx: MemberManager, session: SessionDep
) -> MemberRead:
    """Change a member's project role (the project keeps at least one Owner: 409)."""
    member = members.get_member(
        session, project=ctx.project, member_id=parse_uuid(member_id, field="memberId")
    )
    member = members.change_role(
        session, actor=ctx.actor, project=ctx.project, member=member, role=data.project_role
    )
    names = members.names_of(session, ids=[member.principal_id])
    return members.member_read(member, names.get(member.principal_id, ""))


@api_router.delete("/projects/{projectId}/members/{memberId}", tags=["members"], status_code=204)
def remove_member(member_id: MemberIdPath, ctx: MemberManager, session: SessionDep) -> Response:
    """Remove a member and its environment access (the last Owner stays: 409)."""
    member = members.get_member(
        session, project=ctx.project, member_id=parse_uuid(member_id, field="memberId")
    )
    members.remove_member(session, actor=ctx.actor, project=ctx.project, member=member)
    return Response(status_code=204)


@api_router.post(
    "/projects/{projectId}/invitations",
    tags=["invitations"],
    status_code=201,
    response_model=InvitationCreated,
    responses={
        409: {"description": "already a member, or already invited"},
        502: {"description": "the mail server failed"},
    },
)
def invite(
    data: InvitationCreate,
    ctx: MemberManager,
    session: SessionDep,
    request: Request,
    response: Response,
) -> InvitationCreated:
    """Invite an email address into the project with a project role (Owners and Super Admins).

    The invitation is single-use and expires (``STEAD_INVITATION_TTL_SECONDS``). The accept
    link is mailed to the invitee; an account Admin may instead take it here, once, with
    ``returnAcceptUrl`` (the only way without a mail server).
    """
    invitation, accept_url = members.invite(
        session,
        actor=ctx.actor,
        project=ctx.project,
        data=data,
        settings=request.app.state.settings,
    )
    response.headers["Location"] = f"/v1/projects/{ctx.project.id}/invitations"
    response.headers["Cache-Control"] = "no-store"
    read = InvitationRead.model_validate(invitation)
    return InvitationCreated(
        **read.model_dump(), mail_sent=accept_url is None, accept_url=accept_url
    )


@api_router.get(
    "/projects/{projectId}/invitations",
    tags=["invitations"],
    response_model=Page[InvitationRead],
)
def list_invitations(
    ctx: MemberManager, session: SessionDep, params: PageDep
) -> Page[InvitationRead]:
    """List the project's invitations (pending, accepted, expired), oldest first."""
    total, rows = members.list_invitations(session, project=ctx.project, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[InvitationRead.model_validate(i) for i in rows],
    )


@api_router.delete(
    "/projects/{projectId}/invitations/{invitationId}", tags=["invitations"], status_code=204
)
def revoke_invitation(
    invitation_id: InvitationIdPath, ctx: MemberManager, session: SessionDep
) -> Response:
    """Withdraw an invitation that was not accepted; its link stops working."""
    members.revoke_invitation(
        session,
        actor=ctx.actor,
        project=ctx.project,
        invitation_id=parse_uuid(invitation_id, field="invitationId"),
    )
    return Response(status_code=204)


@api_router.post(
    "/invitations/accept",
    tags=["invitations"],
    response_model=InvitationAccepted,
    responses={
        401: {"description": "the email has a user: log in as that user first"},
        403: {"description": "logged in as another user"},
        404: {"description": "no invitation has this token"},
        409: {"description": "used already, expired, or already a member"},
    },
)
def accept_invitation(
    data: InvitationAccept, caller: OptionalActorDep, session: SessionDep, request: Request
) -> InvitationAccepted:
    """Accept an invitation; the ``token`` (the last segment of the accept URL) is the
    credential and travels in the body.

    A new user sends ``{"token", "password"}`` (and optionally ``displayName``). A user that
    exists already sends ``{"token"}`` with their own bearer token and is linked. The user
    becomes a member with the invited role.
    """
    invitation, user, created = members.accept(
        session, data=data, caller=caller, **request_origin(request)
    )
    return InvitationAccepted(
        user_id=user.id,
        email=user.email,
        project_id=invitation.project_id,
        project_role=invitation.project_role,
        user_created=created,
    )


@api_router.get(_ACCESS, tags=["environment access"], response_model=Page[EnvironmentAccessRead])
def list_environment_access(
    name: EnvironmentNamePath, ctx: MemberReader, session: SessionDep, params: PageDep
) -> Page[EnvironmentAccessRead]:
    """List the access levels set for users in an environment (users without one get the
    environment's ``defaultUserAccessLevel``)."""
    total, rows = members.list_access(session, project=ctx.project, name=name, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[members.access_read(a, email) for a, email in rows],
    )


@api_router.put(
    _ACCESS + "/{userId}", tags=["environment access"], response_model=EnvironmentAccessRead
)
def set_environment_access(
    name: EnvironmentNamePath,
    user_id: UserIdPath,
    data: EnvironmentAccessSet,
    ctx: MemberManager,
    session: SessionDep,
) -> EnvironmentAccessRead:
    """Set a project member's access level to an environment: ``admin``, ``runner``,
    ``readOnly``, ``noAccess``, or ``default`` (the project role decides)."""
    access, email = members.set_access(
        session,
        actor=ctx.actor,
        project=ctx.project,
        name=name,
        user_id=parse_uuid(user_id, field="userId"),
        level=data.access_level,
    )
    return members.access_read(access, email)


@api_router.delete(_ACCESS + "/{userId}", tags=["environment access"], status_code=204)
def remove_environment_access(
    name: EnvironmentNamePath, user_id: UserIdPath, ctx: MemberManager, session: SessionDep
) -> Response:
    """Remove a user's own access level: the environment's default applies to them again."""
    members.remove_access(
        session,
        actor=ctx.actor,
        project=ctx.project,
        name=name,
        user_id=parse_uuid(user_id, field="userId"),
    )
    return Response(status_code=204)
