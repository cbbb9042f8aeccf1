"""A real git HTTP server for tests: ``git http-backend`` behind a small WSGI app with Basic auth.

The password of HTTP Basic is the access token (the user name is recorded but not checked, as
GitHub and GitLab do for personal access tokens). Each token is granted read access to named
repositories; other answers are set up per token so tests can reach every branch of a client:
``403`` for a repository the token may not read, a forced status with headers (rate limit,
server error), or a delay (timeout). Repositories are bare, created with the ``git`` command line,
with ``http.receivepack`` on so pushes work too (git-http-backend(1)).
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(*args: str, cwd: Path | None = None) -> str:
    """Run the ``git`` command line with a fixed identity; return its stdout."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout


@dataclass
class TokenRule:
    """What the server answers to one token."""

    readable: set[str] = field(default_factory=set)
    forbidden: set[str] = field(default_factory=set)
    read_only: set[str] = field(default_factory=set)
    answer: tuple[int, dict[str, str]] | None = None
    delay: float = 0.0


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class GitServer:
    """Bare repositories under ``root`` served over smart HTTP at ``url`` (``http://127.0.0.1:PORT``).

    ``url + "/<name>.git"`` is a repository created with :meth:`create_repo`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tokens: dict[str, TokenRule] = {}
        self.usernames: list[str] = []
        self._server = make_server(
            "127.0.0.1",
            0,
            self._app,
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        """Forget every token and recorded user name (repositories stay)."""
        self.tokens.clear()
        self.usernames.clear()

    def create_repo(
        self, name: str, *, head: str = "main", branches: Iterable[str] = ("main",)
    ) -> Path:
        """A bare repository ``<name>.git`` with one commit on each of ``branches`` and HEAD on
        ``refs/heads/<head>`` (no branches: an empty repository). Returns its path."""
        bare = self.root / f"{name}.git"
        git("init", "--bare", "--quiet", str(bare))
        git("config", "http.receivepack", "true", cwd=bare)
        branches = list(branches)
        if branches:
            work = self.root / f"{name}.work"
            git("init", "--quiet", str(work))
            git("commit", "--quiet", "--allow-empty", "-m", "Initial commit", cwd=work)
            for branch in branches:
                git("push", "--quiet", str(bare), f"HEAD:refs/heads/{branch}", cwd=work)
        git("symbolic-ref", "HEAD", f"refs/heads/{head}", cwd=bare)
        return bare

    def add_token(
        self,
        token: str,
        *,
        read: Iterable[str] = (),
        forbid: Iterable[str] = (),
        answer: tuple[int, dict[str, str]] | None = None,
        delay: float = 0.0,
        read_only: Iterable[str] = (),
    ) -> None:
        """Accept ``token``: it may read and push to the repositories ``read`` (names without
        ``.git``), only read ``read_only`` (a push gets 403), gets 403 for ``forbid``, and 404
        for any other. ``answer`` forces ``(status, headers)`` for every request; ``delay``
        (seconds) is waited before answering."""
        pull_only = set(read_only)
        self.tokens[token] = TokenRule(
            readable=set(read) | pull_only,
            forbidden=set(forbid),
            read_only=pull_only,
            answer=answer,
            delay=delay,
        )

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        path = environ.get("PATH_INFO", "")
        repo = path.lstrip("/").split(".git", 1)[0]
        rule, username = self._authenticate(environ.get("HTTP_AUTHORIZATION", ""))
        if rule is None:
            start_response(
                "401 Unauthorized",
                [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Type", "text/plain")],
            )
            return iter([b"Authentication required\n"])
        self.usernames.append(username)
        time.sleep(rule.delay)
        if rule.answer is not None:
            status, headers = rule.answer
            start_response(f"{status} Forced", [*headers.items(), ("Content-Type", "text/plain")])
            return iter([b"forced answer\n"])
        pushing = "git-receive-pack" in path + environ.get("QUERY_STRING", "")
        if repo in rule.forbidden or (pushing and repo in rule.read_only):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return iter([b"Permission denied\n"])
        if repo not in rule.readable:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return iter([b"Repository not found\n"])
        return self._backend(environ, start_response, username)

    def _authenticate(self, header: str) -> tuple[TokenRule | None, str]:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None, ""
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return None, ""
        return self.tokens.get(password), username

    def _backend(
        self, environ: dict[str, Any], start_response: Any, username: str
    ) -> Iterator[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "PATH_INFO": environ.get("PATH_INFO", ""),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": username,
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""),
            "HOME": "/nonexistent",
        }
        proc = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        status = "200 OK"
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                headers.append((name, value.strip()))
        start_response(status, headers)
        return iter([payload])


@pytest.fixture(scope="session")
def git_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """The session's git HTTP server (reset it before use: see :meth:`GitServer.reset`)."""
    server = GitServer(tmp_path_factory.mktemp("git-server"))
    server.start()
    yield server
    server.stop()
