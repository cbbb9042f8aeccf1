"""API client management (``/v1/api-clients``): create with the secret shown once, list, read,
rotate, revoke; Super Admins and Admins only, and only Super Admins touch SUPER_ADMIN clients."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.audit.models import AuditEvent
from stead.settings import Settings
from tests.support.factories import assert_problem, auth, new_client, token_for, user_auth

UNKNOWN_UUID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"


def _token_status(http: TestClient, client_id: str, secret: str) -> int:
    return http.post(
        "/oauth/dpc/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    ).status_code


def test_create_list_rotate_revoke(
    http: TestClient,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    admin = auth(http, session_factory, "ADMIN")
    resp = http.post(
        "/v1/api-clients", json={"name": "ci pipeline", "role": "member"}, headers=admin
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["role"] == "MEMBER" and created["name"] == "ci pipeline"
    assert created["revokedAt"] is None and resp.headers["cache-control"] == "no-store"
    assert resp.headers["location"] == f"/v1/api-clients/{created['clientId']}"
    client_id, secret = created["clientId"], created["clientSecret"]
    assert created["id"] != client_id  # the principal id members and audit events use
    headers = {"Authorization": f"Bearer {token_for(http, client_id, secret)}"}
    assert http.get("/v1/agents", headers=headers).status_code == 200

    read = http.get(f"/v1/api-clients/{client_id}", headers=admin).json()
    assert "clientSecret" not in read and read["clientId"] == client_id
    listed = http.get("/v1/api-clients", headers=admin).json()
    assert client_id in {c["clientId"] for c in listed["results"]}
    assert secret not in str(listed)

    rotated = http.post(f"/v1/api-clients/{client_id}/secret", headers=admin)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["clientSecret"]
    assert new_secret != secret
    assert _token_status(http, client_id, secret) == 401
    assert _token_status(http, client_id, new_secret) == 200

    assert http.delete(f"/v1/api-clients/{client_id}", headers=admin).status_code == 204
    assert http.get(f"/v1/api-clients/{client_id}", headers=admin).json()["revokedAt"]
    assert _token_status(http, client_id, new_secret) == 401
    assert_problem(http.get("/v1/agents", headers=headers), 401)  # its tokens stop at once
    assert http.delete(f"/v1/api-clients/{client_id}", headers=admin).status_code == 204
    assert_problem(http.post(f"/v1/api-clients/{client_id}/secret", headers=admin), 409)

    with session_factory() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.target_id == client_id)))
        rows = repr(session.execute(text("SELECT * FROM api_clients")).all())
    assert [e.action for e in events] == [
        "api_client.created",
        "api_client.secret_rotated",
        "api_client.revoked",
    ]
    for value in (secret, new_secret):
        assert value not in rows and value not in repr([e.details for e in events])
        assert value not in caplog.text


def test_only_super_admins_manage_super_admin_clients(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    admin_client = auth(http, session_factory, "ADMIN")
    refused = http.post(
        "/v1/api-clients", json={"name": "x", "role": "SUPER_ADMIN"}, headers=admin_client
    )
    assert_problem(refused, 403)
    made = http.post("/v1/api-clients", json={"name": "root", "role": "SUPER_ADMIN"}, headers=admin)
    assert made.status_code == 201
    root_id = made.json()["clientId"]
    assert_problem(http.post(f"/v1/api-clients/{root_id}/secret", headers=admin_client), 403)
    assert_problem(http.delete(f"/v1/api-clients/{root_id}", headers=admin_client), 403)
    assert http.get(f"/v1/api-clients/{root_id}", headers=admin_client).json()["revokedAt"] is None
    # An Admin may create another ADMIN, and a user who is an ADMIN may manage clients too.
    assert (
        http.post(
            "/v1/api-clients", json={"name": "a2", "role": "ADMIN"}, headers=admin_client
        ).status_code
        == 201
    )
    admin_user = user_auth(http, session_factory, role="ADMIN")
    assert http.get("/v1/api-clients", headers=admin_user).status_code == 200
    with session_factory() as session:
        denied = list(
            session.scalars(select(AuditEvent).where(AuditEvent.action == "access.denied"))
        )
    assert [e.details["permission"] for e in denied] == ["api_client.super_admin"] * 3


def test_members_may_not_manage_clients(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    client_id, _ = new_client(session_factory, "ADMIN")
    for headers in (auth(http, session_factory, "MEMBER"), user_auth(http, session_factory)):
        assert_problem(http.get("/v1/api-clients", headers=headers), 403)
        assert_problem(
            http.post("/v1/api-clients", json={"name": "x", "role": "MEMBER"}, headers=headers), 403
        )
        assert_problem(http.delete(f"/v1/api-clients/{client_id}", headers=headers), 403)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "MEMBER"}, "name"),
        ({"name": "", "role": "MEMBER"}, "name"),
        ({"name": " padded", "role": "MEMBER"}, "name"),
        ({"name": "x"}, "role"),
        ({"name": "x", "role": "OWNER"}, "role"),
        ({"name": "x", "role": "MEMBER", "secret": "mine"}, "secret"),
    ],
)
def test_validation(
    http: TestClient, admin: dict[str, str], body: dict[str, str], field: str
) -> None:
    before = http.get("/v1/api-clients", headers=admin).json()["total"]
    assert_problem(http.post("/v1/api-clients", json=body, headers=admin), 400, field)
    assert http.get("/v1/api-clients", headers=admin).json()["total"] == before


def test_unknown_and_malformed_ids(http: TestClient, admin: dict[str, str]) -> None:
    assert_problem(http.get(f"/v1/api-clients/{UNKNOWN_UUID}", headers=admin), 404)
    assert_problem(http.post(f"/v1/api-clients/{UNKNOWN_UUID}/secret", headers=admin), 404)
    assert_problem(http.delete(f"/v1/api-clients/{UNKNOWN_UUID}", headers=admin), 404)
    assert_problem(http.get("/v1/api-clients/nope", headers=admin), 400, "clientId")


def test_revocation_reaches_other_server_processes(
    http: TestClient, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """A second app on the same database (another ``stead serve`` process) trusts a principal it
    has read for ``actor_cache_seconds``, then refuses the revoked client; with 0 it refuses at
    once."""
    admin = auth(http, session_factory, "ADMIN")
    created = http.post("/v1/api-clients", json={"name": "ci", "role": "MEMBER"}, headers=admin)
    client_id, secret = created.json()["clientId"], created.json()["clientSecret"]
    headers = {"Authorization": f"Bearer {token_for(http, client_id, secret)}"}
    uncached = settings.model_copy(update={"actor_cache_seconds": 0})
    with (
        TestClient(create_app(settings)) as cached_server,
        TestClient(create_app(uncached)) as uncached_server,
    ):
        for server in (cached_server, uncached_server):
            assert server.get("/v1/agents", headers=headers).status_code == 200
        started = time.monotonic()
        assert http.delete(f"/v1/api-clients/{client_id}", headers=admin).status_code == 204
        assert_problem(http.get("/v1/agents", headers=headers), 401)
        assert_problem(uncached_server.get("/v1/agents", headers=headers), 401)
        while cached_server.get("/v1/agents", headers=headers).status_code == 200:
            assert time.monotonic() - started < settings.actor_cache_seconds + 1
            time.sleep(0.1)
        assert_problem(cached_server.get("/v1/agents", headers=headers), 401)
