"""Users: login (``POST /v1/auth/login`` and the OAuth 2.0 password grant), lockout after
repeated failures with the failures audited, and passwords that never leave the request."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.db import session_scope, utcnow
from stead.identity.models import LoginFailures, User
from stead.identity.users import lock_seconds
from stead.settings import Settings
from tests.support.factories import USER_PASSWORD, assert_problem, login, new_user

MAX_FAILURES = 3


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings that lock a user after three failed logins."""
    return Settings(
        data_dir=tmp_path / "data", database_url=db_url, login_max_failures=MAX_FAILURES
    )


def _events(factory: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with factory() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def _grant(http: TestClient, username: str, password: str) -> object:
    return http.post(
        "/oauth/dpc/token",
        data={"grant_type": "password", "username": username, "password": password},
    )


def test_login_and_password_grant(http: TestClient, session_factory: sessionmaker[Session]) -> None:
    user_id, email = new_user(session_factory, email="Ada.Lovelace@Example.com")
    resp = http.post("/v1/auth/login", json={"email": email, "password": USER_PASSWORD})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800
    assert resp.headers["cache-control"] == "no-store"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert http.get("/v1/projects", headers=headers).json()["total"] == 0
    # Emails compare case-insensitively; the DPC mount serves the same route.
    assert (
        http.post(
            "/dpc/v1/auth/login", json={"email": email.upper(), "password": USER_PASSWORD}
        ).status_code
        == 200
    )

    grant = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": email, "password": USER_PASSWORD},
    )
    assert grant.status_code == 200, grant.text
    token = grant.json()["access_token"]
    assert http.get("/v1/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    logged_in = _events(session_factory, "user.logged_in")
    assert len(logged_in) == 3
    assert {(e.actor_type, e.actor_id, e.actor_name) for e in logged_in} == {
        ("user", user_id, email)
    }


def test_wrong_password_and_unknown_email(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory)
    wrong = http.post("/v1/auth/login", json={"email": email, "password": "not the password"})
    assert assert_problem(wrong, 401)["detail"] == "Invalid email or password"
    unknown = http.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": USER_PASSWORD}
    )
    assert assert_problem(unknown, 401)["detail"] == "Invalid email or password"
    grant = _grant(http, email, "not the password")
    assert grant.status_code == 400 and grant.json()["error"] == "invalid_grant"  # type: ignore[attr-defined]
    missing = http.post("/oauth/dpc/token", data={"grant_type": "password", "username": email})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    # Two failures of the known user are audited; the unknown email has no user to audit.
    failed = _events(session_factory, "user.login_failed")
    assert [e.details["failedLogins"] for e in failed] == [1, 2]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": USER_PASSWORD}, "email"),
        ({"email": "ada@example.com"}, "password"),
        ({"email": "not an email", "password": USER_PASSWORD}, "email"),
        ({"email": "ada@example.com", "password": USER_PASSWORD, "pasword": "x"}, "pasword"),
    ],
)
def test_login_validation(
    http: TestClient, session_factory: sessionmaker[Session], body: dict[str, str], field: str
) -> None:
    assert_problem(http.post("/v1/auth/login", json=body), 400, field)
    assert _events(session_factory, "user.login_failed") == []


def _from(http: TestClient, address: str) -> TestClient:
    """A client of the same app whose requests come from ``address``."""
    return TestClient(http.app, raise_server_exceptions=False, client=(address, 40000))


def _counter(factory: sessionmaker[Session], email: str, source: str) -> LoginFailures:
    with factory() as session:
        row = session.scalars(
            select(LoginFailures).where(
                LoginFailures.email_key == email.lower(), LoginFailures.source == source
            )
        ).one()
        session.expunge(row)
        return row


