"""Any git remote, checked with an ``ls-remote`` through dulwich; the default branch is HEAD's
symref.

``providerParameters`` is ``{"url": ...}`` with an ``https://``, ``http://``, ``ssh://`` or
``file://`` URL, or an SSH remote in git's scp-like form ``[user@]host:path`` (what GitHub,
GitLab and Bitbucket show as the SSH clone address, ``git@github.com:org/repo.git``), kept as
given and spoken as git speaks it: the path goes to the server unchanged, so a relative one
stays relative to the SSH user's home (git-clone(1), "GIT URLS").

Over HTTP(S) the token goes as HTTP Basic password with the user name ``x-access-token`` (what
GitHub uses for app tokens; GitLab, Gitea and Azure DevOps accept any user name with a personal
access token), or the user name written in the URL (Bitbucket wants ``x-token-auth``). A
password in the URL is refused: the token belongs in the header, never in a stored URL.
``ssh://`` and the scp-like form run the system ``ssh`` in batch mode, authenticated with the
server's own SSH key (the token cannot be used over SSH); ``file://`` reads a repository on the
server's disk, and the token is not used either.
The outbound policy (:mod:`stead.outbound`) allows only ``https://`` unless an admin turns on
``http://`` (the token would travel in clear text), ``ssh://`` (the scp-like form too) or
``file://``, and checks the host, its addresses and every redirect.

Each HTTP request gets one attempt and ``settings.upstream_timeout_seconds`` (an ``ls-remote``
over protocol v2 makes two requests).
"""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import urllib3
from dulwich.client import (
    GitClient,
    HTTPUnauthorized,
    LocalGitClient,
    LsRemoteResult,
    SSHGitClient,
    Urllib3HttpGitClient,
    default_urllib3_manager,
)
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.refs import SYMREF, Ref
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
from stead.wire import WireModel

NAME = "The git server"
USERNAME = "x-access-token"
SCHEMES = ("https", "http", "ssh", "file")
URL_FIELD = "providerParameters.url"
NO_DEPLOY_KEYS = "a plain git remote has no deploy key API"


_SCP_LIKE = re.compile(r"(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+):(?P<path>.*)")


def scp_like(value: str) -> tuple[str | None, str, str] | None:
    """``(user, host, path)`` of an SSH remote in git's scp-like form ``[user@]host:path``, or
    None when ``value`` is not in that form: it has ``://``, or a ``/`` before the first ``:``
    (git reads that as a local path; git-clone(1), "GIT URLS")."""
    if "://" in value:
        return None
    match = _SCP_LIKE.fullmatch(value)
    if match is None:
        return None
    return match["user"], match["host"], match["path"]


def check_url(value: str) -> str:
    """A remote URL Stead may store and call: scheme in :data:`SCHEMES` or git's scp-like SSH
    form (:func:`scp_like`), a host (none or ``localhost`` for ``file://``) and user name not
    starting with ``-``, no password, query, fragment, space or control character.

    Raises:
        ValueError: saying which rule failed, never echoing the URL.
    """
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain spaces or control characters")
    scp = scp_like(value)
    if scp is not None:
        user, host, path = scp
        if len(host) == 1:
            raise ValueError(
                "looks like a Windows drive path; give the remote's ssh://, https:// or file:// URL"
            )
        if host.startswith("-") or (user or "").startswith("-") or path.startswith("-"):
            # ssh and git-upload-pack would read them as options
            raise ValueError("host, user name and path must not start with '-'")
        if not path.strip("/"):
            raise ValueError("an SSH remote user@host:path needs the repository's path after ':'")
        if user is None and "@" in path:
            raise ValueError(
                "must not contain a password; send the token in the Git-Provider-Access-Token "
                "header"
            )
        return value
    if "://" not in value and ":" in value:
        raise ValueError(
            "is a local path to git ('/' before ':'); give it as a file:///absolute/path URL"
        )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(
            "must be an https://, http://, ssh:// or file:// URL, or an SSH remote written "
            "user@host:path (git@github.com:org/repo.git)"
        )
    if parts.password is not None:
        raise ValueError(
            "must not contain a password; send the token in the Git-Provider-Access-Token header"
        )
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or a fragment")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError("a file:// URL must name an absolute path on this server")
    elif not parts.hostname:
        raise ValueError("must name a host")
    elif parts.hostname.startswith("-") or (parts.username or "").startswith("-"):
        # ssh would read them as options
        raise ValueError("host and user name must not start with '-'")
    return value


class Parameters(WireModel):
    """The ``git`` provider's ``providerParameters``: ``{"url": "<remote URL>"}``."""

    url: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(check_url)]


