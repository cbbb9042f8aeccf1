"""Repository association rules (contract section 6): one repository per project, confirmed with
the provider using the caller's access token, which is never stored or logged."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.errors import Conflict, NotFound
from stead.identity.service import Actor
from stead.projects.models import Project
from stead.repositories import azure_devops, git, github, github_enterprise, gitlab
from stead.repositories.models import Repository
from stead.repositories.provider import GitProvider
from stead.repositories.schemas import RepositoryCreate
from stead.settings import Settings

PROVIDERS: dict[str, GitProvider] = {
    "github": github,
    "azure-devops": azure_devops,
    "github-enterprise": github_enterprise,
    "gitlab": gitlab,
    "git": git,
}


def find(session: Session, *, project: Project) -> Repository | None:
    """The project's repository, or None."""
    return session.scalars(select(Repository).where(Repository.project_id == project.id)).first()


def get(session: Session, *, project: Project) -> Repository:
    """The project's repository.

    Raises:
        NotFound: the project has no repository.
    """
    repository = find(session, project=project)
    if repository is None:
        raise NotFound(f"Project {project.name!r} has no repository")
    return repository


def associate(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    data: RepositoryCreate,
    token: SecretStr,
    settings: Settings,
) -> Repository:
    """Associate a repository with the project after the provider confirmed that it exists and
    ``token`` can read it; record its default branch and URLs.

    Raises:
        BadRequest: invalid ``providerParameters``/``repositoryName``, token rejected, or
            repository not found (see :class:`provider.GitProvider` for the provider's answers).
        Conflict: the project already has a repository (one per project, DPC).
        Forbidden, UpstreamError, UpstreamUnavailable, UpstreamTimeout: from the provider.
    """
    provider = PROVIDERS[data.provider]
    params = provider.parse_parameters(
        data.provider_parameters, repository_name=data.repository_name
    )
    existing = find(session, project=project)
    if existing is not None:
        raise Conflict(
            f"Project {project.name!r} already has repository "
            f"{existing.repository_name!r}; delete it before associating another"
        )
    info = provider.check(token, params, repository_name=data.repository_name, settings=settings)
    repository = Repository(
        project_id=project.id,
        provider=data.provider,
        repository_name=data.repository_name,
        provider_parameters=params,
        default_branch=info.default_branch,
        html_url=info.html_url,
        clone_url=info.clone_url,
    )
    session.add(repository)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="repository.associated",
        target_type="repository",
        target_id=str(repository.id),
        project_id=project.id,
        details={
            "provider": repository.provider,
            "repositoryName": repository.repository_name,
            "providerParameters": params,
            "defaultBranch": info.default_branch,
        },
    )
    return repository


def check_token(
    session: Session, *, actor: Actor, project: Project, token: SecretStr, settings: Settings
) -> Repository:
    """Re-check the project's repository with a new ``token`` (DPC ``POST .../repositories/token``)
    and refresh the default branch and URLs the provider reports.

    Raises:
        NotFound: the project has no repository; otherwise the provider's answers as in
        :func:`associate`.
    """
    repository = get(session, project=project)
    provider = PROVIDERS[repository.provider]
    info = provider.check(
        token,
        repository.provider_parameters,
        repository_name=repository.repository_name,
        settings=settings,
    )
    repository.default_branch = info.default_branch
    repository.html_url = info.html_url
    repository.clone_url = info.clone_url
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="repository.token_checked",
        target_type="repository",
        target_id=str(repository.id),
        project_id=project.id,
        details={"provider": repository.provider, "repositoryName": repository.repository_name},
    )
    return repository


def remove(session: Session, *, actor: Actor, project: Project) -> None:
    """Remove the project's repository association (the repository itself is untouched).

    Raises:
        NotFound: the project has no repository.
    """
    repository = get(session, project=project)
    audit.record(
        session,
        actor=actor,
        action="repository.removed",
        target_type="repository",
        target_id=str(repository.id),
        project_id=project.id,
        details={"provider": repository.provider, "repositoryName": repository.repository_name},
    )
    session.delete(repository)
    session.flush()
