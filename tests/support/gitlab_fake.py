"""A fake of GitLab's REST API v4 for ``GET /projects/:id`` and the deploy keys API, served
over real HTTP under ``/api/v4``.

Answers are shaped as docs.gitlab.com documents them ("Projects API", "Deploy keys API", "REST
API: Status codes", "Rate limits"): JSON error bodies ``{"message": ...}``, 401 ``401
Unauthorized`` for an unknown token (``invalid_token`` for an expired one), 403
``insufficient_scope`` with ``scope`` for a token without the needed scope, 403 ``403
Forbidden`` below the Maintainer role for deploy keys, 404 ``404 Project Not Found`` for a
private project the token is no member of, 429 ``Retry later`` with ``Retry-After`` and
``RateLimit-*`` headers, and ``permissions.project_access`` / ``group_access``. Projects are
addressed by URL-encoded full path (``acme%2Fpipelines``) or numeric id; paths are
case-insensitive, as on GitLab.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.rest_fake import Answer, Request, RestServer

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50


@dataclass
class FakeProject:
    """A project on the fake; ``deploy_keys`` maps key ids to the keys' JSON; ``clone_url``
    replaces ``http_url_to_repo`` (e.g. a local git server's URL)."""

    id: int
    path_with_namespace: str
    visibility: str
    default_branch: str | None
    clone_url: str | None = None
    deploy_keys: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class FakeToken:
    """What the fake answers to one token.

    ``access`` maps project paths to the access level reported (as ``group_access`` when
    ``via_group``, else ``project_access``); ``scopes`` as on a personal access token;
    ``expired`` answers 401 ``invalid_token``; ``rate_limit`` answers 429; ``status`` forces a
    server error; ``delay`` (seconds) is waited before answering.
    """

    access: dict[str, int] = field(default_factory=dict)
    scopes: set[str] = field(default_factory=lambda: {"api"})
    via_group: bool = False
    expired: bool = False
    rate_limit: bool = False
    status: int | None = None
    delay: float = 0.0


class GitLabFake:
    """The fake's state and its HTTP server; ``api_url`` is the API base URL (``.../api/v4``)."""

    def __init__(self) -> None:
        self.projects: dict[str, FakeProject] = {}
        self.tokens: dict[str, FakeToken] = {}
        self._ids = itertools.count(1)
        self._server = RestServer(self.answer)
        self.url = self._server.url
        self.api_url = f"{self.url}/api/v4"

    @property
    def requests(self) -> list[Request]:
        """Every request received since the last reset."""
        return self._server.requests

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def reset(self) -> None:
        """Forget every project, token and request."""
        self.projects.clear()
        self.tokens.clear()
        self._server.requests.clear()

    def add_project(
        self,
        path: str,
        *,
        visibility: str = "private",
        default_branch: str | None = "main",
        clone_url: str | None = None,
    ) -> FakeProject:
        """Create project ``namespace/.../name`` (``default_branch`` None: an empty
        repository)."""
        project = FakeProject(next(self._ids) + 100, path, visibility, default_branch, clone_url)
        self.projects[path.lower()] = project
        return project

    def add_token(
        self,
        token: str,
        *,
        access: Mapping[str, int] | None = None,
        scopes: Iterable[str] = ("api",),
        via_group: bool = False,
        expired: bool = False,
        rate_limit: bool = False,
        status: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Register ``token`` (see :class:`FakeToken`)."""
        self.tokens[token] = FakeToken(
            {k.lower(): v for k, v in (access or {}).items()},
            set(scopes),
            via_group,
            expired,
            rate_limit,
            status,
            delay,
        )

    def answer(self, request: Request) -> Answer:
        """``(status, headers, body)`` for one request."""
        headers = {
            "RateLimit-Limit": "2000",
            "RateLimit-Observed": "1",
            "RateLimit-Remaining": "1999",
            "RateLimit-Reset": str(int(time.time()) + 60),
        }
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        secret = value if scheme.lower() == "bearer" else request.headers.get("PRIVATE-TOKEN")
        token = self.tokens.get(secret or "")
        if token is None:
            return 401, headers, {"message": "401 Unauthorized"}
        time.sleep(token.delay)
        if token.expired:
            return (
                401,
                headers,
                {"error": "invalid_token", "error_description": "Token has expired."},
            )
        if token.status is not None:
            return token.status, headers, "<html><body><h1>502 Bad Gateway</h1></body></html>"
        if token.rate_limit:
            headers.update(
                {"RateLimit-Remaining": "0", "RateLimit-Observed": "2001", "Retry-After": "30"}
            )
            return 429, {**headers, "Content-Type": "text/plain"}, "Retry later\n"
        parts = urlsplit(request.path).path.split("/")
        if parts[:4] != ["", "api", "v4", "projects"] or len(parts) < 5:
            return 404, headers, {"error": "404 Not Found"}
        write = request.method != "GET"
        if not token.scopes & ({"api"} if write else {"api", "read_api"}):
            return (
                403,
                headers,
                {
                    "error": "insufficient_scope",
                    "error_description": "The request requires higher privileges than "
                    "provided by the access token.",
                    "scope": "api" if write else "api read_api",
                },
            )
        project = self._find(unquote(parts[4]))
        level = token.access.get(project.path_with_namespace.lower()) if project else None
        if project is None or (project.visibility == "private" and level is None):
            return 404, headers, {"message": "404 Project Not Found"}
        rest = parts[5:]
        if request.method == "GET" and not rest:
            return 200, headers, self._project(project, token, level)
        if rest[:1] != ["deploy_keys"] or len(rest) > 2:
            return 404, headers, {"error": "404 Not Found"}
        if (level or 0) < MAINTAINER:
            return 403, headers, {"message": "403 Forbidden"}
        if request.method == "POST" and len(rest) == 1:
            return self._add_key(project, request.json())
        if request.method == "DELETE" and len(rest) == 2:
            if project.deploy_keys.pop(int(rest[1]) if rest[1].isdigit() else -1, None) is None:
                return 404, headers, {"message": "404 Deploy key Not Found"}
            return 204, headers, None
        return 405, headers, {"error": "405 Method Not Allowed"}

    def _find(self, ident: str) -> FakeProject | None:
        if ident.isdigit():
            return next((p for p in self.projects.values() if p.id == int(ident)), None)
        return self.projects.get(ident.lower())

    def _add_key(self, project: FakeProject, body: Any) -> Answer:
        if not isinstance(body, dict) or not body.get("title") or not body.get("key"):
            return 400, {}, {"error": "title is missing, key is missing"}
        if any(k["key"] == body["key"] for k in project.deploy_keys.values()):
            return (
                400,
                {},
                {"message": {"deploy_key.fingerprint_sha256": ["has already been taken"]}},
            )
        key_id = next(self._ids)
        digest = hashlib.sha256(str(body["key"]).encode()).hexdigest()
        key = {
            "id": key_id,
            "title": body["title"],
            "key": body["key"],
            "fingerprint_sha256": f"SHA256:{digest[:43]}",
            "created_at": "2026-01-15T10:30:00.000Z",
            "expires_at": None,
            "can_push": body.get("can_push") is True,
        }
        project.deploy_keys[key_id] = key
        return 201, {}, key

    def _project(self, project: FakeProject, token: FakeToken, level: int | None) -> dict[str, Any]:
        web = f"https://gitlab.example.com/{project.path_with_namespace}"
        namespace, _, name = project.path_with_namespace.rpartition("/")
        access = None if level is None else {"access_level": level, "notification_level": 3}
        return {
            "id": project.id,
            "description": None,
            "name": name,
            "name_with_namespace": project.path_with_namespace.replace("/", " / "),
            "path": name,
            "path_with_namespace": project.path_with_namespace,
            "created_at": "2026-01-15T10:30:00.000Z",
            "default_branch": project.default_branch,
            "ssh_url_to_repo": f"git@gitlab.example.com:{project.path_with_namespace}.git",
            "http_url_to_repo": project.clone_url or f"{web}.git",
            "web_url": web,
            "readme_url": None,
            "empty_repo": project.default_branch is None,
            "archived": False,
            "visibility": project.visibility,
            "namespace": {"id": 7, "name": namespace, "path": namespace, "kind": "group"},
            "repository_access_level": "enabled",
            "permissions": {
                "project_access": None if token.via_group else access,
                "group_access": access if token.via_group else None,
            },
        }


@pytest.fixture(scope="session")
def gitlab_fake_server() -> Iterator[GitLabFake]:
    """The session's GitLab fake (reset it before use: see :meth:`GitLabFake.reset`)."""
    fake = GitLabFake()
    yield fake
    fake.stop()
