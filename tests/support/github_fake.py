"""A fake of GitHub's REST API for ``GET /repos/{owner}/{repo}`` and the deploy key endpoints
``POST /repos/{owner}/{repo}/keys`` and ``DELETE /repos/{owner}/{repo}/keys/{key_id}``, served
over real HTTP.

Answers are shaped as docs.github.com documents them ("REST API endpoints for repositories: Get a
repository", "Troubleshooting the REST API", "Rate limits for the REST API"): JSON error bodies
``{"message", "documentation_url", "status"}``, ``x-ratelimit-*`` headers on every answer, 401
``Bad credentials`` for an unknown token, 404 for a private repository the token cannot see, 403
``Resource not accessible by personal access token`` with ``X-Accepted-GitHub-Permissions`` for a
fine-grained token lacking a permission, 403/429 for the primary and secondary rate limits, and
301 to ``/repositories/{id}`` for a renamed repository. Deploy keys ("REST API endpoints for
deploy keys"): 201 with ``id``, ``key``, ``title``, ``read_only`` ...; 422 ``Validation Failed``
when the key is not an OpenSSH public key or is already in use (on any repository); 404 when the
token lacks admin permission; 403 with ``X-Accepted-GitHub-Permissions: administration=write``
for a fine-grained token without the "Administration" permission; DELETE 204, 404 for an
unknown key.

Tests register repositories and tokens; owner and repository names are case-insensitive, as on
GitHub.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

DOCS = "https://docs.github.com/rest"
KEYS_DOCS = "https://docs.github.com/rest/deploy-keys/deploy-keys"
REPO_DOCS = "https://docs.github.com/rest/repos/repos#get-a-repository"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
ALL = {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}
READ_ONLY = {"admin": False, "maintain": False, "push": False, "triage": False, "pull": True}
NONE = {"admin": False, "maintain": False, "push": False, "triage": False, "pull": False}


@dataclass
class FakeRepo:
    """A repository on the fake."""

    id: int
    owner: str
    name: str
    private: bool
    default_branch: str
    clone_url: str | None = None
    keys: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class FakeToken:
    """What the fake answers to one token.

    ``access`` maps ``owner/name`` to the ``permissions`` object GitHub reports; ``forbidden``
    repositories answer 403 as to a fine-grained token without "Metadata" permission;
    ``rate_limit`` is ``primary``, ``secondary`` or ``secondary-message``; ``status`` forces a
    server error; ``delay`` (seconds) is waited before answering. ``keys_forbidden`` makes the
    deploy key endpoints answer 403 as to a fine-grained token without "Administration"
    permission; ``key_status`` forces a status on the deploy key endpoints by method
    (``{"DELETE": 500}``).
    """

    access: dict[str, dict[str, bool]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    rate_limit: str | None = None
    status: int | None = None
    delay: float = 0.0
    keys_forbidden: bool = False
    key_status: dict[str, int] = field(default_factory=dict)


class GitHubFake:
    """The fake's state and its HTTP server on 127.0.0.1 (``url`` is the API base URL)."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.renamed: dict[str, str] = {}
        self.tokens: dict[str, FakeToken] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.writes: list[tuple[str, str, dict[str, str]]] = []
        self._next_key = 1
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        """Forget every repository, token and request."""
        self.repos.clear()
        self.renamed.clear()
        self.tokens.clear()
        self.requests.clear()
        self.writes.clear()

    def add_repo(
        self,
        full_name: str,
        *,
        private: bool = True,
        default_branch: str = "main",
        clone_url: str | None = None,
    ) -> None:
        """Create repository ``owner/name``; ``clone_url`` replaces the github.com one (a test
        git server that takes the push of ``?initialize=true``)."""
        owner, name = full_name.split("/")
        self.repos[full_name.lower()] = FakeRepo(
            len(self.repos) + 1000, owner, name, private, default_branch, clone_url
        )

    def keys(self, full_name: str) -> list[dict[str, Any]]:
        """The deploy keys of repository ``owner/name``, oldest first."""
        return list(self.repos[full_name.lower()].keys.values())

    def rename(self, old: str, new: str) -> None:
        """Rename ``old`` (``owner/name``) to ``new``; the old name then answers 301."""
        repo = self.repos.pop(old.lower())
        repo.owner, repo.name = new.split("/")
        self.repos[new.lower()] = repo
        self.renamed[old.lower()] = new.lower()

    def add_token(
        self,
        token: str,
        *,
        access: Mapping[str, Mapping[str, bool]] | None = None,
        forbidden: Iterable[str] = (),
        rate_limit: str | None = None,
        status: int | None = None,
        delay: float = 0.0,
        keys_forbidden: bool = False,
        key_status: Mapping[str, int] | None = None,
    ) -> None:
        """Register ``token`` (see :class:`FakeToken`)."""
        self.tokens[token] = FakeToken(
            {k.lower(): dict(v) for k, v in (access or {}).items()},
            {f.lower() for f in forbidden},
            rate_limit,
            status,
            delay,
            keys_forbidden,
            dict(key_status or {}),
        )

    def answer(
        self, path: str, authorization: str, method: str = "GET", body: Any = None
    ) -> tuple[int, dict[str, str], Any]:
        """``(status, headers, json body)`` for ``method path`` with this Authorization header
        and JSON ``body``."""
        reset = int(time.time()) + 120
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": "1",
            "x-ratelimit-resource": "core",
            "X-GitHub-Media-Type": "github.v3",
        }
        scheme, _, value = authorization.partition(" ")
        token = self.tokens.get(value) if scheme.lower() in ("bearer", "token") else None
        if authorization and token is None:
            return (
                401,
                headers,
                {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"},
            )
        token = token or FakeToken()
        time.sleep(token.delay)
        if token.status is not None:
            return token.status, headers, "<html><body>Unicorn! GitHub is down</body></html>"
        if token.rate_limit == "primary":
            headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-used": "5000"})
            return (
                403,
                headers,
                {
                    "message": "API rate limit exceeded for user ID 1.",
                    "documentation_url": RATE_DOCS,
                    "status": "403",
                },
            )
        if token.rate_limit == "secondary":
            headers["retry-after"] = "30"
            return (
                429,
                headers,
                {
                    "message": "You have exceeded a secondary rate limit. Please "
                    "wait a few minutes before you try again.",
                    "documentation_url": RATE_DOCS,
                    "status": "429",
                },
            )
        if token.rate_limit == "secondary-message":
            return (
                403,
                headers,
                {
                    "message": "You have exceeded a secondary rate limit and have "
                    "been temporarily blocked from content creation.",
                    "documentation_url": RATE_DOCS,
                    "status": "403",
                },
            )
        # GitHub Enterprise Server serves the same API under /api/v3.
        parts = path.removeprefix("/api/v3").strip("/").split("/")
        if len(parts) in (4, 5) and parts[0] == "repos" and parts[3] == "keys":
            return self._keys(token, method, parts, body, headers)
        if method != "GET":
            return 404, headers, {"message": "Not Found", "documentation_url": DOCS}
        if len(parts) == 2 and parts[0] == "repositories":
            repo = next((r for r in self.repos.values() if str(r.id) == parts[1]), None)
        elif len(parts) == 3 and parts[0] == "repos":
            key = f"{parts[1]}/{parts[2]}".lower()
            if key in self.renamed:
                moved = self.repos[self.renamed[key]]
                location = f"{self.url}/repositories/{moved.id}"
                headers["Location"] = location
                return (
                    301,
                    headers,
                    {"message": "Moved Permanently", "url": location, "documentation_url": DOCS},
                )
            repo = self.repos.get(key)
        else:
            return (
                404,
                headers,
                {"message": "Not Found", "documentation_url": DOCS, "status": "404"},
            )
        key = repo.full_name.lower() if repo else ""
        if repo is not None and key in token.forbidden:
            headers["X-Accepted-GitHub-Permissions"] = "metadata=read"
            return (
                403,
                headers,
                {
                    "message": "Resource not accessible by personal access token",
                    "documentation_url": REPO_DOCS,
                    "status": "403",
                },
            )
        permissions = token.access.get(key)
        if repo is None or (repo.private and permissions is None):
            return (
                404,
                headers,
                {"message": "Not Found", "documentation_url": REPO_DOCS, "status": "404"},
            )
        body = self._repository(repo)
        if authorization:
            body["permissions"] = permissions if permissions is not None else READ_ONLY
        return 200, headers, body

    def _keys(
        self, token: FakeToken, method: str, parts: list[str], body: Any, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        key = f"{parts[1]}/{parts[2]}".lower()
        repo = self.repos.get(key)
        permissions = token.access.get(key)
        not_found = {"message": "Not Found", "documentation_url": KEYS_DOCS, "status": "404"}
        if repo is None or (repo.private and permissions is None):
            return 404, headers, not_found
        if token.keys_forbidden:
            headers["X-Accepted-GitHub-Permissions"] = "administration=write"
            return (
                403,
                headers,
                {
                    "message": "Resource not accessible by personal access token",
                    "documentation_url": KEYS_DOCS,
                    "status": "403",
                },
            )
        if not (permissions or {}).get("admin"):
            return 404, headers, not_found
        if method in token.key_status:
            return token.key_status[method], headers, "<html><body>Unicorn!</body></html>"
        if method == "DELETE" and len(parts) == 5:
            gone = repo.keys.pop(int(parts[4]), None) if parts[4].isdigit() else None
            return (204, headers, None) if gone else (404, headers, not_found)
        if method != "POST" or len(parts) != 4:
            return 404, headers, not_found
        public = body.get("key") if isinstance(body, dict) else None
        if not isinstance(public, str) or not public.startswith("ssh-ed25519 AAAA"):
            return (
                422,
                headers,
                _validation_failed(
                    "key is invalid. You must supply a key in OpenSSH public key format"
                ),
            )
        blob = public.split()[1]
        if any(k["key"].split()[1] == blob for r in self.repos.values() for k in r.keys.values()):
            return 422, headers, _validation_failed("key is already in use")
        key_id = self._next_key
        self._next_key += 1
        created = {
            "id": key_id,
            "key": public,
            "url": f"https://api.github.com/repos/{repo.full_name}/keys/{key_id}",
            "title": body.get("title"),
            "verified": True,
            "created_at": "2026-01-15T10:30:00Z",
            "read_only": body.get("read_only") is True,
            "added_by": "octocat",
            "last_used": None,
            "enabled": True,
        }
        repo.keys[key_id] = created
        return 201, headers, created

    @staticmethod
    def _repository(repo: FakeRepo) -> dict[str, Any]:
        web = f"https://github.com/{repo.full_name}"
        api = f"https://api.github.com/repos/{repo.full_name}"
        return {
            "id": repo.id,
            "node_id": f"R_kgDO{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "owner": {
                "login": repo.owner,
                "id": 1,
                "type": "Organization",
                "url": f"https://api.github.com/users/{repo.owner}",
                "html_url": f"https://github.com/{repo.owner}",
            },
            "html_url": web,
            "description": None,
            "fork": False,
            "url": api,
            "git_url": f"git://github.com/{repo.full_name}.git",
            "ssh_url": f"git@github.com:{repo.full_name}.git",
            "clone_url": repo.clone_url or f"{web}.git",
            "default_branch": repo.default_branch,
            "archived": False,
            "disabled": False,
            "created_at": "2026-01-15T10:30:00Z",
            "updated_at": "2026-01-15T10:30:00Z",
            "pushed_at": "2026-01-15T10:30:00Z",
        }


@pytest.fixture(scope="session")
def github_fake_server() -> Iterator[GitHubFake]:
    """The session's GitHub fake (reset it before use: see :meth:`GitHubFake.reset`)."""
    fake = GitHubFake()
    fake.start()
    yield fake
    fake.stop()


def _validation_failed(message: str) -> dict[str, Any]:
    return {
        "message": "Validation Failed",
        "errors": [{"resource": "PublicKey", "code": "custom", "field": "key", "message": message}],
        "documentation_url": KEYS_DOCS,
        "status": "422",
    }


def _handler(fake: GitHubFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            fake.requests.append((self.path, dict(self.headers.items())))
            self._reply(*fake.answer(self.path, self.headers.get("Authorization", "")))

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self._write("POST")

        def do_DELETE(self) -> None:  # noqa: N802 - http.server's naming
            self._write("DELETE")

        def _write(self, method: str) -> None:
            fake.writes.append((method, self.path, dict(self.headers.items())))
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length)) if length else None
            except ValueError:
                body = None
            authorization = self.headers.get("Authorization", "")
            self._reply(*fake.answer(self.path, authorization, method, body))

        def _reply(self, status: int, headers: dict[str, str], body: Any) -> None:
            payload = (
                b""
                if body is None
                else (body if isinstance(body, str) else json.dumps(body)).encode()
            )
            self.send_response(status)
            kind = "text/html" if isinstance(body, str) else "application/json; charset=utf-8"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

    return Handler
