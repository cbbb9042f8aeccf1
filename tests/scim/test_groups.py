"""SCIM Groups: members by user id, roles from the group mapping (``STEAD_OIDC_GROUP_ROLES``)
given and taken away as memberships change, filters, errors, audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.audit.models import AuditEvent
from stead.identity.models import ProjectMember, User
from stead.settings import Settings
from tests.scim.test_users import assert_scim_error
from tests.support.factories import auth, example, login, new_user

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAPPING = {
    "stead-admins": "ADMIN",
    "everyone": "MEMBER",
    "finance-owners": {"Finance": "OWNER"},
    "finance-readers": {"Finance": "VIEWER"},
}


@pytest.fixture
def http(settings: Settings) -> Iterator[TestClient]:
    """The app with the group mapping set."""
    mapped = settings.model_copy(update={"oidc_group_roles": json.dumps(MAPPING)})
    with TestClient(create_app(mapped), raise_server_exceptions=False) as client:
        yield client


def _group(name: str, *members: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [GROUP_SCHEMA],
        "displayName": name,
        "members": [{"value": m} for m in members],
        **extra,
    }


def _patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def _project(http: TestClient, admin: dict[str, str], name: str) -> str:
    body = example("01-create-project-redshift")
    body["name"] = name
    resp = http.post("/v1/projects", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


def _state(factory: sessionmaker[Session], user_id: str) -> tuple[str, dict[str, str]]:
    with factory() as db:
        user = db.get(User, user_id)
        assert user is not None
        rows = db.scalars(
            select(ProjectMember).where(
                ProjectMember.principal_type == "user", ProjectMember.principal_id == user_id
            )
        )
        return user.role, {m.project_id: m.role for m in rows}


def test_group_membership_gives_and_takes_roles(
    http: TestClient, scim: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    admin = auth(http, session_factory)
    finance = _project(http, admin, "Finance")
    other = _project(http, admin, "Other")
    ada, ada_email = new_user(session_factory)
    bob, _ = new_user(session_factory, project_id=other, project_role="OWNER")
    # Finance keeps an Owner granted by hand, so that the mapping may demote and remove others
    # (it never leaves a project without an Owner).
    new_user(session_factory, project_id=finance, project_role="OWNER")
    bearer = login(http, ada_email)

    owners = http.post("/scim/v2/Groups", json=_group("finance-owners", ada, bob), headers=scim)
    assert owners.status_code == 201, owners.text
    owners_id = owners.json()["id"]
    assert {m["value"] for m in owners.json()["members"]} == {ada, bob}
    assert _state(session_factory, ada) == ("MEMBER", {finance: "OWNER"})
    assert _state(session_factory, bob) == ("MEMBER", {finance: "OWNER", other: "OWNER"})

    admins = http.post("/scim/v2/Groups", json=_group("stead-admins", ada), headers=scim)
    assert admins.status_code == 201, admins.text
    assert _state(session_factory, ada) == ("ADMIN", {finance: "OWNER"})
    assert http.get("/v1/users/me", headers=bearer).status_code == 401  # a new role: signed out

    # The user's groups are read back on the user.
    groups = http.get(f"/scim/v2/Users/{ada}", headers=scim).json()["groups"]
    assert sorted(g["display"] for g in groups) == ["finance-owners", "stead-admins"]

    # Okta removes a member with a path filter; Entra with a value list (both: remove).
    resp = http.patch(
        f"/scim/v2/Groups/{owners_id}",
        json=_patch({"op": "remove", "path": f'members[value eq "{bob}"]'}),
        headers=scim,
    )
    assert resp.status_code == 200, resp.text
    assert _state(session_factory, bob) == ("MEMBER", {other: "OWNER"})  # hand-granted stays
    resp = http.patch(
        f"/scim/v2/Groups/{owners_id}",
        json=_patch(
            {"op": "Remove", "path": "members", "value": [{"value": ada}]},
            {"op": "Add", "path": "members", "value": [{"value": bob}]},
        ),
        headers=scim,
    )
    assert resp.status_code == 200, resp.text
    assert [m["value"] for m in resp.json()["members"]] == [bob]
    assert _state(session_factory, ada) == ("ADMIN", {})
    assert _state(session_factory, bob) == ("MEMBER", {finance: "OWNER", other: "OWNER"})

    # Renaming a group re-applies the mapping to its members.
    readers = http.patch(
        f"/scim/v2/Groups/{owners_id}",
        json=_patch({"op": "replace", "value": {"displayName": "finance-readers"}}),
        headers=scim,
    )
    assert readers.status_code == 200, readers.text
    assert _state(session_factory, bob)[1][finance] == "VIEWER"

    # Deleting a group takes away what only it gave; an account role is left as it is when no
    # group maps one (the mapping's rule, docs/sso.md), and changed when another group does.
    assert http.delete(f"/scim/v2/Groups/{owners_id}", headers=scim).status_code == 204
    assert _state(session_factory, bob) == ("MEMBER", {other: "OWNER"})
    everyone = http.post("/scim/v2/Groups", json=_group("everyone", ada), headers=scim)
    assert everyone.status_code == 201
    resp = http.put(
        f"/scim/v2/Groups/{admins.json()['id']}", json=_group("stead-admins"), headers=scim
    )
    assert resp.status_code == 200, resp.text
    assert _state(session_factory, ada) == ("MEMBER", {})

    with session_factory() as db:
        actions = db.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.actor_name == "scim:okta")
            .order_by(AuditEvent.id)
        ).all()
    for action in (
        "scim.group_created",
        "scim.group_patched",
        "scim.group_replaced",
        "scim.group_deleted",
        "member.added",
        "member.removed",
        "member.role_changed",
        "user.role_changed",
    ):
        assert action in actions, (action, actions)


def test_group_filters_and_errors(
    http: TestClient, scim: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    ada, _ = new_user(session_factory)
    made = http.post(
        "/scim/v2/Groups", json=_group("Engineering", ada, externalId="g-1"), headers=scim
    )
    assert made.status_code == 201, made.text
    group_id = made.json()["id"]
    http.post("/scim/v2/Groups", json=_group("Empty"), headers=scim)

    def names(query: str) -> list[str]:
        resp = http.get("/scim/v2/Groups", params={"filter": query}, headers=scim)
        assert resp.status_code == 200, resp.text
        return sorted(g["displayName"] for g in resp.json().get("Resources", []))

    assert names('displayName eq "engineering"') == ["Engineering"]
    assert names('externalId eq "g-1"') == ["Engineering"]
    assert names(f'members eq "{ada}"') == ["Engineering"]
    assert names(f'members[value eq "{ada}"]') == ["Engineering"]
    assert names("members pr") == ["Engineering"]
    assert names('displayName sw "E"') == ["Empty", "Engineering"]
    excluded = http.get(
        f"/scim/v2/Groups/{group_id}", params={"excludedAttributes": "members"}, headers=scim
    )
    assert "members" not in excluded.json()
    assert_scim_error(
        http.get("/scim/v2/Groups", params={"filter": 'members co "x"'}, headers=scim),
        400,
        "invalidFilter",
    )
    assert_scim_error(
        http.post("/scim/v2/Groups", json=_group("ENGINEERING"), headers=scim), 409, "uniqueness"
    )
    assert_scim_error(
        http.post("/scim/v2/Groups", json=_group("Ghosts", "no-such-user"), headers=scim),
        400,
        "invalidValue",
    )
    nested = _group("Nested")
    nested["members"] = [{"value": group_id, "type": "Group"}]
    assert_scim_error(http.post("/scim/v2/Groups", json=nested, headers=scim), 400, "invalidValue")
    assert_scim_error(http.get("/scim/v2/Groups/nope", headers=scim), 404)
    assert_scim_error(http.post("/scim/v2/.search", json={"schemas": []}, headers=scim), 501)
    # Deleting a user leaves the group without them.
    assert http.delete(f"/scim/v2/Users/{ada}", headers=scim).status_code == 204
    assert http.get(f"/scim/v2/Groups/{group_id}", headers=scim).json().get("members", []) == []