def parse_parameters(raw: dict[str, Any], *, repository_name: str) -> dict[str, Any]:
    """Validate ``providerParameters``; return ``{"url": ...}``. ``repositoryName`` is only a
    label for a plain git remote.

    Raises:
        BadRequest: ``url`` missing or not allowed (see :func:`check_url`), or an unknown key.
    """
    return validated_parameters(Parameters, raw, what="git remote", repository_name=repository_name)


def check(
    token: SecretStr, params: dict[str, Any], *, repository_name: str, settings: Settings
) -> RepositoryInfo:
    """List the remote's refs with ``token`` and return HEAD's branch (None for a remote that
    does not advertise HEAD); the error answers are those of :class:`provider.GitProvider`:
    HTTP 401 -> token rejected, 403 -> read permission missing, 404 or no repository at a
    ``file://`` path -> not found, 429 (or 503 with ``Retry-After``) -> rate limited, other
    failures -> 502, timeouts -> 504."""
    url = params["url"]
    timeout = settings.upstream_timeout_seconds
    policy = Policy.from_settings(settings)
    client, path = connect(url, token, username=USERNAME, timeout=timeout, policy=policy)
    with translated_errors(url, timeout=timeout, permission="read", field=URL_FIELD):
        result = client.get_refs(path)
    head = (result.symrefs.get(Ref(b"HEAD")) or b"").decode("utf-8", "replace")
    branch = head.removeprefix("refs/heads/") if head.startswith("refs/heads/") else None
    return RepositoryInfo(
        default_branch=branch, html_url=None, clone_url=url, no_deploy_key_reason=NO_DEPLOY_KEYS
    )


def connect(
    url: str,
    token: SecretStr,
    *,
    username: str,
    timeout: float,
    policy: Policy,
    field: str = URL_FIELD,
) -> tuple[GitClient, bytes]:
    """A dulwich client for the remote ``url`` and the repository path to pass it, once
    ``policy`` allows ``url`` (and, over HTTP(S), each redirect it leads to).

    Over HTTP(S) the token is the Basic-auth password and the user name is the one written in
    the URL, else ``username``; each request gets one attempt and ``timeout`` seconds. ``ssh://``
    runs the system ``ssh`` in batch mode and ``file://`` opens a path on this server; neither
    uses the token; nor does git's scp-like SSH form, whose path is sent as written.

    Raises:
        DestinationRefused: the policy refuses the URL (400 naming ``field``); the scp-like
            form is checked as the ``ssh://`` URL of its host.
    """
    ssh_command = f"ssh -o BatchMode=yes -o ConnectTimeout={math.ceil(timeout)}"
    scp = scp_like(url)
    if scp is not None:
        user, host, path = scp
        policy.check_url("git", f"ssh://{host}", field=field)
        return SSHGitClient(host, username=user, ssh_command=ssh_command), path.encode()
    policy.check_url("git", url, field=field)
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        client = _HttpClient(
            _without_userinfo(parts),
            username=unquote(parts.username or username),
            password=token.get_secret_value(),
            timeout=timeout,
            retries=policy.urllib3_retry(
                "git", field=field, total=None, connect=0, read=0, status=0, other=0, redirect=5
            ),
        )
        return client, b""
    if parts.scheme == "ssh":
        ssh = SSHGitClient(
            parts.hostname or "",
            port=parts.port,
            username=parts.username,
            ssh_command=ssh_command,
        )
        return ssh, unquote(parts.path).encode()
    return _LocalClient(), unquote(parts.path).encode()


