"""Token endpoint (RFC 6749 section 4.4, client credentials) and bearer authentication."""

from __future__ import annotations

import time

import jwt
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.support.factories import assert_problem, new_client


def test_token_and_bearer(http: TestClient, session_factory: sessionmaker[Session]) -> None:
    cid, secret = new_client(session_factory)
    for path in ("/oauth/dpc/token", "/oauth/token"):
        resp = http.post(
            path,
            data={
                "grant_type": "client_credentials",
                "client_id": cid,
                "client_secret": secret,
                "audience": "https://api.matillion.com",
            },
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 1800
        assert (
            http.get(
                "/v1/projects", headers={"Authorization": f"Bearer {body['access_token']}"}
            ).status_code
            == 200
        )


def test_token_errors(http: TestClient, session_factory: sessionmaker[Session]) -> None:
    cid, secret = new_client(session_factory)
    bad = http.post(
        "/oauth/dpc/token",
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret + "x"},
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    unknown = http.post(
        "/oauth/dpc/token",
        data={"grant_type": "client_credentials", "client_id": "nope", "client_secret": "x"},
    )
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    grant = http.post(
        "/oauth/dpc/token",
        data={"grant_type": "authorization_code", "client_id": cid, "client_secret": secret},
    )
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    missing = http.post("/oauth/dpc/token", data={"client_id": cid})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert missing.json()["error_description"] == "grant_type is required"
    for path in ("/oauth/dpc/token", "/oauth/token"):
        as_json = http.post(
            path,
            json={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
        )
        assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
        assert "application/x-www-form-urlencoded" in as_json.json()["error_description"]
        assert secret not in as_json.text
    basic = http.post(
        "/oauth/dpc/token", data={"grant_type": "client_credentials"}, auth=(cid, secret)
    )
    assert basic.status_code == 200


def test_bearer_required(http: TestClient, session_factory: sessionmaker[Session]) -> None:
    for headers in ({}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic abc"}):
        resp = http.get("/v1/projects", headers=headers)
        assert_problem(resp, 401)
        assert resp.headers["www-authenticate"] == "Bearer"
    key = http.app.state.signing_key  # type: ignore[attr-defined]
    now = int(time.time())
    expired = jwt.encode(
        {"iss": "stead", "sub": "x", "iat": now - 4000, "exp": now - 2000}, key, algorithm="HS256"
    )
    resp = http.get("/v1/projects", headers={"Authorization": f"Bearer {expired}"})
    assert "expired" in assert_problem(resp, 401)["detail"]
    forged = jwt.encode(
        {"iss": "stead", "sub": "x", "iat": now, "exp": now + 60}, b"other-key", algorithm="HS256"
    )
    assert_problem(http.get("/v1/projects", headers={"Authorization": f"Bearer {forged}"}), 401)
