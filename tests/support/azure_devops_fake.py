"""A fake of Azure DevOps Services' REST API for
``GET /{organization}/_apis/git/repositories/{repositoryId}?api-version=7.1``, served over real
HTTP.

Answers are shaped as learn.microsoft.com documents them ("Repositories - Get Repository",
"Authenticate with personal access tokens", "Rate and usage limits"), with the behaviours users
report: a personal access token as HTTP Basic password (any user name); an unknown token gets
203 with the HTML sign-in page (or a 302 to it with ``redirect_to_sign_in``), an expired one 401
``Access Denied``; a token without the "Code (Read)" scope 401 ``TF400813: The user ... is not
authorized``; a repository the token may not read or that does not exist 404 ``TF401019``
(``GitRepositoryNotFoundException``) with Azure DevOps's JSON error body; an unknown organization
a 404 HTML page; 429 with ``Retry-After`` and ``X-RateLimit-*`` headers.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.rest_fake import Answer, Request, RestServer

SIGN_IN_PAGE = (
    "<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head>"
    "<body>Sign in to your account</body></html>"
)


@dataclass
class FakeRepo:
    """A repository on the fake (``default_branch`` None: an empty repository; ``remote_url``
    replaces ``remoteUrl``, e.g. a local git server's URL)."""

    id: str
    organization: str
    project: str
    name: str
    default_branch: str | None
    remote_url: str | None = None


@dataclass
class FakeToken:
    """What the fake answers to one token: ``repos`` it may read (ids); ``code_scope`` False
    answers 401 TF400813; ``forbidden`` answers 403 (a conditional access policy);
    ``expired``, ``rate_limit``, ``status`` (a server error) and ``delay`` (seconds)."""

    repos: set[str] = field(default_factory=set)
    code_scope: bool = True
    forbidden: bool = False
    expired: bool = False
    rate_limit: bool = False
    status: int | None = None
    delay: float = 0.0


class AzureDevOpsFake:
    """The fake's state and its HTTP server; ``url`` stands for ``https://dev.azure.com``."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.tokens: dict[str, FakeToken] = {}
        self.redirect_to_sign_in = False
        self._server = RestServer(self.answer)
        self.url = self._server.url

    @property
    def requests(self) -> list[Request]:
        """Every request received since the last reset."""
        return self._server.requests

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def reset(self) -> None:
        """Forget every repository, token and request."""
        self.repos.clear()
        self.tokens.clear()
        self.redirect_to_sign_in = False
        self._server.requests.clear()

    def add_repo(
        self,
        organization: str,
        project: str,
        name: str,
        *,
        default_branch: str | None = "main",
        remote_url: str | None = None,
    ) -> str:
        """Create a repository; return its id (a GUID)."""
        repo_id = str(uuid.uuid4())
        self.repos[repo_id] = FakeRepo(
            repo_id, organization, project, name, default_branch, remote_url
        )
        return repo_id

    def add_token(self, token: str, *, repos: Iterable[str] = (), **options: Any) -> None:
        """Register ``token`` (see :class:`FakeToken`)."""
        self.tokens[token] = FakeToken(repos={r.lower() for r in repos}, **options)

    def answer(self, request: Request) -> Answer:
        """``(status, headers, body)`` for one request."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = None
        if scheme.lower() == "basic":
            try:
                token = self.tokens.get(base64.b64decode(value).decode().partition(":")[2])
            except ValueError:
                token = None
        if token is None:
            if self.redirect_to_sign_in:
                return 302, {"Location": f"{self.url}/_signin?realm=dev.azure.com"}, None
            return 203, {}, SIGN_IN_PAGE
        time.sleep(token.delay)
        if token.expired:
            return 401, {}, "Access Denied: The Personal Access Token used has expired."
        if token.status is not None:
            return token.status, {}, "<html><body>Service Unavailable</body></html>"
        if token.rate_limit:
            return (
                429,
                {
                    "Retry-After": "30",
                    "X-RateLimit-Resource": "ATCPU",
                    "X-RateLimit-Delay": "0.000",
                    "X-RateLimit-Limit": "200",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(int(time.time()) + 300),
                },
                _error("TF400733: The request has been throttled.", "RequestBlockedException"),
            )
        parts = urlsplit(request.path)
        segments = parts.path.split("/")
        known = {r.organization.lower() for r in self.repos.values()}
        if len(segments) != 6 or segments[2:5] != ["_apis", "git", "repositories"]:
            return 404, {}, "<html><body>Page not found.</body></html>"
        if segments[1].lower() not in known:
            return 404, {}, "<html><body>The resource cannot be found.</body></html>"
        if parse_qs(parts.query).get("api-version") != ["7.1"]:
            return (
                400,
                {},
                _error("No api-version was supplied.", "VssVersionNotSpecifiedException"),
            )
        if not token.code_scope:
            return (
                401,
                {},
                _error(
                    "TF400813: The user 'aaaaaaaa-0000-0000-0000-000000000001' is not "
                    "authorized to access this resource.",
                    "UnauthorizedRequestException",
                ),
            )
        if token.forbidden:
            return (
                403,
                {},
                _error(
                    "VS403463: The conditional access policy defined by your Azure Active "
                    "Directory administrator has failed.",
                    "UnauthorizedRequestException",
                ),
            )
        ident = segments[5].lower()
        repo = self.repos.get(ident)
        if (
            repo is None
            or repo.organization.lower() != segments[1].lower()
            or (ident not in token.repos)
        ):
            return (
                404,
                {},
                _error(
                    f"TF401019: The Git repository with name or identifier {segments[5]} does "
                    "not exist or you do not have permissions for the operation you are "
                    "attempting.",
                    "GitRepositoryNotFoundException",
                ),
            )
        return 200, {}, self._repository(repo)

    def _repository(self, repo: FakeRepo) -> dict[str, Any]:
        org_url = f"https://dev.azure.com/{repo.organization}"
        project_id = str(uuid.uuid5(uuid.NAMESPACE_URL, repo.project))
        body: dict[str, Any] = {
            "id": repo.id,
            "name": repo.name,
            "url": f"{org_url}/{project_id}/_apis/git/repositories/{repo.id}",
            "project": {
                "id": project_id,
                "name": repo.project,
                "url": f"{org_url}/_apis/projects/{project_id}",
                "state": "wellFormed",
                "revision": 11,
                "visibility": "private",
                "lastUpdateTime": "2026-01-15T10:30:00.000Z",
            },
            "size": 10895,
            "remoteUrl": repo.remote_url
            or f"https://{repo.organization}@dev.azure.com/{repo.organization}/"
            f"{repo.project}/_git/{repo.name}",
            "sshUrl": f"git@ssh.dev.azure.com:v3/{repo.organization}/{repo.project}/{repo.name}",
            "webUrl": f"{org_url}/{repo.project}/_git/{repo.name}",
            "isDisabled": False,
            "isInMaintenance": False,
        }
        if repo.default_branch is not None:
            body["defaultBranch"] = f"refs/heads/{repo.default_branch}"
        return body


def _error(message: str, type_key: str) -> dict[str, Any]:
    """Azure DevOps's JSON error body."""
    return {
        "$id": "1",
        "innerException": None,
        "message": message,
        "typeName": f"Microsoft.TeamFoundation.{type_key}, Microsoft.TeamFoundation",
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": 3000,
    }


@pytest.fixture(scope="session")
def azure_devops_fake_server() -> Iterator[AzureDevOpsFake]:
    """The session's Azure DevOps fake (reset it before use: see :meth:`AzureDevOpsFake.reset`)."""
    fake = AzureDevOpsFake()
    yield fake
    fake.stop()
