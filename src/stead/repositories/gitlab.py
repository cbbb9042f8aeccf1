"""GitLab (gitlab.com and self-managed), through the REST API v4's ``GET /projects/:id``.

``providerParameters`` is ``{"namespace": "<group, subgroup path or user name>"}``; the project is
``{namespace}/{repositoryName}``, addressed by its URL-encoded full path. The API base URL is
``settings.gitlab_api_url`` (``https://gitlab.com/api/v4``; self-managed:
``https://HOST/api/v4``). The token (personal, group or project access token, or OAuth token) goes
as ``Authorization: Bearer``.

Vendor rules used here (docs.gitlab.com, "Projects API: Get a single project", "REST API:
Status codes", "Personal access token scopes", "Roles and permissions", "Rate limits", "Deploy
keys API"):

- 200 returns the project with ``default_branch`` (null for an empty repository), ``web_url``,
  ``http_url_to_repo``, ``visibility`` and ``permissions.project_access`` /
  ``permissions.group_access`` (each null or ``{"access_level": n}``: 10 Guest, 20 Reporter,
  30 Developer, 40 Maintainer, 50 Owner).
- 401 (``401 Unauthorized``, or ``invalid_token``): the token is invalid, expired or revoked.
- 403 ``insufficient_scope``: the token lacks the scope named in ``scope`` (reading needs
  ``read_api``, deploy keys need ``api``); any other 403: the role is too low.
- 404 ``404 Project Not Found``: no such project, or a private one the token cannot see.
- 429 with ``Retry-After`` (seconds) and ``RateLimit-Reset`` (UTC epoch seconds).

Reading the code of a private project takes the Reporter role; a Guest sees the project but not
its repository, so a reported access level below Reporter on a private project is a 403.
Managing deploy keys takes the Maintainer role; a token whose level GitLab does not report (an
administrator, or a membership GitLab does not list here) is let to try.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from pydantic import AfterValidator, Field, SecretStr

from stead.outbound import Policy
from stead.repositories.provider import (
    DeployKey,
    RepositoryInfo,
    permission_missing,
    rate_limited,
    repository_not_found,
    retry_after_seconds,
    timed_out,
    token_rejected,
    unreachable,
    validated_parameters,
)
from stead.settings import Settings
from stead.tls import client_context
from stead.wire import WireModel

NAME = "GitLab"
GIT_USERNAME = "oauth2"
REPORTER, MAINTAINER = 20, 40
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_path(value: str) -> str:
    """A GitLab path of ``/``-separated segments (a namespace; a project name is one segment):
    letters, digits, ``_``, ``-`` and ``.``, not starting with ``-`` or ``.``, not ending in
    ``.git`` or ``.atom`` (GitLab's rule for paths).

    Raises:
        ValueError: a segment breaks the rule.
    """
    for segment in value.split("/"):
        if not _SEGMENT.fullmatch(segment) or segment.endswith((".git", ".atom")):
            raise ValueError(
                "each '/'-separated part may contain only letters, digits, '_', '-' and '.', "
                "must not start with '-' or '.' and must not end in '.git' or '.atom'"
            )
    return value


class Parameters(WireModel):
    """GitLab's ``providerParameters``: ``{"namespace": "acme-data/analytics"}`` (the group,
    subgroup path or user name the project lives in)."""

    namespace: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(check_path)]


def parse_parameters(raw: dict[str, Any], *, repository_name: str) -> dict[str, Any]:
    """Validate ``providerParameters`` and the repository name (the project's path); return
    ``{"namespace": ...}``.

    Raises:
        BadRequest: ``namespace`` missing or malformed, an unknown key, or a project path GitLab
            cannot have (one segment, :func:`check_path`).
    """
    return validated_parameters(
        Parameters,
        raw,
        what="GitLab repository",
        repository_name=repository_name,
        check_name=_check_project_path,
    )


def _check_project_path(name: str) -> None:
    if "/" in name:
        raise ValueError("must be the project's path, without '/' (put groups in namespace)")
    check_path(name)


def check(
    token: SecretStr, params: dict[str, Any], *, repository_name: str, settings: Settings
) -> RepositoryInfo:
    """Read ``GET /projects/{namespace%2FrepositoryName}`` with ``token`` and interpret the
    answer (module docstring); the error answers are those of :class:`provider.GitProvider`."""
    full_path = f"{params['namespace']}/{repository_name}"
    response = _request("GET", _project(full_path), token, settings)
    if response.status_code != 200:
        raise _error(response, full_path, "read_api")
    body = _json_object(response)
    branch, web_url, clone_url = (
        body.get(key) for key in ("default_branch", "web_url", "http_url_to_repo")
    )
    if not (
        (branch is None or isinstance(branch, str))
        and isinstance(web_url, str)
        and isinstance(clone_url, str)
        and clone_url
    ):
        raise unreachable(NAME, "its answer lacks web_url or http_url_to_repo")
    level = _access_level(body.get("permissions"))
    if level is not None and level < REPORTER and body.get("visibility") == "private":
        raise permission_missing(NAME, full_path, "Reporter role")
    return RepositoryInfo(
        default_branch=branch or None,
        html_url=web_url,
        clone_url=clone_url,
        git_username=GIT_USERNAME,
        no_deploy_key_reason=None
        if level is None or level >= MAINTAINER
        else f"the access token lacks the Maintainer role on {full_path} at {NAME}",
    )


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
    """``POST /projects/:id/deploy_keys`` with ``title``, ``key`` and ``can_push`` (201 with the
    key's ``id`` and ``can_push``; 400 when the key is already in use; 403 without the
    Maintainer role or the ``api`` scope). Errors as :class:`provider.GitProvider`."""
    full_path = f"{params['namespace']}/{repository_name}"
    response = _request(
        "POST",
        f"{_project(full_path)}/deploy_keys",
        token,
        settings,
        json={"title": title, "key": public_key_openssh, "can_push": not read_only},
    )
    if response.status_code == 201:
        body = _json_object(response)
        key_id = body.get("id")
        if not isinstance(key_id, int) or isinstance(key_id, bool):
            raise unreachable(NAME, "its answer lacks the deploy key's id")
        return DeployKey(id=str(key_id), read_only=body.get("can_push") is not True)
    if response.status_code == 400:
        raise unreachable(NAME, "it refused the deploy key (already in use, or not allowed)")
    raise _error(response, full_path, "api", role="Maintainer role")


def remove_deploy_key(
    token: SecretStr,
    params: dict[str, Any],
    *,
    repository_name: str,
    key_id: str,
    settings: Settings,
) -> None:
    """``DELETE /projects/:id/deploy_keys/:key_id`` (204; 404 when the key or project is gone,
    which counts as removed). Errors as :class:`provider.GitProvider`."""
    full_path = f"{params['namespace']}/{repository_name}"
    path = f"{_project(full_path)}/deploy_keys/{quote(key_id, safe='')}"
    response = _request("DELETE", path, token, settings)
    if response.status_code in (204, 404):
        return
    raise _error(response, full_path, "api", role="Maintainer role")


def _project(full_path: str) -> str:
    return f"/projects/{quote(full_path, safe='')}"


def _access_level(permissions: object) -> int | None:
    """The higher of ``project_access`` and ``group_access`` levels, or None if neither is
    reported."""
    if not isinstance(permissions, dict):
        return None
    levels = [
        access.get("access_level")
        for access in (permissions.get("project_access"), permissions.get("group_access"))
        if isinstance(access, dict)
    ]
    numbers = [n for n in levels if isinstance(n, int) and not isinstance(n, bool)]
    return max(numbers, default=None)


def _request(
    method: str,
    path: str,
    token: SecretStr,
    settings: Settings,
    json: dict[str, Any] | None = None,
) -> httpx.Response:
    """One call of the REST API at ``settings.gitlab_api_url`` (502 when unreachable, 504 after
    ``settings.upstream_timeout_seconds``)."""
    url = f"{settings.gitlab_api_url.rstrip('/')}{path}"
    headers = {
        "Authorization": f"Bearer {token.get_secret_value()}",
        "Accept": "application/json",
        "User-Agent": "stead",
    }
    timeout = settings.upstream_timeout_seconds
    hooks = {"request": [Policy.from_settings(settings).httpx_hook("git", field="provider")]}
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=True, event_hooks=hooks, verify=client_context()
        ) as client:
            return client.request(method, url, headers=headers, json=json)
    except httpx.TimeoutException:
        raise timed_out(NAME, timeout) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise unreachable(NAME, f"connection failed ({type(exc).__name__})") from None


def _error(
    response: httpx.Response, full_path: str, scope: str, *, role: str = "Reporter role"
) -> Exception:
    """The error for a non-success answer (module docstring); ``scope`` and ``role`` name what a
    403 lacks when GitLab does not say."""
    status = response.status_code
    if status == 401:
        return token_rejected(NAME)
    if status == 404:
        return repository_not_found(NAME, full_path, "repositoryName")
    if status == 403:
        body = _json_object(response)
        if body.get("error") == "insufficient_scope":
            return permission_missing(NAME, full_path, f"{scope} scope")
        return permission_missing(NAME, full_path, role)
    if status == 429:
        headers = response.headers
        return rate_limited(
            NAME, retry_after_seconds(headers.get("retry-after"), headers.get("ratelimit-reset"))
        )
    return unreachable(NAME, f"it answered HTTP {status}")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body if it is a JSON object, else an empty dict (a proxy's error page)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