def test_lockout_per_email_and_source_with_back_off(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    user_id, email = new_user(session_factory)
    attacker = _from(http, "203.0.113.7")
    for attempt in range(MAX_FAILURES):
        resp = attacker.post(
            "/v1/auth/login",
            json={"email": email, "password": f"wrong {attempt}"},
            headers={"X-Request-ID": f"fail-{attempt}"},
        )
        assert_problem(resp, 401)
    # The refused requests changed nothing else, but their failures were committed.
    failed = _events(session_factory, "user.login_failed")
    assert [e.request_id for e in failed] == ["fail-0", "fail-1", "fail-2"]
    assert all(e.target_id == user_id and e.source_ip == "203.0.113.7" for e in failed)
    (locked,) = _events(session_factory, "user.locked")
    assert locked.request_id == "fail-2"

    # Locked from that address: even the right password is refused, on both ways in.
    resp = attacker.post("/v1/auth/login", json={"email": email, "password": USER_PASSWORD})
    detail = assert_problem(resp, 401)["detail"]
    assert "try again in" in detail and 1 <= int(resp.headers["retry-after"]) <= 60
    grant = attacker.post(
        "/oauth/dpc/token",
        data={"grant_type": "password", "username": email, "password": USER_PASSWORD},
    )
    assert grant.status_code == 400 and "try again" in grant.json()["error_description"]
    # The user, from their own address, is not locked out by someone else's failures.
    login(http, email)

    # Each failure after the lock doubles it: 60, 120, 240 s ... up to login_lock_seconds.
    first = _counter(session_factory, email, "203.0.113.7")
    assert first.failures == MAX_FAILURES and first.locked_until is not None
    with session_scope(session_factory, write=True) as session:
        session.execute(update(LoginFailures).values(locked_until=utcnow() - timedelta(seconds=1)))
    attacker.post("/v1/auth/login", json={"email": email, "password": "wrong again"})
    second = _counter(session_factory, email, "203.0.113.7")
    assert second.failures == MAX_FAILURES + 1 and second.locked_until is not None
    assert 110 <= (second.locked_until - utcnow()).total_seconds() <= 120
    settings = Settings(login_max_failures=MAX_FAILURES)
    assert [lock_seconds(n, settings) for n in range(1, 10)] == [
        0,
        0,
        60,
        120,
        240,
        480,
        900,
        900,
        900,
    ]

    # Once the lock has passed, the right password works and the pair starts again.
    with session_scope(session_factory, write=True) as session:
        session.execute(update(LoginFailures).values(locked_until=utcnow() - timedelta(seconds=1)))
    login(attacker, email)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(LoginFailures)) == 0


def test_the_answers_do_not_tell_which_emails_exist(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, known = new_user(session_factory)
    unknown = "nobody-here@example.com"
    answers: dict[str, list[tuple[int, str]]] = {}
    for email in (known, unknown):
        answers[email] = []
        for _ in range(MAX_FAILURES + 1):
            resp = http.post("/v1/auth/login", json={"email": email, "password": "wrong pass"})
            answers[email].append((resp.status_code, resp.json()["detail"].split(" in ")[0]))
    assert answers[known] == answers[unknown]
    assert answers[known][-1][1].startswith("Too many failed logins")


def test_password_never_stored_shown_or_logged(
    http: TestClient,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    canary = "CANARY-pass-9f8e7d6c5b4a"
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    _, email = new_user(session_factory, password=canary)
    ok = http.post("/v1/auth/login", json={"email": email, "password": canary})
    wrong = http.post("/v1/auth/login", json={"email": email, "password": canary + "x"})
    grant = _grant(http, email, canary + "y")
    for resp in (ok, wrong, grant):
        assert canary not in resp.text  # type: ignore[attr-defined]
    assert canary not in caplog.text
    with session_factory() as session:
        for table in ("users", "audit_events"):
            rows = session.execute(text(f"SELECT * FROM {table}")).all()
            assert rows and canary not in repr(rows)
        hashed = session.scalars(select(User.password_hash)).one()
        assert hashed.startswith("$argon2id$")


def test_admin_create_user_command(db_url: str, tmp_path: Path, http: TestClient) -> None:
    stead = Path(sys.executable).with_name("stead")
    env = {**os.environ, "STEAD_DATABASE_URL": db_url, "STEAD_DATA_DIR": str(tmp_path / "cli")}

    def run(*args: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(stead), "admin", "create-user", *args, "--password-stdin"],
            env=env,
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = run("--email", "root@example.com", "--role", "super_admin", password=USER_PASSWORD)
    assert made.returncode == 0, made.stderr
    assert USER_PASSWORD not in made.stdout + made.stderr
    headers = login(http, "root@example.com")
    assert http.get("/v1/api-clients", headers=headers).status_code == 200  # a Super Admin
    taken = run("--email", "ROOT@example.com", password=USER_PASSWORD)
    assert taken.returncode == 2 and "already exists" in taken.stderr
    short = run("--email", "short@example.com", password="short")
    assert short.returncode == 2 and "12-1024" in short.stderr
    bad = run("--email", "not-an-email", password=USER_PASSWORD)
    assert bad.returncode == 2 and "email" in bad.stderr
