"""Input rules and permissions of the repository routes: every bad
input is a 400 naming the field, nothing is written and the provider is not asked."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.repositories.models import Repository
from tests.support.factories import assert_problem, auth, member_auth
from tests.support.github_fake import ALL, GitHubFake

TOKEN = "Git-Provider-Access-Token"
GITHUB = {
    "provider": "github",
    "repositoryName": "finance-pipelines",
    "providerParameters": {"ownerName": "acme-data"},
}
GIT = {
    "provider": "git",
    "repositoryName": "finance-pipelines",
    "providerParameters": {"url": "https://git.example.com/acme/finance-pipelines.git"},
}


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Repository)) or 0


def _with(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**body, **changes}


def test_body_rules(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in GITHUB.items() if k != "provider"}, "provider"),
        (_with(GITHUB, provider="bitbucket"), "provider"),
        (_with(GITHUB, provider=1), "provider"),
        ({k: v for k, v in GITHUB.items() if k != "repositoryName"}, "repositoryName"),
        (_with(GITHUB, repositoryName=""), "repositoryName"),
        (_with(GIT, repositoryName="x" * 256), "repositoryName"),
        (_with(GIT, repositoryName="nul\x00here"), "repositoryName"),
        ({k: v for k, v in GITHUB.items() if k != "providerParameters"}, "providerParameters"),
        (_with(GITHUB, providerParameters="acme-data"), "providerParameters"),
        (_with(GITHUB, branch="main"), "branch"),
        # GitHub
        (_with(GITHUB, providerParameters={}), "providerParameters.ownerName"),
        (_with(GITHUB, providerParameters={"ownerName": ""}), "providerParameters.ownerName"),
        (
            _with(GITHUB, providerParameters={"ownerName": "acme/data"}),
            "providerParameters.ownerName",
        ),
        (_with(GITHUB, providerParameters={"ownerName": ".."}), "providerParameters.ownerName"),
        (_with(GITHUB, providerParameters={"ownerName": 7}), "providerParameters.ownerName"),
        (
            _with(GITHUB, providerParameters={"ownerName": "acme", "ownr": "x"}),
            "providerParameters.ownr",
        ),
        (
            _with(GITHUB, providerParameters={"url": "https://github.com/a/b.git"}),
            "providerParameters.url",
        ),
        (_with(GITHUB, repositoryName="../../user"), "repositoryName"),
        (_with(GITHUB, repositoryName="finance pipelines"), "repositoryName"),
        # git
        (_with(GIT, providerParameters={}), "providerParameters.url"),
        (_with(GIT, providerParameters={"url": ""}), "providerParameters.url"),
        (
            _with(GIT, providerParameters={"url": "git@github.com:acme/x.git"}),
            "providerParameters.url",
        ),
        (
            _with(GIT, providerParameters={"url": "git://git.example.com/x.git"}),
            "providerParameters.url",
        ),
        (
            _with(GIT, providerParameters={"url": "ftp://git.example.com/x.git"}),
            "providerParameters.url",
        ),
        (_with(GIT, providerParameters={"url": "https:///x.git"}), "providerParameters.url"),
        (
            _with(GIT, providerParameters={"url": "https://git.example.com:99999/x.git"}),
            "providerParameters.url",
        ),
        (
            _with(GIT, providerParameters={"url": "https://git.example.com/x.git?private_token=1"}),
            "providerParameters.url",
        ),
        (
            _with(GIT, providerParameters={"url": "https://git.example.com/x.git\n"}),
            "providerParameters.url",
        ),
        (
            _with(GIT, providerParameters={"url": "file://server/share/x.git"}),
            "providerParameters.url",
        ),
        (
            _with(GIT, providerParameters={"url": "ssh://-oProxyCommand=touch%20x/x.git"}),
            "providerParameters.url",
        ),
        (
            _with(GIT, providerParameters={"url": "ssh://-oProxyCommand=x@host/x.git"}),
            "providerParameters.url",
        ),
        (
            _with(GIT, providerParameters={"url": "https://x.example/" + "a" * 2048}),
            "providerParameters.url",
        ),
        (
            _with(GIT, providerParameters={"url": "https://x.example/a.git", "ownerName": "a"}),
            "providerParameters.ownerName",
        ),
    ]
    for body, field in cases:
        resp = http.post(
            f"/v1/projects/{project_id}/repositories",
            json=body,
            headers={**admin, TOKEN: "ghp_token"},
        )
        assert_problem(resp, 400, field)
    assert _count(session_factory) == 0
    assert github.requests == []


def test_password_in_url_is_refused_and_not_echoed(
    http: TestClient, admin: dict[str, str], project_id: str, session_factory: sessionmaker[Session]
) -> None:
    body = _with(
        GIT,
        providerParameters={"url": "https://me:hunter2-url-password@git.example.com/acme/x.git"},
    )
    resp = http.post(
        f"/v1/projects/{project_id}/repositories", json=body, headers={**admin, TOKEN: "tok"}
    )
    problem = assert_problem(resp, 400, "providerParameters.url")
    assert "password" in problem["violations"][0]
    assert "hunter2" not in resp.text
    assert _count(session_factory) == 0


def test_token_header_rules(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    url = f"/v1/projects/{project_id}/repositories"
    bad_headers: list[dict[str, Any]] = [
        {},
        {TOKEN: ""},
        {TOKEN: "   "},
        {TOKEN: "ghp_x" * 1000},
        {TOKEN: "ghp_é".encode("latin-1")},
        {TOKEN: "ghp a b"},
    ]
    for headers in bad_headers:
        body = assert_problem(http.post(url, json=GITHUB, headers={**admin, **headers}), 400, TOKEN)
        assert TOKEN in body["detail"]
        assert_problem(http.post(f"{url}/token", headers={**admin, **headers}), 400, TOKEN)
    assert _count(session_factory) == 0
    assert github.requests == []


def test_paths_and_permissions(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo("acme-data/finance-pipelines")
    github.add_token("ghp_ok", access={"acme-data/finance-pipelines": ALL})
    url = f"/v1/projects/{project_id}/repositories"
    token = {TOKEN: "ghp_ok"}
    unknown = "/v1/projects/6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f/repositories"
    assert_problem(http.post(unknown, json=GITHUB, headers={**admin, **token}), 404)
    assert_problem(
        http.get("/v1/projects/not-a-uuid/repositories", headers=admin), 400, "projectId"
    )
    assert_problem(http.post(url, json=GITHUB, headers=token), 401)
    assert_problem(http.post(f"{url}/token", headers={**admin, **token}), 404)
    assert_problem(http.delete(url, headers=admin), 404)

    viewer = member_auth(http, session_factory, project_id, "VIEWER")
    outsider = auth(http, session_factory, "MEMBER")
    for headers, status in ((viewer, 403), (outsider, 404)):
        assert_problem(http.post(url, json=GITHUB, headers={**headers, **token}), status)
    assert github.requests == []
    contributor = member_auth(http, session_factory, project_id, "CONTRIBUTOR")
    assert http.post(url, json=GITHUB, headers={**contributor, **token}).status_code == 201

    assert http.get(url, headers=viewer).status_code == 200
    assert_problem(http.get(url, headers=outsider), 404)
    for headers, status in ((viewer, 403), (outsider, 404)):
        assert_problem(http.post(f"{url}/token", headers={**headers, **token}), status)
        assert_problem(http.delete(url, headers=headers), status)
    assert _count(session_factory) == 1
    assert http.delete(url, headers=contributor).status_code == 204
