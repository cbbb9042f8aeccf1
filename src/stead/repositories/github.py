"""GitHub and GitHub Enterprise Server, through the REST API's ``GET /repos/{owner}/{repo}``.

Vendor rules used here (docs.github.com, "REST API endpoints for repositories: Get a repository",
"Troubleshooting the REST API", "Rate limits for the REST API"):

- 200 returns the repository with ``default_branch``, ``html_url``, ``clone_url`` and, for an
  authenticated caller, ``permissions`` (``admin``, ``maintain``, ``push``, ``triage``, ``pull``);
  301 redirects a renamed repository (followed).
- 401 ``Bad credentials``: the token is invalid, expired or revoked.
- 404: no such repository, or a private one the token cannot see (GitHub never says which).
- 403 or 429 with ``x-ratelimit-remaining: 0`` (primary limit, wait until ``x-ratelimit-reset``),
  with ``retry-after``, or whose message names a secondary rate limit: rate limited.
- any other 403 (e.g. ``Resource not accessible by personal access token``): the token lacks a
  permission; a fine-grained token needs "Metadata" repository permission (read), and GitHub names
  what it accepts in ``X-Accepted-GitHub-Permissions``.

The base URL is ``settings.github_api_url`` (GitHub Enterprise Server: ``https://HOST/api/v3``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import httpx
from pydantic import AfterValidator, Field, SecretStr

from stead.errors import Forbidden
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

NAME = "GitHub"
API_VERSION = "2022-11-28"
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def check_segment(value: str) -> str:
    """An owner or repository name as GitHub allows them: letters, digits, ``-``, ``_``, ``.``
    (GitHub turns anything else into ``-``), and never ``.`` or ``..``.

    Raises:
        ValueError: the name has another character.
    """
    if not _SEGMENT.fullmatch(value) or value in (".", ".."):
        raise ValueError("may contain only letters, digits, '-', '_' and '.'")
    return value


class Parameters(WireModel):
    """GitHub's ``providerParameters``: ``{"ownerName": "<user or organisation>"}`` (DPC)."""

    owner_name: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(check_segment)]


def parse_parameters(raw: dict[str, Any], *, repository_name: str) -> dict[str, Any]:
    """Validate ``providerParameters`` and the repository name; return ``{"ownerName": ...}``.

    Raises:
        BadRequest: ``ownerName`` missing or malformed, an unknown key, or a repository name
            GitHub cannot have.
    """
    return validated_parameters(
        Parameters,
        raw,
        what="GitHub repository",
        repository_name=repository_name,
        check_name=check_segment,
    )


def check(
    token: SecretStr, params: dict[str, Any], *, repository_name: str, settings: Settings
) -> RepositoryInfo:
    """Read ``GET /repos/{ownerName}/{repositoryName}`` with ``token`` and interpret the answer
    (module docstring); the error answers are those of :class:`provider.GitProvider`."""
    full_name = f"{params['ownerName']}/{repository_name}"
    response = _request("GET", f"/repos/{full_name}", token, settings)
    if response.status_code != 200:
        raise _error(response, full_name)
    body = _json_object(response)
    permissions = body.get("permissions")
    if isinstance(permissions, dict) and permissions.get("pull") is False:
        raise permission_missing(NAME, full_name, "pull (read)")
    branch, html_url, clone_url = (
        body.get(key) for key in ("default_branch", "html_url", "clone_url")
    )
    if not (
        isinstance(branch, str)
        and isinstance(html_url, str)
        and isinstance(clone_url, str)
        and branch
        and clone_url
    ):
        raise unreachable(NAME, "its answer lacks default_branch, html_url or clone_url")
    admin = isinstance(permissions, dict) and permissions.get("admin") is True
    return RepositoryInfo(
        default_branch=branch,
        html_url=html_url,
        clone_url=clone_url,
        no_deploy_key_reason=None
        if admin
        else f"the access token lacks the admin permission on {full_name} at {NAME}",
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
    """``POST /repos/{ownerName}/{repositoryName}/keys`` (docs.github.com, "REST API endpoints
    for deploy keys": 201 with the key's ``id`` and ``read_only``; 422 when the key is already in
    use or an organisation policy forbids deploy keys; 404/403 when the token may not administer
    the repository, which a fine-grained token needs the "Administration" write permission for).
    Errors as :class:`provider.GitProvider`."""
    full_name = f"{params['ownerName']}/{repository_name}"
    response = _request(
        "POST",
        f"/repos/{full_name}/keys",
        token,
        settings,
        json={"title": title, "key": public_key_openssh, "read_only": read_only},
    )
    if response.status_code == 201:
        body = _json_object(response)
        key_id = body.get("id")
        if not isinstance(key_id, int) or isinstance(key_id, bool):
            raise unreachable(NAME, "its answer lacks the deploy key's id")
        return DeployKey(id=str(key_id), read_only=body.get("read_only") is not False)
    if response.status_code in (403, 404) and not _is_rate_limit(response):
        raise _no_admin(response, full_name)
    if response.status_code == 422:
        raise unreachable(NAME, "it refused the deploy key (already in use, or not allowed)")
    raise _error(response, full_name)


def remove_deploy_key(
    token: SecretStr,
    params: dict[str, Any],
    *,
    repository_name: str,
    key_id: str,
    settings: Settings,
) -> None:
    """``DELETE /repos/{ownerName}/{repositoryName}/keys/{key_id}`` (204; 404 when the key or
    repository is gone, which counts as removed). Errors as :class:`provider.GitProvider`."""
    full_name = f"{params['ownerName']}/{repository_name}"
    response = _request("DELETE", f"/repos/{full_name}/keys/{key_id}", token, settings)
    if response.status_code in (204, 404):
        return
    if response.status_code == 403 and not _is_rate_limit(response):
        raise _no_admin(response, full_name)
    raise _error(response, full_name)


def _no_admin(response: httpx.Response, full_name: str) -> Forbidden:
    accepted = response.headers.get("x-accepted-github-permissions") or "administration=write"
    return permission_missing(NAME, full_name, accepted)


def _request(
    method: str,
    path: str,
    token: SecretStr,
    settings: Settings,
    json: dict[str, Any] | None = None,
) -> httpx.Response:
    """One call of the REST API at ``settings.github_api_url`` (502 when unreachable, 504 after
    ``settings.upstream_timeout_seconds``)."""
    url = f"{settings.github_api_url.rstrip('/')}{path}"
    headers = {
        "Authorization": f"Bearer {token.get_secret_value()}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
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


def _is_rate_limit(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    headers = response.headers
    message = str(_json_object(response).get("message", "")).lower()
    return (
        headers.get("x-ratelimit-remaining") == "0"
        or "retry-after" in headers
        or "rate limit" in message
    )


def _error(response: httpx.Response, full_name: str) -> Exception:
    """The error for a non-success answer (module docstring)."""
    status = response.status_code
    if status == 401:
        return token_rejected(NAME)
    if status == 404:
        return repository_not_found(NAME, full_name, "repositoryName")
    headers = response.headers
    if _is_rate_limit(response):
        exhausted = headers.get("x-ratelimit-remaining") == "0"
        reset = headers.get("x-ratelimit-reset") if exhausted else None
        return rate_limited(NAME, retry_after_seconds(headers.get("retry-after"), reset))
    if status == 403:
        accepted = headers.get("x-accepted-github-permissions") or "metadata=read"
        return permission_missing(NAME, full_name, accepted)
    return unreachable(NAME, f"it answered HTTP {status}")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body if it is a JSON object, else an empty dict (GitHub's 5xx are HTML)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
