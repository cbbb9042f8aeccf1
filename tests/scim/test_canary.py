"""A SCIM token, and a password an identity provider pushes, never come back: not in a
response (after the token's one showing), a log line, an audit row or a database column."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.scim.conftest import scim_headers
from tests.support.rows import all_text

PASSWORD = "canary-scim-pw-1f7e0a3c"


def test_canary_scim_secrets_never_come_back(
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG")
    made = http.post("/v1/scim-tokens", json={"name": "okta"}, headers=admin)
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert len(token) >= 43  # 256 bits, URL-safe base64
    scim = scim_headers(token)
    answers: list[str] = []
    user = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "canary@example.com",
        "password": PASSWORD,
    }
    created = http.post("/scim/v2/Users", json=user, headers=scim)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    for resp in (
        created,
        http.get(f"/scim/v2/Users/{user_id}", headers=scim),
        http.get("/scim/v2/Users", params={"attributes": "password"}, headers=scim),
        http.put(f"/scim/v2/Users/{user_id}", json={**user, "id": user_id}, headers=scim),
        http.get("/v1/scim-tokens", headers=admin),
        http.get("/v1/audit-events", headers=admin),
        http.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}x"}),
    ):
        answers.append(f"{resp.headers}\n{resp.text}")
    assert "userName" in answers[1] and '"results"' in answers[4]
    revoked = http.delete(f"/v1/scim-tokens/{made.json()['id']}", headers=admin)
    assert revoked.status_code == 204
    answers.append(http.get("/scim/v2/Users", headers=scim).text)
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    logged += capsys.readouterr().out
    stored = all_text(session_factory)
    assert "/scim/v2/Users" in logged and "scim_token.created" in stored
    for secret in (token, PASSWORD):
        assert not [a for a in answers if secret in a], secret
        assert secret not in logged
        assert secret not in stored