@contextmanager
def translated_errors(
    url: str, *, timeout: float, permission: str, field: str, name: str = NAME
) -> Iterator[None]:
    """Turn a failure of a dulwich call on ``url`` into the answer of docs/api.md, Repository:
    HTTP 401 -> token rejected (400), 403 -> ``permission`` missing (403), 404 or no repository
    at a local path -> not found (400 naming ``field``), 429 (or 503 with ``Retry-After``) ->
    rate limited (503), a timeout -> 504, any other failure -> 502. ``name`` is the provider
    as messages call it; no message contains the server's answer or the token."""
    try:
        yield
    except HTTPUnauthorized:
        raise token_rejected(name) from None
    except _HttpStatus as exc:
        raise _status_error(exc, url, name=name, permission=permission, field=field) from None
    except NotGitRepository:
        raise repository_not_found(name, url, field) from None
    except (GitProtocolError, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        # ValueError: dulwich could not parse the answer (e.g. a web page, not a git server).
        if _is_timeout(exc):
            raise timed_out(name, timeout) from None
        reason = _connect_failure(exc) or f"the git request failed ({type(exc).__name__})"
        raise unreachable(name, reason) from None


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
    """A plain git remote has no deploy key API (:func:`check` says so), so this always raises.

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
    """A plain git remote never has a deploy key of Stead's: nothing to remove."""


class _LocalClient(LocalGitClient):
    """dulwich's client of a repository on this server's disk, which also reports where an
    unborn HEAD points (``HEAD -> refs/heads/master`` in a fresh ``git init --bare``), as git's
    own server does over protocol v2 (``ls-refs`` with ``unborn``, gitprotocol-v2(5)). Without
    it an empty repository has no default branch, and a first commit pushed to another branch
    leaves a clone with nothing checked out."""

    def get_refs(
        self,
        path: str | bytes,
        protocol_version: int | None = None,
        ref_prefix: Sequence[bytes] | None = None,
    ) -> LsRemoteResult:
        result = super().get_refs(path, protocol_version, ref_prefix)
        head = Ref(b"HEAD")
        if head not in result.symrefs:
            with self._open_repo(path) as repo:
                target = repo.refs.read_ref(head) or b""
            if target.startswith(SYMREF):
                result.symrefs[head] = Ref(target[len(SYMREF) :])
        return result


class _HttpStatus(Exception):
    """A non-200 answer of the git server, with its status and ``Retry-After``."""

    def __init__(self, status: int, retry_after: str | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class _HttpClient(Urllib3HttpGitClient):
    """dulwich's HTTP client with one attempt per request (urllib3 would otherwise retry timeouts
    and sleep through ``Retry-After``) and the outbound policy's check on each redirect
    (``retries``), reporting any non-200 status as :class:`_HttpStatus`.

    Relies on ``Urllib3HttpGitClient._http_request`` of the pinned dulwich.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        timeout: float,
        retries: urllib3.Retry,
    ) -> None:
        manager = default_urllib3_manager(None, base_url=base_url, timeout=timeout)
        assert isinstance(manager, urllib3.PoolManager)
        manager.connection_pool_kw["retries"] = retries
        super().__init__(
            base_url, pool_manager=manager, username=username, password=password, timeout=timeout
        )

    def _http_request(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        data: Any = None,
        raise_for_status: bool = True,
    ) -> Any:
        response, read = super()._http_request(url, headers, data, raise_for_status=False)
        if raise_for_status and response.status == 401:
            raise HTTPUnauthorized(response.headers.get("WWW-Authenticate"), url)
        if raise_for_status and response.status != 200:
            raise _HttpStatus(response.status, response.headers.get("Retry-After"))
        return response, read


def _status_error(
    exc: _HttpStatus, url: str, *, name: str, permission: str, field: str
) -> Exception:
    if exc.status == 403:
        return permission_missing(name, url, permission)
    if exc.status == 404:
        return repository_not_found(name, url, field)
    if exc.status == 429 or (exc.status == 503 and exc.retry_after):
        return rate_limited(name, retry_after_seconds(exc.retry_after))
    return unreachable(name, f"it answered HTTP {exc.status}")


def _without_userinfo(parts: SplitResult) -> str:
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


_SSH_STDERR = (
    ("Could not resolve hostname", "the host name could not be resolved"),
    ("connect to host", "no connection could be made to the host"),
)


def _connect_failure(exc: BaseException) -> str | None:
    """Why no connection was made, when that is why ``exc`` was raised: the host name did not
    resolve (urllib3's ``NameResolutionError``, ``socket.gaierror``), or the host refused or could
    not be reached (urllib3's ``NewConnectionError``, ``ConnectionError``). ssh says so only on
    its standard error, which dulwich passes on as a ``HangupException``; its text is matched,
    never repeated. None for any other failure."""
    if isinstance(exc, HangupException):
        text = str(exc)
        return next((reason for marker, reason in _SSH_STDERR if marker in text), None)
    seen: BaseException | None = exc
    while seen is not None:
        for error in (seen, getattr(seen, "reason", None)):
            if isinstance(error, urllib3.exceptions.NameResolutionError | socket.gaierror):
                return "the host name could not be resolved"
            if isinstance(error, urllib3.exceptions.NewConnectionError | ConnectionError):
                return "no connection could be made to the host"
        seen = seen.__cause__
    return None


def _is_timeout(exc: BaseException) -> bool:
    """True if ``exc`` or what caused it is a timeout (urllib3 wraps it once or twice; its
    ``NewConnectionError``, a refused connection, subclasses its timeout error)."""
    seen: BaseException | None = exc
    while seen is not None:
        for error in (seen, getattr(seen, "reason", None)):
            if isinstance(error, urllib3.exceptions.NewConnectionError):
                return False
            if isinstance(error, urllib3.exceptions.TimeoutError | socket.timeout):
                return True
        seen = seen.__cause__
    return False
