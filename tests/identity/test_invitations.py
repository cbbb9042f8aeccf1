"""Invitations (docs/api.md, People): the lifecycle (accept, expiry, reuse, an existing user, an
inviter without rights), mail over a real SMTP server, and the token kept out of storage."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.audit.models import AuditEvent
from stead.db import session_scope, utcnow
from stead.identity.models import Invitation, ProjectMember, User
from stead.settings import Settings
from tests.support.factories import (
    USER_PASSWORD,
    assert_problem,
    auth,
    login,
    member_auth,
    new_user,
    user_auth,
)
from tests.support.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server,
    smtp_servers,
)

NEW_PASSWORD = "a new password of some length"


@pytest.fixture
def project_id(http: TestClient, admin: dict[str, str]) -> str:
    resp = http.post(
        "/v1/projects",
        json={"name": "people", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
        headers=admin,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


@pytest.fixture
def owner(
    http: TestClient, session_factory: sessionmaker[Session], project_id: str
) -> dict[str, str]:
    """Headers of a user who is an account Admin and the project's OWNER (so may take an
    invitation's accept URL)."""
    return user_auth(http, session_factory, project_id, "OWNER", role="ADMIN")


@pytest.fixture
def member_owner(
    http: TestClient, session_factory: sessionmaker[Session], project_id: str
) -> dict[str, str]:
    """Headers of a user who is the project's OWNER but only a MEMBER of the account."""
    return user_auth(http, session_factory, project_id, "OWNER")


def _invite(http: TestClient, headers: dict[str, str], project_id: str, **body: Any) -> Any:
    body = {"email": "new@example.com", "projectRole": "CONTRIBUTOR", **body}
    body.setdefault("returnAcceptUrl", True)
    return http.post(f"/v1/projects/{project_id}/invitations", json=body, headers=headers)


def _token(accept_url: str) -> str:
    match = re.fullmatch(
        r"http://127\.0\.0\.1:8080/console/invitations/([A-Za-z0-9_-]+)", accept_url
    )
    assert match, accept_url
    return match.group(1)


def _accept(
    http: TestClient, token: str, headers: dict[str, str] | None = None, **body: Any
) -> Any:
    return http.post("/v1/invitations/accept", json={"token": token, **body}, headers=headers)


