"""Token revocation (a rotated client secret, a disabled user, a new role, revoked tokens all end
existing tokens at once) and the users API (``/v1/users``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.audit.models import AuditEvent
from stead.identity.models import User
from stead.settings import Settings
from tests.support.factories import (
    USER_PASSWORD,
    assert_problem,
    auth,
    login,
    new_client,
    new_user,
    token_for,
)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _actions(factory: sessionmaker[Session], prefix: str) -> list[tuple[str, str]]:
    with factory() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action.startswith(prefix)).order_by(AuditEvent.id)
        )
        return [(e.action, e.target_id) for e in events]


@pytest.fixture
def other_process(settings: Settings) -> Iterator[TestClient]:
    """A second server process on the same database, with its own actor cache (0 s: every
    request reads the principal, the documented bound being ``actor_cache_seconds``)."""
    app = create_app(settings.model_copy(update={"actor_cache_seconds": 0}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_rotating_a_client_secret_revokes_its_tokens_at_once(
    http: TestClient,
    other_process: TestClient,
    session_factory: sessionmaker[Session],
    admin: dict[str, str],
) -> None:
    client_id, secret = new_client(session_factory, "ADMIN")
    old = _bearer(token_for(http, client_id, secret))
    assert http.get("/v1/projects", headers=old).status_code == 200
    assert other_process.get("/v1/projects", headers=old).status_code == 200
    rotated = http.post(f"/v1/api-clients/{client_id}/secret", headers=admin)
    assert rotated.status_code == 200, rotated.text
    for server in (http, other_process):
        assert "revoked" in assert_problem(server.get("/v1/projects", headers=old), 401)["detail"]
    new = _bearer(token_for(http, client_id, rotated.json()["clientSecret"]))
    assert http.get("/v1/projects", headers=new).status_code == 200


def test_disabling_a_user_ends_their_tokens_and_logins(
    http: TestClient,
    other_process: TestClient,
    session_factory: sessionmaker[Session],
    admin: dict[str, str],
) -> None:
    user_id, email = new_user(session_factory)
    headers = login(http, email)
    assert http.get("/v1/users/me", headers=headers).json()["email"] == email
    assert other_process.get("/v1/projects", headers=headers).status_code == 200
    resp = http.patch(f"/v1/users/{user_id}", json={"disabled": True}, headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json()["disabled"] is True
    for server in (http, other_process):
        assert_problem(server.get("/v1/projects", headers=headers), 401)
    refused = http.post("/v1/auth/login", json={"email": email, "password": USER_PASSWORD})
    assert assert_problem(refused, 401)["detail"] == "Invalid email or password"
    assert http.patch(f"/v1/users/{user_id}", json={"disabled": False}, headers=admin).is_success
    assert http.get("/v1/projects", headers=login(http, email)).status_code == 200
    assert [a for a, _ in _actions(session_factory, "user.")] == [
        "user.logged_in",
        "user.disabled",
        "user.login_failed",
        "user.enabled",
        "user.logged_in",
    ]


def test_a_new_role_and_revoke_tokens_end_earlier_tokens(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    user_id, email = new_user(session_factory, role="ADMIN")
    headers = login(http, email)
    assert http.get("/v1/api-clients", headers=headers).status_code == 200
    changed = http.patch(f"/v1/users/{user_id}", json={"role": "member"}, headers=admin)
    assert changed.status_code == 200 and changed.json()["role"] == "MEMBER"
    assert_problem(http.get("/v1/api-clients", headers=headers), 401)
    headers = login(http, email)
    assert_problem(http.get("/v1/api-clients", headers=headers), 403)

    revoked = http.post(f"/v1/users/{user_id}/revoke-tokens", headers=admin)
    assert revoked.status_code == 204
    assert_problem(http.get("/v1/projects", headers=headers), 401)
    assert http.get("/v1/projects", headers=login(http, email)).status_code == 200
    assert _actions(session_factory, "user.role_changed") == [("user.role_changed", user_id)]
    assert _actions(session_factory, "user.tokens_revoked") == [("user.tokens_revoked", user_id)]


def test_who_may_manage_users(http: TestClient, session_factory: sessionmaker[Session]) -> None:
    super_id, super_email = new_user(session_factory, role="SUPER_ADMIN")
    admin_id, admin_email = new_user(session_factory, role="ADMIN")
    member_id, member_email = new_user(session_factory)
    as_super, as_admin = login(http, super_email), login(http, admin_email)
    as_member = login(http, member_email)

    listed = http.get("/v1/users", headers=as_admin).json()
    assert {u["email"] for u in listed["results"]} >= {super_email, admin_email, member_email}
    assert all("password" not in str(u).lower() for u in listed["results"])
    assert http.get(f"/v1/users/{member_id}", headers=as_admin).json()["role"] == "MEMBER"
    assert_problem(http.get("/v1/users", headers=as_member), 403)
    assert_problem(
        http.patch(f"/v1/users/{admin_id}", json={"disabled": True}, headers=as_member), 403
    )
    # An Admin may not touch a Super Admin nor make one.
    assert_problem(
        http.patch(f"/v1/users/{super_id}", json={"disabled": True}, headers=as_admin), 403
    )
    assert_problem(http.post(f"/v1/users/{super_id}/revoke-tokens", headers=as_admin), 403)
    assert_problem(
        http.patch(f"/v1/users/{member_id}", json={"role": "SUPER_ADMIN"}, headers=as_admin), 403
    )
    # Nobody disables or re-roles themselves; a Super Admin may do the rest.
    assert_problem(
        http.patch(f"/v1/users/{super_id}", json={"disabled": True}, headers=as_super), 409
    )
    assert_problem(
        http.patch(f"/v1/users/{admin_id}", json={"role": "MEMBER"}, headers=as_admin), 409
    )
    made = http.patch(f"/v1/users/{member_id}", json={"role": "SUPER_ADMIN"}, headers=as_super)
    assert made.status_code == 200 and made.json()["role"] == "SUPER_ADMIN"
    # A client is not a user.
    assert_problem(http.get("/v1/users/me", headers=auth(http, session_factory, "ADMIN")), 404)
    assert_problem(http.get("/v1/users/not-a-uuid", headers=as_admin), 400, "userId")
    assert_problem(
        http.get("/v1/users/00000000-0000-4000-8000-000000000000", headers=as_admin), 404
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [({"disabled": "sometimes"}, "disabled"), ({"role": "KING"}, "role"), ({"x": 1}, "x")],
)
def test_user_update_validation(
    http: TestClient,
    session_factory: sessionmaker[Session],
    admin: dict[str, str],
    body: dict[str, object],
    field: str,
) -> None:
    user_id, _ = new_user(session_factory)
    assert_problem(http.patch(f"/v1/users/{user_id}", json=body, headers=admin), 400, field)
    with session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None and user.role == "MEMBER" and user.token_version == 0
        assert user.disabled_at is None
