"""The group mapping (``STEAD_OIDC_GROUP_ROLES``): parsing and checking it at startup, and
applying it to a user (account role, managed project memberships, audit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.console.sessions import ConsoleSession, start_session
from stead.identity.group_roles import apply_group_roles, parse_group_roles
from stead.identity.models import ProjectMember, User
from stead.identity.service import user_actor
from stead.settings import Settings
from tests.support.factories import example, new_user
from tests.support.postgres import free_port
from tests.support.processes import server_process

MAPPING = {
    "stead-admins": "admin",
    "everyone": "MEMBER",
    "sales": {"Sales": "CONTRIBUTOR"},
    "sales-leads": {"sales": "OWNER", "Forecasts": "viewer"},
    "planning": {"Forecasts": "CONTRIBUTOR", "Not a project yet": "OWNER"},
}


def test_parse_reads_account_and_project_roles() -> None:
    mapping = parse_group_roles(json.dumps(MAPPING))
    assert dict(mapping.account_roles) == {"stead-admins": "ADMIN", "everyone": "MEMBER"}
    assert dict(mapping.project_roles["sales-leads"]) == {"sales": "OWNER", "forecasts": "VIEWER"}
    assert mapping.managed_projects == {"sales", "forecasts", "not a project yet"}
    assert mapping.account_role(["everyone", "stead-admins", "other"]) == "ADMIN"
    assert mapping.account_role(["sales", "other"]) is None
    assert mapping.project_roles_for(["sales", "sales-leads", "planning"]) == {
        "sales": "OWNER",
        "forecasts": "CONTRIBUTOR",
        "not a project yet": "OWNER",
    }
    assert not parse_group_roles("") and not parse_group_roles("  ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["ADMIN"]', "must be a JSON object"),
        ('{"g": "OWNER"}', "group 'g': unknown account role 'OWNER'"),
        ('{"g": {"P": "ADMIN"}}', "group 'g', project 'P': unknown project role 'ADMIN'"),
        ('{"g": {"P": 1}}', "the project role must be a string"),
        ('{"g": 3}', "group 'g' must map to an account role or to an object"),
        ('{"": "MEMBER"}', "a group name is empty"),
        ('{"g": {" ": "VIEWER"}}', "names an empty project"),
        ('{"g": {"P": "VIEWER", "p": "OWNER"}}', "the project is named twice"),
    ],
)
def test_a_bad_mapping_is_a_startup_error_naming_the_setting(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^STEAD_OIDC_GROUP_ROLES: ") as parsed:
        parse_group_roles(text)
    assert message in str(parsed.value)
    with pytest.raises(ValidationError, match="STEAD_OIDC_GROUP_ROLES") as loaded:
        Settings(oidc_group_roles=text)
    assert message in str(loaded.value)


SSO = {
    "oidc_issuer": "https://idp.example.com",
    "oidc_client_id": "stead",
    "oidc_client_secret": "s3cret",
}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"oidc_issuer": "https://idp.example.com"},
            "STEAD_OIDC_CLIENT_ID, STEAD_OIDC_CLIENT_SECRET",
        ),
        ({**SSO, "oidc_client_secret": ""}, "needs STEAD_OIDC_CLIENT_SECRET as well"),
        ({"password_login": "super-admins"}, "STEAD_PASSWORD_LOGIN=super-admins needs single"),
        ({"password_login": "nobody"}, "password_login"),
        ({**SSO, "oidc_issuer": "http://idp.example.com", "environment": "production"}, "https"),
        ({**SSO, "oidc_issuer": "idp.example.com"}, "STEAD_OIDC_ISSUER: not a URL"),
        ({**SSO, "oidc_issuer": "https://idp.example.com/?tenant=1"}, "no query"),
        ({**SSO, "oidc_scopes": "openid profile"}, "STEAD_OIDC_SCOPES"),
        ({**SSO, "oidc_allowed_domains": "example.com, @corp.com"}, "'@corp.com' is not a"),
    ],
)
def test_sso_settings_are_checked_at_startup(given: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**given)  # type: ignore[arg-type]


def test_sso_settings_that_work() -> None:
    assert not Settings().sso_enabled
    on = Settings(
        **SSO,  # type: ignore[arg-type]
        oidc_allowed_domains="Example.com, corp.example.org",
        password_login="super-admins",
        oidc_group_roles=json.dumps(MAPPING),
    )
    assert on.sso_enabled and on.password_login == "super-admins"
    assert on.oidc_allowed_domain_list == ["example.com", "corp.example.org"]
    assert on.group_roles.account_roles["stead-admins"] == "ADMIN"
    # A lab's provider on this machine speaks plain HTTP (development only).
    assert Settings(**{**SSO, "oidc_issuer": "http://127.0.0.1:9000"}).sso_enabled  # type: ignore[arg-type]


def test_client_secret_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "oidc"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("STEAD_OIDC_CLIENT_SECRET_FILE", str(secret))
    settings = Settings(oidc_issuer="https://idp.example.com", oidc_client_id="stead")
    assert settings.oidc_client_secret.get_secret_value() == "from-a-file"
    assert "from-a-file" not in repr(settings)


def _project(http: TestClient, admin: dict[str, str], name: str) -> str:
    body = example("01-create-project-redshift")
    body["name"] = name
    resp = http.post("/v1/projects", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


def _roles(session: Session, user_id: str) -> dict[str, str]:
    rows = session.scalars(
        select(ProjectMember).where(
            ProjectMember.principal_type == "user", ProjectMember.principal_id == user_id
        )
    )
    return {m.project_id: m.role for m in rows}


def _events(session: Session, since: int) -> list[tuple[str, str | None, dict[str, object]]]:
    return [
        (e.action, e.project_id, e.details or {})
        for e in session.scalars(
            select(AuditEvent).where(AuditEvent.id > since).order_by(AuditEvent.id)
        )
    ]


def _last_event(session: Session) -> int:
    return max(session.scalars(select(AuditEvent.id)), default=0)


def test_apply_sets_account_role_and_managed_memberships(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    sales, forecasts, by_hand = (
        _project(http, admin, name) for name in ("Sales", "Forecasts", "By hand")
    )
    # Another Owner in each managed project, so that the user's memberships may end.
    for project in (sales, forecasts):
        new_user(session_factory, project_id=project, project_role="OWNER")
    user_id, _ = new_user(session_factory, project_id=forecasts, project_role="CONTRIBUTOR")
    with session_factory.begin() as session:
        session.add(
            ProjectMember(
                project_id=by_hand, principal_type="user", principal_id=user_id, role="VIEWER"
            )
        )
        start_session(session, user=session.get_one(User, user_id), user_agent="t", address=None)
    mapping = parse_group_roles(json.dumps(MAPPING))

    with session_factory.begin() as session:
        user = session.get_one(User, user_id)
        version, start = user.token_version, _last_event(session)
        groups = ["everyone", "stead-admins", "sales", "sales-leads", "unmapped"]
        apply_group_roles(
            session, user=user, groups=groups, mapping=mapping, actor=user_actor(user)
        )
    with session_factory() as session:
        user = session.get_one(User, user_id)
        assert user.role == "ADMIN" and user.token_version == version + 1
        assert (
            session.scalars(select(ConsoleSession).where(ConsoleSession.user_id == user_id)).all()
            == []
        )
        assert _roles(session, user_id) == {sales: "OWNER", forecasts: "VIEWER", by_hand: "VIEWER"}
        events = _events(session, start)
    assert [(action, project) for action, project, _ in events] == [
        ("user.role_changed", None),
        ("member.added", sales),
        ("member.role_changed", forecasts),
    ]
    assert events[0][2] == {"email": user.email, "from": "MEMBER", "to": "ADMIN", "via": "groups"}
    assert events[2][2] == {"from": "CONTRIBUTOR", "to": "VIEWER"}

    # Out of the leads' group and no group mapping an account role: the account role stays,
    # Forecasts ends, Sales drops to the role of the group left; By hand is not the mapping's.
    with session_factory.begin() as session:
        user = session.get_one(User, user_id)
        version, start = user.token_version, _last_event(session)
        apply_group_roles(
            session, user=user, groups=["sales"], mapping=mapping, actor=user_actor(user)
        )
    with session_factory() as session:
        user = session.get_one(User, user_id)
        assert user.role == "ADMIN" and user.token_version == version
        assert _roles(session, user_id) == {sales: "CONTRIBUTOR", by_hand: "VIEWER"}
        assert [(a, p) for a, p, _ in _events(session, start)] == [
            ("member.role_changed", sales),
            ("member.removed", forecasts),
        ]

    # The same groups again change nothing and write nothing.
    with session_factory.begin() as session:
        user = session.get_one(User, user_id)
        start = _last_event(session)
        apply_group_roles(
            session, user=user, groups=["sales"], mapping=mapping, actor=user_actor(user)
        )
    with session_factory() as session:
        assert _events(session, start) == []
        assert _roles(session, user_id) == {sales: "CONTRIBUTOR", by_hand: "VIEWER"}


def test_apply_keeps_a_projects_last_owner(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    sales = _project(http, admin, "Sales")
    user_id, _ = new_user(session_factory, project_id=sales, project_role="OWNER")
    mapping = parse_group_roles(json.dumps({"sales": {"Sales": "VIEWER"}, "x": {"Sales": "OWNER"}}))
    for groups in (["sales"], []):
        with session_factory.begin() as session:
            user = session.get_one(User, user_id)
            start = _last_event(session)
            apply_group_roles(
                session, user=user, groups=groups, mapping=mapping, actor=user_actor(user)
            )
        with session_factory() as session:
            assert _roles(session, user_id) == {sales: "OWNER"}
            [(action, project, details)] = _events(session, start)
            assert (action, project) == ("member.sync_skipped", sales)
            assert details["wanted"] == (groups and "VIEWER" or None)
            assert "last Owner" in str(details["reason"])


@pytest.mark.process
def test_serve_refuses_bad_sso_settings_in_one_line_without_the_secret(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    env = {
        **clean,
        "STEAD_DATA_DIR": str(tmp_path),
        "STEAD_OIDC_ISSUER": "https://idp.example.com",
        "STEAD_OIDC_CLIENT_SECRET": "canary-oidc-secret",
        "STEAD_OIDC_GROUP_ROLES": '{"admins": "ROOT"}',
        "STEAD_PASSWORD_LOGIN": "sometimes",
    }
    result = subprocess.run(
        [sys.executable, "-m", "stead.cli.main", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: STEAD_OIDC_GROUP_ROLES: group 'admins': unknown account role 'ROOT' (one of "
        "SUPER_ADMIN, ADMIN, MEMBER); STEAD_PASSWORD_LOGIN: Input should be 'all' or "
        "'super-admins'"
    ]
    assert "canary-oidc-secret" not in result.stderr + result.stdout


def test_apply_keeps_the_last_super_admin(session_factory: sessionmaker[Session]) -> None:
    mapping = parse_group_roles(json.dumps({"stead-admins": "ADMIN"}))
    root_id, _ = new_user(session_factory, role="SUPER_ADMIN")
    with session_factory.begin() as session:
        root = session.get_one(User, root_id)
        start = _last_event(session)
        apply_group_roles(
            session, user=root, groups=["stead-admins"], mapping=mapping, actor=user_actor(root)
        )
    with session_factory() as session:
        assert session.get_one(User, root_id).role == "SUPER_ADMIN"
        [(action, _, details)] = _events(session, start)
        assert (action, details["wanted"]) == ("user.role_sync_skipped", "ADMIN")
    # With another Super Admin, the mapping decides.
    new_user(session_factory, role="SUPER_ADMIN")
    with session_factory.begin() as session:
        root = session.get_one(User, root_id)
        apply_group_roles(
            session, user=root, groups=["stead-admins"], mapping=mapping, actor=user_actor(root)
        )
    with session_factory() as session:
        assert session.get_one(User, root_id).role == "ADMIN"


@pytest.mark.process
def test_serve_warns_at_start_when_the_outbound_policy_refuses_the_issuer(
    tmp_path: Path,
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    env = {
        **clean,
        "STEAD_DATA_DIR": str(tmp_path),
        "STEAD_OIDC_ISSUER": "http://127.0.0.1:9",
        "STEAD_OIDC_CLIENT_ID": "stead",
        "STEAD_OIDC_CLIENT_SECRET": "canary-oidc-secret",
    }
    port = free_port()
    log = tmp_path / "serve.log"
    with server_process(
        [sys.executable, "-m", "stead.cli.main", "serve", "--port", str(port)],
        ready_url=f"http://127.0.0.1:{port}/healthz",
        log=log,
        env=env,
    ):
        pass
    [event] = [
        json.loads(line) for line in log.read_text().splitlines() if "single sign-on" in line
    ]
    assert event["level"] == "warning", event
    assert "127.0.0.1" in event["event"] and "loopback" in event["event"], event
    assert "canary-oidc-secret" not in log.read_text()