def _count(factory: sessionmaker[Session], model: Any, *where: Any) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_invite_and_accept_creates_the_user(
    http: TestClient,
    session_factory: sessionmaker[Session],
    project_id: str,
    owner: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    resp = _invite(
        http, owner, project_id, email="New.Person@example.com", projectRole="contributor"
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["email"] == "New.Person@example.com" and created["projectRole"] == "CONTRIBUTOR"
    assert created["mailSent"] is False and created["acceptedAt"] is None
    assert resp.headers["location"] == f"/v1/projects/{project_id}/invitations"
    token = _token(created["acceptUrl"])

    listed = http.get(f"/v1/projects/{project_id}/invitations", headers=owner).json()
    assert listed["total"] == 1
    assert token not in str(listed) and "acceptUrl" not in listed["results"][0]

    accepted = _accept(http, token, password=NEW_PASSWORD, displayName="New Person")
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["projectId"] == project_id and body["projectRole"] == "CONTRIBUTOR"
    assert body["userCreated"] is True and body["email"] == "New.Person@example.com"

    headers = login(http, "new.person@EXAMPLE.com", NEW_PASSWORD)
    project = http.get(f"/v1/projects/{project_id}", headers=headers)
    assert project.status_code == 200
    members = http.get(f"/v1/projects/{project_id}/members", headers=headers).json()
    assert {(m["name"], m["projectRole"]) for m in members["results"]} >= {
        ("New.Person@example.com", "CONTRIBUTOR")
    }
    with session_factory() as session:
        user = session.scalars(select(User).where(User.id == body["userId"])).one()
        assert user.display_name == "New Person" and user.role == "MEMBER"
        actions = [
            (e.action, e.actor_type)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
            if e.action.startswith(("invitation.", "user.created"))
        ]
        # The token is stored only as a hash; no row, no log line holds it.
        for table in ("invitations", "audit_events", "users"):
            assert token not in repr(session.execute(text(f"SELECT * FROM {table}")).all())
    assert actions == [
        ("invitation.created", "user"),
        ("user.created", "user"),
        ("invitation.accepted", "user"),
    ]
    # The server's log lines (the test's own HTTP client logs its URLs too).
    server_log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("stead"))
    assert "/v1/invitations/" in server_log and token not in server_log


def test_a_used_token_cannot_be_reused(
    http: TestClient, session_factory: sessionmaker[Session], project_id: str, owner: dict[str, str]
) -> None:
    token = _token(_invite(http, owner, project_id).json()["acceptUrl"])
    first = _accept(http, token, password=NEW_PASSWORD)
    assert first.status_code == 200
    members = _count(session_factory, ProjectMember, ProjectMember.project_id == project_id)
    again = _accept(http, token, password="another password!!")
    assert "used already" in assert_problem(again, 409)["detail"]
    assert _count(session_factory, ProjectMember, ProjectMember.project_id == project_id) == members
    login(http, "new@example.com", NEW_PASSWORD)  # the password did not change


def test_an_expired_invitation_is_refused(
    http: TestClient, session_factory: sessionmaker[Session], project_id: str, owner: dict[str, str]
) -> None:
    created = _invite(http, owner, project_id).json()
    with session_scope(session_factory, write=True) as session:
        invitation = session.get(Invitation, created["id"])
        assert invitation is not None
        invitation.expires_at = utcnow() - timedelta(seconds=1)
    token = _token(created["acceptUrl"])
    resp = _accept(http, token, password=NEW_PASSWORD)
    assert "expired" in assert_problem(resp, 409)["detail"]
    assert _count(session_factory, User, User.email_key == "new@example.com") == 0
    # The expired invitation no longer blocks a new one.
    assert _invite(http, owner, project_id).status_code == 201


def test_an_existing_user_is_linked(
    http: TestClient, session_factory: sessionmaker[Session], project_id: str, owner: dict[str, str]
) -> None:
    user_id, email = new_user(session_factory, email="known@example.com")
    headers = login(http, email)
    assert_problem(http.get(f"/v1/projects/{project_id}", headers=headers), 404)
    token = _token(
        _invite(http, owner, project_id, email="KNOWN@example.com", projectRole="VIEWER").json()[
            "acceptUrl"
        ]
    )

    with_password = _accept(http, token, password=NEW_PASSWORD)
    assert_problem(with_password, 400, "password")
    assert_problem(http.get(f"/v1/projects/{project_id}", headers=headers), 404)

    # The token alone does not link an account: the account's own login does.
    assert_problem(_accept(http, token), 401)
    stranger = user_auth(http, session_factory)
    assert_problem(_accept(http, token, stranger), 403)
    assert_problem(http.get(f"/v1/projects/{project_id}", headers=headers), 404)
    resp = _accept(http, token, headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["userId"] == user_id and resp.json()["userCreated"] is False
    assert http.get(f"/v1/projects/{project_id}", headers=headers).status_code == 200
    assert_problem(http.delete(f"/v1/projects/{project_id}", headers=headers), 403)
    login(http, email, USER_PASSWORD)  # the user's password is untouched
    assert _count(session_factory, User, User.email_key == "known@example.com") == 1


def test_an_inviter_without_rights_is_refused(
    http: TestClient, session_factory: sessionmaker[Session], project_id: str, owner: dict[str, str]
) -> None:
    refused = {
        "contributor": (user_auth(http, session_factory, project_id, "CONTRIBUTOR"), 403),
        "viewer": (user_auth(http, session_factory, project_id, "VIEWER"), 403),
        "outsider user": (user_auth(http, session_factory), 404),
        "member client": (member_auth(http, session_factory, project_id, "VIEWER"), 403),
        "admin client, not a member": (auth(http, session_factory, "ADMIN"), 404),
    }
    for who, (headers, status) in refused.items():
        body = assert_problem(_invite(http, headers, project_id), status)
        assert body["status"] == status, who
    assert http.get(f"/v1/projects/{project_id}/invitations", headers=owner).json()["total"] == 0
    with session_factory() as session:
        denied = list(
            session.scalars(select(AuditEvent).where(AuditEvent.action == "access.denied"))
        )
    # Each 403 is recorded (404s reveal nothing and are not).
    assert len(denied) == 3
    assert {e.details["permission"] for e in denied} == {"member.manage"}
    assert {e.project_id for e in denied} == {project_id}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "no-at-sign"}, "email"),
        ({"email": "two@@example.com"}, "email"),
        ({"email": "sp ace@example.com"}, "email"),
        ({"projectRole": "ADMIN"}, "projectRole"),
        ({"projectRole": None}, "projectRole"),
        ({"role": "OWNER"}, "role"),
    ],
)
def test_invitation_validation(
    http: TestClient,
    session_factory: sessionmaker[Session],
    project_id: str,
    owner: dict[str, str],
    body: dict[str, Any],
    field: str,
) -> None:
    assert_problem(_invite(http, owner, project_id, **body), 400, field)
    assert _count(session_factory, Invitation) == 0


