"""Deploy keys (so repositories keep working): created on association when the token may,
kept as a hosted secret, rotated by ``POST .../repositories/token``, removed by ``DELETE`` with the
token; against the GitHub fake's deploy key endpoints over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_ssh_private_key,
)
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.idempotency.models import IdempotencyKey
from stead.repositories.models import Repository
from stead.secrets import store
from stead.secrets.models import HostedSecret
from tests.support.factories import assert_problem
from tests.support.git_server import GitServer
from tests.support.github_fake import ALL, READ_ONLY, GitHubFake

TOKEN = "Git-Provider-Access-Token"
REPO = "acme-data/finance-pipelines"
BODY = {
    "provider": "github",
    "repositoryName": "finance-pipelines",
    "providerParameters": {"ownerName": "acme-data"},
}


def _fingerprint(public_line: str) -> str:
    digest = hashlib.sha256(base64.b64decode(public_line.split()[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _private_key(factory: sessionmaker[Session], project_id: str, name: str) -> str:
    with factory() as session:
        return store.read_value(session, project_id=project_id, name=name)


def _public_of(private_openssh: str) -> str:
    key = load_ssh_private_key(private_openssh.encode(), password=None)
    return key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def _secrets(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(HostedSecret.name).order_by(HostedSecret.id)))


def _events(factory: sessionmaker[Session]) -> list[tuple[str, dict[str, Any]]]:
    with factory() as session:
        return [
            (e.action, e.details or {})
            for e in session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.like("repository.%") | AuditEvent.action.like("secret.%"))
                .order_by(AuditEvent.id)
            )
        ]


def _associate(http: TestClient, admin: dict[str, str], project_id: str, token: str) -> Any:
    return http.post(
        f"/v1/projects/{project_id}/repositories", json=BODY, headers={**admin, TOKEN: token}
    )


def test_key_created_kept_as_secret_and_removed_with_the_token(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
    logs: pytest.LogCaptureFixture,
) -> None:
    github.add_repo(REPO)
    github.add_token("ghp_admin", access={REPO: ALL})
    url = f"/v1/projects/{project_id}/repositories"
    resp = _associate(http, admin, project_id, "ghp_admin")
    assert resp.status_code == 201, resp.text
    key = resp.json()["deployKey"]
    assert resp.json()["deployKeyReason"] is None

    # registered at GitHub: read-only, titled after the project, the public half of our secret
    (registered,) = github.keys(REPO)
    project = http.get(f"/v1/projects/{project_id}", headers=admin).json()
    assert registered["title"] == f"stead:{project['name']}"
    assert registered["read_only"] is True
    method, path, sent = github.writes[-1]
    assert (method, path) == ("POST", f"/repos/{REPO}/keys")
    assert sent["Authorization"] == "Bearer ghp_admin"
    assert key == {
        "id": str(registered["id"]),
        "fingerprint": _fingerprint(registered["key"]),
        "readOnly": True,
        "secretName": "git-deploy-key",
    }
    private = _private_key(session_factory, project_id, "git-deploy-key")
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert _public_of(private) == registered["key"]
    assert http.get(url, headers=admin).json()["deployKey"] == key

    # the secret is listed as a PASSWORD secret, cannot be deleted on its own
    secrets = http.get(f"/v1/projects/{project_id}/secrets", headers=admin).json()
    assert [(s["name"], s["type"]) for s in secrets["results"]] == [("git-deploy-key", "PASSWORD")]
    secret_url = f"/v1/projects/{project_id}/secrets/git-deploy-key"
    assert_problem(http.delete(secret_url, headers=admin), 409)

    # DELETE with a rejected token: 400 naming the header, nothing removed
    assert_problem(http.delete(url, headers={**admin, TOKEN: "ghp_unknown"}), 400, TOKEN)
    assert_problem(http.delete(url, headers={**admin, TOKEN: "bad token"}), 400, TOKEN)
    assert http.get(url, headers=admin).status_code == 200
    assert len(github.keys(REPO)) == 1 and _secrets(session_factory) == ["git-deploy-key"]

    # DELETE with the token removes the key at GitHub and the secret
    resp = http.delete(url, headers={**admin, TOKEN: "ghp_admin"})
    assert resp.status_code == 204, resp.text
    assert github.writes[-1][:2] == ("DELETE", f"/repos/{REPO}/keys/{registered['id']}")
    assert github.keys(REPO) == [] and _secrets(session_factory) == []
    assert _events(session_factory)[-2:] == [
        ("secret.deleted", {}),
        (
            "repository.removed",
            {
                "provider": "github",
                "repositoryName": "finance-pipelines",
                "deployKey": {
                    "id": key["id"],
                    "fingerprint": key["fingerprint"],
                    "removedAtProvider": True,
                },
            },
        ),
    ]
    # the private key never left the secret store
    assert private not in logs.text and "OPENSSH PRIVATE" not in logs.text
    with session_factory() as session:
        tables = MetaData()
        tables.reflect(bind=session.connection())
        for table in tables.sorted_tables:
            assert "OPENSSH PRIVATE" not in repr(session.execute(select(table)).all())


def test_delete_without_token_leaves_the_key_at_the_provider(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO)
    github.add_token("ghp_admin", access={REPO: ALL})
    key = _associate(http, admin, project_id, "ghp_admin").json()["deployKey"]
    writes = len(github.writes)
    assert http.delete(f"/v1/projects/{project_id}/repositories", headers=admin).status_code == 204
    assert len(github.writes) == writes and len(github.keys(REPO)) == 1
    assert _secrets(session_factory) == []  # the private half is gone: the key is unusable
    action, details = _events(session_factory)[-1]
    assert action == "repository.removed"
    assert details["deployKey"] == {
        "id": key["id"],
        "fingerprint": key["fingerprint"],
        "removedAtProvider": False,
    }


def test_no_key_when_the_token_may_not(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO)
    url = f"/v1/projects/{project_id}/repositories"
    cases: list[tuple[str, dict[str, Any], str, bool]] = [
        # (token, fake set-up, reason fragment, whether a POST .../keys is tried)
        ("ghp_push", {"access": {REPO: READ_ONLY}}, "lacks the admin permission", False),
        (
            "ghp_fine",
            {"access": {REPO: ALL}, "keys_forbidden": True},
            "administration=write",
            True,
        ),
        ("ghp_down", {"access": {REPO: ALL}, "key_status": {"POST": 500}}, "HTTP 500", True),
    ]
    for token, setup, reason, tried in cases:
        github.add_token(token, **setup)
        writes = len(github.writes)
        resp = _associate(http, admin, project_id, token)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["deployKey"] is None
        assert reason in body["deployKeyReason"], body["deployKeyReason"]
        assert "Unicorn" not in resp.text and "Resource not accessible" not in resp.text
        assert len(github.writes) == writes + tried
        assert http.get(url, headers=admin).json()["deployKeyReason"] == body["deployKeyReason"]
        assert _secrets(session_factory) == [] and github.keys(REPO) == []
        assert http.delete(url, headers={**admin, TOKEN: token}).status_code == 204
        assert len(github.writes) == writes + tried  # no key: nothing to remove at GitHub


def test_token_check_rotates_the_key(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO)
    github.add_token("ghp_first", access={REPO: ALL})
    url = f"/v1/projects/{project_id}/repositories"
    first = _associate(http, admin, project_id, "ghp_first").json()["deployKey"]
    first_private = _private_key(session_factory, project_id, "git-deploy-key")

    github.add_token("ghp_second", access={REPO: ALL})
    resp = http.post(f"{url}/token", headers={**admin, TOKEN: "ghp_second"})
    assert resp.status_code == 204, resp.text
    second = http.get(url, headers=admin).json()["deployKey"]
    (registered,) = github.keys(REPO)
    assert second["id"] == str(registered["id"]) != first["id"]
    assert second["fingerprint"] == _fingerprint(registered["key"]) != first["fingerprint"]
    assert second["secretName"] == "git-deploy-key"
    private = _private_key(session_factory, project_id, "git-deploy-key")
    assert private != first_private and _public_of(private) == registered["key"]
    assert [m for m, _, _ in github.writes] == ["POST", "POST", "DELETE"]
    assert all(sent["Authorization"] == "Bearer ghp_second" for _, _, sent in github.writes[1:])
    with session_factory() as session:  # the old private key is not kept as an old version
        assert all(
            first_private != store.decrypt(session, secret=s)
            for s in session.scalars(select(HostedSecret))
        )
    action, details = _events(session_factory)[-1]
    assert action == "repository.token_checked"
    assert details["deployKeyRotated"] is True
    assert details["previousDeployKey"] == {"id": first["id"], "fingerprint": first["fingerprint"]}

    # a token that may not manage keys: access re-checked, the key kept
    github.add_token("ghp_reader", access={REPO: READ_ONLY})
    assert http.post(f"{url}/token", headers={**admin, TOKEN: "ghp_reader"}).status_code == 204
    assert http.get(url, headers=admin).json()["deployKey"] == second
    assert len(github.keys(REPO)) == 1
    action, details = _events(session_factory)[-1]
    assert details["deployKeyRotated"] is False and "admin" in details["deployKeyReason"]

    # removing the old key fails: the rotation is undone, the answer is GitHub's failure
    github.add_token("ghp_flaky", access={REPO: ALL}, key_status={"DELETE": 502})
    resp = http.post(f"{url}/token", headers={**admin, TOKEN: "ghp_flaky"})
    assert_problem(resp, 502)
    assert "Unicorn" not in resp.text
    assert http.get(url, headers=admin).json()["deployKey"] == second
    assert _private_key(session_factory, project_id, "git-deploy-key") == private
    # the new key could not be removed either (same token): it is left, without its private half
    assert str(registered["id"]) in [str(k["id"]) for k in github.keys(REPO)]


def test_rotation_creates_a_key_when_there_was_none(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO)
    github.add_token("ghp_push", access={REPO: READ_ONLY})
    github.add_token("ghp_admin", access={REPO: ALL})
    url = f"/v1/projects/{project_id}/repositories"
    assert _associate(http, admin, project_id, "ghp_push").json()["deployKey"] is None
    assert http.post(f"{url}/token", headers={**admin, TOKEN: "ghp_admin"}).status_code == 204
    body = http.get(url, headers=admin).json()
    assert body["deployKeyReason"] is None
    assert body["deployKey"]["id"] == str(github.keys(REPO)[0]["id"])
    assert _secrets(session_factory) == ["git-deploy-key"]


# (name, token set-up, status, field a violation must name)
DELETE_CASES: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("token rejected", {}, 400, TOKEN),
    ("no admin", {"access": {REPO: READ_ONLY}}, 403, TOKEN),
    ("fine-grained", {"access": {REPO: ALL}, "keys_forbidden": True}, 403, TOKEN),
    ("rate limited", {"access": {REPO: ALL}, "rate_limit": "secondary"}, 503, None),
    ("server error", {"access": {REPO: ALL}, "key_status": {"DELETE": 500}}, 502, None),
    ("timeout", {"access": {REPO: ALL}, "delay": 5}, 504, None),
]


def test_distinct_answers_when_removing_the_key(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    github.add_repo(REPO)
    github.add_token("ghp_admin", access={REPO: ALL})
    url = f"/v1/projects/{project_id}/repositories"
    assert _associate(http, admin, project_id, "ghp_admin").status_code == 201
    for name, setup, status, field in DELETE_CASES:
        token = "ghp_" + name.replace(" ", "_").replace("-", "_")
        if setup:
            github.add_token(token, **setup)
        resp = http.delete(url, headers={**admin, TOKEN: token})
        body = assert_problem(resp, status, field)
        if name == "fine-grained":
            assert "administration=write" in body["violations"][0]
        if status == 503:
            assert resp.headers["retry-after"] == "30"
        for leak in ("Unicorn", "Bad credentials", "Resource not accessible", "secondary"):
            assert leak not in resp.text, name
        assert http.get(url, headers=admin).status_code == 200, name
        assert len(github.keys(REPO)) == 1 and _secrets(session_factory) == ["git-deploy-key"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Repository)) == 1


def test_git_provider_has_no_deploy_key(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    project_id: str,
    repo_name: str,
    session_factory: sessionmaker[Session],
) -> None:
    git_server.create_repo(repo_name)
    git_server.add_token("tok-git", read=[repo_name])
    url = f"/v1/projects/{project_id}/repositories"
    body = {
        "provider": "git",
        "repositoryName": repo_name,
        "providerParameters": {"url": f"{git_server.url}/{repo_name}.git"},
    }
    resp = http.post(url, json=body, headers={**admin, TOKEN: "tok-git"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["deployKey"] is None
    assert resp.json()["deployKeyReason"] == "a plain git remote has no deploy key API"
    assert http.post(f"{url}/token", headers={**admin, TOKEN: "tok-git"}).status_code == 204
    assert http.delete(url, headers={**admin, TOKEN: "tok-git"}).status_code == 204
    assert _secrets(session_factory) == []


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "idempotency-key"])
def test_provider_calls_do_not_hold_the_write_lock(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    keyed: bool,
) -> None:
    """While GitHub takes 1.5 s to answer each call, another write request goes through at once
    (on SQLite it would otherwise wait for the write lock), with or without an Idempotency-Key
    (the SDK and ``stead apply`` send one on every POST); a keyed request replays as usual."""
    github.add_repo(REPO)
    github.add_token("ghp_slow", access={REPO: ALL}, delay=1.5)
    url = f"/v1/projects/{project_id}/repositories"
    headers = {**admin, TOKEN: "ghp_slow"}
    if keyed:
        headers["Idempotency-Key"] = "associate-once"
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        slow = pool.submit(http.post, url, json=BODY, headers=headers)
        time.sleep(0.5)
        other = http.post(
            "/v1/projects",
            json={"name": "meanwhile", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
            headers=admin,
        )
        other_done = time.monotonic() - started
        resp = slow.result()
    assert other.status_code == 201, other.text
    assert resp.status_code == 201, resp.text
    assert other_done < 1.5, other_done  # did not wait for GitHub's first answer
    assert time.monotonic() - started >= 3  # GET /repos and POST .../keys
    assert resp.json()["deployKey"]["id"] == str(github.keys(REPO)[0]["id"])
    if keyed:
        again = http.post(url, json=BODY, headers=headers)
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == resp.json() == http.get(url, headers=admin).json()
    assert len(github.keys(REPO)) == 1


def test_a_keyed_request_that_fails_at_the_provider_can_be_sent_again(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    """The key of a request that stepped out of its transaction (committing its claim) and then
    failed at the provider is released: the same key with the same body runs again."""
    github.add_repo(REPO)
    github.add_token("ghp_admin", access={REPO: ALL})
    url = f"/v1/projects/{project_id}/repositories"
    key = {"Idempotency-Key": "associate-after-fixing-the-token"}
    refused = http.post(url, json=BODY, headers={**admin, **key, TOKEN: "ghp_unknown"})
    assert refused.status_code == 400, refused.text
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
    first = http.post(url, json=BODY, headers={**admin, **key, TOKEN: "ghp_admin"})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = http.post(url, json=BODY, headers={**admin, **key, TOKEN: "ghp_admin"})
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(github.keys(REPO)) == 1
