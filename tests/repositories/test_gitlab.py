"""Repository association through GitLab against the GitLab fake over real
HTTP, on SQLite and PostgreSQL: success, every distinct answer, deploy keys, and a canary token
that never leaks."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dulwich import porcelain
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.errors import Forbidden, UpstreamError
from stead.repositories import gitlab as provider
from stead.settings import Settings
from tests.support.git_server import GitServer
from tests.support.gitlab_fake import (  # noqa: F401 - fixture
    DEVELOPER,
    GUEST,
    MAINTAINER,
    REPORTER,
    GitLabFake,
    gitlab_fake_server,
)
from tests.support.postgres import free_port
from tests.support.provider_checks import (
    TOKEN,
    assert_never_leaked,
    audit_actions,
    check_answer,
    count,
)

PROJECT = "acme-data/analytics/finance-pipelines"
ENCODED = "acme-data%2Fanalytics%2Ffinance-pipelines"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0123456789abcdefABCDEF"


@pytest.fixture
def gitlab(gitlab_fake_server: GitLabFake) -> GitLabFake:  # noqa: F811 - fixture use
    """The GitLab fake, emptied for this test."""
    gitlab_fake_server.reset()
    return gitlab_fake_server


@pytest.fixture
def settings(settings: Settings, gitlab: GitLabFake) -> Settings:
    """The repository tests' settings with GitLab's API at the fake."""
    return settings.model_copy(update={"gitlab_api_url": gitlab.api_url})


def _body(
    name: str = "finance-pipelines", namespace: str = "acme-data/analytics"
) -> dict[str, Any]:
    return {
        "provider": "gitlab",
        "repositoryName": name,
        "providerParameters": {"namespace": namespace},
    }


def test_associate_read_recheck_and_remove(
    http: TestClient,
    admin: dict[str, str],
    gitlab: GitLabFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    gitlab.add_project(PROJECT, default_branch="trunk")
    gitlab.add_token("glpat-good", access={PROJECT: DEVELOPER})
    url = f"/v1/projects/{project_id}/repositories"
    resp = http.post(url, json=_body(), headers={**admin, TOKEN: "glpat-good"})
    assert resp.status_code == 201, resp.text
    web = f"https://gitlab.example.com/{PROJECT}"
    expected = {
        "provider": "gitlab",
        "repositoryName": "finance-pipelines",
        "providerParameters": {"namespace": "acme-data/analytics"},
        "defaultBranch": "trunk",
        "htmlUrl": web,
        "cloneUrl": f"{web}.git",
    }
    assert {k: resp.json()[k] for k in expected} == expected
    request = gitlab.requests[0]
    assert (request.method, request.path) == ("GET", f"/api/v4/projects/{ENCODED}")
    assert request.headers["Authorization"] == "Bearer glpat-good"
    got = http.get(url, headers=admin).json()
    assert {k: got[k] for k in expected} == expected

    # a new token; GitLab now reports another default branch
    gitlab.projects[PROJECT.lower()].default_branch = "release"
    gitlab.add_token("glpat-second", access={PROJECT: REPORTER})
    assert http.post(f"{url}/token", headers={**admin, TOKEN: "glpat-second"}).status_code == 204
    assert http.get(url, headers=admin).json()["defaultBranch"] == "release"
    assert gitlab.requests[-1].headers["Authorization"] == "Bearer glpat-second"

    assert http.delete(url, headers=admin).status_code == 204
    assert count(session_factory) == 0
    actions = audit_actions(session_factory)
    assert actions[0] == "repository.associated" and actions[-1] == "repository.removed"


def test_public_project_group_membership_and_empty_repository(
    http: TestClient, admin: dict[str, str], gitlab: GitLabFake, project_id: str
) -> None:
    gitlab.add_project("acme-data/Public-Repo", visibility="public", default_branch=None)
    gitlab.add_token("glpat-any", scopes=["read_api"])
    resp = http.post(
        f"/v1/projects/{project_id}/repositories",
        json={**_body("public-repo", "ACME-DATA"), "provider": "GitLab"},
        headers={**admin, TOKEN: "glpat-any"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["provider"] == "gitlab"
    assert resp.json()["defaultBranch"] is None  # an empty repository has no default branch

    # a Guest of a private project through its group may not read the code: 403
    gitlab.add_project(PROJECT)
    gitlab.add_token("glpat-guest", access={PROJECT: GUEST}, via_group=True)
    other = http.post(
        "/v1/projects",
        json={"name": "p2", "warehouse": "SNOWFLAKE", "agentDeploymentType": "HYBRID"},
        headers=admin,
    ).json()["projectId"]
    resp = http.post(
        f"/v1/projects/{other}/repositories",
        json=_body(),
        headers={**admin, TOKEN: "glpat-guest"},
    )
    body = check_answer(resp, 403, TOKEN, "access_level")
    assert "Reporter role" in body["violations"][0]


# (name, token set-up, status, field a violation must name, GitLab text that must not leak)
Case = tuple[str, Callable[[GitLabFake, str], None], int, str | None, str]
CASES: list[Case] = [
    ("token rejected", lambda g, t: None, 400, TOKEN, "401 Unauthorized"),
    ("token expired", lambda g, t: g.add_token(t, expired=True), 400, TOKEN, "Token has expired"),
    ("private, invisible", lambda g, t: g.add_token(t), 400, "repositoryName", "Not Found"),
    (
        "no such project",
        lambda g, t: g.add_token(t, access={"acme-data/analytics/missing": MAINTAINER}),
        400,
        "repositoryName",
        "Not Found",
    ),
    (
        "guest",
        lambda g, t: g.add_token(t, access={PROJECT: GUEST}),
        403,
        TOKEN,
        "access_level",
    ),
    (
        "scope missing",
        lambda g, t: g.add_token(t, access={PROJECT: MAINTAINER}, scopes=["read_repository"]),
        403,
        TOKEN,
        "higher privileges",
    ),
    ("rate limited", lambda g, t: g.add_token(t, rate_limit=True), 503, None, "Retry later"),
    ("bad gateway", lambda g, t: g.add_token(t, status=502), 502, None, "Bad Gateway"),
    ("server error", lambda g, t: g.add_token(t, status=500), 502, None, "Bad Gateway"),
    ("timeout", lambda g, t: g.add_token(t, access={PROJECT: MAINTAINER}, delay=5), 504, None, ""),
]


def _check(resp: Any, case: Case) -> None:
    name, _, status, field, leak = case
    body = check_answer(resp, status, field, leak, retry_after=[30])
    if name == "guest":
        assert "Reporter role" in body["violations"][0]
    if name == "scope missing":
        assert "read_api scope" in body["violations"][0]


@pytest.mark.parametrize("operation", ["associate", "token"])
def test_distinct_answers(
    http: TestClient,
    admin: dict[str, str],
    gitlab: GitLabFake,
    project_id: str,
    session_factory: sessionmaker[Session],
    operation: str,
) -> None:
    gitlab.add_project(PROJECT)
    url = f"/v1/projects/{project_id}/repositories"
    if operation == "token":
        gitlab.add_token("glpat-first", access={PROJECT: MAINTAINER})
        assert http.post(url, json=_body(), headers={**admin, TOKEN: "glpat-first"}).status_code
    before = http.get(url, headers=admin).json() if operation == "token" else None
    for case in CASES:
        token = "glpat-" + case[0].replace(" ", "-").replace(",", "")
        case[1](gitlab, token)
        if operation == "associate":
            resp = http.post(url, json=_body(), headers={**admin, TOKEN: token})
        else:
            resp = http.post(f"{url}/token", headers={**admin, TOKEN: token})
        _check(resp, case)
    if operation == "associate":
        assert count(session_factory) == 0 and audit_actions(session_factory) == []
    else:
        assert http.get(url, headers=admin).json() == before
        assert audit_actions(session_factory) == ["repository.associated"]


def test_unreachable_and_invalid_parameters(
    settings: Settings,
    admin: dict[str, str],
    gitlab: GitLabFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    url = f"/v1/projects/{project_id}/repositories"
    down = settings.model_copy(update={"gitlab_api_url": f"http://127.0.0.1:{free_port()}/api/v4"})
    with TestClient(create_app(down)) as client:
        resp = client.post(url, json=_body(), headers={**admin, TOKEN: "glpat-x"})
        check_answer(resp, 502, None, "")
        invalid = [
            (_body(namespace=""), "providerParameters.namespace"),
            (_body(namespace="acme//x"), "providerParameters.namespace"),
            (_body(namespace="-acme"), "providerParameters.namespace"),
            (_body("repo.git"), "repositoryName"),
            (_body("group/repo"), "repositoryName"),
            ({**_body(), "providerParameters": {}}, "providerParameters.namespace"),
            (
                {**_body(), "providerParameters": {"namespace": "a", "ownerName": "a"}},
                "providerParameters.ownerName",
            ),
        ]
        for body, field in invalid:
            check_answer(client.post(url, json=body, headers={**admin, TOKEN: "t"}), 400, field, "")
    assert gitlab.requests == []
    assert count(session_factory) == 0


def test_deploy_keys(gitlab: GitLabFake, settings: Settings) -> None:
    project = gitlab.add_project(PROJECT)
    gitlab.add_token("glpat-maintainer", access={PROJECT: MAINTAINER})
    gitlab.add_token("glpat-developer", access={PROJECT: DEVELOPER})
    gitlab.add_token("glpat-read-api", access={PROJECT: MAINTAINER}, scopes=["read_api"])
    params = {"namespace": "acme-data/analytics"}

    def info(token: str) -> str | None:
        return provider.check(
            SecretStr(token), params, repository_name="finance-pipelines", settings=settings
        ).no_deploy_key_reason

    assert info("glpat-maintainer") is None
    assert info("glpat-developer") == (
        f"the access token lacks the Maintainer role on {PROJECT} at GitLab"
    )

    def add(token: str) -> Any:
        return provider.add_deploy_key(
            SecretStr(token),
            params,
            repository_name="finance-pipelines",
            title="stead:finance",
            public_key_openssh=KEY,
            read_only=False,
            settings=settings,
        )

    key = add("glpat-maintainer")
    assert key.read_only is False
    assert project.deploy_keys[int(key.id)]["key"] == KEY
    assert project.deploy_keys[int(key.id)]["title"] == "stead:finance"
    posted = gitlab.requests[-1]
    assert posted.path == f"/api/v4/projects/{ENCODED}/deploy_keys"
    assert posted.json() == {"title": "stead:finance", "key": KEY, "can_push": True}
    for token, lacking in [("glpat-developer", "Maintainer role"), ("glpat-read-api", "api scope")]:
        with pytest.raises(Forbidden) as forbidden:
            add(token)
        assert lacking in forbidden.value.violations[0]
    with pytest.raises(UpstreamError) as taken:  # the same key twice: GitLab's 400
        add("glpat-maintainer")
    assert "has already been taken" not in str(taken.value)

    def remove(token: str, key_id: str) -> None:
        provider.remove_deploy_key(
            SecretStr(token),
            params,
            repository_name="finance-pipelines",
            key_id=key_id,
            settings=settings,
        )

    with pytest.raises(Forbidden):
        remove("glpat-developer", key.id)
    remove("glpat-maintainer", key.id)
    assert project.deploy_keys == {}
    assert gitlab.requests[-1].method == "DELETE"
    assert gitlab.requests[-1].path == f"/api/v4/projects/{ENCODED}/deploy_keys/{key.id}"
    remove("glpat-maintainer", key.id)  # already gone: counts as removed


CANARY = "glpat-CANARY7f3e9a1c5b2d8e4fLEAK"


def test_canary_token_never_leaks(
    http: TestClient,
    admin: dict[str, str],
    gitlab: GitLabFake,
    project_id: str,
    logs: pytest.LogCaptureFixture,
    session_factory: sessionmaker[Session],
) -> None:
    gitlab.add_project(PROJECT)
    url = f"/v1/projects/{project_id}/repositories"
    headers = {**admin, TOKEN: CANARY}
    responses = [http.post(url, json=_body(), headers=headers)]
    steps: list[tuple[dict[str, Any], int]] = [
        ({"expired": True}, 400),
        ({}, 400),
        ({"access": {PROJECT: GUEST}}, 403),
        ({"access": {PROJECT: MAINTAINER}, "scopes": ["read_repository"]}, 403),
        ({"rate_limit": True}, 503),
        ({"status": 500}, 502),
        ({"access": {PROJECT: MAINTAINER}, "delay": 5}, 504),
        ({"access": {PROJECT: MAINTAINER}}, 201),
    ]
    for setup, status in steps:
        gitlab.add_token(CANARY, **setup)
        resp = http.post(url, json=_body(), headers=headers)
        assert resp.status_code == status, resp.text
        responses.append(resp)
    responses.append(http.post(f"{url}/token", headers=headers))
    responses.append(http.get(url, headers=admin))
    assert responses[-2].status_code == 204
    assert gitlab.requests[-1].headers["Authorization"] == f"Bearer {CANARY}"
    encoded = base64.b64encode(CANARY.encode()).decode()
    assert_never_leaked([CANARY, encoded], responses, logs, session_factory)


def test_deploy_key_through_the_api(
    http: TestClient,
    admin: dict[str, str],
    gitlab: GitLabFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    project = gitlab.add_project(PROJECT)
    gitlab.add_token("glpat-maintainer", access={PROJECT: MAINTAINER})
    url = f"/v1/projects/{project_id}/repositories"
    resp = http.post(url, json=_body(), headers={**admin, TOKEN: "glpat-maintainer"})
    assert resp.status_code == 201, resp.text
    key = resp.json()["deployKey"]
    (registered,) = project.deploy_keys.values()
    assert key["id"] == str(registered["id"]) and key["readOnly"] is True
    assert registered["can_push"] is False and registered["key"].startswith("ssh-ed25519 ")
    assert resp.json()["deployKeyReason"] is None

    # a new Maintainer token rotates the key: the new one registered, the old one deleted
    gitlab.add_token("glpat-rotate", access={PROJECT: MAINTAINER})
    assert http.post(f"{url}/token", headers={**admin, TOKEN: "glpat-rotate"}).status_code == 204
    (rotated,) = project.deploy_keys.values()
    assert rotated["id"] != registered["id"]
    assert http.get(url, headers=admin).json()["deployKey"]["id"] == str(rotated["id"])
    deleted = [r for r in gitlab.requests if r.method == "DELETE"]
    assert [r.path for r in deleted] == [
        f"/api/v4/projects/{ENCODED}/deploy_keys/{registered['id']}"
    ]

    # a Developer's token cannot remove it: 403, nothing removed
    gitlab.add_token("glpat-developer", access={PROJECT: DEVELOPER})
    resp = http.delete(url, headers={**admin, TOKEN: "glpat-developer"})
    check_answer(resp, 403, TOKEN, "403 Forbidden")
    assert count(session_factory) == 1 and len(project.deploy_keys) == 1

    assert http.delete(url, headers={**admin, TOKEN: "glpat-rotate"}).status_code == 204
    assert project.deploy_keys == {} and count(session_factory) == 0


def test_no_deploy_key_below_maintainer_or_without_the_api_scope(
    http: TestClient, admin: dict[str, str], gitlab: GitLabFake, project_id: str
) -> None:
    project = gitlab.add_project(PROJECT)
    gitlab.add_token("glpat-developer", access={PROJECT: DEVELOPER})
    gitlab.add_token("glpat-read-api", access={PROJECT: MAINTAINER}, scopes=["read_api"])
    url = f"/v1/projects/{project_id}/repositories"
    for token, reason in [("glpat-developer", "Maintainer role"), ("glpat-read-api", "api scope")]:
        resp = http.post(url, json=_body(), headers={**admin, TOKEN: token})
        assert resp.status_code == 201, resp.text
        assert resp.json()["deployKey"] is None
        assert reason in resp.json()["deployKeyReason"], resp.json()
        assert http.delete(url, headers=admin).status_code == 204
    assert project.deploy_keys == {}


def test_initialize_pushes_as_oauth2(
    http: TestClient,
    admin: dict[str, str],
    gitlab: GitLabFake,
    git_server: GitServer,
    project_id: str,
    repo_name: str,
    tmp_path: Path,
) -> None:
    git_server.create_repo(repo_name, branches=[])
    git_server.add_token("glpat-init", read=[repo_name])
    full = f"acme-data/{repo_name}"
    gitlab.add_project(full, default_branch=None, clone_url=f"{git_server.url}/{repo_name}.git")
    gitlab.add_token("glpat-init", access={full: MAINTAINER})
    resp = http.post(
        f"/v1/projects/{project_id}/repositories?initialize=true",
        json=_body(repo_name, "acme-data"),
        headers={**admin, TOKEN: "glpat-init"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["defaultBranch"] == "main"
    assert git_server.usernames[-1] == "oauth2"
    clone = porcelain.clone(
        f"{git_server.url}/{repo_name}.git",
        str(tmp_path / "clone"),
        username="reader",
        password="glpat-init",
        errstream=porcelain.NoneStream(),
    )
    assert porcelain.active_branch(clone) == b"main"
    tree = clone[clone[clone.head()].tree]  # type: ignore[attr-defined]
    assert {b"README.md", b"stead.yaml"} <= {entry.path for entry in tree.iteritems()}