def test_duplicates_and_unknown_tokens(
    http: TestClient, session_factory: sessionmaker[Session], project_id: str, owner: dict[str, str]
) -> None:
    first = _invite(http, owner, project_id).json()
    again = assert_problem(_invite(http, owner, project_id, email="NEW@example.com"), 409, "email")
    assert again["existingId"] == first["id"]
    _, member_email = new_user(session_factory, project_id=project_id, project_role="VIEWER")
    assert_problem(_invite(http, owner, project_id, email=member_email), 409, "email")
    assert _count(session_factory, Invitation) == 1

    assert_problem(_accept(http, "nope", password=NEW_PASSWORD), 404)
    token = _token(first["acceptUrl"])
    assert_problem(_accept(http, token), 400, "password")
    short = _accept(http, token, password="short")
    assert_problem(short, 400, "password")
    assert _count(session_factory, User, User.email_key == "new@example.com") == 0


def test_revoke_an_invitation(
    http: TestClient, session_factory: sessionmaker[Session], project_id: str, owner: dict[str, str]
) -> None:
    pending = _invite(http, owner, project_id).json()
    used = _invite(http, owner, project_id, email="used@example.com").json()
    _accept(http, _token(used["acceptUrl"]), password=NEW_PASSWORD)
    base = f"/v1/projects/{project_id}/invitations"
    assert http.delete(f"{base}/{pending['id']}", headers=owner).status_code == 204
    gone = _accept(http, _token(pending["acceptUrl"]), password=NEW_PASSWORD)
    assert_problem(gone, 404)
    assert_problem(http.delete(f"{base}/{used['id']}", headers=owner), 409)
    assert_problem(http.delete(f"{base}/{pending['id']}", headers=owner), 404)
    assert_problem(http.delete(f"{base}/not-a-uuid", headers=owner), 400, "invitationId")


