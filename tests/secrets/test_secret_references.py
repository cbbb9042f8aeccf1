"""Secret references (docs/api.md, Secrets) through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.connections.models import Connection
from stead.db import session_scope
from stead.environments.models import Environment
from stead.secrets.models import SecretReference
from stead.secrets.service import find_reference
from tests.support.factories import (
    assert_problem,
    auth,
    create_agent,
    example,
    hosted_agent_id,
    member_auth,
)

UNKNOWN_ID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(SecretReference)) or 0


def _project(http: TestClient, headers: dict[str, str]) -> str:
    resp = http.post("/v1/projects", json=example("01-create-project-redshift"), headers=headers)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


def _body(project_id: str, agent_id: str, **changes: Any) -> dict[str, Any]:
    return {
        **example("04-create-secret-reference-aws", agentId=agent_id, projectId=project_id),
        **changes,
    }


def test_create_read_list_delete(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    agent_id = create_agent(http, admin)["agentId"]
    base = f"/v1/projects/{project_id}/secret-references"
    resp = http.post(
        f"{base}/finance-prod-redshift", json=_body(project_id, agent_id), headers=admin
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"{base}/finance-prod-redshift"
    created = resp.json()
    assert created == {
        "name": "finance-prod-redshift",
        "agentId": agent_id,
        "agentType": "AWS",
        "secretReferenceType": "PASSWORD",
        "secretName": f"stead/{project_id}/prod/finance/redshift",
        "secretKey": "password",
        "description": "Redshift password for the prod environment",
        "createdAt": created["createdAt"],
        "updatedAt": created["updatedAt"],
    }
    assert created["createdAt"].endswith("Z")
    assert http.get(f"{base}/finance-prod-redshift", headers=admin).json() == created
    assert http.get(f"{base}/FINANCE-PROD-REDSHIFT", headers=admin).json() == created
    assert http.get(f"/dpc{base}/finance-prod-redshift", headers=admin).json() == created
    listed = http.get(base, headers=admin).json()
    assert listed == {"page": 0, "size": 25, "total": 1, "results": [created]}

    assert http.delete(f"{base}/Finance-Prod-Redshift", headers=admin).status_code == 204
    assert_problem(http.get(f"{base}/finance-prod-redshift", headers=admin), 404)
    assert_problem(http.delete(f"{base}/finance-prod-redshift", headers=admin), 404)
    with session_factory() as session:
        events = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.like("secret_reference.%"))
                .order_by(AuditEvent.id)
            )
        )
    assert [(e.action, e.target_id, e.project_id) for e in events] == [
        ("secret_reference.created", "finance-prod-redshift", project_id),
        ("secret_reference.deleted", "finance-prod-redshift", project_id),
    ]
    # a deleted name can be reused
    assert (
        http.post(
            f"{base}/finance-prod-redshift", json=_body(project_id, agent_id), headers=admin
        ).status_code
        == 201
    )


def test_stores_are_case_insensitive_and_hosted_is_canonical(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    agent_id = create_agent(http, admin)["agentId"]
    base = f"/v1/projects/{project_id}/secret-references"
    for name, given, stored in [
        ("a", "aws", "AWS"),
        ("b", "AZURE", "Azure"),
        ("c", "gcp", "GCP"),
        ("d", "vault", "Vault"),
        ("e", "Hosted", "Matillion hosted"),
        ("f", "matillion HOSTED", "Matillion hosted"),
        ("g", "hosted", "Matillion hosted"),
    ]:
        body = _body(
            project_id,
            hosted_agent_id(session_factory) if "osted" in stored else agent_id,
            agentType=given,
            secretReferenceType="password",
        )
        if stored in ("Azure", "GCP"):  # no '/' in their names
            body["secretName"] = f"stead-{project_id}-db"
        resp = http.post(f"{base}/{name}", json=body, headers=admin)
        assert resp.status_code == 201, resp.text
        assert resp.json()["agentType"] == stored
        assert resp.json()["secretReferenceType"] == "PASSWORD"
    minimal = {
        "agentId": agent_id.upper(),
        "agentType": "AWS",
        "secretReferenceType": "PASSWORD",
        "secretName": f"stead/{project_id}/s",
    }
    got = http.post(f"{base}/Name_with-(parens)", json=minimal, headers=admin).json()
    assert got["agentId"] == agent_id
    assert got["secretKey"] is None and got["description"] is None
    assert http.post(f"{base}/{'n' * 128}", json=minimal, headers=admin).status_code == 201


def test_validation_rules(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    agent_id = create_agent(http, admin)["agentId"]
    base = f"/v1/projects/{project_id}/secret-references"
    good = _body(project_id, agent_id)
    body_cases = [
        ({**good, "agentId": UNKNOWN_ID}, "agentId"),
        ({**good, "agentId": "not-a-uuid"}, "agentId"),
        ({**good, "agentId": 7}, "agentId"),
        ({**good, "agentType": "Keychain"}, "agentType"),
        ({**good, "secretReferenceType": "PRIVATE_KEY"}, "secretReferenceType"),
        ({**good, "secretName": ""}, "secretName"),
        ({**good, "secretName": "s" * 1025}, "secretName"),
        ({k: v for k, v in good.items() if k != "secretName"}, "secretName"),
        ({k: v for k, v in good.items() if k != "agentType"}, "agentType"),
        ({**good, "secretKey": ""}, "secretKey"),
        ({**good, "secretKey": "k" * 256}, "secretKey"),
        ({**good, "description": "d" * 2001}, "description"),
        ({**good, "description": "nul\u0000"}, "description"),
        ({**good, "secretName": "a\u0000b"}, "secretName"),
        ({**good, "secretKey": "\u0000"}, "secretKey"),
        ({**good, "secretValue": "hunter2"}, "secretValue"),
    ]
    for body, field in body_cases:
        assert_problem(http.post(f"{base}/ok", json=body, headers=admin), 400, field)
    for name in ["has space", "dot.name", "n" * 129, "caf%C3%A9", "semi;colon", "%20lead"]:
        assert_problem(
            http.post(f"{base}/{name}", json=good, headers=admin), 400, "secretReferenceName"
        )
    assert_problem(
        http.post("/v1/projects/not-a-uuid/secret-references/ok", json=good, headers=admin),
        400,
        "projectId",
    )
    assert _count(session_factory) == 0

    # the secret name can be as long as the rule allows
    longest = f"stead/{project_id}/".ljust(1024, "s")
    assert (
        http.post(f"{base}/ok", json={**good, "secretName": longest}, headers=admin).status_code
        == 201
    )
    dup = assert_problem(
        http.post(f"{base}/OK", json=good, headers=admin), 409, "secretReferenceName"
    )
    assert dup["type"].endswith("/problems/conflict")
    assert _count(session_factory) == 1


def test_visibility_and_roles(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    agent_id = create_agent(http, admin)["agentId"]
    base = f"/v1/projects/{project_id}/secret-references"
    assert (
        http.post(f"{base}/ref", json=_body(project_id, agent_id), headers=admin).status_code == 201
    )

    outsider = auth(http, session_factory, "MEMBER")
    for method, url in [
        ("GET", base),
        ("GET", f"{base}/ref"),
        ("DELETE", f"{base}/ref"),
        ("POST", f"{base}/other"),
    ]:
        invisible = http.request(method, url, json=_body(project_id, agent_id), headers=outsider)
        unknown = http.request(
            method,
            url.replace(project_id, UNKNOWN_ID),
            json=_body(project_id, agent_id),
            headers=outsider,
        )
        assert_problem(invisible, 404)
        assert_problem(unknown, 404)

    viewer = member_auth(http, session_factory, project_id, "VIEWER")
    assert http.get(base, headers=viewer).json()["total"] == 1
    assert http.get(f"{base}/ref", headers=viewer).status_code == 200
    assert_problem(
        http.post(f"{base}/other", json=_body(project_id, agent_id), headers=viewer), 403
    )
    assert_problem(http.delete(f"{base}/ref", headers=viewer), 403)

    contributor = member_auth(http, session_factory, project_id, "CONTRIBUTOR")
    assert (
        http.post(
            f"{base}/other", json=_body(project_id, agent_id), headers=contributor
        ).status_code
        == 201
    )
    assert http.delete(f"{base}/other", headers=contributor).status_code == 204
    assert _count(session_factory) == 1


def test_delete_while_an_environment_refers_to_it(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    agent_id = create_agent(http, admin)["agentId"]
    base = f"/v1/projects/{project_id}/secret-references"
    for name in ("finance-prod-redshift", "unused"):
        assert (
            http.post(f"{base}/{name}", json=_body(project_id, agent_id), headers=admin).status_code
            == 201
        )
    with session_scope(session_factory, write=True) as session:
        connection = Connection(
            project_id=project_id,
            name="dwh",
            name_key="dwh",
            platform_connection_type="DWH",
            auth_provider="REDSHIFT",
            auth_type="PASSWORD",
        )
        session.add(connection)
        session.flush()
        session.add(
            Environment(
                project_id=project_id,
                connection_id=connection.id,
                name="prod",
                name_key="prod",
                display_name="prod",
                default_agent_id=agent_id,
                default_user_access_level="default",
                connection_properties={
                    "url": {"value": "unused"},
                    "password": {"secretName": "FINANCE-prod-redshift", "secretKey": "password"},
                },
            )
        )
    body = assert_problem(http.delete(f"{base}/finance-prod-redshift", headers=admin), 409)
    assert "prod" in body["detail"]
    assert http.delete(f"{base}/unused", headers=admin).status_code == 204
    assert _count(session_factory) == 1


def test_find_reference(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    agent_id = create_agent(http, admin)["agentId"]
    http.post(
        f"/v1/projects/{project_id}/secret-references/Finance-Prod",
        json=_body(project_id, agent_id),
        headers=admin,
    )
    with session_factory() as session:
        found = find_reference(session, project_id=project_id, name="finance-PROD")
        assert found is not None and found.name == "Finance-Prod"
        assert find_reference(session, project_id=project_id, name="finance") is None
        assert find_reference(session, project_id=UNKNOWN_ID, name="Finance-Prod") is None


def test_pagination(http: TestClient, admin: dict[str, str]) -> None:
    project_id = _project(http, admin)
    agent_id = create_agent(http, admin)["agentId"]
    base = f"/v1/projects/{project_id}/secret-references"
    names = [f"ref-{i}" for i in range(5)]
    for name in names:
        assert (
            http.post(f"{base}/{name}", json=_body(project_id, agent_id), headers=admin).status_code
            == 201
        )
    seen = []
    for page in range(3):
        body = http.get(base, params={"page": page, "size": 2}, headers=admin).json()
        assert body["total"] == 5 and body["page"] == page and body["size"] == 2
        seen += [r["name"] for r in body["results"]]
    assert seen == names
    assert_problem(http.get(base, params={"size": 101}, headers=admin), 400, "size")


def test_body_without_agent_id(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    """DPC documents the body in two versions, with and without ``agentId``: both are taken."""
    project_id = _project(http, admin)
    base = f"/v1/projects/{project_id}/secret-references"
    body = {k: v for k, v in _body(project_id, UNKNOWN_ID).items() if k != "agentId"}
    resp = http.post(f"{base}/no-agent", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    assert resp.json()["agentId"] is None
    assert http.get(f"{base}/no-agent", headers=admin).json() == resp.json()
    explicit_null = http.post(
        f"/dpc{base}/null-agent", json={**body, "agentId": None}, headers=admin
    )
    assert explicit_null.status_code == 201 and explicit_null.json()["agentId"] is None
    assert_problem(
        http.post(f"{base}/bad-agent", json={**body, "agentId": UNKNOWN_ID}, headers=admin),
        400,
        "agentId",
    )
    assert _count(session_factory) == 2
    # an agent is free to go while references without an agent exist
    agent_id = create_agent(http, admin)["agentId"]
    assert http.delete(f"/v1/agents/{agent_id}", headers=admin).status_code == 202
