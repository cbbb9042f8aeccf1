"""Azure DevOps (Services and Server), through the REST API's
``GET {organization}/_apis/git/repositories/{repositoryId}?api-version=7.1``.

``providerParameters`` is DPC's ``{"organization", "repositoryId", "tenantId"}``: the organization
(an Azure DevOps Server collection), the repository's id (the GUID Azure DevOps shows for it; a
repository is only addressable by name together with its project, which DPC does not send) and
the Microsoft Entra tenant the organization belongs to. The personal access token authenticates
by itself, so ``tenantId`` is optional, checked as a GUID and stored. ``repositoryName`` is a
label. The base URL is ``settings.azure_devops_url`` (``https://dev.azure.com``; Azure DevOps
Server: ``https://HOST/tfs``).

Vendor rules used here (learn.microsoft.com, "Repositories - Get Repository" (Git, 7.1),
"Authenticate with personal access tokens", "Rate and usage limits"):

- the token goes as HTTP Basic password with an empty user name; ``X-TFS-FedAuthRedirect:
  Suppress`` asks for a 401 instead of a redirect to the sign-in page.
- 200 returns the ``GitRepository`` with ``defaultBranch`` (``refs/heads/main``; absent for an
  empty repository), ``webUrl`` and ``remoteUrl`` (``https://ORG@dev.azure.com/...``, stored
  without the user name).
- a bad token: 203 with the HTML sign-in page, a redirect to it, or 401.
- 401 whose JSON ``message`` is ``TF400813: The user '...' is not authorized ...``: the token is
  known but lacks the "Code (Read)" scope.
- 404 with a JSON error (``TF401019`` repository, ``TF200016`` project): no such repository, or
  one the token may not read; a 404 without one: the organization is unknown.
- 429 with ``Retry-After`` (and ``X-RateLimit-Reset``, UTC epoch seconds).

Azure DevOps has no per-repository deploy keys: SSH public keys belong to a user and reach every
repository that user can, so no deploy key is ever added (``no_deploy_key_reason`` says so).
"""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any
from urllib.parse import quote, urlsplit, urlunsplit

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

NAME = "Azure DevOps"
API_VERSION = "7.1"
READ_SCOPE = "Code (Read) scope"
NO_DEPLOY_KEYS = "Azure DevOps has no deploy keys: SSH keys belong to users, not repositories"
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ORGANIZATION = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?")


def check_guid(value: str) -> str:
    """A GUID (``8-4-4-4-12`` hexadecimal digits), returned in lower case.

    Raises:
        ValueError: not a GUID.
    """
    if not _GUID.fullmatch(value):
        raise ValueError("must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
    return value.lower()


def check_organization(value: str) -> str:
    """An organization (or collection) name: letters, digits, ``-``, ``_`` and ``.``, starting
    and ending with a letter or digit (Azure DevOps allows letters, digits and ``-``).

    Raises:
        ValueError: another character, or a bad first or last one.
    """
    if not _ORGANIZATION.fullmatch(value):
        raise ValueError(
            "may contain only letters, digits, '-', '_' and '.', "
            "and must start and end with a letter or digit"
        )
    return value


class Parameters(WireModel):
    """Azure DevOps ``providerParameters`` (DPC): ``{"organization": "acme", "repositoryId":
    "<GUID>", "tenantId": "<GUID>"}``; ``tenantId`` is optional."""

    organization: Annotated[
        str, Field(min_length=1, max_length=64), AfterValidator(check_organization)
    ]
    repository_id: Annotated[str, AfterValidator(check_guid)]
    tenant_id: Annotated[str, AfterValidator(check_guid)] | None = None


def parse_parameters(raw: dict[str, Any], *, repository_name: str) -> dict[str, Any]:
    """Validate ``providerParameters``; return them with the GUIDs in lower case (``tenantId``
    left out when not given). ``repositoryName`` is a label (checked by the request model).

    Raises:
        BadRequest: a field missing or malformed, or an unknown key.
    """
    return validated_parameters(
        Parameters,
        raw,
        what="Azure DevOps repository",
        repository_name=repository_name,
        exclude_none=True,
    )


def check(
    token: SecretStr, params: dict[str, Any], *, repository_name: str, settings: Settings
) -> RepositoryInfo:
    """Read the repository with ``token`` and interpret the answer (module docstring); the error
    answers are those of :class:`provider.GitProvider`."""
    organization, repository_id = params["organization"], params["repositoryId"]
    label = f"{repository_id} in {organization}"
    url = (
        f"{settings.azure_devops_url.rstrip('/')}/{quote(organization, safe='')}"
        f"/_apis/git/repositories/{repository_id}"
    )
    basic = base64.b64encode(f":{token.get_secret_value()}".encode()).decode()
    headers = {
        "Authorization": f"Basic {basic}",
        "Accept": "application/json",
        "X-TFS-FedAuthRedirect": "Suppress",
        "User-Agent": "stead",
    }
    timeout = settings.upstream_timeout_seconds
    hooks = {"request": [Policy.from_settings(settings).httpx_hook("git", field="provider")]}
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=False, event_hooks=hooks, verify=client_context()
        ) as client:
            response = client.get(url, params={"api-version": API_VERSION}, headers=headers)
    except httpx.TimeoutException:
        raise timed_out(NAME, timeout) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise unreachable(NAME, f"connection failed ({type(exc).__name__})") from None
    status = response.status_code
    body = _json_object(response)
    if status == 200:
        return _repository(body)
    if status == 203 or response.is_redirect:
        raise token_rejected(NAME)
    message = str(body.get("message", ""))
    if status == 401:
        if message.startswith("TF400813: The user"):
            raise permission_missing(NAME, label, READ_SCOPE)
        raise token_rejected(NAME)
    if status == 403:
        raise permission_missing(NAME, label, READ_SCOPE)
    if status == 404:
        field = "repositoryId" if body.get("typeKey") or message else "organization"
        raise repository_not_found(NAME, label, f"providerParameters.{field}")
    if status == 429:
        answer = response.headers
        raise rate_limited(
            NAME, retry_after_seconds(answer.get("retry-after"), answer.get("x-ratelimit-reset"))
        )
    raise unreachable(NAME, f"it answered HTTP {status}")


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
    """Azure DevOps has no deploy key API (:func:`check` says so), so this always raises.

    Raises:
        UpstreamError: always.
    """
    raise unreachable(NAME, NO_DEPLOY_KEYS)


def remove_deploy_key(
    token: SecretStr,
    params: dict[str, Any],
    *,
    repository_name: str,
    key_id: str,
    settings: Settings,
) -> None:
    """Azure DevOps never has a deploy key of Stead's: nothing to remove."""


def _repository(body: dict[str, Any]) -> RepositoryInfo:
    ref, web_url, remote_url = (body.get(key) for key in ("defaultBranch", "webUrl", "remoteUrl"))
    if not (
        (ref is None or isinstance(ref, str))
        and isinstance(web_url, str)
        and isinstance(remote_url, str)
        and remote_url
    ):
        raise unreachable(NAME, "its answer lacks webUrl or remoteUrl")
    parts = urlsplit(remote_url)
    clone_url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    branch = ref.removeprefix("refs/heads/") if ref and ref.startswith("refs/heads/") else None
    return RepositoryInfo(
        default_branch=branch,
        html_url=web_url,
        clone_url=clone_url,
        no_deploy_key_reason=NO_DEPLOY_KEYS,
    )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body if it is a JSON object, else an empty dict (the sign-in page is HTML)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
