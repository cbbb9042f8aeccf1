"""Typed resources of the SDK, one per API resource, one method per route.

Bodies are the server's own wire models (``ProjectCreate``, ``EnvironmentUpdate``, ...) or plain
mappings in wire form (camelCase, as in the contract's examples); answers are the wire models
the server returns. Names in paths are percent-encoded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, SecretStr

from stead.agents.schemas import (
    AgentAllowList,
    AgentCreate,
    AgentCredentials,
    AgentRead,
    CredentialsRequest,
)
from stead.connections.schemas import ConnectionCreate, ConnectionRead
from stead.environments.schemas import (
    EnvironmentCreate,
    EnvironmentRead,
    EnvironmentSummary,
    EnvironmentUpdate,
)
from stead.projects.schemas import ProjectCreate, ProjectCreated, ProjectRead, ProjectUpdate
from stead.repositories.schemas import RepositoryCreate, RepositoryRead
from stead.secrets.schemas import SecretReferenceCreate, SecretReferenceRead

if TYPE_CHECKING:
    from stead.sdk.client import Client

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
    def __init__(self, client: Client) -> None:
        self._client = client


class Projects(_Resource):
    """``/v1/projects`` (contract section 2)."""

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

    def list(self, *, page_size: int = 100) -> Iterator[ProjectRead]:
        """Every project the caller may see, oldest first."""
        return self._client.pages(ProjectRead, "/v1/projects", page_size=page_size)

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
    """``/v1/agents`` (contract section 7)."""

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

    def delete(self, agent_id: str) -> None:
        """``DELETE /v1/agents/{agentId}`` (409 while used)."""
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

    def refresh_credentials(
        self, agent_id: str, *, idempotency_key: str | None = None
    ) -> AgentCredentials:
        """``POST /v1/agents/{agentId}/credentials`` ``{"action": "SECRET_REFRESH"}``: a new
        client secret, returned only here."""
        return self._client.call(
            AgentCredentials,
            "POST",
            f"/v1/agents/{_seg(agent_id)}/credentials",
            json=_body(CredentialsRequest(action="SECRET_REFRESH")),
            idempotency_key=idempotency_key,
        )


class Connections(_Resource):
    """``/v1/projects/{projectId}/data-platform-connections`` (contract section 3)."""

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
    """``/v1/projects/{projectId}/environments`` (contract section 4)."""

    @staticmethod
    def _path(project_id: str) -> str:
        return f"/v1/projects/{_seg(project_id)}/environments"

    def create(
        self,
        project_id: str,
        body: EnvironmentCreate | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> EnvironmentRead:
        """``POST .../environments``."""
        return self._client.call(
            EnvironmentRead,
            "POST",
            self._path(project_id),
            json=_body(body),
            idempotency_key=idempotency_key,
        )

    def list(self, project_id: str, *, page_size: int = 100) -> Iterator[EnvironmentSummary]:
        """Every environment of the project (summaries; :meth:`get` has the properties)."""
        return self._client.pages(EnvironmentSummary, self._path(project_id), page_size=page_size)

    def get(self, project_id: str, name: str) -> EnvironmentRead:
        """``GET .../environments/{name}``."""
        return self._client.call(EnvironmentRead, "GET", f"{self._path(project_id)}/{_seg(name)}")

    def update(
        self, project_id: str, name: str, body: EnvironmentUpdate | Mapping[str, Any]
    ) -> EnvironmentRead:
        """``PATCH .../environments/{name}``: any field but ``name``."""
        return self._client.call(
            EnvironmentRead, "PATCH", f"{self._path(project_id)}/{_seg(name)}", json=_body(body)
        )

    def delete(self, project_id: str, name: str) -> None:
        """``DELETE .../environments/{name}``."""
        self._client.request("DELETE", f"{self._path(project_id)}/{_seg(name)}")


class SecretReferences(_Resource):
    """``/v1/projects/{projectId}/secret-references`` (contract section 5)."""

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


class Repositories(_Resource):
    """``/v1/projects/{projectId}/repositories`` (contract section 6). The provider token is
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
        idempotency_key: str | None = None,
    ) -> RepositoryRead:
        """``POST .../repositories``: associate the project's one repository."""
        return self._client.call(
            RepositoryRead,
            "POST",
            self._path(project_id),
            json=_body(body),
            headers={TOKEN_HEADER: token},
            idempotency_key=idempotency_key,
        )

    def get(self, project_id: str) -> RepositoryRead:
        """``GET .../repositories`` (:class:`NotFound` when the project has none)."""
        return self._client.call(RepositoryRead, "GET", self._path(project_id))

    def delete(self, project_id: str) -> None:
        """``DELETE .../repositories``: remove the association (the repository is untouched)."""
        self._client.request("DELETE", self._path(project_id))

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
