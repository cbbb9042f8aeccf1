"""Wire models of the project's repository association (docs/api.md, Repository)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from stead.wire import CI, Text, WireModel

# ``github`` and ``azure-devops`` (DPC); ``github-enterprise``, ``gitlab`` and ``git``, any git
# remote by URL (Stead); accepted in any case.
Provider = Annotated[Literal["github", "azure-devops", "github-enterprise", "gitlab", "git"], CI]


class RepositoryCreate(WireModel):
    """``POST /v1/projects/{projectId}/repositories`` body (DPC shape).

    ``providerParameters`` depends on the provider: GitHub and GitHub Enterprise Server
    ``{"ownerName": "<user or organisation>"}``; Azure DevOps ``{"organization": "<name>",
    "repositoryId": "<GUID>", "tenantId": "<GUID, optional>"}``; GitLab ``{"namespace": "<group,
    subgroup path or user>"}``; git ``{"url": "https://... | http://... | ssh://... |
    file://..."}``.
    """

    provider: Provider
    repository_name: Annotated[
        Text, Field(min_length=1, max_length=255, examples=["finance-pipelines"])
    ]
    provider_parameters: Annotated[dict[str, Any], Field(examples=[{"ownerName": "acme-data"}])]


class DeployKeyRead(WireModel):
    """The deploy key Stead registered with the provider [Stead]: the provider's ``id`` of it,
    the ``SHA256:`` fingerprint of its public half (as ``ssh-keygen -lf`` prints it), whether
    the provider grants it read access only, and the hosted secret of the project holding its
    private half (OpenSSH format)."""

    id: str = Field(examples=["81234567"])
    fingerprint: str = Field(examples=["SHA256:2Y0kVhx2Lq7xJbq4iXrWbL3Yh3qz5cTQ5mXGk1xE3yA"])
    read_only: bool
    secret_name: str = Field(examples=["git-deploy-key"])


class RepositoryRead(WireModel):
    """The project's repository: what was asked for and what the provider reported, and the
    deploy key Stead keeps for it (``deployKey``; null with ``deployKeyReason`` saying why).
    """

    provider: str
    repository_name: str
    provider_parameters: dict[str, Any]
    default_branch: str | None = Field(examples=["main"])
    html_url: str | None = Field(examples=["https://github.com/acme-data/finance-pipelines"])
    clone_url: str | None = Field(examples=["https://github.com/acme-data/finance-pipelines.git"])
    deploy_key: DeployKeyRead | None = None
    deploy_key_reason: str | None = Field(
        default=None,
        examples=["the access token lacks the admin permission on acme-data/x at GitHub"],
    )
