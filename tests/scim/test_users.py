"""SCIM Users: filters and paging, the PATCH forms Okta and Entra ID send, uniqueness, errors,
deactivation that ends sessions and tokens at once, deletion, audit events."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.identity.models import User
from tests.support.console import csrf_of
from tests.support.factories import USER_PASSWORD, login, new_user

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def _user(user_name: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **extra}


def _create(http: TestClient, scim: dict[str, str], user_name: str, **extra: Any) -> str:
    resp = http.post("/scim/v2/Users", json=_user(user_name, **extra), headers=scim)
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"].startswith("application/scim+json")
    assert resp.headers["location"].endswith(f"/scim/v2/Users/{resp.json()['id']}")
    return str(resp.json()["id"])


def _patch(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": operations}


def assert_scim_error(resp: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """A SCIM error body (RFC 7644 section 3.12): never problem+json."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/scim+json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    assert body["detail"]
    return body


def _ids(http: TestClient, scim: dict[str, str], query: str) -> list[str]:
    resp = http.get("/scim/v2/Users", params={"filter": query}, headers=scim)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert body["totalResults"] == len(body.get("Resources", []))
    return sorted(r["id"] for r in body.get("Resources", []))


def test_filters(http: TestClient, scim: dict[str, str]) -> None:
    ada = _create(
        http,
        scim,
        "Ada@Example.com",
        externalId="00u1",
        displayName="Ada Lovelace",
        emails=[{"value": "Ada@Example.com", "type": "work", "primary": True}],
    )
    bob = _create(http, scim, "bob@example.org", externalId="00u2", displayName="Bob", active=False)
    jdoe = _create(http, scim, "jdoe", emails=[{"value": "john.doe@corp.example", "primary": True}])
    assert _ids(http, scim, 'userName eq "ada@example.com"') == [ada]  # case-insensitive
    assert _ids(http, scim, 'userName eq "jdoe"') == [jdoe]
    assert _ids(http, scim, 'userName sw "ADA"') == [ada]
    assert _ids(http, scim, 'userName co "@example."') == sorted([ada, bob])
    assert _ids(http, scim, 'userName ew ".org"') == [bob]
    assert _ids(http, scim, 'externalId eq "00u2"') == [bob]
    assert _ids(http, scim, 'externalId eq "00U2"') == []  # caseExact
    assert _ids(http, scim, "externalId pr") == sorted([ada, bob])
    assert _ids(http, scim, 'emails.value eq "john.doe@corp.example"') == [jdoe]
    assert _ids(http, scim, 'emails[value eq "ada@example.com"]') == [ada]
    assert _ids(http, scim, 'emails co "corp"') == [jdoe]
    assert _ids(http, scim, "active eq false") == [bob]
    assert _ids(http, scim, 'displayName eq "ada lovelace"') == [ada]
    assert _ids(http, scim, 'userName eq "bob@example.org" or externalId eq "00u1"') == sorted(
        [ada, bob]
    )
    assert _ids(http, scim, 'userName co "example" and active eq true') == [ada]
    assert _ids(http, scim, 'not (userName co "example")') == [jdoe]
    assert _ids(http, scim, 'userName eq "nobody@example.com"') == []
    for unsupported in (
        'title eq "x"',
        'meta.created gt "2020-01-01T00:00:00Z"',
        'userName gt "a"',
    ):
        resp = http.get("/scim/v2/Users", params={"filter": unsupported}, headers=scim)
        assert_scim_error(resp, 400, "invalidFilter")
    resp = http.get("/scim/v2/Users", params={"filter": 'Title eq "x"'}, headers=scim)
    assert assert_scim_error(resp, 400, "invalidFilter")["detail"] == (
        "Filtering on 'Title' is not supported; supported: active, displayName, emails, "
        "emails.value, externalId, id, userName"
    )
    resp = http.get("/scim/v2/Users", params={"filter": "userName eq"}, headers=scim)
    assert_scim_error(resp, 400, "invalidFilter")
    search = http.post(
        "/scim/v2/Users/.search",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'externalId eq "00u1"',
            "attributes": ["userName"],
        },
        headers=scim,
    )
    assert search.status_code == 200, search.text
    [found] = search.json()["Resources"]
    assert found == {"schemas": [USER_SCHEMA], "id": ada, "userName": "Ada@Example.com"}


