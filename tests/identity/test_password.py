"""``POST /v1/users/me/password``: a user changes their own password."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.console.sessions import ConsoleSession, start_session
from stead.db import session_scope
from stead.identity.models import User
from tests.support.factories import USER_PASSWORD, assert_problem, login, new_user

NEW_PASSWORD = "canary-new-password-7f3a"


def test_change_password_revokes_tokens_and_sessions(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    user_id, email = new_user(session_factory)
    headers = login(http, email)
    with session_scope(session_factory, write=True) as db:
        start_session(db, user=db.get_one(User, user_id), user_agent="test", address=None)
    body = {"currentPassword": USER_PASSWORD, "newPassword": NEW_PASSWORD}
    resp = http.post("/v1/users/me/password", json=body, headers=headers)
    assert resp.status_code == 204, resp.text
    assert http.get("/v1/users/me", headers=headers).status_code == 401
    resp = http.post("/v1/auth/login", json={"email": email, "password": USER_PASSWORD})
    assert resp.status_code == 401
    login(http, email, NEW_PASSWORD)
    with session_factory() as db:
        assert list(db.scalars(select(ConsoleSession))) == []
        events = list(
            db.scalars(select(AuditEvent).where(AuditEvent.action == "user.password_changed"))
        )
    assert len(events) == 1 and events[0].target_id == user_id
    assert NEW_PASSWORD not in str(events[0].details)
    assert USER_PASSWORD not in str(events[0].details)


def test_wrong_current_password_changes_nothing(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory)
    headers = login(http, email)
    resp = http.post(
        "/v1/users/me/password",
        json={"currentPassword": "not it at all", "newPassword": NEW_PASSWORD},
        headers=headers,
    )
    body = assert_problem(resp, 400, "currentPassword")
    assert NEW_PASSWORD not in resp.text and "not it at all" not in resp.text
    assert body["violations"] == ["currentPassword: is not correct"]
    assert http.get("/v1/users/me", headers=headers).status_code == 200
    login(http, email)
    resp = http.post(
        "/v1/users/me/password",
        json={"currentPassword": USER_PASSWORD, "newPassword": "short"},
        headers=headers,
    )
    assert_problem(resp, 400, "newPassword")
    assert "short" not in resp.json()["detail"]
    login(http, email)


def test_api_client_has_no_password(http: TestClient, admin: dict[str, str]) -> None:
    resp = http.post(
        "/v1/users/me/password",
        json={"currentPassword": "x" * 12, "newPassword": NEW_PASSWORD},
        headers=admin,
    )
    assert_problem(resp, 404)
