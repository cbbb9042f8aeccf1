"""Repository association through GitHub Enterprise Server: the
``github-enterprise`` provider next to ``github`` on one Stead, against the GitHub fake serving
the Enterprise Server API under ``/api/v3``, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.settings import Settings
from tests.support.github_fake import ALL, NONE, GitHubFake
from tests.support.postgres import free_port
from tests.support.provider_checks import (
    TOKEN,
    assert_never_leaked,
    audit_actions,
    check_answer,
    count,
)

REPO = "acme-data/finance-pipelines"


@pytest.fixture
def settings(settings: Settings, github: GitHubFake) -> Settings:
    """github.com at the fake's root, the Enterprise Server at its ``/api/v3``."""
    return settings.model_copy(update={"github_enterprise_api_url": f"{github.url}/api/v3/"})


def _body(provider: str = "github-enterprise") -> dict[str, Any]:
    return {
        "provider": provider,
        "repositoryName": "finance-pipelines",
        "providerParameters": {"ownerName": "acme-data"},
    }


def _project(http: TestClient, admin: dict[str, str], name: str) -> str:
    resp = http.post(
        "/v1/projects",
        json={"name": name, "warehouse": "SNOWFLAKE", "agentDeploymentType": "HYBRID"},
        headers=admin,
    )
    assert resp.status_code == 201, resp.text
    return f"/v1/projects/{resp.json()['projectId']}/repositories"


def test_enterprise_server_next_to_github(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO, default_branch="trunk")
    github.add_token("ghp_good", access={REPO: ALL})
    ghes = _project(http, admin, "on-ghes")
    resp = http.post(
        ghes,
        json={**_body(), "provider": "GitHub-Enterprise"},
        headers={
            **admin,
            TOKEN: "ghp_good",
        },
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["provider"] == "github-enterprise"
    assert body["defaultBranch"] == "trunk"
    assert body["htmlUrl"] == f"https://github.com/{REPO}"  # as the server reports it
    path, headers = github.requests[-1]
    assert path == f"/api/v3/repos/{REPO}"
    assert headers["Authorization"] == "Bearer ghp_good"

    dotcom = _project(http, admin, "on-github")
    assert (
        http.post(dotcom, json=_body("github"), headers={**admin, TOKEN: "ghp_good"}).status_code
        == 201
    )
    assert github.requests[-1][0] == f"/repos/{REPO}"

    github.add_token("ghp_second", access={REPO: ALL})
    assert http.post(f"{ghes}/token", headers={**admin, TOKEN: "ghp_second"}).status_code == 204
    assert github.requests[-1][0] == f"/api/v3/repos/{REPO}"
    assert http.get(ghes, headers=admin).json()["provider"] == "github-enterprise"
    assert count(session_factory) == 2


def test_deploy_key_at_the_enterprise_server(
    http: TestClient, admin: dict[str, str], github: GitHubFake, project_id: str
) -> None:
    github.add_repo(REPO)
    github.add_token("ghp_admin", access={REPO: ALL})
    url = f"/v1/projects/{project_id}/repositories"
    resp = http.post(url, json=_body(), headers={**admin, TOKEN: "ghp_admin"})
    assert resp.status_code == 201, resp.text
    (registered,) = github.keys(REPO)
    assert resp.json()["deployKey"]["id"] == str(registered["id"])
    assert github.writes[-1][:2] == ("POST", f"/api/v3/repos/{REPO}/keys")
    assert http.delete(url, headers={**admin, TOKEN: "ghp_admin"}).status_code == 204
    assert github.writes[-1][:2] == ("DELETE", f"/api/v3/repos/{REPO}/keys/{registered['id']}")
    assert github.keys(REPO) == []


def test_not_configured(
    settings: Settings, admin: dict[str, str], github: GitHubFake, project_id: str
) -> None:
    bare = settings.model_copy(update={"github_enterprise_api_url": ""})
    url = f"/v1/projects/{project_id}/repositories"
    with TestClient(create_app(bare)) as client:
        resp = client.post(url, json=_body(), headers={**admin, TOKEN: "ghp_x"})
        check_answer(resp, 400, "provider", "")
        assert client.get(url, headers=admin).status_code == 404
    assert github.requests == []


@pytest.mark.parametrize("operation", ["associate", "token"])
def test_distinct_answers(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
    operation: str,
) -> None:
    github.add_repo(REPO)
    url = f"/v1/projects/{project_id}/repositories"
    if operation == "token":
        github.add_token("ghp_first", access={REPO: ALL})
        assert (
            http.post(url, json=_body(), headers={**admin, TOKEN: "ghp_first"}).status_code == 201
        )
    cases: list[tuple[str, dict[str, Any] | None, int, str | None, str]] = [
        ("rejected", None, 400, TOKEN, "Bad credentials"),
        ("invisible", {}, 400, "repositoryName", "Not Found"),
        ("no pull", {"access": {REPO: NONE}}, 403, TOKEN, '"pull": false'),
        ("fine-grained", {"forbidden": [REPO]}, 403, TOKEN, "Resource not accessible"),
        ("rate limited", {"rate_limit": "secondary"}, 503, None, "secondary rate limit"),
        ("server error", {"status": 500}, 502, None, "Unicorn"),
        ("timeout", {"access": {REPO: ALL}, "delay": 5}, 504, None, ""),
    ]
    for name, setup, status, field, leak in cases:
        token = f"ghp_{name.replace(' ', '_')}"
        if setup is not None:
            github.add_token(token, **setup)
        if operation == "associate":
            resp = http.post(url, json=_body(), headers={**admin, TOKEN: token})
        else:
            resp = http.post(f"{url}/token", headers={**admin, TOKEN: token})
        check_answer(resp, status, field, leak, retry_after=[30])
        assert github.requests[-1][0] == f"/api/v3/repos/{REPO}", name
    assert count(session_factory) == (1 if operation == "token" else 0)
    assert audit_actions(session_factory) == (
        ["repository.associated"] if operation == "token" else []
    )


def test_unreachable(settings: Settings, admin: dict[str, str], project_id: str) -> None:
    down = settings.model_copy(
        update={"github_enterprise_api_url": f"http://127.0.0.1:{free_port()}/api/v3"}
    )
    with TestClient(create_app(down)) as client:
        resp = client.post(
            f"/v1/projects/{project_id}/repositories",
            json=_body(),
            headers={**admin, TOKEN: "ghp_x"},
        )
    check_answer(resp, 502, None, "")


CANARY = "ghp_CANARYe5e1a9c0d4b3f2a1GHESLEAK"


def test_canary_token_never_leaks(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    logs: pytest.LogCaptureFixture,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO)
    url = f"/v1/projects/{project_id}/repositories"
    headers = {**admin, TOKEN: CANARY}
    responses = [http.post(url, json=_body(), headers=headers)]
    for setup, status in [
        ({"access": {REPO: NONE}}, 403),
        ({"rate_limit": "primary"}, 503),
        ({"access": {REPO: ALL}}, 201),
    ]:
        github.add_token(CANARY, **setup)
        responses.append(http.post(url, json=_body(), headers=headers))
        assert responses[-1].status_code == status, responses[-1].text
    responses.append(http.post(f"{url}/token", headers=headers))
    assert responses[-1].status_code == 204
    assert_never_leaked([CANARY], responses, logs, session_factory)