def test_paging(http: TestClient, scim: dict[str, str]) -> None:
    ids = [_create(http, scim, f"p{n}@example.com") for n in range(5)]

    def page(**params: Any) -> dict[str, Any]:
        params["filter"] = 'userName sw "p"'
        resp = http.get("/scim/v2/Users", params=params, headers=scim)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    first = page(count=2)
    assert (first["totalResults"], first["startIndex"], first["itemsPerPage"]) == (5, 1, 2)
    assert [r["id"] for r in first["Resources"]] == ids[:2]
    last = page(startIndex=5, count=2)
    assert [r["id"] for r in last["Resources"]] == ids[4:]
    assert page(startIndex=0, count=1)["startIndex"] == 1  # below 1 is read as 1
    empty = page(count=0)
    assert (empty["totalResults"], empty["itemsPerPage"]) == (5, 0)
    assert "Resources" not in empty or empty["Resources"] == []
    resp = http.get("/scim/v2/Users", params={"count": "many"}, headers=scim)
    assert_scim_error(resp, 400, "invalidValue")


def test_attributes_and_excluded_attributes(http: TestClient, scim: dict[str, str]) -> None:
    user_id = _create(http, scim, "attr@example.com", displayName="Attr")
    only = http.get(f"/scim/v2/Users/{user_id}", params={"attributes": "displayName"}, headers=scim)
    assert set(only.json()) == {"schemas", "id", "displayName"}
    without = http.get(
        f"/scim/v2/Users/{user_id}", params={"excludedAttributes": "displayName"}, headers=scim
    )
    assert "displayName" not in without.json() and without.json()["userName"] == "attr@example.com"


