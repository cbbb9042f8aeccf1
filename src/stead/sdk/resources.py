"""Typed resources of the SDK, one per API resource, one method per route.

Bodies are the server's own wire models (``ProjectCreate``, ``EnvironmentUpdate``, ...) or plain
mappings in wire form (camelCase, as in ``stead/demo_examples``); answers are the wire models
the server returns. Names in paths are percent-encoded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr

from stead.agents.schemas import (
    AgentAllowList,
    AgentAllowListAddition,
    AgentCreate,
    AgentCredentials,
    AgentRead,
    AgentUpdate,
    CredentialsRequest,
)
from stead.audit.schemas import AuditEventRead
from stead.connections.schemas import ConnectionCreate, ConnectionRead
from stead.environments.schemas import (
    EnvironmentCreate,
    EnvironmentRead,
    EnvironmentSummary,
    EnvironmentUpdate,
)
from stead.identity.schemas import (
    ApiClientCreate,
    ApiClientCreated,
    ApiClientRead,
    CliGrantRead,
    EnvironmentAccessRead,
    EnvironmentAccessSet,
    InvitationAccepted,
    InvitationCreate,
    InvitationCreated,
    InvitationRead,
    LoginRequest,
    MemberRead,
    MemberUpdate,
    PasswordChange,
    PasswordResetCreated,
    TokenResponse,
    UserRead,
    UserUpdate,
)
from stead.projects.schemas import (
    ProjectCreate,
    ProjectCreated,
    ProjectRead,
    ProjectUpdate,
    ProvisionRequest,
    ProvisionResult,
)
from stead.repositories.schemas import RepositoryCreate, RepositoryRead
from stead.scim.schemas import ScimTokenCreate, ScimTokenCreated, ScimTokenRead
from stead.secrets.schemas import (
    HostedSecretCreate,
    HostedSecretRead,
    HostedSecretUpdate,
    SecretReferenceCheck,
    SecretReferenceCreate,
    SecretReferenceRead,
    SecretScopesRead,
    SecretScopesUpdate,
)
from stead.state.schemas import ProjectStateRead
from stead.warehouses.schemas import ConnectionTestResult

M = TypeVar("M", bound=BaseModel)


class Transport(Protocol):
    """What a resource needs of the client (:class:`stead.sdk.client.Client` is one): the
    resources name this, not the client, so that the client imports them and not the reverse."""

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        authenticate: bool = True,
    ) -> httpx.Response:
        """Send a request; raise an ``ApiError`` for a 4xx/5xx answer."""
        ...

    def call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        """:meth:`request`, then the JSON answer as ``model``."""
        ...

    def token(self, form: Mapping[str, str]) -> TokenResponse:
        """``POST`` a form to the token endpoint; raise an ``ApiError`` when refused."""
        ...

    def pages(
        self,
        model: type[M],
        path: str,
        *,
        page_size: int = 100,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[M]:
        """Every item of a paged list, one page fetched at a time."""
        ...


TOKEN_HEADER = "Git-Provider-Access-Token"


def _seg(name: str) -> str:
    return quote(name, safe="")


def _plain(value: Any) -> Any:
    """``value`` with every ``SecretStr`` revealed, for a request body (write-only fields)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _body(body: BaseModel | Mapping[str, Any]) -> Any:
    """The JSON body for ``body``: a wire model (its camelCase form, fields that were set) or a
    mapping already in wire form (sent as given)."""
    if isinstance(body, BaseModel):
        return _plain(body.model_dump(by_alias=True, exclude_unset=True, mode="python"))
    return dict(body)


class _Resource:
    def __init__(self, client: Transport) -> None:
        self._client = client


