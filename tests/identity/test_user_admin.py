"""An account admin's controls over users (docs/api.md, People): unlock, one-time password reset
links (mailed over a real SMTP server), last login and lock state, and every reason a user is
signed out everywhere. Reset tokens and passwords never reach storage, a log line or an answer."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.audit.models import AuditEvent
from stead.db import session_scope, utcnow
from stead.identity.models import LoginFailures, PasswordReset
from stead.settings import Settings
from tests.support.factories import (
    USER_PASSWORD,
    assert_problem,
    auth,
    login,
    new_user,
    user_auth,
)
from tests.support.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server,
    smtp_servers,
)

MAX_FAILURES = 3
NEW_PASSWORD = "CANARY-new-password-5e4d3c2b"
LINK = re.compile(r"http://127\.0\.0\.1:8080/console/reset/([A-Za-z0-9_-]{43})")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings that lock a user after three failed logins."""
    return Settings(
        data_dir=tmp_path / "data", database_url=db_url, login_max_failures=MAX_FAILURES
    )


def _events(factory: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with factory() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(session.scalars(query))


def _start(http: TestClient, headers: dict[str, str], user_id: str) -> Any:
    return http.post(f"/v1/users/{user_id}/password-reset", headers=headers)


def _token(resp: Any) -> str:
    assert resp.status_code == 200, resp.text
    match = LINK.fullmatch(resp.json()["resetUrl"])
    assert match, resp.text
    return match.group(1)


def _use(http: TestClient, token: str, password: str = NEW_PASSWORD) -> Any:
    return http.post("/v1/auth/password-reset", json={"token": token, "password": password})


def _lock(http: TestClient, email: str) -> None:
    for attempt in range(MAX_FAILURES):
        wrong = http.post("/v1/auth/login", json={"email": email, "password": f"wrong {attempt}"})
        assert_problem(wrong, 401)


def test_unlock_clears_a_lockout_and_a_lock_signs_the_user_out(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    user_id, email = new_user(session_factory)
    before = login(http, email)
    me = http.get("/v1/users/me", headers=before).json()
    assert me["locked"] is False and me["lastLoginAt"] is not None
    _lock(http, email)
    # The lock ended the token the user held, and shows in the user's record and the list.
    assert_problem(http.get("/v1/users/me", headers=before), 401)
    assert http.get(f"/v1/users/{user_id}", headers=admin).json()["locked"] is True
    listed = {u["id"]: u for u in http.get("/v1/users", headers=admin).json()["results"]}
    assert listed[user_id]["locked"] is True
    refused = http.post("/v1/auth/login", json={"email": email, "password": USER_PASSWORD})
    assert "try again in" in assert_problem(refused, 401)["detail"]

    # Only account admins unlock; a MEMBER's attempt is refused and changes nothing.
    member = user_auth(http, session_factory)
    assert_problem(http.post(f"/v1/users/{user_id}/unlock", headers=member), 403)
    assert http.get(f"/v1/users/{user_id}", headers=admin).json()["locked"] is True

    resp = http.post(f"/v1/users/{user_id}/unlock", headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json()["locked"] is False and resp.json()["id"] == user_id
    login(http, email)
    with session_factory() as session:
        assert not session.scalars(select(LoginFailures)).all()
    (unlocked,) = _events(session_factory, "user.unlocked")
    assert unlocked.target_id == user_id and unlocked.details == {"email": email, "addresses": 1}
    assert len(_events(session_factory, "user.locked")) == 1

    # Unknown, malformed, and a Super Admin unlocked by an Admin.
    unknown = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
    assert_problem(http.post(f"/v1/users/{unknown}/unlock", headers=admin), 404)
    assert_problem(http.post("/v1/users/nope/unlock", headers=admin), 400, "userId")
    super_id, _ = new_user(session_factory, role="SUPER_ADMIN")
    account_admin = user_auth(http, session_factory, role="ADMIN")
    assert_problem(http.post(f"/v1/users/{super_id}/unlock", headers=account_admin), 403)


def test_a_reset_link_sets_a_new_password_once(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    user_id, email = new_user(session_factory)
    held = login(http, email)
    account_admin = user_auth(http, session_factory, role="ADMIN")
    resp = _start(http, account_admin, user_id)
    token = _token(resp)
    body = resp.json()
    assert body["userId"] == user_id and body["email"] == email and body["mailSent"] is False
    assert resp.headers["cache-control"] == "no-store"
    # Starting a reset signs the user out everywhere; the old password works until it is used.
    assert_problem(http.get("/v1/users/me", headers=held), 401)
    login(http, email)

    # A bad new password is refused naming the field, and the link still works afterwards.
    assert_problem(_use(http, token, "short"), 400, "password")
    assert_problem(
        http.post(
            "/v1/auth/password-reset", json={"token": token, "password": NEW_PASSWORD, "x": 1}
        ),
        400,
        "x",
    )
    assert_problem(
        http.post("/v1/auth/password-reset", json={"password": NEW_PASSWORD}), 400, "token"
    )
    assert_problem(_use(http, "no-such-token"), 404)

    held = login(http, email)
    used = _use(http, token)
    assert used.status_code == 204, used.text
    assert_problem(http.get("/v1/users/me", headers=held), 401)
    wrong = http.post("/v1/auth/login", json={"email": email, "password": USER_PASSWORD})
    assert_problem(wrong, 401)
    login(http, email, NEW_PASSWORD)
    # Single use.
    assert (
        "used already" in assert_problem(_use(http, token, "another new password"), 409)["detail"]
    )
    login(http, email, NEW_PASSWORD)

    (started,) = _events(session_factory, "user.password_reset_started")
    assert started.target_id == user_id and started.details is not None
    assert started.details["email"] == email and started.details["mailSent"] is False
    (reset,) = _events(session_factory, "user.password_reset")
    assert (reset.actor_type, reset.actor_id, reset.target_id) == ("user", user_id, user_id)


def test_a_reset_link_expires_and_a_newer_one_replaces_it(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    user_id, email = new_user(session_factory)
    first = _token(_start(http, admin, user_id))
    second = _token(_start(http, admin, user_id))
    assert_problem(_use(http, first), 404)
    with session_scope(session_factory, write=True) as session:
        session.execute(update(PasswordReset).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert "expired" in assert_problem(_use(http, second), 409)["detail"]
    login(http, email)  # nothing changed


def test_a_reset_heals_a_lockout(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    user_id, email = new_user(session_factory)
    _lock(http, email)
    assert _use(http, _token(_start(http, admin, user_id))).status_code == 204
    assert http.get(f"/v1/users/{user_id}", headers=admin).json()["locked"] is False
    login(http, email, NEW_PASSWORD)


def test_who_may_reset_whom(http: TestClient, session_factory: sessionmaker[Session]) -> None:
    account_admin_id, account_admin_email = new_user(session_factory, role="ADMIN")
    account_admin = login(http, account_admin_email)
    super_id, _ = new_user(session_factory, role="SUPER_ADMIN")
    super_admin = user_auth(http, session_factory, role="SUPER_ADMIN")
    member_id, _ = new_user(session_factory)
    member = user_auth(http, session_factory)
    client_admin = auth(http, session_factory, "ADMIN")

    assert_problem(_start(http, member, member_id), 403)
    assert_problem(_start(http, account_admin, super_id), 403)
    assert_problem(_start(http, account_admin, account_admin_id), 409, "userId")
    assert_problem(_start(http, account_admin, "nope"), 400, "userId")
    assert_problem(_start(http, account_admin, "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"), 404)
    _token(_start(http, super_admin, super_id))
    _token(_start(http, client_admin, member_id))
    # A disabled user gets no link; one disabled after getting it cannot use it.
    pending = _token(_start(http, account_admin, member_id))
    patch = http.patch(f"/v1/users/{member_id}", json={"disabled": True}, headers=account_admin)
    assert patch.status_code == 200
    assert_problem(_start(http, account_admin, member_id), 409, "userId")
    assert "disabled" in assert_problem(_use(http, pending), 409)["detail"]
    with session_factory() as session:
        assert len(session.scalars(select(PasswordReset)).all()) == 2  # super's and member's


def test_a_reset_token_and_the_new_password_are_never_kept_or_logged(
    http: TestClient,
    session_factory: sessionmaker[Session],
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    user_id, email = new_user(session_factory)
    started = _start(http, admin, user_id)
    token = _token(started)
    answers = [_use(http, token, "short"), _use(http, token), _use(http, token)]
    for resp in answers:
        assert token not in resp.text and NEW_PASSWORD not in resp.text
        assert token not in str(resp.headers)
    server_log = "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name.startswith("stead")
    )
    assert "/v1/auth/password-reset" in server_log
    assert token not in server_log and NEW_PASSWORD not in server_log
    with session_factory() as session:
        for table in ("users", "password_resets", "audit_events", "login_failures"):
            rows = session.execute(text(f"SELECT * FROM {table}")).all()
            assert token not in repr(rows) and NEW_PASSWORD not in repr(rows)
        hashes = session.scalars(select(PasswordReset.token_hash)).all()
        assert len(hashes) == 1 and len(hashes[0]) == 64


@pytest.fixture
def mail_http(settings: Settings, smtp_server: SmtpServer) -> Iterator[TestClient]:  # noqa: F811
    """The app with mail going to the local SMTP server."""
    smtp_server.reset()
    changes = {**smtp_server.settings(), "public_url": "https://stead.example.org/"}
    with TestClient(
        create_app(settings.model_copy(update=changes)), raise_server_exceptions=False
    ) as client:
        yield client


def test_a_reset_link_is_mailed_when_a_mail_server_is_set(
    mail_http: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    factory: sessionmaker[Session] = mail_http.app.state.sessionmaker  # type: ignore[attr-defined]
    user_id, email = new_user(factory)
    admin = user_auth(mail_http, factory, role="ADMIN")
    resp = _start(mail_http, admin, user_id)
    assert resp.status_code == 200, resp.text
    assert resp.json()["mailSent"] is True
    (message,) = smtp_server.mailbox.messages
    assert message["To"] == email and "password" in message["Subject"]
    content = message.get_content()
    match = re.search(r"https://stead\.example\.org/console/reset/([A-Za-z0-9_-]+)\s", content)
    assert match, content
    assert resp.json()["resetUrl"] == match.group(0).strip()
    assert _use(mail_http, match.group(1)).status_code == 204
    login(mail_http, email, NEW_PASSWORD)

    # A mail server that refuses: 502, nothing stored, the user is not signed out.
    held = login(mail_http, email, NEW_PASSWORD)
    smtp_server.mailbox.refuse = True
    assert_problem(_start(mail_http, admin, user_id), 502)
    assert mail_http.get("/v1/users/me", headers=held).status_code == 200
    with factory() as session:
        assert session.scalars(select(PasswordReset.used_at)).one() is not None


def test_users_are_searched_by_email_prefix(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    for email in ("Ada@example.com", "adam@example.com", "bob@example.com", "a_b%c@example.com"):
        new_user(session_factory, email=email)

    def found(q: str) -> list[str]:
        resp = http.get("/v1/users", params={"q": q}, headers=admin)
        assert resp.status_code == 200, resp.text
        return sorted(u["email"] for u in resp.json()["results"])

    assert found("ada") == ["Ada@example.com", "adam@example.com"]
    assert found("ADA@") == ["Ada@example.com"]
    assert found("a_") == ["a_b%c@example.com"]  # LIKE's wildcards are taken literally
    assert found("a%") == []
    assert found("zed") == []
    assert_problem(http.get("/v1/users", params={"q": "x" * 321}, headers=admin), 400, "q")
