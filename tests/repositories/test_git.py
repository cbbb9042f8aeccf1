"""Repository association with any git remote (``git`` provider): ``ls-remote`` through dulwich
against ``git http-backend`` over real HTTP and against ``file://`` paths, on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dulwich.client import SSHGitClient
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.outbound import Policy
from stead.repositories import git as git_provider
from stead.repositories.models import Repository
from tests.support.factories import assert_problem
from tests.support.git_server import GitServer, git
from tests.support.postgres import free_port

TOKEN = "Git-Provider-Access-Token"
URL_FIELD = "providerParameters.url"


def _body(url: str, name: str = "finance-pipelines") -> dict[str, Any]:
    return {"provider": "git", "repositoryName": name, "providerParameters": {"url": url}}


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Repository)) or 0


def _actions(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.like("repository.%"))
                .order_by(AuditEvent.id)
            )
        )


def test_http_remote(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    project_id: str,
    repo_name: str,
    session_factory: sessionmaker[Session],
) -> None:
    bare = git_server.create_repo(repo_name, head="trunk", branches=["trunk", "dev"])
    git_server.add_token(f"tok-{repo_name}", read=[repo_name])
    remote = f"{git_server.url}/{repo_name}.git"
    url = f"/v1/projects/{project_id}/repositories"
    resp = http.post(
        url, json=_body(remote, "Finance Pipelines"), headers={**admin, TOKEN: f"tok-{repo_name}"}
    )
    assert resp.status_code == 201, resp.text
    expected = {
        "provider": "git",
        "repositoryName": "Finance Pipelines",
        "providerParameters": {"url": remote},
        "defaultBranch": "trunk",
        "htmlUrl": None,
        "cloneUrl": remote,
        "deployKey": None,
        "deployKeyReason": "a plain git remote has no deploy key API",
    }
    assert resp.json() == expected
    assert git_server.usernames[-1] == "x-access-token"
    assert http.get(url, headers=admin).json() == expected

    # HEAD moves; a new token re-checks access and refreshes the default branch
    git("symbolic-ref", "HEAD", "refs/heads/dev", cwd=bare)
    git_server.add_token(f"tok2-{repo_name}", read=[repo_name])
    resp = http.post(f"{url}/token", headers={**admin, TOKEN: f"tok2-{repo_name}"})
    assert resp.status_code == 204, resp.text
    assert http.get(url, headers=admin).json()["defaultBranch"] == "dev"
    assert http.delete(url, headers=admin).status_code == 204
    assert _actions(session_factory) == [
        "repository.associated",
        "repository.token_checked",
        "repository.removed",
    ]


def test_user_name_in_url_and_empty_repository(
    http: TestClient, admin: dict[str, str], git_server: GitServer, project_id: str, repo_name: str
) -> None:
    git_server.create_repo(repo_name, head="main", branches=[])
    git_server.add_token(f"tok-{repo_name}", read=[repo_name])
    remote = f"http://x-token-auth@127.0.0.1:{git_server.url.rsplit(':', 1)[1]}/{repo_name}.git"
    resp = http.post(
        f"/v1/projects/{project_id}/repositories",
        json=_body(remote),
        headers={**admin, TOKEN: f"tok-{repo_name}"},
    )
    assert resp.status_code == 201, resp.text
    assert git_server.usernames[-1] == "x-token-auth"
    # an empty repository: protocol v2 still reports HEAD's unborn branch
    assert resp.json()["defaultBranch"] == "main"
    assert resp.json()["cloneUrl"] == remote


def test_file_remote(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    project_id: str,
    repo_name: str,
    session_factory: sessionmaker[Session],
) -> None:
    url = f"/v1/projects/{project_id}/repositories"
    missing = (git_server.root / "absent.git").as_uri()
    not_a_repo = git_server.root.as_uri()
    for remote in (missing, not_a_repo):
        assert_problem(
            http.post(url, json=_body(remote), headers={**admin, TOKEN: "unused"}), 400, URL_FIELD
        )
    assert _count(session_factory) == 0
    bare = git_server.create_repo(repo_name, head="release", branches=["release"])
    resp = http.post(url, json=_body(bare.as_uri()), headers={**admin, TOKEN: "unused"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["defaultBranch"] == "release"
    assert resp.json()["cloneUrl"] == bare.as_uri()


# (name, token set-up, status, field a violation must name)
Case = tuple[str, Callable[[GitServer, str, str], None], int, str | None]
CASES: list[Case] = [
    ("token rejected", lambda s, t, r: None, 400, TOKEN),
    ("read forbidden", lambda s, t, r: s.add_token(t, forbid=[r]), 403, TOKEN),
    ("not visible", lambda s, t, r: s.add_token(t), 400, URL_FIELD),
    ("rate limited", lambda s, t, r: s.add_token(t, answer=(429, {"Retry-After": "7"})), 503, None),
    ("unavailable", lambda s, t, r: s.add_token(t, answer=(503, {"Retry-After": "5"})), 503, None),
    ("server error", lambda s, t, r: s.add_token(t, answer=(500, {})), 502, None),
    ("not a git server", lambda s, t, r: s.add_token(t, answer=(200, {})), 502, None),
    ("timeout", lambda s, t, r: s.add_token(t, read=[r], delay=5), 504, None),
]


def _check(resp: Any, case: Case) -> None:
    name, _, status, field = case
    body = assert_problem(resp, status, field)
    if name == "read forbidden":
        assert "read" in body["violations"][0]
    if status == 503:
        assert resp.headers["retry-after"] == {"rate limited": "7", "unavailable": "5"}[name]
    assert "forced answer" not in resp.text and "Permission denied" not in resp.text


def test_distinct_answers(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    project_id: str,
    repo_name: str,
    session_factory: sessionmaker[Session],
) -> None:
    git_server.create_repo(repo_name)
    remote = f"{git_server.url}/{repo_name}.git"
    url = f"/v1/projects/{project_id}/repositories"
    for case in CASES:
        token = f"{case[0].replace(' ', '-')}-{repo_name}"
        case[1](git_server, token, repo_name)
        _check(http.post(url, json=_body(remote), headers={**admin, TOKEN: token}), case)
    assert _count(session_factory) == 0 and _actions(session_factory) == []

    git_server.add_token(f"ok-{repo_name}", read=[repo_name])
    assert (
        http.post(url, json=_body(remote), headers={**admin, TOKEN: f"ok-{repo_name}"}).status_code
        == 201
    )
    before = http.get(url, headers=admin).json()
    for case in CASES:
        token = f"again-{case[0].replace(' ', '-')}-{repo_name}"
        case[1](git_server, token, repo_name)
        _check(http.post(f"{url}/token", headers={**admin, TOKEN: token}), case)
    assert http.get(url, headers=admin).json() == before
    assert _actions(session_factory) == ["repository.associated"]


def test_unreachable_remotes(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    app: Any = http.app
    app.state.settings = app.state.settings.model_copy(
        update={"outbound_git_allow_ssh": True, "outbound_git_hosts": "127.0.0.1,*.invalid"}
    )
    refused = "no connection could be made to the host"
    for remote in (
        f"http://127.0.0.1:{free_port()}/x.git",
        f"ssh://git@127.0.0.1:{free_port()}/x.git",
    ):
        resp = http.post(
            f"/v1/projects/{project_id}/repositories",
            json=_body(remote),
            headers={**admin, TOKEN: "tok"},
        )
        assert assert_problem(resp, 502)["detail"].endswith(f": {refused}"), remote
    # .invalid never resolves (RFC 6761): the outbound policy says so before any connection.
    for remote in (
        "https://git.no-such-host.invalid/x.git",
        "ssh://git@git.no-such-host.invalid/x.git",
        # git's scp-like SSH form, as providers show it: checked as ssh:// to its host
        "git@git.no-such-host.invalid:org/x.git",
    ):
        resp = http.post(
            f"/v1/projects/{project_id}/repositories",
            json=_body(remote),
            headers={**admin, TOKEN: "tok"},
        )
        body = assert_problem(resp, 400, "providerParameters.url")
        assert "cannot be resolved" in body["detail"], remote
    assert _count(session_factory) == 0


def test_an_scp_like_remote_is_spoken_as_git_speaks_it() -> None:
    """``git@host:org/repo.git`` is SSH to ``host`` as ``git``, the path sent as written
    (relative to the SSH user's home), as git-clone(1) describes it; an absolute path stays
    absolute. The URL is stored as given."""
    for url, user, path in (
        ("git@github.com:acme/pipelines.git", "git", b"acme/pipelines.git"),
        ("gitlab.example.com:/srv/git/x.git", None, b"/srv/git/x.git"),
    ):
        assert git_provider.check_url(url) == url
        client, sent = git_provider.connect(
            url,
            SecretStr("unused"),
            username=git_provider.USERNAME,
            timeout=1,
            # a stub resolver answering a public address: no lookup leaves, and connect()
            policy=Policy(
                hosts={"git": ("*",)},
                git_schemes=frozenset({"ssh"}),
                resolver=lambda host, port: ["140.82.112.3"],  # only builds the client
            ),
        )
        assert isinstance(client, SSHGitClient)
        host = url.split(":")[0].split("@")[-1]
        assert (client.host, client.username, sent) == (host, user, path)
