"""Repository association through GitHub against the GitHub fake over real
HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.audit.models import AuditEvent
from stead.repositories.models import Repository
from stead.settings import Settings
from tests.support.factories import assert_problem, example
from tests.support.github_fake import ALL, NONE, GitHubFake
from tests.support.postgres import free_port

TOKEN = "Git-Provider-Access-Token"
REPO = "acme-data/finance-pipelines"


def _body(name: str = "finance-pipelines", owner: str = "acme-data") -> dict[str, Any]:
    return {
        "provider": "github",
        "repositoryName": name,
        "providerParameters": {"ownerName": owner},
    }


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Repository)) or 0


def _audit(factory: sessionmaker[Session]) -> list[AuditEvent]:
    with factory() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.like("repository.%"))
                .order_by(AuditEvent.id)
            )
        )


def test_associate_read_and_remove(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO, default_branch="trunk")
    github.add_token("ghp_good", access={REPO: ALL})
    url = f"/v1/projects/{project_id}/repositories"
    assert_problem(http.get(url, headers=admin), 404)

    resp = http.post(
        url, json=example("06-associate-repository"), headers={**admin, TOKEN: "ghp_good"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == url
    expected = {
        "provider": "github",
        "repositoryName": "finance-pipelines",
        "providerParameters": {"ownerName": "acme-data"},
        "defaultBranch": "trunk",
        "htmlUrl": f"https://github.com/{REPO}",
        "cloneUrl": f"https://github.com/{REPO}.git",
        "deployKeyReason": None,
    }
    body = resp.json()
    key = body.pop("deployKey")  # the admin token lets Stead create a deploy key
    assert body == expected
    assert key["id"] == str(github.keys(REPO)[0]["id"]) and key["readOnly"] is True
    expected["deployKey"] = key
    path, headers = github.requests[-1]
    assert path == f"/repos/{REPO}"
    assert headers["Authorization"] == "Bearer ghp_good"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert http.get(url, headers=admin).json() == expected
    assert http.get(f"/dpc{url}", headers=admin).json() == expected

    calls = len(github.requests)
    second = http.post(url, json=_body("other"), headers={**admin, TOKEN: "ghp_good"})
    assert_problem(second, 409)
    assert len(github.requests) == calls  # refused before asking GitHub
    assert _count(session_factory) == 1

    assert http.delete(url, headers=admin).status_code == 204
    assert_problem(http.get(url, headers=admin), 404)
    assert_problem(http.delete(url, headers=admin), 404)
    events = _audit(session_factory)
    assert [e.action for e in events] == ["repository.associated", "repository.removed"]
    assert events[0].project_id == project_id
    assert events[0].details == {
        "provider": "github",
        "repositoryName": "finance-pipelines",
        "providerParameters": {"ownerName": "acme-data"},
        "defaultBranch": "trunk",
        "deployKey": {"id": key["id"], "fingerprint": key["fingerprint"]},
    }


def test_provider_case_public_repository_and_rename(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    # a public repository is readable by any valid token (GitHub reports pull: true)
    github.add_repo("Acme-Data/Old-Name", private=False)
    github.add_token("ghp_any")
    github.rename("Acme-Data/Old-Name", "acme-data/new-name")
    resp = http.post(
        f"/v1/projects/{project_id}/repositories",
        json={**_body("old-name"), "provider": "GitHub"},
        headers={**admin, TOKEN: "ghp_any"},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["provider"] == "github" and body["repositoryName"] == "old-name"
    # 301 to the renamed repository was followed
    assert body["htmlUrl"] == "https://github.com/acme-data/new-name"
    assert [p for p, _ in github.requests] == ["/repos/acme-data/old-name", "/repositories/1000"]


def test_enterprise_server_base_url(
    settings: Settings, admin: dict[str, str], github: GitHubFake, project_id: str
) -> None:
    github.add_repo(REPO)
    github.add_token("ghp_ghes", access={REPO: ALL})
    ghes = settings.model_copy(update={"github_api_url": f"{github.url}/api/v3/"})
    with TestClient(create_app(ghes)) as client:
        resp = client.post(
            f"/v1/projects/{project_id}/repositories",
            json=_body(),
            headers={**admin, TOKEN: "ghp_ghes"},
        )
    assert resp.status_code == 201, resp.text
    assert github.requests[-1][0] == f"/api/v3/repos/{REPO}"


# (name, token set-up, status, field a violation must name, GitHub text that must not leak)
Case = tuple[str, Callable[[GitHubFake, str], None], int, str | None, str]
CASES: list[Case] = [
    ("token rejected", lambda g, t: None, 400, TOKEN, "Bad credentials"),
    ("private, invisible", lambda g, t: g.add_token(t), 400, "repositoryName", "Not Found"),
    (
        "no such repository",
        lambda g, t: g.add_token(t, access={"acme-data/missing": ALL}),
        400,
        "repositoryName",
        "Not Found",
    ),
    ("pull false", lambda g, t: g.add_token(t, access={REPO: NONE}), 403, TOKEN, 'pull": false'),
    (
        "fine-grained 403",
        lambda g, t: g.add_token(t, forbidden=[REPO]),
        403,
        TOKEN,
        "Resource not accessible",
    ),
    (
        "primary rate limit",
        lambda g, t: g.add_token(t, rate_limit="primary"),
        503,
        None,
        "API rate limit exceeded",
    ),
    (
        "secondary rate limit",
        lambda g, t: g.add_token(t, rate_limit="secondary"),
        503,
        None,
        "secondary rate limit",
    ),
    (
        "secondary, message only",
        lambda g, t: g.add_token(t, rate_limit="secondary-message"),
        503,
        None,
        "secondary rate limit",
    ),
    ("bad gateway", lambda g, t: g.add_token(t, status=502), 502, None, "Unicorn"),
    ("server error", lambda g, t: g.add_token(t, status=500), 502, None, "Unicorn"),
    ("timeout", lambda g, t: g.add_token(t, access={REPO: ALL}, delay=5), 504, None, ""),
]


def _check_answer(resp: Any, case: Case) -> None:
    name, _, status, field, leak = case
    body = assert_problem(resp, status, field)
    assert leak == "" or leak not in resp.text, name
    if name == "pull false":
        assert "pull" in body["violations"][0] and "pull" in body["detail"]
    if name == "fine-grained 403":
        assert "metadata=read" in body["violations"][0]
    if status == 503:
        retry_after = int(resp.headers["retry-after"])
        expected = {
            "primary rate limit": range(100, 122),
            "secondary rate limit": [30],
            "secondary, message only": [60],
        }[name]
        assert retry_after in expected, (name, retry_after)


def test_distinct_answers_on_association(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO)
    for case in CASES:
        token = "ghp_" + case[0].replace(" ", "_").replace(",", "")
        case[1](github, token)
        resp = http.post(
            f"/v1/projects/{project_id}/repositories", json=_body(), headers={**admin, TOKEN: token}
        )
        _check_answer(resp, case)
    assert _count(session_factory) == 0
    assert _audit(session_factory) == []


def test_distinct_answers_on_token_check(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO)
    github.add_token("ghp_first", access={REPO: ALL})
    url = f"/v1/projects/{project_id}/repositories"
    assert_problem(http.post(f"{url}/token", headers={**admin, TOKEN: "ghp_first"}), 404)
    assert http.post(url, json=_body(), headers={**admin, TOKEN: "ghp_first"}).status_code == 201
    before = http.get(url, headers=admin).json()
    for case in CASES:
        token = "ghp_" + case[0].replace(" ", "_").replace(",", "")
        case[1](github, token)
        _check_answer(http.post(f"{url}/token", headers={**admin, TOKEN: token}), case)
    assert http.get(url, headers=admin).json() == before
    assert [e.action for e in _audit(session_factory)] == ["repository.associated"]

    # a new token that works; GitHub now reports another default branch
    github.repos[REPO.lower()].default_branch = "release"
    github.add_token("ghp_second", access={REPO: ALL})
    resp = http.post(f"{url}/token", headers={**admin, TOKEN: "ghp_second"})
    assert resp.status_code == 204 and resp.content == b""
    assert github.requests[-1][1]["Authorization"] == "Bearer ghp_second"
    assert http.get(url, headers=admin).json()["defaultBranch"] == "release"
    assert [e.action for e in _audit(session_factory)] == [
        "repository.associated",
        "repository.token_checked",
    ]


@pytest.mark.parametrize("operation", ["associate", "token"])
def test_github_unreachable(
    settings: Settings,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    operation: str,
    session_factory: sessionmaker[Session],
) -> None:
    url = f"/v1/projects/{project_id}/repositories"
    if operation == "token":
        github.add_repo(REPO)
        github.add_token("ghp_ok", access={REPO: ALL})
        with TestClient(create_app(settings)) as client:
            assert (
                client.post(url, json=_body(), headers={**admin, TOKEN: "ghp_ok"}).status_code
                == 201
            )
    down = settings.model_copy(update={"github_api_url": f"http://127.0.0.1:{free_port()}"})
    with TestClient(create_app(down)) as client:
        if operation == "associate":
            resp = client.post(url, json=_body(), headers={**admin, TOKEN: "ghp_ok"})
        else:
            resp = client.post(f"{url}/token", headers={**admin, TOKEN: "ghp_ok"})
    body = assert_problem(resp, 502)
    assert body["type"].endswith("/problems/upstream-error")
    assert _count(session_factory) == (1 if operation == "token" else 0)


def test_deleting_the_project_removes_the_association(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO)
    github.add_token("ghp_ok", access={REPO: ALL})
    assert (
        http.post(
            f"/v1/projects/{project_id}/repositories",
            json=_body(),
            headers={**admin, TOKEN: "ghp_ok"},
        ).status_code
        == 201
    )
    assert http.delete(f"/v1/projects/{project_id}", headers=admin).status_code == 204
    assert _count(session_factory) == 0