class Projects(_Resource):
    """``/v1/projects`` (docs/api.md, Projects)."""

    def create(
        self, body: ProjectCreate | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> ProjectCreated:
        """``POST /v1/projects`` -> ``{"projectId"}``; :class:`Conflict` carries
        ``existing_id`` for a taken name."""
        return self._client.call(
            ProjectCreated,
            "POST",
            "/v1/projects",
            json=_body(body),
            idempotency_key=idempotency_key,
        )

    def provision(
        self,
        body: ProvisionRequest | Mapping[str, Any],
        *,
        token: str | None = None,
        idempotency_key: str | None = None,
    ) -> ProvisionResult:
        """``POST /v1/provisioning``: project, connection, secret, environment and repository in
        one transaction (docs/api.md, Provisioning); ``token`` is the repository provider's
        access token, needed with a ``repository``."""
        return self._client.call(
            ProvisionResult,
            "POST",
            "/v1/provisioning",
            json=_body(body),
            headers=None if token is None else {TOKEN_HEADER: token},
            idempotency_key=idempotency_key,
        )

    def list(self, *, page_size: int = 100) -> Iterator[ProjectRead]:
        """Every project the caller may see, oldest first."""
        return self._client.pages(ProjectRead, "/v1/projects", page_size=page_size)

    def states(
        self,
        *,
        names: Sequence[str] = (),
        project_ids: Sequence[str] = (),
        page_size: int = 100,
    ) -> Iterator[ProjectStateRead]:
        """``GET /v1/projects/state``: the visible projects named in ``names`` or with the ids
        ``project_ids`` (every visible project when both are empty), each with everything in
        it, fetched a page at a time. At most 200 names and ids together per call."""
        params = {"name": list(names), "projectId": list(project_ids)}
        return self._client.pages(
            ProjectStateRead, "/v1/projects/state", page_size=page_size, params=params
        )

    def get(self, project_id: str) -> ProjectRead:
        """``GET /v1/projects/{projectId}``."""
        return self._client.call(ProjectRead, "GET", f"/v1/projects/{_seg(project_id)}")

    def update(self, project_id: str, body: ProjectUpdate | Mapping[str, Any]) -> ProjectRead:
        """``PATCH /v1/projects/{projectId}`` (``name``, ``description``)."""
        return self._client.call(
            ProjectRead, "PATCH", f"/v1/projects/{_seg(project_id)}", json=_body(body)
        )

    def delete(self, project_id: str) -> None:
        """``DELETE /v1/projects/{projectId}``, with everything in it."""
        self._client.request("DELETE", f"/v1/projects/{_seg(project_id)}")


class Agents(_Resource):
    """``/v1/agents`` (docs/api.md, Agents)."""

    def create(
        self, body: AgentCreate | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> AgentRead:
        """``POST /v1/agents``."""
        return self._client.call(
            AgentRead, "POST", "/v1/agents", json=_body(body), idempotency_key=idempotency_key
        )

    def list(self, *, page_size: int = 100) -> Iterator[AgentRead]:
        """Every agent of the account, the hosted agent included, oldest first."""
        return self._client.pages(AgentRead, "/v1/agents", page_size=page_size)

    def get(self, agent_id: str) -> AgentRead:
        """``GET /v1/agents/{agentId}``."""
        return self._client.call(AgentRead, "GET", f"/v1/agents/{_seg(agent_id)}")

    def update(self, agent_id: str, body: AgentUpdate | Mapping[str, Any]) -> AgentRead:
        """``PATCH /v1/agents/{agentId}`` (202): only the fields given change."""
        return self._client.call(
            AgentRead, "PATCH", f"/v1/agents/{_seg(agent_id)}", json=_body(body)
        )

    def delete(self, agent_id: str) -> None:
        """``DELETE /v1/agents/{agentId}`` (202; 409 while used)."""
        self._client.request("DELETE", f"/v1/agents/{_seg(agent_id)}")

    def get_allow_list(self, agent_id: str) -> AgentAllowList:
        """``GET /v1/agents/{agentId}/allowlist``."""
        return self._client.call(AgentAllowList, "GET", f"/v1/agents/{_seg(agent_id)}/allowlist")

    def set_allow_list(
        self, agent_id: str, body: AgentAllowList | Mapping[str, Any]
    ) -> AgentAllowList:
        """``PUT /v1/agents/{agentId}/allowlist``."""
        return self._client.call(
            AgentAllowList, "PUT", f"/v1/agents/{_seg(agent_id)}/allowlist", json=_body(body)
        )

    def add_to_allow_list(
        self, agent_id: str, body: AgentAllowListAddition | Mapping[str, Any]
    ) -> AgentAllowList:
        """``PATCH /v1/agents/{agentId}/allowlist``: add projects and environments."""
        return self._client.call(
            AgentAllowList, "PATCH", f"/v1/agents/{_seg(agent_id)}/allowlist", json=_body(body)
        )

    def get_credentials(self, agent_id: str) -> AgentCredentials:
        """``GET /v1/agents/{agentId}/credentials``: the client id and secret (audited)."""
        return self._client.call(
            AgentCredentials, "GET", f"/v1/agents/{_seg(agent_id)}/credentials"
        )

    def refresh_credentials(
        self, agent_id: str, *, idempotency_key: str | None = None
    ) -> AgentCredentials:
        """``POST /v1/agents/{agentId}/credentials`` ``{"action": "SECRET_REFRESH"}``: a new
        client secret; the old one stops working."""
        return self._client.call(
            AgentCredentials,
            "POST",
            f"/v1/agents/{_seg(agent_id)}/credentials",
            json=_body(CredentialsRequest(action="SECRET_REFRESH")),
            idempotency_key=idempotency_key,
        )


class Connections(_Resource):
    """``/v1/projects/{projectId}/data-platform-connections`` (docs/api.md, Connections)."""

    @staticmethod
    def _path(project_id: str) -> str:
        return f"/v1/projects/{_seg(project_id)}/data-platform-connections"

    def create(
        self,
        project_id: str,
        body: ConnectionCreate | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> ConnectionRead:
        """``POST .../data-platform-connections``."""
        return self._client.call(
            ConnectionRead,
            "POST",
            self._path(project_id),
            json=_body(body),
            idempotency_key=idempotency_key,
        )

    def list(self, project_id: str, *, page_size: int = 100) -> Iterator[ConnectionRead]:
        """Every connection of the project."""
        return self._client.pages(ConnectionRead, self._path(project_id), page_size=page_size)

    def get(self, project_id: str, name: str) -> ConnectionRead:
        """``GET .../data-platform-connections/{name}``."""
        return self._client.call(ConnectionRead, "GET", f"{self._path(project_id)}/{_seg(name)}")

    def delete(self, project_id: str, name: str) -> None:
        """``DELETE .../data-platform-connections/{name}`` (409 while an environment uses it)."""
        self._client.request("DELETE", f"{self._path(project_id)}/{_seg(name)}")


class Environments(_Resource):
    """``/v1/projects/{projectId}/environments`` (docs/api.md, Environments)."""

    @staticmethod
    def _path(project_id: str) -> str:
        return f"/v1/projects/{_seg(project_id)}/environments"

    def create(
        self,
        project_id: str,
        body: EnvironmentCreate | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        validate: bool = False,
    ) -> EnvironmentRead:
        """``POST .../environments``; ``validate`` runs the connection test first and stores
        nothing when it fails (:class:`ValidationError` carrying ``warehouseError``)."""
        return self._client.call(
            EnvironmentRead,
            "POST",
            self._path(project_id),
            json=_body(body),
            params={"validate": "true"} if validate else None,
            idempotency_key=idempotency_key,
        )

    def list(self, project_id: str, *, page_size: int = 100) -> Iterator[EnvironmentSummary]:
        """Every environment of the project (summaries; :meth:`get` has the properties)."""
        return self._client.pages(EnvironmentSummary, self._path(project_id), page_size=page_size)

    def get(self, project_id: str, name: str) -> EnvironmentRead:
        """``GET .../environments/{name}``."""
        return self._client.call(EnvironmentRead, "GET", f"{self._path(project_id)}/{_seg(name)}")

    def update(
        self,
        project_id: str,
        name: str,
        body: EnvironmentUpdate | Mapping[str, Any],
        *,
        validate: bool = False,
    ) -> EnvironmentRead:
        """``PATCH .../environments/{name}``: changes the fields given, any but ``name``, and
        keeps the others; ``connectionProperties`` are merged (RFC 7396: a property given is
        set, ``None`` removes an optional one, one left out is kept). ``validate`` as for
        :meth:`create`."""
        return self._client.call(
            EnvironmentRead,
            "PATCH",
            f"{self._path(project_id)}/{_seg(name)}",
            json=_body(body),
            params={"validate": "true"} if validate else None,
        )

    def delete(self, project_id: str, name: str) -> None:
        """``DELETE .../environments/{name}``."""
        self._client.request("DELETE", f"{self._path(project_id)}/{_seg(name)}")

    def profile(self, project_id: str, name: str, *, profile_format: str = "dbt") -> str:
        """``GET .../environments/{name}/profile?format=...``: the environment as a connection
        profile (``dbt``: a dbt ``profiles.yml``, YAML text), secrets as ``env_var()``
        references."""
        path = f"{self._path(project_id)}/{_seg(name)}/profile"
        return self._client.request("GET", path, params={"format": profile_format}).text

    def test_connection(
        self, project_id: str, name: str, *, idempotency_key: str | None = None
    ) -> ConnectionTestResult:
        """``POST .../environments/{name}/connection-test``: log in to the warehouse with the
        environment's credentials now; ``ok`` false carries the warehouse's error code."""
        return self._client.call(
            ConnectionTestResult,
            "POST",
            f"{self._path(project_id)}/{_seg(name)}/connection-test",
            idempotency_key=idempotency_key,
        )


class SecretReferences(_Resource):
    """``/v1/projects/{projectId}/secret-references`` (docs/api.md, Secrets)."""

    @staticmethod
    def _path(project_id: str) -> str:
        return f"/v1/projects/{_seg(project_id)}/secret-references"

    def create(
        self,
        project_id: str,
        name: str,
        body: SecretReferenceCreate | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> SecretReferenceRead:
        """``POST .../secret-references/{name}``."""
        return self._client.call(
            SecretReferenceRead,
            "POST",
            f"{self._path(project_id)}/{_seg(name)}",
            json=_body(body),
            idempotency_key=idempotency_key,
        )

    def list(self, project_id: str, *, page_size: int = 100) -> Iterator[SecretReferenceRead]:
        """Every secret reference of the project."""
        return self._client.pages(SecretReferenceRead, self._path(project_id), page_size=page_size)

    def get(self, project_id: str, name: str) -> SecretReferenceRead:
        """``GET .../secret-references/{name}``."""
        return self._client.call(
            SecretReferenceRead, "GET", f"{self._path(project_id)}/{_seg(name)}"
        )

    def delete(self, project_id: str, name: str) -> None:
        """``DELETE .../secret-references/{name}`` (409 while an environment refers to it)."""
        self._client.request("DELETE", f"{self._path(project_id)}/{_seg(name)}")

    def check(
        self, project_id: str, name: str, *, idempotency_key: str | None = None
    ) -> SecretReferenceCheck:
        """``POST .../secret-references/{name}/check``: resolve it now (the value is never
        returned)."""
        return self._client.call(
            SecretReferenceCheck,
            "POST",
            f"{self._path(project_id)}/{_seg(name)}/check",
            idempotency_key=idempotency_key,
        )

    def get_scopes(self, project_id: str) -> SecretScopesRead:
        """``GET /v1/projects/{projectId}/secret-scopes`` (account admins)."""
        return self._client.call(
            SecretScopesRead, "GET", f"/v1/projects/{_seg(project_id)}/secret-scopes"
        )

    def set_scopes(
        self, project_id: str, body: SecretScopesUpdate | Mapping[str, Any]
    ) -> SecretScopesRead:
        """``PUT /v1/projects/{projectId}/secret-scopes`` (account admins): the stores listed
        get exactly their prefixes, the others their default."""
        return self._client.call(
            SecretScopesRead,
            "PUT",
            f"/v1/projects/{_seg(project_id)}/secret-scopes",
            json=_body(body),
        )


class Secrets(_Resource):
    """``/v1/projects/{projectId}/secrets``: hosted secrets (docs/api.md, Secrets). Values are
    write-only: answers carry metadata only."""

    @staticmethod
    def _path(project_id: str) -> str:
        return f"/v1/projects/{_seg(project_id)}/secrets"

    def create(
        self,
        project_id: str,
        body: HostedSecretCreate | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> HostedSecretRead:
        """``POST .../secrets`` ``{"name", "type", "value"}``."""
        return self._client.call(
            HostedSecretRead,
            "POST",
            self._path(project_id),
            json=_body(body),
            idempotency_key=idempotency_key,
        )

    def list(self, project_id: str, *, page_size: int = 100) -> Iterator[HostedSecretRead]:
        """Every hosted secret of the project (metadata only)."""
        return self._client.pages(HostedSecretRead, self._path(project_id), page_size=page_size)

    def get(self, project_id: str, name: str) -> HostedSecretRead:
        """``GET .../secrets/{name}``."""
        return self._client.call(HostedSecretRead, "GET", f"{self._path(project_id)}/{_seg(name)}")

    def update(
        self, project_id: str, name: str, body: HostedSecretUpdate | Mapping[str, Any]
    ) -> HostedSecretRead:
        """``PUT .../secrets/{name}``: store a new version of the value."""
        return self._client.call(
            HostedSecretRead, "PUT", f"{self._path(project_id)}/{_seg(name)}", json=_body(body)
        )

    def delete(self, project_id: str, name: str) -> None:
        """``DELETE .../secrets/{name}`` (409 while an environment refers to it)."""
        self._client.request("DELETE", f"{self._path(project_id)}/{_seg(name)}")


class Repositories(_Resource):
    """``/v1/projects/{projectId}/repositories`` (docs/api.md, Repository). The provider token is
    sent in the ``Git-Provider-Access-Token`` header; the server never stores it."""

    @staticmethod
    def _path(project_id: str) -> str:
        return f"/v1/projects/{_seg(project_id)}/repositories"

    def associate(
        self,
        project_id: str,
        body: RepositoryCreate | Mapping[str, Any],
        *,
        token: str,
        initialize: bool = False,
        idempotency_key: str | None = None,
    ) -> RepositoryRead:
        """``POST .../repositories``: associate the project's one repository; ``initialize``
        pushes a first commit to the empty repository (409 when it is not empty)."""
        return self._client.call(
            RepositoryRead,
            "POST",
            self._path(project_id),
            params={"initialize": "true"} if initialize else None,
            json=_body(body),
            headers={TOKEN_HEADER: token},
            idempotency_key=idempotency_key,
        )

    def get(self, project_id: str) -> RepositoryRead:
        """``GET .../repositories`` (:class:`NotFound` when the project has none)."""
        return self._client.call(RepositoryRead, "GET", self._path(project_id))

    def delete(self, project_id: str, *, token: str | None = None) -> None:
        """``DELETE .../repositories``: remove the association (the repository is untouched)
        and the deploy key's hosted secret; with ``token``, the deploy key at the provider too."""
        headers = {TOKEN_HEADER: token} if token is not None else None
        self._client.request("DELETE", self._path(project_id), headers=headers)

    def check_token(
        self, project_id: str, *, token: str, idempotency_key: str | None = None
    ) -> None:
        """``POST .../repositories/token``: re-check access with a new token."""
        self._client.request(
            "POST",
            f"{self._path(project_id)}/token",
            headers={TOKEN_HEADER: token},
            idempotency_key=idempotency_key,
        )


class Auth(_Resource):
    """``POST /v1/auth/login``: a user's email and password for a bearer token (no client
    credentials needed; use the token as ``Client(url, token=...)``); ``POST
    /v1/auth/password-reset``: a new password with a password reset link's token; the token
    endpoint's grants of Stead's command line (``client_id=stead-cli``), which start a CLI
    grant and answer a refresh token (use it as ``Client(url, refresh_token=...)``)."""

    def cli_password_login(self, email: str, password: str, *, device_name: str) -> TokenResponse:
        """``POST /oauth/dpc/token`` ``grant_type=password`` for ``stead-cli`` (RFC 6749
        section 4.3): a new CLI grant named "stead CLI on <device_name>"."""
        return self._client.token(
            {
                "grant_type": "password",
                "client_id": "stead-cli",
                "username": email,
                "password": password,
                "device_name": device_name,
            }
        )

    def cli_code_login(self, code: str, code_verifier: str, redirect_uri: str) -> TokenResponse:
        """``POST /oauth/dpc/token`` ``grant_type=authorization_code`` for ``stead-cli`` (RFC
        6749 section 4.1.3, RFC 7636 section 4.5): the code the console's
        ``/console/cli/authorize`` page sent to ``redirect_uri``, and its PKCE verifier."""
        return self._client.token(
            {
                "grant_type": "authorization_code",
                "client_id": "stead-cli",
                "code": code,
                "code_verifier": code_verifier,
                "redirect_uri": redirect_uri,
            }
        )

    def login(self, body: LoginRequest | Mapping[str, Any]) -> TokenResponse:
        """``POST /v1/auth/login`` ``{"email", "password"}``."""
        return self._client.call(
            TokenResponse, "POST", "/v1/auth/login", json=_body(body), authenticate=False
        )

    def reset_password(self, token: str, password: str) -> None:
        """``POST /v1/auth/password-reset`` ``{"token", "password"}``: ``token`` is the last
        path segment of the reset link."""
        self._client.request(
            "POST",
            "/v1/auth/password-reset",
            json={"token": token, "password": password},
            authenticate=False,
        )


class ApiClients(_Resource):
    """``/v1/api-clients`` (docs/api.md, People): API clients of the account. A client secret
    appears only in the answers of :meth:`create` and :meth:`rotate_secret`."""

    def create(
        self, body: ApiClientCreate | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> ApiClientCreated:
        """``POST /v1/api-clients`` ``{"name", "role"}``."""
        return self._client.call(
            ApiClientCreated,
            "POST",
            "/v1/api-clients",
            json=_body(body),
            idempotency_key=idempotency_key,
        )

    def list(self, *, page_size: int = 100) -> Iterator[ApiClientRead]:
        """Every API client the caller may manage."""
        return self._client.pages(ApiClientRead, "/v1/api-clients", page_size=page_size)

    def get(self, client_id: str) -> ApiClientRead:
        """``GET /v1/api-clients/{clientId}``."""
        return self._client.call(ApiClientRead, "GET", f"/v1/api-clients/{_seg(client_id)}")

    def rotate_secret(
        self, client_id: str, *, idempotency_key: str | None = None
    ) -> ApiClientCreated:
        """``POST /v1/api-clients/{clientId}/secret``: a new secret; the old one stops working."""
        return self._client.call(
            ApiClientCreated,
            "POST",
            f"/v1/api-clients/{_seg(client_id)}/secret",
            idempotency_key=idempotency_key,
        )

    def delete(self, client_id: str) -> None:
        """``DELETE /v1/api-clients/{clientId}``: revoke it and its tokens."""
        self._client.request("DELETE", f"/v1/api-clients/{_seg(client_id)}")


class ScimTokens(_Resource):
    """``/v1/scim-tokens`` (docs/scim.md): the tokens identity providers send to
    ``/scim/v2``. A token's value appears only in the answer of :meth:`create`."""

    def create(
        self, body: ScimTokenCreate | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> ScimTokenCreated:
        """``POST /v1/scim-tokens`` ``{"name"}``."""
        return self._client.call(
            ScimTokenCreated,
            "POST",
            "/v1/scim-tokens",
            json=_body(body),
            idempotency_key=idempotency_key,
        )

    def list(self, *, page_size: int = 100) -> Iterator[ScimTokenRead]:
        """Every SCIM token of the account, revoked ones included."""
        return self._client.pages(ScimTokenRead, "/v1/scim-tokens", page_size=page_size)

    def delete(self, token_id: str) -> None:
        """``DELETE /v1/scim-tokens/{tokenId}``: revoke it."""
        self._client.request("DELETE", f"/v1/scim-tokens/{_seg(token_id)}")


class Users(_Resource):
    """``/v1/users``: the account's users; disabling one, changing their role, revoking their
    tokens or resetting their password signs them out everywhere."""

    def list(self, *, q: str | None = None, page_size: int = 100) -> Iterator[UserRead]:
        """Every user of the account (``GET /v1/users``); with ``q``, those whose email starts
        with it."""
        params = {"q": q} if q else None
        return self._client.pages(UserRead, "/v1/users", page_size=page_size, params=params)

    def me(self) -> UserRead:
        """``GET /v1/users/me``: the calling user (an API client gets :class:`NotFound`)."""
        return self._client.call(UserRead, "GET", "/v1/users/me")

    def get(self, user_id: str) -> UserRead:
        """``GET /v1/users/{userId}``."""
        return self._client.call(UserRead, "GET", f"/v1/users/{_seg(user_id)}")

    def update(self, user_id: str, body: UserUpdate | Mapping[str, Any]) -> UserRead:
        """``PATCH /v1/users/{userId}`` ``{"disabled", "role"}``."""
        return self._client.call(UserRead, "PATCH", f"/v1/users/{_seg(user_id)}", json=_body(body))

    def grants(self, *, page_size: int = 100) -> Iterator[CliGrantRead]:
        """``GET /v1/users/me/grants``: the caller's CLI grants (``current``: this client's)."""
        return self._client.pages(CliGrantRead, "/v1/users/me/grants", page_size=page_size)

    def revoke_grant(self, grant_id: str) -> None:
        """``DELETE /v1/users/me/grants/{grantId}``: log that command line out."""
        self._client.request("DELETE", f"/v1/users/me/grants/{_seg(grant_id)}")

    def revoke_tokens(self, user_id: str) -> None:
        """``POST /v1/users/{userId}/revoke-tokens``: sign the user out everywhere."""
        self._client.request("POST", f"/v1/users/{_seg(user_id)}/revoke-tokens")

    def unlock(self, user_id: str) -> UserRead:
        """``POST /v1/users/{userId}/unlock``: clear the user's login lockouts."""
        return self._client.call(UserRead, "POST", f"/v1/users/{_seg(user_id)}/unlock")

    def start_password_reset(self, user_id: str) -> PasswordResetCreated:
        """``POST /v1/users/{userId}/password-reset``: a one-time link (``resetUrl``, shown
        only in this answer) for the user to set a new password."""
        return self._client.call(
            PasswordResetCreated, "POST", f"/v1/users/{_seg(user_id)}/password-reset"
        )

    def change_password(self, body: PasswordChange | Mapping[str, Any]) -> None:
        """``POST /v1/users/me/password`` ``{"currentPassword", "newPassword"}``: the caller's
        tokens stop working, this client's included."""
        self._client.request("POST", "/v1/users/me/password", json=_body(body))


class Members(_Resource):
    """``/v1/projects/{projectId}/members`` (docs/api.md, People)."""

    @staticmethod
    def _path(project_id: str) -> str:
        return f"/v1/projects/{_seg(project_id)}/members"

    def list(self, project_id: str, *, page_size: int = 100) -> Iterator[MemberRead]:
        """Every member of the project."""
        return self._client.pages(MemberRead, self._path(project_id), page_size=page_size)

    def update(
        self, project_id: str, member_id: str, body: MemberUpdate | Mapping[str, Any]
    ) -> MemberRead:
        """``PATCH .../members/{memberId}`` ``{"projectRole"}``."""
        return self._client.call(
            MemberRead, "PATCH", f"{self._path(project_id)}/{_seg(member_id)}", json=_body(body)
        )

    def delete(self, project_id: str, member_id: str) -> None:
        """``DELETE .../members/{memberId}``."""
        self._client.request("DELETE", f"{self._path(project_id)}/{_seg(member_id)}")


class Invitations(_Resource):
    """``/v1/projects/{projectId}/invitations`` and ``/v1/invitations/accept``
    (docs/api.md, People)."""

    @staticmethod
    def _path(project_id: str) -> str:
        return f"/v1/projects/{_seg(project_id)}/invitations"

    def create(
        self,
        project_id: str,
        body: InvitationCreate | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> InvitationCreated:
        """``POST .../invitations`` ``{"email", "projectRole"}``."""
        return self._client.call(
            InvitationCreated,
            "POST",
            self._path(project_id),
            json=_body(body),
            idempotency_key=idempotency_key,
        )

    def list(self, project_id: str, *, page_size: int = 100) -> Iterator[InvitationRead]:
        """Every invitation of the project."""
        return self._client.pages(InvitationRead, self._path(project_id), page_size=page_size)

    def delete(self, project_id: str, invitation_id: str) -> None:
        """``DELETE .../invitations/{invitationId}``: revoke it."""
        self._client.request("DELETE", f"{self._path(project_id)}/{_seg(invitation_id)}")

    def accept(
        self,
        token: str,
        body: Mapping[str, Any] | None = None,
        *,
        access_token: str | None = None,
    ) -> InvitationAccepted:
        """``POST /v1/invitations/accept`` ``{"token", "password", "displayName"}``: the token
        (the last segment of the accept URL) is the credential and goes in the body. For an
        email that already has a user, pass that user's ``access_token`` (from
        ``auth.login``)."""
        headers = {"Authorization": f"Bearer {access_token}"} if access_token else None
        return self._client.call(
            InvitationAccepted,
            "POST",
            "/v1/invitations/accept",
            json={"token": token, **(body or {})},
            headers=headers,
            authenticate=False,
        )


class EnvironmentAccess(_Resource):
    """``/v1/projects/{projectId}/environments/{name}/access`` (docs/api.md, People)."""

    @staticmethod
    def _path(project_id: str, environment: str) -> str:
        return f"/v1/projects/{_seg(project_id)}/environments/{_seg(environment)}/access"

    def list(
        self, project_id: str, environment: str, *, page_size: int = 100
    ) -> Iterator[EnvironmentAccessRead]:
        """Every user's explicit access to the environment."""
        return self._client.pages(
            EnvironmentAccessRead, self._path(project_id, environment), page_size=page_size
        )

    def set(
        self,
        project_id: str,
        environment: str,
        user_id: str,
        body: EnvironmentAccessSet | Mapping[str, Any],
    ) -> EnvironmentAccessRead:
        """``PUT .../access/{userId}`` ``{"accessLevel"}``."""
        return self._client.call(
            EnvironmentAccessRead,
            "PUT",
            f"{self._path(project_id, environment)}/{_seg(user_id)}",
            json=_body(body),
        )

    def delete(self, project_id: str, environment: str, user_id: str) -> None:
        """``DELETE .../access/{userId}``: back to the environment's default."""
        self._client.request("DELETE", f"{self._path(project_id, environment)}/{_seg(user_id)}")


class AuditEvents(_Resource):
    """``GET /v1/audit-events`` and its ``/export`` (docs/api.md, Audit)."""

    def list(
        self,
        *,
        project_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
        page_size: int = 100,
    ) -> Iterator[AuditEventRead]:
        """The events the caller may read, oldest first; ``since``/``until`` are RFC 3339
        times (the API's ``from``, inclusive, and ``to``, exclusive)."""
        filters = {
            "projectId": project_id,
            "actor": actor,
            "action": action,
            "from": since,
            "to": until,
        }
        return self._client.pages(
            AuditEventRead,
            "/v1/audit-events",
            page_size=page_size,
            params={k: v for k, v in filters.items() if v is not None},
        )

    def export(
        self,
        *,
        export_format: str = "csv",
        project_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> str:
        """``GET /v1/audit-events/export``: every event the caller may read that matches the
        filters (as :meth:`list` takes them), oldest first, as the text of a CSV file
        (``export_format="csv"``) or a JSON array (``"json"``)."""
        filters = {
            "format": export_format,
            "projectId": project_id,
            "actor": actor,
            "action": action,
            "from": since,
            "to": until,
        }
        params = {k: v for k, v in filters.items() if v is not None}
        return self._client.request("GET", "/v1/audit-events/export", params=params).text
