"""Project members (list, change role, remove) and per-user environment access (set, list,
remove) with its effect on what a user may do in an environment (docs/permissions.md)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.identity.models import EnvironmentAccess
from tests.support.factories import assert_problem, login, member_auth, new_user, user_auth
from tests.support.provision import Provisioned, provision

UNKNOWN_UUID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"


@pytest.fixture
def world(http: TestClient, admin: dict[str, str]) -> Provisioned:
    return provision(http, admin, "people")


def _actions(factory: sessionmaker[Session]) -> list[tuple[str, str | None]]:
    with factory() as session:
        return [
            (e.action, e.project_id)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def test_list_change_and_remove_members(
    http: TestClient, session_factory: sessionmaker[Session], world: Provisioned
) -> None:
    owner_id, owner_email = new_user(
        session_factory, project_id=world.project_id, project_role="OWNER"
    )
    viewer_id, viewer_email = new_user(
        session_factory, project_id=world.project_id, project_role="VIEWER"
    )
    client = member_auth(http, session_factory, world.project_id, "CONTRIBUTOR")
    owner, viewer = login(http, owner_email), login(http, viewer_email)
    members = f"{world.base}/members"

    listed = http.get(members, headers=viewer).json()
    assert listed["total"] == 3
    rows = {(m["principalType"], m["name"], m["projectRole"]) for m in listed["results"]}
    assert ("user", owner_email, "OWNER") in rows and ("user", viewer_email, "VIEWER") in rows
    assert ("api_client", "test client", "CONTRIBUTOR") in rows
    assert http.get(members, headers=client).status_code == 200

    changed = http.patch(
        f"{members}/{viewer_id}", json={"projectRole": "contributor"}, headers=owner
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["projectRole"] == "CONTRIBUTOR" and changed.json()["name"] == viewer_email
    # The viewer-turned-contributor may now write, not manage people.
    assert (
        http.post(f"{world.base}/data-platform-connections", json={}, headers=viewer).status_code
        == 400
    )
    assert_problem(
        http.patch(f"{members}/{owner_id}", json={"projectRole": "VIEWER"}, headers=viewer), 403
    )

    # The last Owner stays.
    assert_problem(
        http.patch(f"{members}/{owner_id}", json={"projectRole": "VIEWER"}, headers=owner),
        409,
        "projectRole",
    )
    assert_problem(http.delete(f"{members}/{owner_id}", headers=owner), 409)

    assert http.delete(f"{members}/{viewer_id}", headers=owner).status_code == 204
    assert_problem(http.get(world.base, headers=viewer), 404)
    assert_problem(http.delete(f"{members}/{viewer_id}", headers=owner), 404)
    assert_problem(
        http.patch(f"{members}/{UNKNOWN_UUID}", json={"projectRole": "OWNER"}, headers=owner), 404
    )
    assert_problem(
        http.patch(f"{members}/nope", json={"projectRole": "OWNER"}, headers=owner), 400, "memberId"
    )
    assert_problem(
        http.patch(f"{members}/{owner_id}", json={"projectRole": "ADMIN"}, headers=owner),
        400,
        "projectRole",
    )
    assert_problem(http.patch(f"{members}/{owner_id}", json={}, headers=owner), 400, "projectRole")
    actions = [
        a for a, p in _actions(session_factory) if a.startswith("member.") and p == world.project_id
    ]
    assert actions == ["member.role_changed", "member.removed"]


def _env(http: TestClient, world: Provisioned, headers: dict[str, str]) -> dict[str, int]:
    """What a caller may do in the world's environment: read, patch (write), delete-check."""
    url = f"{world.base}/environments/{world.environment}"
    return {
        "read": http.get(url, headers=headers).status_code,
        "write": http.patch(url, json={"description": "changed"}, headers=headers).status_code,
    }


