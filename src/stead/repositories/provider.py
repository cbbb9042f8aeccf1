"""What every git provider module offers, and the answers they share (docs/api.md, Repository).

A provider is a module (``github``, ``git``, ...) with four functions: ``parse_parameters``
checks the request's ``providerParameters`` (and ``repositoryName``) before anything is written or
sent; ``check`` asks the provider, with the caller's access token, whether the repository exists
and the token can read it, and whether the token may manage deploy keys; ``add_deploy_key`` and
``remove_deploy_key`` register and delete the public half of a deploy key Stead generated. The
first commit of ``?initialize=true`` is pushed over git smart HTTP to ``RepositoryInfo.clone_url``
with the token as password and ``RepositoryInfo.git_username`` as user name, so a provider needs
no push function of its own. The token is only ever held as a ``SecretStr`` and sent to the
provider; no error built here contains it, nor the provider's own response body.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, SecretStr, ValidationError

from stead.errors import BadRequest, Forbidden, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from stead.settings import Settings

TOKEN_HEADER = "Git-Provider-Access-Token"
"""The request header carrying the provider access token (docs/api.md, Repository, DPC)."""

DEFAULT_RETRY_AFTER = 60
"""Seconds to wait when a rate-limited provider does not say (GitHub's REST docs: "wait for at
least one minute")."""


@dataclass(frozen=True)
class RepositoryInfo:
    """What a provider reports about a repository the token can read.

    Attributes:
        default_branch: the branch HEAD points to (``main``), or None if the provider does not say.
        html_url: the repository's web page, or None where there is none (plain git remotes).
        clone_url: the URL to clone it from (and push the first commit to).
        git_username: the HTTP Basic user name that goes with the token as password when
            pushing to ``clone_url`` over git smart HTTP (GitHub ``x-access-token``, GitLab
            ``oauth2``; most servers accept any name with a personal access token).
        no_deploy_key_reason: None when the token may add and remove deploy keys on the
            repository; otherwise why not, one sentence shown to the user (e.g. "the access
            token lacks the admin permission on acme/repo at GitHub").
    """

    default_branch: str | None
    html_url: str | None
    clone_url: str
    git_username: str = "x-access-token"
    no_deploy_key_reason: str | None = "the provider has no deploy key API"


@dataclass(frozen=True)
class DeployKey:
    """A deploy key as the provider registered it.

    Attributes:
        id: the provider's id of the key, as text (GitHub and GitLab use integers).
        read_only: whether the provider grants the key read access only.
    """

    id: str
    read_only: bool


class GitProvider(Protocol):
    """A provider module (``stead.repositories.github``, ``stead.repositories.git``, ...)."""

    def parse_parameters(self, raw: dict[str, Any], *, repository_name: str) -> dict[str, Any]:
        """Validate ``providerParameters`` and ``repositoryName``; return the parameters to
        store (wire names). Raises BadRequest naming each bad field."""
        ...

    def check(
        self, token: SecretStr, params: dict[str, Any], *, repository_name: str, settings: Settings
    ) -> RepositoryInfo:
        """Confirm with the provider that the repository exists and ``token`` can read it.

        Raises BadRequest (token rejected, repository not found), Forbidden (a permission is
        missing), UpstreamError (502), UpstreamUnavailable (503, rate limited), UpstreamTimeout
        (504, after ``settings.upstream_timeout_seconds``).
        """
        ...

    def add_deploy_key(
        self,
        token: SecretStr,
        params: dict[str, Any],
        *,
        repository_name: str,
        title: str,
        public_key_openssh: str,
        read_only: bool,
        settings: Settings,
    ) -> DeployKey:
        """Register ``public_key_openssh`` (``ssh-ed25519 AAAA...``) as a deploy key of the
        repository under ``title`` (e.g. ``stead:<project name>``), read-only or with push access.
        Only called when :func:`check` reported ``no_deploy_key_reason=None``; a provider without
        a deploy key API raises UpstreamError.

        Raises:
            Forbidden: the token may not add deploy keys after all (e.g. a fine-grained GitHub
                token without the "Administration" write permission); the message says why and
                becomes the association's ``deployKeyReason``.
            BadRequest, UpstreamError, UpstreamUnavailable, UpstreamTimeout: as :func:`check`
                (a provider's "key already in use" answer is an UpstreamError).
        """
        ...

    def remove_deploy_key(
        self,
        token: SecretStr,
        params: dict[str, Any],
        *,
        repository_name: str,
        key_id: str,
        settings: Settings,
    ) -> None:
        """Delete the deploy key ``key_id`` from the repository. A key (or repository) the
        provider no longer has counts as removed and returns normally.

        Raises:
            BadRequest (token rejected), Forbidden (the token may not remove deploy keys),
            UpstreamError, UpstreamUnavailable, UpstreamTimeout: as :func:`check`.
        """
        ...


def parameter_violations(exc: ValidationError) -> list[str]:
    """``providerParameters.<field>: <message>`` for each error of a parameters model."""
    violations = []
    for err in exc.errors(include_input=False, include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        message = {"missing": "required", "extra_forbidden": "unknown field"}.get(
            err["type"], err["msg"].removeprefix("Value error, ")
        )
        violations.append(f"providerParameters{'.' + path if path else ''}: {message}")
    return violations


def validated_parameters(
    model: type[BaseModel],
    raw: dict[str, Any],
    *,
    what: str,
    repository_name: str,
    check_name: Callable[[str], object] | None = None,
    exclude_none: bool = False,
) -> dict[str, Any]:
    """``providerParameters`` checked by ``model`` and dumped with wire names, and
    ``repositoryName`` checked by ``check_name`` (raising ``ValueError``) where the provider
    constrains it; every problem is reported at once.

    Raises:
        BadRequest: ``Invalid <what>: ...`` with one ``"<field>: <message>"`` violation each.
    """
    violations: list[str] = []
    params: dict[str, Any] = {}
    try:
        params = model.model_validate(raw).model_dump(by_alias=True, exclude_none=exclude_none)
    except ValidationError as exc:
        violations += parameter_violations(exc)
    if check_name is not None:
        try:
            check_name(repository_name)
        except ValueError as exc:
            violations.append(f"repositoryName: {exc}")
    if violations:
        raise BadRequest(f"Invalid {what}: " + "; ".join(violations), violations=violations)
    return params


def token_rejected(provider: str) -> BadRequest:
    """400: the provider does not accept the token (invalid, expired or revoked)."""
    return BadRequest(
        f"{provider} rejected the access token: it is invalid, expired or revoked",
        violations=[f"{TOKEN_HEADER}: rejected by {provider}"],
    )


def repository_not_found(provider: str, repository: str, field: str) -> BadRequest:
    """400 naming ``field``: no such repository, or the token cannot see it (GitHub answers 404
    for a private repository the token may not see, so the two cannot be told apart)."""
    return BadRequest(
        f"{provider} has no repository {repository} that this token can see",
        violations=[f"{field}: repository not found, or not visible to the token"],
    )


def permission_missing(provider: str, repository: str, permission: str) -> Forbidden:
    """403: the token can see the repository but lacks ``permission``."""
    return Forbidden(
        f"The access token lacks the {permission} permission on {repository} at {provider}",
        violations=[f"{TOKEN_HEADER}: lacks the {permission} permission"],
    )


def rate_limited(provider: str, retry_after: int) -> UpstreamUnavailable:
    """503 with ``Retry-After`` (seconds): the provider is rate limiting the token."""
    return UpstreamUnavailable(
        f"{provider} is rate limiting this token; retry in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


def unreachable(provider: str, reason: str) -> UpstreamError:
    """502: the provider could not be reached or answered with an error."""
    return UpstreamError(f"{provider} could not confirm the repository: {reason}")


def timed_out(provider: str, seconds: float) -> UpstreamTimeout:
    """504: the provider did not answer within ``seconds``."""
    return UpstreamTimeout(f"{provider} did not answer within {seconds:g} s")


def retry_after_seconds(retry_after: str | None, reset: str | None = None) -> int:
    """Seconds to wait, from a ``Retry-After`` value (seconds or HTTP date, RFC 9110 10.2.3) or
    else GitHub's ``x-ratelimit-reset`` (UTC epoch seconds); at least 1, default 60."""
    now = time.time()
    if retry_after:
        if retry_after.strip().isdigit():
            return max(1, int(retry_after))
        try:
            return max(
                1, math.ceil(email.utils.parsedate_to_datetime(retry_after).timestamp() - now)
            )
        except (TypeError, ValueError):
            pass
    if reset and reset.strip().isdigit():
        return max(1, math.ceil(int(reset) - now))
    return DEFAULT_RETRY_AFTER


TOKEN_MAX = 4096


def read_token(value: str | None) -> SecretStr:
    """The ``Git-Provider-Access-Token`` header as a secret: 1-4096 printable ASCII characters
    without spaces (what providers issue; anything else could not be sent on).

    Raises:
        BadRequest: naming the header when it is missing, empty or malformed (never echoing it).
    """
    if value is None or not value.strip():
        raise BadRequest(
            f"The {TOKEN_HEADER} header is required", violations=[f"{TOKEN_HEADER}: required"]
        )
    if len(value) > TOKEN_MAX or not all("!" <= ch <= "~" for ch in value):
        raise BadRequest(
            f"The {TOKEN_HEADER} header is malformed",
            violations=[
                f"{TOKEN_HEADER}: must be 1-{TOKEN_MAX} printable ASCII characters without spaces"
            ],
        )
    return SecretStr(value)
