"""Single sign-on against a test-owned OpenID Connect provider (``tests/support/oidc_fake.py``):
who may sign in and as whom, every refusal (a clear page, audited, nothing created), the
group mapping at login, the outbound policy, and that no secret, code or token is kept, logged
or shown. Real browsers against real providers: ``tests/console/test_sso.py``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from joserfc.jwk import RSAKey
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.console.sessions import ConsoleSession
from stead.db import session_scope
from stead.identity.models import (
    Invitation,
    ProjectMember,
    SsoIdentity,
    SsoRequest,
    User,
)
from stead.identity.service import email_key, token_hash
from stead.scim.models import ScimUser
from stead.settings import Settings
from tests.support.factories import USER_PASSWORD, example, new_user
from tests.support.oidc_fake import CLIENT_ID, CLIENT_SECRET, Authorization, OidcFake
from tests.support.outbound import LOCAL

CODE = "canary-authorization-code-91c2"
GROUP_ROLES = {"stead-admins": "ADMIN", "sales": {"Sales": "CONTRIBUTOR"}}


@pytest.fixture
def idp() -> Iterator[OidcFake]:
    fake = OidcFake()
    fake.claims = {"email": "ada@example.com", "email_verified": True, "name": "Ada L"}
    yield fake
    fake.stop()


@pytest.fixture
def sso_overrides() -> dict[str, Any]:
    """Settings a test changes (parametrize it to change them)."""
    return {}


@pytest.fixture
def settings(db_url: str, tmp_path: Path, idp: OidcFake, sso_overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": db_url,
        "github_api_url": "http://127.0.0.1:9/unused",
        **LOCAL,
        "oidc_issuer": idp.url,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_allowed_domains": "example.com",
        "oidc_display_name": "Example SSO",
        "oidc_groups_claim": "groups",
        "oidc_group_roles": json.dumps(GROUP_ROLES),
        **sso_overrides,
    }
    return Settings(**values)


def start(http: TestClient, idp: OidcFake, next_url: str = "/console/projects") -> Authorization:
    """The browser asks to sign in by SSO; return what Stead sent it to the provider with."""
    resp = http.get("/console/sso/login", params={"next": next_url}, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    assert "stead_sso" in resp.headers["set-cookie"]
    return idp.authorize(resp.headers["location"])


def back(http: TestClient, auth: Authorization, **params: str) -> Response:
    """The browser comes back from the provider with a code (or ``params``)."""
    query = {"state": auth.state, "code": CODE, **params}
    return http.get("/console/sso/callback", params=query, follow_redirects=False)


def counts(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        return {
            table.__name__: session.scalar(select(func.count()).select_from(table)) or 0
            for table in (User, ConsoleSession, SsoIdentity, ProjectMember)
        }


def events(factory: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with factory() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def signed_in(http: TestClient) -> bool:
    resp = http.get("/console/projects", follow_redirects=False)
    return resp.status_code == 200


# --- who signs in ------------------------------------------------------------------------------


def test_a_new_person_of_an_allowed_domain_is_created(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    login_page = http.get("/console/login?next=/console/account")
    assert 'href="/console/sso/login?next=/console/account"' in login_page.text
    assert "Sign in with Example SSO" in login_page.text
    auth = start(http, idp, "/console/account")
    assert auth.params["redirect_uri"] == "http://127.0.0.1:8080/console/sso/callback"
    assert auth.params["scope"] == "openid email profile"
    resp = back(http, auth)
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == "/console/account"
    assert "stead_session=" in resp.headers["set-cookie"]
    assert signed_in(http)
    with session_factory() as session:
        user = session.scalars(select(User).where(User.email_key == "ada@example.com")).one()
        assert (user.role, user.display_name) == ("MEMBER", "Ada L")
        assert user.last_login_at is not None
        identity = session.scalars(select(SsoIdentity)).one()
        assert (identity.issuer, identity.subject, identity.user_id) == (
            idp.url,
            "subject-1",
            user.id,
        )
        assert session.scalar(select(func.count()).select_from(SsoRequest)) == 0
    [created] = events(session_factory, "user.created")
    assert created.details == {"email": "ada@example.com", "role": "MEMBER", "via": "sso"}
    assert len(events(session_factory, "user.sso_login")) == 1
    assert events(session_factory, "user.sso_linked") == []
    # The password Stead gave the new user is nobody's.
    resp = http.post("/v1/auth/login", json={"email": "ada@example.com", "password": ""})
    assert resp.status_code in (400, 401)


def test_entra_domain_verification_stands_in_for_email_verified(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    idp.claims.update(email_verified=None, xms_edov=True)
    assert back(http, start(http, idp)).status_code == 303
    assert counts(session_factory)["User"] == 1


def test_an_existing_user_is_linked_by_verified_email(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    user_id, _ = new_user(session_factory, role="ADMIN", email="Ada@Example.com")
    for _ in range(2):
        assert back(http, start(http, idp)).status_code == 303
        assert signed_in(http)
    with session_factory() as session:
        user = session.get_one(User, user_id)
        assert user.role == "ADMIN"  # no group maps an account role: left alone
        assert session.scalar(select(func.count()).select_from(User)) == 1
    [linked] = events(session_factory, "user.sso_linked")
    assert linked.target_id == user_id and linked.details["subject"] == "subject-1"
    assert [e.target_id for e in events(session_factory, "user.sso_login")] == [user_id] * 2
    # The user's password still works (single sign-on is one more way in).
    assert (
        http.post(
            "/v1/auth/login", json={"email": "ada@example.com", "password": USER_PASSWORD}
        ).status_code
        == 200
    )


def test_a_foreign_domain_signs_in_only_as_a_user_provisioned_by_scim(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    idp.claims.update(email="eve@elsewhere.org")
    user_id, _ = new_user(session_factory, email="eve@elsewhere.org")
    before = counts(session_factory)
    resp = back(http, start(http, idp))
    _refused(
        resp,
        403,
        "Accounts of elsewhere.org may not log in to this Stead; ask your administrator to add "
        "elsewhere.org to the allowed domains.",
        session_factory,
        "domain not allowed",
    )
    assert counts(session_factory) == before
    # The identity provider provisions her by SCIM: it is the authority for its users.
    with session_scope(session_factory, write=True) as session:
        session.add(
            ScimUser(
                user_id=user_id, user_name="eve@elsewhere.org", user_name_key="eve@elsewhere.org"
            )
        )
    assert back(http, start(http, idp)).status_code == 303
    assert signed_in(http)
    assert [e.target_id for e in events(session_factory, "user.sso_login")] == [user_id]


@pytest.mark.parametrize("sso_overrides", [{"oidc_allowed_domains": ""}])
def test_a_pending_invitation_is_accepted(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    project_id = _project(http, admin, "Invited")
    with session_scope(session_factory, write=True) as session:
        session.add(
            Invitation(
                project_id=project_id,
                email="ada@example.com",
                email_key=email_key("ada@example.com"),
                project_role="CONTRIBUTOR",
                token_hash=token_hash("t"),
                invited_by="someone",
                expires_at=_in(3600),
            )
        )
    assert back(http, start(http, idp)).status_code == 303
    with session_factory() as session:
        user = session.scalars(select(User)).one()
        member = session.scalars(select(ProjectMember)).one()
        assert (member.principal_id, member.project_id, member.role) == (
            user.id,
            project_id,
            "CONTRIBUTOR",
        )
        assert session.scalars(select(Invitation)).one().accepted_at is not None
    [accepted] = events(session_factory, "invitation.accepted")
    assert accepted.details["via"] == "sso"


@pytest.mark.parametrize("sso_overrides", [{"oidc_allowed_domains": ""}])
def test_without_allowed_domains_nobody_is_created(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    before = counts(session_factory)
    resp = back(http, start(http, idp))
    assert resp.status_code == 403
    assert "There is no user for ada@example.com" in resp.text
    assert counts(session_factory) == before
    assert _reasons(session_factory) == ["no user"]


def test_group_mapping_is_applied_at_login(
    http: TestClient,
    idp: OidcFake,
    session_factory: sessionmaker[Session],
    admin: dict[str, str],
) -> None:
    sales = _project(http, admin, "Sales")
    idp.claims["groups"] = ["stead-admins", "sales", "unmapped"]
    assert back(http, start(http, idp)).status_code == 303
    with session_factory() as session:
        user = session.scalars(select(User)).one()
        assert user.role == "ADMIN"  # created with the mapped role
        member = session.scalars(select(ProjectMember)).one()
        assert (member.project_id, member.role) == (sales, "CONTRIBUTOR")
    assert events(session_factory, "user.created")[0].details["role"] == "ADMIN"
    assert [e.project_id for e in events(session_factory, "member.added")] == [sales]
    # Out of the sales group at the provider: out of the project at the next login.
    idp.claims["groups"] = ["stead-admins"]
    assert back(http, start(http, idp)).status_code == 303
    with session_factory() as session:
        assert session.scalars(select(ProjectMember)).all() == []
    assert len(events(session_factory, "member.removed")) == 1


# --- refusals ----------------------------------------------------------------------------------


def _reasons(factory: sessionmaker[Session]) -> list[str]:
    return [str(e.details["reason"]) for e in events(factory, "user.sso_refused")]


def _refused(
    resp: Response, status: int, message: str, factory: sessionmaker[Session], reason: str
) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert "Single sign-on refused" in resp.text and message in resp.text, resp.text
    assert "Traceback" not in resp.text and CODE not in resp.text
    assert "stead_session=" not in resp.headers.get("set-cookie", "")
    assert _reasons(factory)[-1] == reason


CLAIM_REFUSALS = [
    ({"iss": "http://127.0.0.1:1"}, "issued by another issuer", "wrong issuer"),
    ({"aud": "another-client"}, "meant for another client", "wrong audience"),
    ({"exp": 1_000_000_000, "iat": 999_999_000}, "it has expired", "expired"),
    ({"nonce": "not-the-nonce"}, "does not answer this login", "nonce mismatch"),
    ({"nonce": None}, "does not answer this login", "nonce mismatch"),
    ({"iat": 4_000_000_000, "exp": 4_000_003_600}, "issued in the future", "issued in the future"),
    ({"email_verified": False}, "has not verified ada@example.com", "email not verified"),
    ({"email_verified": None}, "has not verified ada@example.com", "email not verified"),
    (
        {"email_verified": False, "xms_edov": True},
        "has not verified ada@example.com",
        "email not verified",
    ),
    ({"email_verified": None, "xms_edov": "1"}, "has not verified", "email not verified"),
    ({"email": None}, "sent no email address", "no email"),
    (
        {"email": "eve@elsewhere.org"},
        "Accounts of elsewhere.org may not log in to this Stead; ask your administrator to add "
        "elsewhere.org to the allowed domains.",
        "domain not allowed",
    ),
]


@pytest.mark.parametrize(("claims", "message", "reason"), CLAIM_REFUSALS)
def test_an_id_token_that_does_not_pass_is_refused(
    http: TestClient,
    idp: OidcFake,
    session_factory: sessionmaker[Session],
    claims: dict[str, Any],
    message: str,
    reason: str,
) -> None:
    before = counts(session_factory)
    idp.claims.update(claims)
    resp = back(http, start(http, idp))
    status = 403 if reason == "domain not allowed" else 400
    _refused(resp, status, message, session_factory, reason)
    assert counts(session_factory) == before
    assert not signed_in(http)


def test_a_token_signed_by_another_key_is_refused(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    idp.sign_with = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, other key
    before = counts(session_factory)
    resp = back(http, start(http, idp))
    _refused(
        resp, 400, "its signature does not verify", session_factory, "bad signature: bad_signature"
    )
    assert counts(session_factory) == before
    # A key the provider does not publish at all: the JWKS is read again once, then refused.
    jwks_reads = idp.requests_to("/jwks")
    idp.sign_with = RSAKey.generate_key(2048, parameters={"kid": "k-unknown"})
    resp = back(http, start(http, idp))
    _refused(resp, 400, "a key the provider does not publish", session_factory, "unknown key")
    assert idp.requests_to("/jwks") == jwks_reads + 1


def test_a_rotated_key_is_fetched_once_and_discovery_is_cached(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    assert back(http, start(http, idp)).status_code == 303
    idp.key = RSAKey.generate_key(2048, parameters={"kid": "k2"})  # the provider rotates
    assert back(http, start(http, idp)).status_code == 303
    assert back(http, start(http, idp)).status_code == 303
    assert idp.requests_to("/jwks") == 2
    assert idp.requests_to("/.well-known/openid-configuration") == 1
    assert len(events(session_factory, "user.sso_login")) == 3


def test_state_is_checked_and_works_once(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    before = counts(session_factory)
    auth = start(http, idp)
    resp = http.get("/console/sso/callback", params={"code": CODE}, follow_redirects=False)
    _refused(resp, 400, "has no state", session_factory, "state missing")
    resp = back(http, Authorization({**auth.params, "state": "forged"}))
    _refused(resp, 400, "unknown or was used already", session_factory, "state unknown or used")
    # Another browser (no stead_sso cookie) brings this browser's state: refused, and used up.
    stranger = TestClient(http.app)
    resp = back(stranger, auth)
    _refused(resp, 400, "started in another browser", session_factory, "browser mismatch")
    resp = back(http, auth)
    _refused(resp, 400, "unknown or was used already", session_factory, "state unknown or used")
    assert counts(session_factory) == before
    # A good login, then its answer replayed.
    auth = start(http, idp)
    assert back(http, auth).status_code == 303
    after = counts(session_factory)
    refusals = len(_reasons(session_factory))
    # The Back button brings the signed-in browser to the used answer: its projects page.
    resp = back(http, auth)
    assert resp.status_code == 303 and resp.headers["location"] == "/console/projects"
    assert len(_reasons(session_factory)) == refusals
    # Another browser, not signed in, replays it: refused.
    resp = back(TestClient(http.app), auth)
    _refused(resp, 400, "unknown or was used already", session_factory, "state unknown or used")
    assert counts(session_factory) == after
    assert idp.codes == [CODE]  # no refused answer reached the token endpoint


def test_sign_ins_under_way_are_capped_per_address(
    http: TestClient,
    idp: OidcFake,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stead.identity import sso

    monkeypatch.setattr(sso, "MAX_PENDING_PER_ADDRESS", 2)
    first = start(http, idp)
    start(http, idp)
    resp = http.get("/console/sso/login", follow_redirects=False)
    assert resp.status_code == 429 and "Too many logins are under way" in resp.text
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(SsoRequest)) == 2
    assert _reasons(session_factory) == []  # a flood does not fill the audit trail
    # One comes back (refused: this browser's cookie is now the second's): another may start.
    assert back(http, first).status_code == 400
    assert http.get("/console/sso/login", follow_redirects=False).status_code == 303


def test_an_expired_login_is_refused(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    auth = start(http, idp)
    with session_scope(session_factory, write=True) as session:
        session.execute(text("UPDATE sso_requests SET expires_at = created_at"))
    _refused(back(http, auth), 400, "took too long", session_factory, "expired")


def test_provider_errors_are_refused(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    resp = back(http, start(http, idp), code="", error="access_denied", error_description="<b>x")
    _refused(resp, 400, "You cancelled the login", session_factory, "provider error: access_denied")
    assert "<b>x" not in resp.text
    resp = back(http, start(http, idp), iss="https://evil.example")
    _refused(resp, 400, "another identity provider", session_factory, "wrong issuer")
    resp = back(http, start(http, idp), code="")
    _refused(resp, 400, "has no code", session_factory, "code missing")
    idp.token_error = "invalid_grant"
    resp = back(http, start(http, idp))
    _refused(
        resp,
        400,
        "refused the login code (invalid_grant)",
        session_factory,
        "token endpoint: invalid_grant",
    )


def test_a_disabled_user_is_refused(
    http: TestClient, idp: OidcFake, session_factory: sessionmaker[Session]
) -> None:
    user_id, _ = new_user(session_factory, email="ada@example.com")
    with session_scope(session_factory, write=True) as session:
        session.get_one(User, user_id).disabled_at = _in(0)
    before = counts(session_factory)
    resp = back(http, start(http, idp))
    _refused(
        resp,
        403,
        "Your Stead user is disabled; ask an administrator.",
        session_factory,
        "user disabled",
    )
    assert counts(session_factory) == before
    [refusal] = events(session_factory, "user.sso_refused")
    assert (refusal.actor_id, refusal.target_id) == (user_id, user_id)


@pytest.mark.parametrize("sso_overrides", [{"outbound_allowed_networks": ""}])
def test_the_provider_is_reached_through_the_outbound_policy(
    http: TestClient,
    idp: OidcFake,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    resp = http.get("/console/sso/login", follow_redirects=False)
    assert resp.status_code == 502
    # The person is told to see an administrator; the cause is in the log and the audit event.
    assert "Single sign-on is not set up correctly; tell your administrator." in resp.text
    assert "loopback" not in resp.text and "STEAD_" not in resp.text
    assert idp.server.requests == []
    [reason] = _reasons(session_factory)
    assert reason.startswith("provider unreachable: discovery document (")
    assert "loopback" in reason
    [record] = [r for r in caplog.records if r.name == "stead.sso"]
    assert record.levelname == "WARNING" and "loopback" in record.getMessage()


def test_sso_pages_are_not_found_while_it_is_off(tmp_path: Path, db_url: str) -> None:
    from stead.app import create_app

    app = create_app(Settings(data_dir=tmp_path / "off", database_url=db_url))
    with TestClient(app) as client:
        assert client.get("/console/sso/login", follow_redirects=False).status_code == 404
        assert (
            client.get("/console/sso/callback?state=x", follow_redirects=False).status_code == 404
        )
        assert "Sign in with" not in client.get("/console/login").text


# --- password sign-in kept for Super Admins ----------------------------------------------------


@pytest.mark.parametrize("sso_overrides", [{"password_login": "super-admins"}])
def test_password_login_is_kept_for_super_admins(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, member = new_user(session_factory, role="ADMIN")
    _, root = new_user(session_factory, role="SUPER_ADMIN")
    page = http.get("/console/login").text
    assert page.index("Sign in with Example SSO") < page.index("Log in as a Super Admin")
    assert "kept for Super Admins" in page

    refused = http.post("/v1/auth/login", json={"email": member, "password": USER_PASSWORD})
    assert refused.status_code == 401
    assert "kept for Super Admins" in refused.json()["detail"]
    assert "sign in with Example SSO" in refused.json()["detail"]
    grant = {"grant_type": "password", "username": member, "password": USER_PASSWORD}
    token = http.post("/oauth/dpc/token", data=grant)
    assert token.status_code == 400 and token.json()["error"] == "invalid_grant"
    assert "kept for Super Admins" in token.json()["error_description"]
    form = _console_login(http, member)
    assert form.status_code == 401 and "kept for Super Admins" in form.text
    # A wrong password gets the usual answer (the rule tells nothing without the password).
    wrong = http.post("/v1/auth/login", json={"email": member, "password": "wrong password!"})
    assert wrong.json()["detail"] == "Invalid email or password"

    assert (
        http.post("/v1/auth/login", json={"email": root, "password": USER_PASSWORD}).status_code
        == 200
    )
    grant.update(username=root)
    assert http.post("/oauth/dpc/token", data=grant).status_code == 200
    assert _console_login(http, root).status_code == 303
    reasons = [e.details["reason"] for e in events(session_factory, "user.login_failed")]
    assert reasons.count("sso only") == 3


def _console_login(http: TestClient, email: str) -> Response:
    import re

    page = http.get("/console/login").text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return http.post(
        "/console/login",
        data={"email": email, "password": USER_PASSWORD, "csrf_token": match.group(1)},
        follow_redirects=False,
    )


# --- nothing secret kept -----------------------------------------------------------------------


def test_no_secret_code_or_token_is_logged_shown_or_stored(
    http: TestClient,
    idp: OidcFake,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    db_url: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    auth = start(http, idp)
    ok = back(http, auth)
    shown += [ok.text, json.dumps(dict(ok.headers))]
    shown.append(http.get("/console/account").text)
    idp.claims["email_verified"] = False
    refused = back(http, start(http, idp))
    shown += [refused.text, json.dumps(dict(refused.headers))]
    idp.token_error = "invalid_grant"
    shown.append(back(http, start(http, idp)).text)
    assert len(idp.id_tokens) == 2
    canaries = [CLIENT_SECRET, CODE, "canary-access-token", *idp.id_tokens]
    dump = _database_text(session_factory)
    # The test's own client logs the URLs it asks for, as a browser's history holds them.
    logged = "\n".join(
        record.getMessage()
        for record in caplog.records
        if "http://testserver/" not in record.getMessage()
    )
    assert "/token" in logged  # Stead's own calls to the provider are in it
    for canary in canaries:
        assert canary not in logged
        assert all(canary not in text for text in shown)
        assert canary not in dump
    assert "user.sso_refused" in dump  # the dump holds the audit trail


def _database_text(factory: sessionmaker[Session]) -> str:
    """Every row of every table, as text."""
    from stead.models import Base

    with factory() as session:
        rows = [
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in session.execute(select(table))
        ]
    return "\n".join(rows)


# --- helpers -----------------------------------------------------------------------------------


def _project(http: TestClient, admin: dict[str, str], name: str) -> str:
    body = example("01-create-project-redshift")
    body["name"] = name
    resp = http.post("/v1/projects", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


def _in(seconds: int) -> Any:
    from datetime import timedelta

    from stead.db import utcnow

    return utcnow() + timedelta(seconds=seconds)
