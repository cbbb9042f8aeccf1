"""``/console/scim-tokens``: an account admin makes a SCIM token (shown once, never cached),
sees the list without values, and revokes it; a member may not."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.scim.conftest import scim_headers
from tests.support.console import csrf_of
from tests.support.factories import USER_PASSWORD, new_user


def _browser(http: TestClient, email: str) -> TestClient:
    browser = TestClient(http.app, follow_redirects=False)
    form = browser.get("/console/login")
    resp = browser.post(
        "/console/login",
        data={"email": email, "password": USER_PASSWORD, "csrf_token": csrf_of(form.text)},
    )
    assert resp.status_code == 303, resp.text
    return browser


def test_admin_makes_and_revokes_a_scim_token(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory, role="ADMIN")
    browser = _browser(http, email)
    page = browser.get("/console/scim-tokens")
    assert page.status_code == 200, page.text
    assert "No SCIM tokens yet" in page.text and "/scim/v2" in page.text
    assert 'href="/console/scim-tokens"' in page.text  # in the navigation
    bad = browser.post("/console/scim-tokens", data={"name": "", "csrf_token": csrf_of(page.text)})
    assert bad.status_code == 400 and "name" in bad.text
    made = browser.post(
        "/console/scim-tokens", data={"name": "okta", "csrf_token": csrf_of(page.text)}
    )
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    found = re.search(r'id="scim-token" type="text" readonly value="([^"]+)"', made.text)
    assert found, made.text
    value = found.group(1)
    assert http.get("/scim/v2/Users", headers=scim_headers(value)).status_code == 200
    listed = browser.get("/console/scim-tokens")
    assert "okta" in listed.text and email in listed.text and value not in listed.text
    token_id = re.search(r"/console/scim-tokens/([0-9a-f-]{36})/revoke", listed.text)
    assert token_id
    # Revoking asks for the token's name first; without it nothing changes.
    confirm = browser.get(f"/console/scim-tokens/{token_id.group(1)}/revoke")
    assert confirm.status_code == 200 and "Type okta to confirm" in confirm.text
    unconfirmed = browser.post(
        f"/console/scim-tokens/{token_id.group(1)}/revoke",
        data={"csrf_token": csrf_of(confirm.text), "confirm": "okt"},
    )
    assert unconfirmed.status_code == 400
    assert "Type the token&#39;s name, okta, to revoke it." in unconfirmed.text
    assert http.get("/scim/v2/Users", headers=scim_headers(value)).status_code == 200
    revoked = browser.post(
        f"/console/scim-tokens/{token_id.group(1)}/revoke",
        data={"csrf_token": csrf_of(confirm.text), "confirm": "okta"},
    )
    assert revoked.status_code == 303
    assert re.search(
        r"Revoked \d{4}-\d\d-\d\d \d\d:\d\d<", browser.get("/console/scim-tokens").text
    )
    assert http.get("/scim/v2/Users", headers=scim_headers(value)).status_code == 401


def test_members_may_not_see_scim_tokens(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory, role="MEMBER")
    browser = _browser(http, email)
    assert browser.get("/console/scim-tokens").status_code == 403
    assert 'href="/console/scim-tokens"' not in browser.get("/console/projects").text
