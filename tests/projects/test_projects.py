"""Projects through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.projects.models import Project
from tests.support.factories import assert_problem, auth, example


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Project)) or 0


def test_create_read_update_delete(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    resp = http.post("/v1/projects", json=example("01-create-project-redshift"), headers=admin)
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["projectId"]
    assert resp.json() == {"projectId": project_id}
    assert resp.headers["location"] == f"/v1/projects/{project_id}"

    got = http.get(f"/v1/projects/{project_id}", headers=admin).json()
    assert got["name"] == "finance-analytics"
    assert got["warehouse"] == "REDSHIFT" and got["agentDeploymentType"] == "HYBRID"
    assert got["createdAt"].endswith("Z") and len(got["createdAt"]) == 24

    patched = http.patch(f"/v1/projects/{project_id}", json={"description": "new"}, headers=admin)
    assert patched.status_code == 200 and patched.json()["description"] == "new"
    assert patched.json()["name"] == "finance-analytics"

    assert http.delete(f"/v1/projects/{project_id}", headers=admin).status_code == 204
    assert_problem(http.get(f"/v1/projects/{project_id}", headers=admin), 404)
    # a deleted name can be reused
    assert (
        http.post(
            "/v1/projects", json=example("01-create-project-redshift"), headers=admin
        ).status_code
        == 201
    )
    with session_factory() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions == ["project.created", "project.updated", "project.deleted", "project.created"]


def test_dpc_base_path_and_enum_case(http: TestClient, admin: dict[str, str]) -> None:
    body = {"name": "p", "warehouse": "snowflake", "agentDeploymentType": "full_saas"}
    resp = http.post("/dpc/v1/projects", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    got = http.get(f"/v1/projects/{resp.json()['projectId']}", headers=admin).json()
    assert got["warehouse"] == "SNOWFLAKE" and got["agentDeploymentType"] == "FULL_SAAS"


def test_duplicate_name_is_case_insensitive_and_carries_existing_id(
    http: TestClient, admin: dict[str, str]
) -> None:
    first = http.post(
        "/v1/projects",
        json={"name": "Straße", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
        headers=admin,
    )
    assert first.status_code == 201
    dup = http.post(
        "/v1/projects",
        json={"name": "STRASSE", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
        headers=admin,
    )
    body = assert_problem(dup, 409, "name")
    assert body["existingId"] == first.json()["projectId"]
    assert body["type"].endswith("/problems/conflict")


def test_validation_rules(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    good = {"name": "ok", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}
    cases = [
        ({**good, "name": ""}, "name"),
        ({**good, "name": " padded"}, "name"),
        ({**good, "name": "a/b"}, "name"),
        ({**good, "name": "tab\there"}, "name"),
        ({**good, "name": "x" * 256}, "name"),
        ({**good, "description": "d" * 2001}, "description"),
        ({**good, "description": "nul\u0000byte"}, "description"),
        ({**good, "name": "nul\u0000byte"}, "name"),
        ({**good, "warehouse": "BIGQUERY"}, "warehouse"),
        ({**good, "agentDeploymentType": "CLOUD"}, "agentDeploymentType"),
        ({k: v for k, v in good.items() if k != "warehouse"}, "warehouse"),
        ({**good, "warehose": "REDSHIFT"}, "warehose"),
    ]
    for body, field in cases:
        resp = http.post("/v1/projects", json=body, headers=admin)
        assert_problem(resp, 400, field)
    assert _count(session_factory) == 0


def test_bad_bodies_and_ids(http: TestClient, admin: dict[str, str]) -> None:
    resp = http.post(
        "/v1/projects", content=b"{not json", headers={**admin, "content-type": "application/json"}
    )
    assert assert_problem(resp, 400, "body")["violations"] == [
        "body: not valid JSON (at character 1)"
    ]
    resp = http.post(
        "/v1/projects", content=b"name=x", headers={**admin, "content-type": "text/plain"}
    )
    assert_problem(resp, 415)
    assert_problem(http.get("/v1/projects/not-a-uuid", headers=admin), 400, "projectId")
    assert_problem(
        http.get("/v1/projects/6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f", headers=admin), 404
    )


def test_visibility(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    pid = http.post(
        "/v1/projects", json=example("01-create-project-snowflake"), headers=admin
    ).json()["projectId"]
    member = auth(http, session_factory, "MEMBER")
    assert http.get("/v1/projects", headers=member).json()["total"] == 0
    # invisible answers exactly like unknown
    invisible = http.get(f"/v1/projects/{pid}", headers=member)
    unknown = http.get("/v1/projects/6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f", headers=member)
    assert_problem(invisible, 404)
    assert_problem(unknown, 404)
    assert_problem(
        http.post("/v1/projects", json=example("01-create-project-redshift"), headers=member), 403
    )
    # an ADMIN client owns what it creates, and sees nothing else
    admin2 = auth(http, session_factory, "ADMIN")
    own = http.post("/v1/projects", json=example("01-create-project-redshift"), headers=admin2)
    assert own.status_code == 201
    listed = http.get("/v1/projects", headers=admin2).json()
    assert [p["id"] for p in listed["results"]] == [own.json()["projectId"]]
    assert http.get("/v1/projects", headers=admin).json()["total"] == 2


def test_pagination(http: TestClient, admin: dict[str, str]) -> None:
    ids = [
        http.post(
            "/v1/projects",
            json={"name": f"p{i}", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
            headers=admin,
        ).json()["projectId"]
        for i in range(7)
    ]
    seen = []
    for page in range(3):
        body = http.get("/v1/projects", params={"page": page, "size": 3}, headers=admin).json()
        assert body["total"] == 7 and body["page"] == page and body["size"] == 3
        seen += [p["id"] for p in body["results"]]
    assert seen == ids
    assert (
        http.get("/v1/projects", params={"page": 5, "size": 3}, headers=admin).json()["results"]
        == []
    )
    # Every page size, every page: pages read from the end come back in list order too.
    for size in range(1, 8):
        pages = [
            http.get("/v1/projects", params={"page": n, "size": size}, headers=admin).json()
            for n in range(-(-7 // size))
        ]
        assert [p["id"] for body in pages for p in body["results"]] == ids
    # The total is a maintained count: deletions and refused creates keep it exact.
    http.delete(f"/v1/projects/{ids[3]}", headers=admin)
    taken = {"name": "p0", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}
    assert http.post("/v1/projects", json=taken, headers=admin).status_code == 409
    body = http.get("/v1/projects", params={"page": 1, "size": 3}, headers=admin).json()
    assert body["total"] == 6
    assert [p["id"] for p in body["results"]] == ids[4:7]
    for params, field in [
        ({"size": 0}, "size"),
        ({"size": 101}, "size"),
        ({"page": -1}, "page"),
        ({"page": "x"}, "page"),
    ]:
        assert_problem(http.get("/v1/projects", params=params, headers=admin), 400, field)
