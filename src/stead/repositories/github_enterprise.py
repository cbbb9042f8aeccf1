"""GitHub Enterprise Server as a provider of its own, ``github-enterprise``, so one Stead can
serve projects on github.com (``github``) and on a GitHub Enterprise Server at once.

The API is GitHub's (:mod:`stead.repositories.github`: same ``providerParameters``, answers,
deploy keys), served at ``settings.github_enterprise_api_url`` (``https://HOST/api/v3``). An
installation that uses only GitHub Enterprise Server can instead point ``github`` at it with
``settings.github_api_url``, which keeps DPC scripts unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from stead.errors import BadRequest
from stead.repositories import github
from stead.repositories.provider import DeployKey, RepositoryInfo
from stead.settings import Settings

parse_parameters = github.parse_parameters


def check(
    token: SecretStr, params: dict[str, Any], *, repository_name: str, settings: Settings
) -> RepositoryInfo:
    """:func:`github.check` against the GitHub Enterprise Server.

    Raises:
        BadRequest: naming ``provider`` when no server is configured; otherwise as
            :func:`github.check`.
    """
    return github.check(token, params, repository_name=repository_name, settings=_at(settings))


def add_deploy_key(
    token: SecretStr,
    params: dict[str, Any],
    *,
    repository_name: str,
    title: str,
    public_key_openssh: str,
    read_only: bool,
    settings: Settings,
) -> DeployKey:
    """:func:`github.add_deploy_key` against the GitHub Enterprise Server."""
    return github.add_deploy_key(
        token,
        params,
        repository_name=repository_name,
        title=title,
        public_key_openssh=public_key_openssh,
        read_only=read_only,
        settings=_at(settings),
    )


def remove_deploy_key(
    token: SecretStr,
    params: dict[str, Any],
    *,
    repository_name: str,
    key_id: str,
    settings: Settings,
) -> None:
    """:func:`github.remove_deploy_key` against the GitHub Enterprise Server."""
    github.remove_deploy_key(
        token, params, repository_name=repository_name, key_id=key_id, settings=_at(settings)
    )


def _at(settings: Settings) -> Settings:
    """``settings`` with GitHub's API URL set to the Enterprise Server's."""
    if not settings.github_enterprise_api_url:
        raise BadRequest(
            "The github-enterprise provider is not configured on this server "
            "(STEAD_GITHUB_ENTERPRISE_API_URL)",
            violations=["provider: github-enterprise is not configured on this server"],
        )
    return settings.model_copy(update={"github_api_url": settings.github_enterprise_api_url})