def test_okta_patch_and_put(
    http: TestClient, scim: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    """Okta deactivates with ``replace`` and a value object, and pushes profiles with PUT
    (Okta, "SCIM 2.0 protocol reference": Update a specific User (PATCH), (PUT))."""
    user_id = _create(
        http,
        scim,
        "okta.user@example.com",
        name={"givenName": "Okta", "familyName": "User"},
        emails=[{"primary": True, "value": "okta.user@example.com", "type": "work"}],
        active=True,
    )
    resp = http.patch(
        f"/scim/v2/Users/{user_id}",
        json=_patch([{"op": "replace", "value": {"active": False}}]),
        headers=scim,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["active"] is False
    with session_factory() as db:
        user = db.get(User, user_id)
        assert user is not None and user.disabled_at is not None
        assert user.display_name == "Okta User"
    put = _user(
        "okta.renamed@example.com",
        id=user_id,
        name={"givenName": "Okta", "familyName": "Renamed"},
        emails=[{"primary": True, "value": "okta.renamed@example.com", "type": "work"}],
        active=True,
    )
    resp = http.put(f"/scim/v2/Users/{user_id}", json=put, headers=scim)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["userName"], body["active"], body["name"]["familyName"]) == (
        "okta.renamed@example.com",
        True,
        "Renamed",
    )
    with session_factory() as db:
        user = db.get(User, user_id)
        assert user is not None and user.disabled_at is None
        assert user.email == "okta.renamed@example.com"


def test_entra_patch_forms(
    http: TestClient, scim: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    """What Microsoft Entra ID sends (Entra docs, "Tutorial: Develop and plan provisioning for
    a SCIM endpoint", and its known issues): capitalised ``op``s, ``"False"`` as a string,
    a path-less replace, an ``add`` through a filter that matches nothing yet, and a
    ``remove`` with a value."""
    user_id = _create(
        http,
        scim,
        "entra.user@example.com",
        externalId="e-1",
        emails=[{"primary": True, "value": "entra.user@example.com", "type": "work"}],
    )
    steps: list[list[dict[str, Any]]] = [
        [{"op": "Replace", "path": "active", "value": "False"}],
        [{"op": "Replace", "value": {"active": "True", "displayName": "Entra User"}}],
        [
            {"op": "Add", "path": 'emails[type eq "home"].value', "value": "home@example.net"},
            {"op": "Replace", "path": "name.givenName", "value": "Entra"},
            {"op": "Add", "path": "externalId", "value": "e-2"},
        ],
        [{"op": "Remove", "path": "emails", "value": [{"value": "home@example.net"}]}],
    ]
    actives = [False, True, True, True]
    for operations, active in zip(steps, actives, strict=True):
        resp = http.patch(f"/scim/v2/Users/{user_id}", json=_patch(operations), headers=scim)
        assert resp.status_code == 200, resp.text
        assert resp.json()["active"] is active
    body = http.get(f"/scim/v2/Users/{user_id}", headers=scim).json()
    assert body["displayName"] == "Entra User"
    assert body["name"]["givenName"] == "Entra"
    assert body["externalId"] == "e-2"
    assert [e["value"] for e in body["emails"]] == ["entra.user@example.com"]
    bad = http.patch(
        f"/scim/v2/Users/{user_id}",
        json=_patch([{"op": "replace", "path": 'emails[type eq "x" and', "value": "y"}]),
        headers=scim,
    )
    assert bad.status_code == 400, bad.text
    assert bad.json()["schemas"] == [ERROR_SCHEMA]
    assert http.get(f"/scim/v2/Users/{user_id}", headers=scim).json() == body  # unchanged


def test_uniqueness_and_errors(
    http: TestClient, scim: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    _create(http, scim, "dup@example.com")
    resp = http.post("/scim/v2/Users", json=_user("DUP@example.com"), headers=scim)
    assert_scim_error(resp, 409, "uniqueness")
    _, invited = new_user(session_factory)  # a user Stead made: found by userName, not duplicated
    assert len(_ids(http, scim, f'userName eq "{invited}"')) == 1
    resp = http.post("/scim/v2/Users", json=_user(invited), headers=scim)
    assert_scim_error(resp, 409, "uniqueness")
    assert_scim_error(http.get("/scim/v2/Users/no-such-id", headers=scim), 404)
    resp = http.post("/scim/v2/Users", content=b"{not json", headers=scim)
    assert_scim_error(resp, 400, "invalidSyntax")
    resp = http.post("/scim/v2/Users", json={"schemas": [USER_SCHEMA]}, headers=scim)
    assert resp.status_code == 400 and resp.json()["schemas"] == [ERROR_SCHEMA]
    resp = http.post("/scim/v2/Users", json=_user("x@example.com", active="maybe"), headers=scim)
    assert_scim_error(resp, 400, "invalidValue")
    resp = http.post(
        "/scim/v2/Users", json=_user("long@example.com", externalId="e" * 256), headers=scim
    )
    assert_scim_error(resp, 400, "invalidValue")
    # application/json is accepted as well as application/scim+json
    plain = {"Authorization": scim["Authorization"], "Content-Type": "application/json"}
    assert (
        http.post("/scim/v2/Users", json=_user("plain@example.com"), headers=plain).status_code
        == 201
    )


def test_tokens_are_checked(http: TestClient, scim: dict[str, str], admin: dict[str, str]) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eA=="}):
        resp = http.get("/scim/v2/Users", headers=headers)
        assert_scim_error(resp, 401)
        assert resp.headers["www-authenticate"] == "Bearer"
    api_token = admin  # an API access token is not a SCIM token
    assert_scim_error(http.get("/scim/v2/Users", headers=api_token), 401)
    listed = http.get("/v1/scim-tokens", headers=admin).json()["results"]
    [token] = listed
    assert token["lastUsedAt"] is None or token["lastUsedAt"]
    assert http.get("/scim/v2/Users", headers=scim).status_code == 200
    assert http.get("/v1/scim-tokens", headers=admin).json()["results"][0]["lastUsedAt"]
    resp = http.delete(f"/v1/scim-tokens/{token['id']}", headers=admin)
    assert resp.status_code == 204
    assert_scim_error(http.get("/scim/v2/Users", headers=scim), 401)
    assert http.get("/v1/scim-tokens", headers=admin).json()["results"][0]["revokedAt"]


def test_only_admins_manage_scim_tokens(
    http: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, email = new_user(session_factory, role="MEMBER")
    member = login(http, email)
    resp = http.post("/v1/scim-tokens", json={"name": "okta"}, headers=member)
    assert resp.status_code == 403, resp.text
    assert http.get("/v1/scim-tokens", headers=member).status_code == 403
    _, admin_email = new_user(session_factory, role="ADMIN")
    admin = login(http, admin_email)
    made = http.post("/v1/scim-tokens", json={"name": "entra"}, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["createdBy"] == admin_email
    resp = http.post("/v1/scim-tokens", json={"name": ""}, headers=admin)
    assert resp.status_code == 400 and resp.headers["content-type"].startswith(
        "application/problem+json"
    )


def _console_login(http: TestClient, email: str) -> TestClient:
    browser = TestClient(http.app, follow_redirects=False)
    form = browser.get("/console/login")
    resp = browser.post(
        "/console/login",
        data={"email": email, "password": USER_PASSWORD, "csrf_token": csrf_of(form.text)},
    )
    assert resp.status_code == 303, resp.text
    assert browser.get("/console/account").status_code == 200
    return browser


def test_deactivation_ends_sessions_and_tokens_at_once(
    http: TestClient, scim: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    user_id, email = new_user(session_factory)
    bearer = login(http, email)
    assert http.get("/v1/users/me", headers=bearer).status_code == 200
    browser = _console_login(http, email)
    resp = http.patch(
        f"/scim/v2/Users/{user_id}",
        json=_patch([{"op": "replace", "path": "active", "value": False}]),
        headers=scim,
    )
    assert resp.status_code == 200, resp.text
    assert http.get("/v1/users/me", headers=bearer).status_code == 401
    assert browser.get("/console/account").status_code == 303  # back to the login page
    login_again = http.post("/v1/auth/login", json={"email": email, "password": USER_PASSWORD})
    assert login_again.status_code == 401


def test_delete_removes_the_user(
    http: TestClient, scim: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    user_id, email = new_user(session_factory)
    bearer = login(http, email)
    assert http.delete(f"/scim/v2/Users/{user_id}", headers=scim).status_code == 204
    assert_scim_error(http.get(f"/scim/v2/Users/{user_id}", headers=scim), 404)
    assert_scim_error(http.delete(f"/scim/v2/Users/{user_id}", headers=scim), 404)
    assert http.get("/v1/users/me", headers=bearer).status_code == 401
    with session_factory() as db:
        assert db.get(User, user_id) is None


def test_super_admins_are_out_of_reach(
    http: TestClient, scim: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    user_id, _ = new_user(session_factory, role="SUPER_ADMIN")
    resp = http.patch(
        f"/scim/v2/Users/{user_id}",
        json=_patch([{"op": "replace", "path": "active", "value": False}]),
        headers=scim,
    )
    assert_scim_error(resp, 403)
    assert_scim_error(http.delete(f"/scim/v2/Users/{user_id}", headers=scim), 403)
    with session_factory() as db:
        user = db.get(User, user_id)
        assert user is not None and user.disabled_at is None


def test_changes_are_audited_as_the_token(
    http: TestClient, scim: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    user_id = _create(http, scim, "audited@example.com")
    http.patch(
        f"/scim/v2/Users/{user_id}",
        json=_patch([{"op": "replace", "path": "active", "value": False}]),
        headers=scim,
    )
    http.put(f"/scim/v2/Users/{user_id}", json=_user("audited@example.com"), headers=scim)
    http.delete(f"/scim/v2/Users/{user_id}", headers=scim)
    with session_factory() as db:
        events = db.scalars(
            select(AuditEvent).where(AuditEvent.target_id == user_id).order_by(AuditEvent.id)
        ).all()
    assert [e.action for e in events] == [
        "scim.user_created",
        "user.disabled",
        "scim.user_patched",
        "scim.user_replaced",
        "scim.user_deleted",
    ]
    assert {(e.actor_type, e.actor_name) for e in events} == {("scim_token", "scim:okta")}
    with session_factory() as db:
        token_events = db.scalars(
            select(AuditEvent.action).where(AuditEvent.action.startswith("scim_token."))
        ).all()
    assert token_events == ["scim_token.created"]
