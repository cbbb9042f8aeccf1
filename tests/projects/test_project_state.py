"""``GET /v1/projects/state``: many projects with everything in them, seen as each caller may
see them (docs/api.md, Project state; docs/permissions.md)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.support.factories import assert_problem, login, new_user
from tests.support.provision import environment_body, provision

STATE = "/v1/projects/state"


def test_a_member_sees_only_its_projects_and_the_environments_it_may_read(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    mine = provision(http, admin, "state-mine")
    provision(http, admin, "state-other")
    body = environment_body(mine.agent_id, "secret tier", "noAccess")
    url = f"/v1/projects/{mine.project_id}/environments"
    assert http.post(url, json=body, headers=admin).status_code == 201
    user_id, email = new_user(session_factory, project_id=mine.project_id, project_role="VIEWER")
    viewer = login(http, email)

    seen = http.get(STATE, headers=viewer).json()
    assert seen["total"] == 1
    (state,) = seen["results"]
    assert state["project"]["name"] == "state-mine"
    assert [e["name"] for e in state["environments"]] == ["prod"]
    assert state["hiddenEnvironments"] == ["secret tier"]
    assert state["invitations"] is None  # a Viewer may not manage members
    assert [(m["name"], m["projectRole"]) for m in state["members"]] == [(email, "VIEWER")]
    assert state["environmentAccess"] == {"prod": []}
    assert [c["name"] for c in state["connections"]] == ["finance-dwh-prod"]
    # a project it cannot see is absent, as a 404 would be
    other = http.get(STATE, params={"name": "STATE-OTHER"}, headers=viewer).json()
    assert other["total"] == 0 and other["results"] == []

    # an access level set for the user opens the environment to it
    access = f"/v1/projects/{mine.project_id}/environments/secret tier/access/{user_id}"
    assert http.put(access, json={"accessLevel": "readOnly"}, headers=admin).status_code == 200
    (state,) = http.get(STATE, headers=viewer).json()["results"]
    assert [e["name"] for e in state["environments"]] == ["prod", "secret tier"]
    assert state["hiddenEnvironments"] == []
    assert [a["email"] for a in state["environmentAccess"]["secret tier"]] == [email]

    # a Super Admin sees both, invitations included
    both = http.get(STATE, params={"name": ["state-other", "state-mine"]}, headers=admin).json()
    assert [s["project"]["name"] for s in both["results"]] == ["state-mine", "state-other"]
    assert all(s["invitations"] == [] for s in both["results"])
    by_id = http.get(STATE, params={"projectId": mine.project_id.upper()}, headers=admin)
    assert [s["project"]["id"] for s in by_id.json()["results"]] == [mine.project_id]


def test_bad_filters_are_400_naming_the_field(http: TestClient, admin: dict[str, str]) -> None:
    assert_problem(http.get(STATE, params={"projectId": "nope"}, headers=admin), 400, "projectId")
    assert_problem(http.get(STATE, params={"size": 101}, headers=admin), 400)
    many = {"name": [f"p{i}" for i in range(201)]}
    assert_problem(http.get(STATE, params=many, headers=admin), 400, "name")
    assert http.get(STATE).status_code == 401
