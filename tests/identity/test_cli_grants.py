"""CLI grants at the token endpoint: the password grant for ``stead-cli`` with a refresh token,
refresh with rotation and replay detection, revocation (``/v1/users/me/grants``, signing out
everywhere) that stops the grant's access tokens at once, and no token stored or logged in
clear."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.audit.models import AuditEvent
from stead.db import session_scope, utcnow
from stead.identity.models import CliGrant
from stead.settings import Settings
from tests.support.factories import USER_PASSWORD, new_user
from tests.support.rows import all_text

TOKEN = "/oauth/dpc/token"


def cli_login(
    http: TestClient, email: str, password: str = USER_PASSWORD, device: str = "laptop-7"
) -> Any:
    """``stead login --email``'s token request."""
    return http.post(
        TOKEN,
        data={
            "grant_type": "password",
            "client_id": "stead-cli",
            "username": email,
            "password": password,
            "device_name": device,
        },
    )


def refresh(http: TestClient, token: str) -> Any:
    return http.post(
        TOKEN,
        data={"grant_type": "refresh_token", "client_id": "stead-cli", "refresh_token": token},
    )


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


def actions(factory: sessionmaker[Session]) -> list[tuple[str, str, dict[str, Any]]]:
    with factory() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.startswith("cli_grant."))
            .order_by(AuditEvent.id)
        )
        return [(e.action, e.actor_name, e.details or {}) for e in events]


def test_password_grant_for_the_cli_answers_a_refresh_token_and_a_grant(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory, "ADMIN")
    resp = cli_login(http, email, device="laptop-7\x1b[31m")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800
    assert len(body["refresh_token"]) >= 43
    assert resp.headers["cache-control"] == "no-store"
    me = http.get("/v1/users/me", headers=bearer(body))
    assert me.status_code == 200 and me.json()["email"] == email
    listed = http.get("/v1/users/me/grants", headers=bearer(body)).json()
    assert listed["total"] == 1
    (grant,) = listed["results"]
    assert grant["name"] == "stead CLI on laptop-7[31m"  # control characters dropped
    assert grant["method"] == "password" and grant["current"] is True
    assert set(grant) == {"id", "name", "method", "createdAt", "lastUsedAt", "expiresAt", "current"}
    # what the CLI does is done as the person
    created = http.post(
        "/v1/projects",
        headers=bearer(body),
        json={"name": "cli-made", "warehouse": "SNOWFLAKE", "agentDeploymentType": "FULL_SAAS"},
    )
    assert created.status_code == 201, created.text
    with session_factory() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "project.created")
        ).one()
    assert (event.actor_type, event.actor_name) == ("user", email)
    assert [a for a, _, _ in actions(session_factory)] == ["cli_grant.issued"]
    # without client_id the password grant stays as it was: no refresh token, no grant
    plain = http.post(
        TOKEN, data={"grant_type": "password", "username": email, "password": USER_PASSWORD}
    )
    assert plain.status_code == 200 and "refresh_token" not in plain.json()
    assert (
        http.get("/v1/users/me/grants", headers=bearer(plain.json())).json()["results"][0][
            "current"
        ]
        is False
    )


def test_wrong_password_and_locked_user_get_no_grant(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory)
    wrong = cli_login(http, email, "not the password at all")
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid email or password",
    }
    for _ in range(4):
        cli_login(http, email, "not the password at all")
    locked = cli_login(http, email)  # the right password, but the pair is locked now
    assert locked.status_code == 400 and "try again in" in locked.json()["error_description"]
    with session_factory() as session:
        assert session.scalars(select(CliGrant)).all() == []
    # another client_id is ignored by the password grant, as before: no grant
    other = http.post(
        TOKEN,
        data={
            "grant_type": "password",
            "client_id": "some-library",
            "username": email,
            "password": "not the password either",
        },
    )
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"


