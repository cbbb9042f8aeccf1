"""The provider access token is never stored, logged or echoed: a canary
token goes through every answer of both providers and is then searched for in every response
(body and headers), every log record, every database row and the audit details."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from tests.support.git_server import GitServer
from tests.support.github_fake import ALL, NONE, GitHubFake

CANARY = "ghp_CANARY7f3e9a1c5b2d8e4f6a0b9c7dLEAK"
TOKEN = "Git-Provider-Access-Token"
REPO = "acme-data/finance-pipelines"


def _project(http: TestClient, admin: dict[str, str], name: str) -> str:
    resp = http.post(
        "/v1/projects",
        json={"name": name, "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
        headers=admin,
    )
    return f"/v1/projects/{resp.json()['projectId']}/repositories"


def test_canary_token_never_leaks(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    git_server: GitServer,
    repo_name: str,
    logs: pytest.LogCaptureFixture,
    session_factory: sessionmaker[Session],
) -> None:
    responses = []
    headers = {**admin, TOKEN: CANARY}

    def call(method: str, url: str, status: int, **kwargs: Any) -> None:
        resp = http.request(method, url, headers=headers, **kwargs)
        assert resp.status_code == status, resp.text
        responses.append(resp)

    # GitHub, through each of its answers, then success and a token re-check
    url = _project(http, admin, "github")
    body = {
        "provider": "github",
        "repositoryName": "finance-pipelines",
        "providerParameters": {"ownerName": "acme-data"},
    }
    github.add_repo(REPO)
    call("POST", url, 400, json=body)  # token unknown to GitHub
    github_steps: list[tuple[dict[str, Any], int]] = [
        ({}, 400),
        ({"access": {REPO: NONE}}, 403),
        ({"forbidden": [REPO]}, 403),
        ({"rate_limit": "primary"}, 503),
        ({"status": 500}, 502),
        ({"access": {REPO: ALL}, "delay": 5}, 504),
        ({"access": {REPO: ALL}}, 201),
    ]
    for setup, status in github_steps:
        github.add_token(CANARY, **setup)
        call("POST", url, status, json=body)
    call("POST", f"{url}/token", 204)
    call("POST", url, 400, json={**body, "provider": "bitbucket"})
    assert (f"/repos/{REPO}", f"Bearer {CANARY}") in [
        (path, sent.get("Authorization")) for path, sent in github.requests
    ]

    # a git remote over HTTP, then a file:// remote
    url = _project(http, admin, "git")
    git_server.create_repo(repo_name)
    remote = {
        "provider": "git",
        "repositoryName": repo_name,
        "providerParameters": {"url": f"{git_server.url}/{repo_name}.git"},
    }
    call("POST", url, 400, json=remote)  # token unknown to the server
    git_steps: list[tuple[dict[str, Any], int]] = [
        ({"forbid": [repo_name]}, 403),
        ({"answer": (429, {"Retry-After": "3"})}, 503),
        ({"answer": (500, {})}, 502),
        ({"read": [repo_name]}, 201),
    ]
    for setup, status in git_steps:
        git_server.add_token(CANARY, **setup)
        call("POST", url, status, json=remote)
    call("POST", f"{url}/token", 204)
    git_server.add_token(CANARY, read=[repo_name], delay=5)
    call("POST", f"{url}/token", 504)
    call(
        "POST",
        _project(http, admin, "file"),
        201,
        json={
            **remote,
            "providerParameters": {"url": (git_server.root / f"{repo_name}.git").as_uri()},
        },
    )
    call(
        "POST",
        url,
        400,
        json={
            **remote,
            "providerParameters": {"url": f"https://user:{CANARY}@git.example.com/x.git"},
        },
    )

    for resp in responses:
        assert CANARY not in resp.text, resp.request.url
        assert CANARY not in str(resp.headers.raw), resp.request.url
    # the capture works (our access log, httpx and dulwich at DEBUG), and it is clean
    names = {record.name for record in logs.records}
    assert {"stead.access", "httpx"} <= names and any(n.startswith("dulwich") for n in names)
    assert logs.records and all(CANARY not in repr(vars(record)) for record in logs.records)
    assert CANARY not in logs.text
    assert not [r for r in logs.records if r.levelno >= logging.ERROR]

    with session_factory() as session:
        tables = MetaData()
        tables.reflect(bind=session.connection())
        for table in tables.sorted_tables:
            rows = session.execute(select(table)).all()
            assert CANARY not in repr(rows), table.name
        details = list(
            session.scalars(
                select(AuditEvent.details).where(AuditEvent.action.like("repository.%"))
            )
        )
    assert len(details) == 5 and all(details)
    assert all(CANARY not in repr(d) for d in details)


def test_canary_token_never_leaks_through_deploy_keys_and_scaffold(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    git_server: GitServer,
    repo_name: str,
    logs: pytest.LogCaptureFixture,
    session_factory: sessionmaker[Session],
) -> None:
    headers = {**admin, TOKEN: CANARY}
    responses = []
    full = f"acme-data/{repo_name}"
    git_server.create_repo(repo_name, branches=[])
    git_server.add_token(CANARY, read=[repo_name])
    github.add_repo(full, clone_url=f"{git_server.url}/{repo_name}.git")
    github.add_token(CANARY, access={full: ALL})
    url = _project(http, admin, "scaffolded")
    body = {
        "provider": "github",
        "repositoryName": repo_name,
        "providerParameters": {"ownerName": "acme-data"},
    }
    for method, path, kwargs, status in [
        ("POST", f"{url}?initialize=true", {"json": body}, 201),
        ("POST", f"{url}/token", {}, 204),  # rotates the deploy key
        ("GET", url, {}, 200),
        ("DELETE", url, {}, 204),  # removes it at GitHub
        ("POST", f"{url}?initialize=true", {"json": body}, 409),  # no longer empty
    ]:
        resp = http.request(method, path, headers=headers, **kwargs)
        assert resp.status_code == status, resp.text
        responses.append(resp)
    assert [m for m, _, _ in github.writes] == ["POST", "POST", "DELETE", "DELETE"]
    assert all(sent["Authorization"] == f"Bearer {CANARY}" for _, _, sent in github.writes)

    for resp in responses:
        assert CANARY not in resp.text and CANARY not in str(resp.headers.raw)
    assert logs.records and all(CANARY not in repr(vars(record)) for record in logs.records)
    with session_factory() as session:
        tables = MetaData()
        tables.reflect(bind=session.connection())
        for table in tables.sorted_tables:
            assert CANARY not in repr(session.execute(select(table)).all()), table.name
