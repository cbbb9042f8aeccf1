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
from pydantic import AfterValidator, Field, SecretStr, ValidationError

from stead.errors import BadRequest
from stead.repositories.provider import (
    RepositoryInfo,
    parameter_violations,
    permission_missing,
    rate_limited,
    repository_not_found,
    retry_after_seconds,
    timed_out,
    token_rejected,
    unreachable,
)
from stead.settings import Settings
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
    violations: list[str] = []
    params: dict[str, Any] = {}
    try:
        params = Parameters.model_validate(raw).model_dump(by_alias=True)
    except ValidationError as exc:
        violations += parameter_violations(exc)
    try:
        check_segment(repository_name)
    except ValueError as exc:
        violations.append(f"repositoryName: {exc}")
    if violations:
        raise BadRequest(
            "Invalid GitHub repository: " + "; ".join(violations), violations=violations
        )
    return params


def check(
    token: SecretStr, params: dict[str, Any], *, repository_name: str, settings: Settings
) -> RepositoryInfo:
    """Read ``GET /repos/{ownerName}/{repositoryName}`` with ``token`` and interpret the answer
    (module docstring); the error answers are those of :class:`provider.GitProvider`."""
    full_name = f"{params['ownerName']}/{repository_name}"
    url = f"{settings.github_api_url.rstrip('/')}/repos/{full_name}"
    headers = {
        "Authorization": f"Bearer {token.get_secret_value()}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "stead",
    }
    timeout = settings.upstream_timeout_seconds
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            response = client.get(url, headers=headers)
    except httpx.TimeoutException:
        raise timed_out(NAME, timeout) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise unreachable(NAME, f"connection failed ({type(exc).__name__})") from None
    return _interpret(response, full_name)


def _interpret(response: httpx.Response, full_name: str) -> RepositoryInfo:
    status = response.status_code
    body = _json_object(response)
    if status == 200:
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
        return RepositoryInfo(default_branch=branch, html_url=html_url, clone_url=clone_url)
    if status == 401:
        raise token_rejected(NAME)
    if status == 404:
        raise repository_not_found(NAME, full_name, "repositoryName")
    if status in (403, 429):
        message = str(body.get("message", "")).lower()
        headers = response.headers
        exhausted = headers.get("x-ratelimit-remaining") == "0"
        if status == 429 or exhausted or "retry-after" in headers or "rate limit" in message:
            reset = headers.get("x-ratelimit-reset") if exhausted else None
            raise rate_limited(NAME, retry_after_seconds(headers.get("retry-after"), reset))
        accepted = headers.get("x-accepted-github-permissions") or "metadata=read"
        raise permission_missing(NAME, full_name, accepted)
    raise unreachable(NAME, f"it answered HTTP {status}")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body if it is a JSON object, else an empty dict (GitHub's 5xx are HTML)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