@pytest.fixture
def mail_http(settings: Settings, smtp_server: SmtpServer) -> Iterator[TestClient]:  # noqa: F811
    """The app with invitation mail going to the local SMTP server."""
    smtp_server.reset()
    app = create_app(
        settings.model_copy(
            update={
                **smtp_server.settings(),
                "smtp_from": "stead@example.org",
                "public_url": "https://stead.example.org/",
            }
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_invitation_mail_over_smtp(
    http: TestClient,
    mail_http: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
    session_factory: sessionmaker[Session],
    project_id: str,
    owner: dict[str, str],
) -> None:
    resp = _invite(
        mail_http,
        owner,
        project_id,
        email="mailed@example.com",
        projectRole="VIEWER",
        returnAcceptUrl=False,
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["mailSent"] is True and resp.json()["acceptUrl"] is None
    (message,) = smtp_server.mailbox.messages
    assert message["To"] == "mailed@example.com" and message["From"] == "stead@example.org"
    assert "people" in message["Subject"]
    content = message.get_content()
    link = r"https://stead\.example\.org/console/invitations/([A-Za-z0-9_-]+)\s"
    match = re.search(link, content)
    assert match, content
    assert "VIEWER" in content
    # The mail sends people to the console page, not to an API call with a JSON body.
    assert "POST" not in content and "JSON" not in content and "/v1/" not in content
    accepted = _accept(mail_http, match.group(1), password=NEW_PASSWORD)
    assert accepted.status_code == 200 and accepted.json()["projectRole"] == "VIEWER"

    # A mail server that refuses the message: 502, and no invitation is left behind.
    smtp_server.mailbox.refuse = True
    failed = _invite(
        mail_http, owner, project_id, email="bounced@example.com", returnAcceptUrl=False
    )
    assert_problem(failed, 502)
    assert _count(session_factory, Invitation, Invitation.email_key == "bounced@example.com") == 0


def _mail_app(settings: Settings, **changes: object) -> TestClient:
    return TestClient(
        create_app(settings.model_copy(update=changes)), raise_server_exceptions=False
    )


@pytest.mark.parametrize("security", ["tls", "none"])
def test_invitation_mail_with_implicit_tls_or_explicitly_none(
    settings: Settings,
    smtp_servers: dict[str, SmtpServer],  # noqa: F811
    project_id: str,
    owner: dict[str, str],
    security: str,
) -> None:
    server = smtp_servers[security]
    server.reset()
    with _mail_app(settings, **server.settings()) as client:
        resp = _invite(
            client, owner, project_id, email=f"{security}@example.com", returnAcceptUrl=False
        )
    assert resp.status_code == 201, resp.text
    (message,) = server.mailbox.messages
    assert message["To"] == f"{security}@example.com"


def test_mail_is_not_sent_in_clear_by_default(
    settings: Settings,
    smtp_servers: dict[str, SmtpServer],  # noqa: F811
    session_factory: sessionmaker[Session],
    project_id: str,
    owner: dict[str, str],
) -> None:
    plain = smtp_servers["none"]
    plain.reset()
    assert Settings().smtp_security == "starttls"
    # A server that offers no STARTTLS: refused, nothing sent, nothing stored.
    with _mail_app(settings, smtp_host=plain.host, smtp_port=plain.port) as client:
        resp = _invite(client, owner, project_id, email="clear@example.com", returnAcceptUrl=False)
        assert "STARTTLS" in assert_problem(resp, 502)["detail"]
    assert plain.mailbox.messages == []
    assert _count(session_factory, Invitation, Invitation.email_key == "clear@example.com") == 0
    # STARTTLS against a certificate the server does not trust: refused too.
    tls = smtp_servers["starttls"]
    with _mail_app(settings, smtp_host=tls.host, smtp_port=tls.port) as client:
        assert_problem(
            _invite(
                client, owner, project_id, email="untrusted@example.com", returnAcceptUrl=False
            ),
            502,
        )
    assert tls.mailbox.messages == [] or all(
        m["To"] != "untrusted@example.com" for m in tls.mailbox.messages
    )


def test_a_project_owner_never_gets_the_accept_url(
    http: TestClient,
    mail_http: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
    session_factory: sessionmaker[Session],
    project_id: str,
    member_owner: dict[str, str],
) -> None:
    """An Owner who could read the link could accept it and own an account under the
    invitee's email, on which that person's later invitations would land."""
    victim = "victim@example.com"
    no_mail = _invite(http, member_owner, project_id, email=victim, returnAcceptUrl=False)
    assert_problem(no_mail, 409, "returnAcceptUrl")
    asked = _invite(http, member_owner, project_id, email=victim)
    assert assert_problem(asked, 403)["detail"].startswith("Only an account Admin")
    assert _count(session_factory, Invitation) == 0
    mailed = _invite(mail_http, member_owner, project_id, email=victim, returnAcceptUrl=False)
    assert mailed.status_code == 201, mailed.text
    assert mailed.json()["acceptUrl"] is None and mailed.json()["mailSent"] is True
    assert "/console/invitations/" not in mailed.text
    (message,) = smtp_server.mailbox.messages
    assert message["To"] == victim


def test_an_invitation_token_never_reaches_a_log_line(
    http: TestClient, project_id: str, owner: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    token = _token(_invite(http, owner, project_id).json()["acceptUrl"])
    assert_problem(_accept(http, token, password="short"), 400, "password")
    assert_problem(_accept(http, token, password=NEW_PASSWORD, extra="x"), 400, "extra")
    assert _accept(http, token, password=NEW_PASSWORD).status_code == 200
    assert_problem(_accept(http, token, password=NEW_PASSWORD), 409)
    server_log = "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name.startswith("stead")
    )
    assert "/v1/invitations/accept" in server_log
    assert token not in server_log