@pytest.mark.parametrize(
    ("default_level", "project_role", "own_level", "read", "write"),
    [
        ("default", "CONTRIBUTOR", None, 200, 200),
        ("default", "VIEWER", None, 200, 403),
        ("readOnly", "CONTRIBUTOR", None, 200, 403),
        ("admin", "VIEWER", None, 200, 200),
        ("noAccess", "CONTRIBUTOR", None, 403, 403),
        ("noAccess", "CONTRIBUTOR", "runner", 200, 403),
        ("readOnly", "VIEWER", "admin", 200, 200),
        ("admin", "CONTRIBUTOR", "noAccess", 403, 403),
        ("readOnly", "CONTRIBUTOR", "default", 200, 200),
        ("noAccess", "OWNER", None, 200, 200),
        ("admin", "OWNER", "noAccess", 200, 200),
    ],
)
def test_environment_access_levels(
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    default_level: str,
    project_role: str,
    own_level: str | None,
    read: int,
    write: int,
) -> None:
    world = provision(http, admin, "levels", access=default_level)
    user_id, email = new_user(
        session_factory, project_id=world.project_id, project_role=project_role
    )
    if own_level is not None:
        url = f"{world.base}/environments/{world.environment}/access/{user_id}"
        assert http.put(url, json={"accessLevel": own_level}, headers=admin).status_code == 200
    headers = login(http, email)
    assert _env(http, world, headers) == {"read": read, "write": write}
    # The environment is listed whatever the level.
    assert http.get(f"{world.base}/environments", headers=headers).json()["total"] == 1


def test_api_clients_follow_their_project_role(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    world = provision(http, admin, "clients", access="noAccess")
    contributor = member_auth(http, session_factory, world.project_id, "CONTRIBUTOR")
    viewer = member_auth(http, session_factory, world.project_id, "VIEWER")
    assert _env(http, world, contributor) == {"read": 200, "write": 200}
    assert _env(http, world, viewer) == {"read": 200, "write": 403}


def test_set_list_and_remove_environment_access(
    http: TestClient, session_factory: sessionmaker[Session], world: Provisioned
) -> None:
    owner = user_auth(http, session_factory, world.project_id, "OWNER")
    user_id, email = new_user(
        session_factory, project_id=world.project_id, project_role="CONTRIBUTOR"
    )
    stranger_id, _ = new_user(session_factory)
    access = f"{world.base}/environments/{world.environment}/access"

    resp = http.put(f"{access}/{user_id}", json={"accessLevel": "readonly"}, headers=owner)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accessLevel"] == "readOnly" and resp.json()["email"] == email
    again = http.put(f"{access}/{user_id}", json={"accessLevel": "RUNNER"}, headers=owner)
    assert again.json()["accessLevel"] == "runner"
    listed = http.get(access, headers=login(http, email)).json()
    assert [(a["userId"], a["accessLevel"]) for a in listed["results"]] == [(user_id, "runner")]
    # Case-insensitive environment names, as elsewhere.
    assert http.get(f"{world.base}/environments/PROD/access", headers=owner).json()["total"] == 1

    assert_problem(
        http.put(f"{access}/{user_id}", json={"accessLevel": "owner"}, headers=owner),
        400,
        "accessLevel",
    )
    assert_problem(http.put(f"{access}/{user_id}", json={}, headers=owner), 400, "accessLevel")
    assert_problem(
        http.put(f"{access}/{stranger_id}", json={"accessLevel": "admin"}, headers=owner), 404
    )
    assert_problem(
        http.put(f"{access}/not-a-uuid", json={"accessLevel": "admin"}, headers=owner),
        400,
        "userId",
    )
    missing_env = f"{world.base}/environments/nope/access/{user_id}"
    assert_problem(http.put(missing_env, json={"accessLevel": "admin"}, headers=owner), 404)
    assert_problem(
        http.put(f"{access}/{user_id}", json={"accessLevel": "admin"}, headers=login(http, email)),
        403,
    )

    assert http.delete(f"{access}/{user_id}", headers=owner).status_code == 204
    assert http.get(access, headers=owner).json()["total"] == 0
    assert_problem(http.delete(f"{access}/{user_id}", headers=owner), 404)

    # Removing a member removes their environment access with them.
    http.put(f"{access}/{user_id}", json={"accessLevel": "noAccess"}, headers=owner)
    assert http.delete(f"{world.base}/members/{user_id}", headers=owner).status_code == 204
    with session_factory() as session:
        assert session.scalars(select(EnvironmentAccess)).all() == []
    actions = [a for a, _ in _actions(session_factory) if a.startswith("environment_access.")]
    assert actions == [
        "environment_access.set",
        "environment_access.set",
        "environment_access.removed",
        "environment_access.set",
    ]