def test_refresh_rotates_and_a_replayed_refresh_token_revokes_the_grant(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory)
    first = cli_login(http, email).json()
    second = refresh(http, first["refresh_token"])
    assert second.status_code == 200, second.text
    second_body = second.json()
    assert second_body["refresh_token"] != first["refresh_token"]
    assert http.get("/v1/users/me", headers=bearer(second_body)).status_code == 200
    third = refresh(http, second_body["refresh_token"]).json()
    assert http.get("/v1/users/me", headers=bearer(third)).status_code == 200

    replayed = refresh(http, first["refresh_token"])
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_grant"
    assert "revoked" in replayed.json()["error_description"]
    # the grant is gone: the newest refresh token and the access token issued under it too
    assert refresh(http, third["refresh_token"]).json()["error"] == "invalid_grant"
    assert http.get("/v1/users/me", headers=bearer(third)).status_code == 401
    assert [(a, d.get("reason")) for a, _, d in actions(session_factory)] == [
        ("cli_grant.issued", None),
        ("cli_grant.refreshed", None),
        ("cli_grant.refreshed", None),
        ("cli_grant.revoked", "replay"),
    ]
    assert refresh(http, "no-such-token").json()["error"] == "invalid_grant"
    missing = http.post(TOKEN, data={"grant_type": "refresh_token", "client_id": "stead-cli"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    foreign = http.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": third["refresh_token"]}
    )
    assert foreign.status_code == 400 and foreign.json()["error"] == "unsupported_grant_type"


def test_revoking_a_grant_stops_its_access_token_at_once(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory)
    laptop = cli_login(http, email, device="laptop").json()
    desktop = cli_login(http, email, device="desktop").json()
    assert http.get("/v1/users/me", headers=bearer(laptop)).status_code == 200  # now cached
    grants = http.get("/v1/users/me/grants", headers=bearer(desktop)).json()["results"]
    by_name = {g["name"]: g for g in grants}
    assert (
        by_name["stead CLI on desktop"]["current"] and not by_name["stead CLI on laptop"]["current"]
    )
    gone = http.delete(
        f"/v1/users/me/grants/{by_name['stead CLI on laptop']['id']}", headers=bearer(desktop)
    )
    assert gone.status_code == 204
    refused = http.get("/v1/users/me", headers=bearer(laptop))
    assert refused.status_code == 401
    assert refresh(http, laptop["refresh_token"]).json()["error"] == "invalid_grant"
    assert http.get("/v1/users/me", headers=bearer(desktop)).status_code == 200
    # another user's grant is not found, a malformed id is a 400
    _, other = new_user(session_factory)
    theirs = cli_login(http, other).json()
    assert (
        http.delete(
            f"/v1/users/me/grants/{by_name['stead CLI on desktop']['id']}", headers=bearer(theirs)
        ).status_code
        == 404
    )
    assert http.delete("/v1/users/me/grants/nope", headers=bearer(theirs)).status_code == 400
    # logging out revokes the caller's own grant
    mine = http.get("/v1/users/me/grants", headers=bearer(desktop)).json()["results"][0]["id"]
    assert http.delete(f"/v1/users/me/grants/{mine}", headers=bearer(desktop)).status_code == 204
    assert http.get("/v1/users/me", headers=bearer(desktop)).status_code == 401
    reasons = [d.get("reason") for a, _, d in actions(session_factory) if a == "cli_grant.revoked"]
    assert reasons == ["api", "logout"]


def test_signing_a_user_out_everywhere_ends_their_grants(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    user_id, email = new_user(session_factory)
    body = cli_login(http, email).json()
    assert http.post(f"/v1/users/{user_id}/revoke-tokens", headers=admin).status_code == 204
    assert http.get("/v1/users/me", headers=bearer(body)).status_code == 401
    assert refresh(http, body["refresh_token"]).json()["error"] == "invalid_grant"
    again = cli_login(http, email).json()
    assert (
        http.patch(f"/v1/users/{user_id}", headers=admin, json={"disabled": True}).status_code
        == 200
    )
    assert refresh(http, again["refresh_token"]).json()["error"] == "invalid_grant"


def test_an_api_client_has_no_grants(http: TestClient, admin: dict[str, str]) -> None:
    assert http.get("/v1/users/me/grants", headers=admin).status_code == 404


def test_no_refresh_or_access_token_is_stored_or_logged(
    http: TestClient, session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    _, email = new_user(session_factory)
    first = cli_login(http, email).json()
    second = refresh(http, first["refresh_token"]).json()
    refresh(http, first["refresh_token"])  # a replay: its error is logged and audited
    stored = all_text(session_factory)
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "cli_grant.refreshed" in stored and "/oauth/dpc/token" in logged
    for secret in (first, second):
        for value in (secret["refresh_token"], secret["access_token"]):
            assert value not in stored
            assert value not in logged


def test_a_grant_ends_90_days_after_it_was_made_and_its_tokens_with_it(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory)
    body = cli_login(http, email).json()
    with session_scope(session_factory, write=True) as session:
        session.execute(
            update(CliGrant).values(created_at=utcnow() - timedelta(days=90, seconds=-100))
        )
    near_end = refresh(http, body["refresh_token"]).json()
    assert 0 < near_end["expires_in"] <= 100  # the access token ends with the grant
    with session_scope(session_factory, write=True) as session:
        session.execute(update(CliGrant).values(expires_at=utcnow() - timedelta(seconds=1)))
    ended = refresh(http, near_end["refresh_token"])
    assert ended.json()["error"] == "invalid_grant" and "expired" in ended.text
    assert http.get("/v1/users/me", headers=bearer(near_end)).status_code == 401


def test_another_server_process_refuses_a_revoked_grant_within_its_cache_time(
    http: TestClient, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    other_app = create_app(settings.model_copy(update={"actor_cache_seconds": 0.5}))
    with TestClient(other_app, raise_server_exceptions=False) as other:
        _, email = new_user(session_factory)
        body = cli_login(http, email).json()
        assert other.get("/v1/users/me", headers=bearer(body)).status_code == 200  # cached
        (grant,) = http.get("/v1/users/me/grants", headers=bearer(body)).json()["results"]
        http.delete(f"/v1/users/me/grants/{grant['id']}", headers=bearer(body))
        assert http.get("/v1/users/me", headers=bearer(body)).status_code == 401  # at once
        time.sleep(0.6)
        assert other.get("/v1/users/me", headers=bearer(body)).status_code == 401


def test_a_dead_login_is_refused_the_same_way_every_time_and_is_no_replay(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    from stead.identity.grants import DISABLED, REPLAYED, REVOKED

    user_id, email = new_user(session_factory)
    body = cli_login(http, email).json()
    grant = http.get("/v1/users/me/grants", headers=bearer(body)).json()["results"][0]
    assert grant["lastUsedAt"] >= grant["createdAt"]
    assert (
        http.delete(f"/v1/users/me/grants/{grant['id']}", headers=bearer(body)).status_code == 204
    )
    for _ in range(3):
        refused = refresh(http, body["refresh_token"])
        assert refused.json() == {"error": "invalid_grant", "error_description": REVOKED}
    reasons = [d.get("reason") for a, _, d in actions(session_factory) if a == "cli_grant.revoked"]
    assert reasons == ["logout"]

    again = cli_login(http, email).json()
    assert (
        http.patch(f"/v1/users/{user_id}", headers=admin, json={"disabled": True}).status_code
        == 200
    )
    for _ in range(2):
        refused = refresh(http, again["refresh_token"])
        assert refused.json() == {"error": "invalid_grant", "error_description": DISABLED}
    assert (
        http.patch(f"/v1/users/{user_id}", headers=admin, json={"disabled": False}).status_code
        == 200
    )
    # only a rotated token presented again is a replay
    third = cli_login(http, email).json()
    assert refresh(http, third["refresh_token"]).status_code == 200
    replayed = refresh(http, third["refresh_token"]).json()
    assert replayed == {"error": "invalid_grant", "error_description": REPLAYED}
    assert refresh(http, third["refresh_token"]).json()["error_description"] == REVOKED


def test_last_used_is_the_last_refresh_and_never_before_created(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory)
    body = cli_login(http, email).json()
    (before,) = http.get("/v1/users/me/grants", headers=bearer(body)).json()["results"]
    assert before["lastUsedAt"] == before["createdAt"]
    time.sleep(0.01)
    fresh = refresh(http, body["refresh_token"]).json()
    (after,) = http.get("/v1/users/me/grants", headers=bearer(fresh)).json()["results"]
    assert after["createdAt"] == before["createdAt"]
    assert after["lastUsedAt"] > before["lastUsedAt"]
