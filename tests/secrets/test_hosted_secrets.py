"""Hosted secrets (docs/api.md, Secrets) through the HTTP API, and their encryption at rest, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.db import make_sessionmaker, session_scope
from stead.errors import NotFound
from stead.secrets.models import HostedSecret, HostedSecretVersion
from stead.secrets.store import Keyring, SecretUnreadable, attach_keyring, read_value
from tests.support.factories import (
    assert_problem,
    create_agent,
    example,
    member_auth,
)

VALUE = "correct horse battery staple"
CANARY = "canary-H0sted-9d2b7e"


def _project(http: TestClient, headers: dict[str, str], warehouse: str = "redshift") -> str:
    resp = http.post(
        "/v1/projects", json=example(f"01-create-project-{warehouse}"), headers=headers
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


def _count(factory: sessionmaker[Session], model: type[Any] = HostedSecret) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _secret_actions(factory: sessionmaker[Session]) -> list[tuple[str, str, dict[str, Any]]]:
    with factory() as session:
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.target_id, AuditEvent.details)
            .where(AuditEvent.target_type == "secret")
            .order_by(AuditEvent.id)
        )
        return [(a, t, d) for a, t, d in rows]


def _read(factory: sessionmaker[Session], project_id: str, name: str) -> str:
    with factory() as session:
        return read_value(session, project_id=project_id, name=name)


def test_create_read_list_update_delete(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    base = f"/v1/projects/{project_id}/secrets"
    resp = http.post(
        base, json={"name": "Finance Prod", "type": "password", "value": VALUE}, headers=admin
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"{base}/Finance%20Prod"
    created = resp.json()
    assert created == {
        "name": "Finance Prod",
        "type": "PASSWORD",
        "version": 1,
        "createdAt": created["createdAt"],
        "updatedAt": created["updatedAt"],
    }
    assert created["createdAt"].endswith("Z") and len(created["createdAt"]) == 24
    assert http.get(resp.headers["location"], headers=admin).json() == created
    assert http.get(f"{base}/FINANCE%20PROD", headers=admin).json() == created
    assert http.get(f"/dpc{base}/finance%20prod", headers=admin).json() == created
    assert http.get(base, headers=admin).json() == {
        "page": 0,
        "size": 25,
        "total": 1,
        "results": [created],
    }
    assert _read(session_factory, project_id, "finance prod") == VALUE

    # a new version, with a new type
    new_value = json.dumps({"user": "etl", "password": "s3cret-value"})
    resp = http.put(
        f"{base}/finance%20prod", json={"value": new_value, "type": "json"}, headers=admin
    )
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    assert (updated["name"], updated["type"], updated["version"]) == ("Finance Prod", "JSON", 2)
    assert updated["createdAt"] == created["createdAt"]
    assert updated["updatedAt"] >= created["updatedAt"]
    assert _read(session_factory, project_id, "Finance Prod") == new_value
    # the type is kept when left out
    resp = http.put(f"{base}/Finance%20Prod", json={"value": '{"a": "b"}'}, headers=admin)
    assert resp.json()["type"] == "JSON" and resp.json()["version"] == 3
    assert _count(session_factory, HostedSecretVersion) == 3

    assert http.delete(f"{base}/finance%20PROD", headers=admin).status_code == 204
    assert_problem(http.get(f"{base}/Finance%20Prod", headers=admin), 404)
    assert_problem(http.put(f"{base}/Finance%20Prod", json={"value": "x"}, headers=admin), 404)
    assert_problem(http.delete(f"{base}/Finance%20Prod", headers=admin), 404)
    assert _count(session_factory) == 0
    assert _count(session_factory, HostedSecretVersion) == 0
    with pytest.raises(NotFound), session_factory() as session:
        read_value(session, project_id=project_id, name="Finance Prod")
    assert [(a, d) for a, _, d in _secret_actions(session_factory)] == [
        ("secret.created", {"type": "PASSWORD", "version": 1}),
        ("secret.updated", {"type": "JSON", "version": 2}),
        ("secret.updated", {"type": "JSON", "version": 3}),
        ("secret.deleted", {}),
    ]


def test_unicode_name_round_trips(http: TestClient, admin: dict[str, str]) -> None:
    base = f"/v1/projects/{_project(http, admin)}/secrets"
    name = "Prüfung ✓ 本番 #2?"
    resp = http.post(base, json={"name": name, "type": "PASSWORD", "value": VALUE}, headers=admin)
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"{base}/{quote(name, safe='')}"
    assert http.get(resp.headers["location"], headers=admin).json()["name"] == name
    assert http.delete(resp.headers["location"], headers=admin).status_code == 204


def test_validation_refuses_and_writes_nothing(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    base = f"/v1/projects/{project_id}/secrets"
    good = {"name": "db", "type": "PASSWORD", "value": CANARY}
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in good.items() if k != "name"}, "name"),
        ({k: v for k, v in good.items() if k != "type"}, "type"),
        ({k: v for k, v in good.items() if k != "value"}, "value"),
        ({**good, "name": ""}, "name"),
        ({**good, "name": " db"}, "name"),
        ({**good, "name": "a/b"}, "name"),
        ({**good, "name": "x" * 256}, "name"),
        ({**good, "name": "nul\x00"}, "name"),
        ({**good, "type": "CERTIFICATE"}, "type"),
        ({**good, "value": ""}, "value"),
        ({**good, "value": 12345678}, "value"),
        ({**good, "value": None}, "value"),
        ({**good, "value": CANARY + "\x00"}, "value"),
        ({**good, "value": CANARY + "\ud800"}, "value"),
        ({**good, "value": CANARY + "é" * 32768}, "value"),
        ({**good, "type": "JSON"}, "value"),
        ({**good, "type": "JSON", "value": json.dumps([CANARY])}, "value"),
        ({**good, "type": "JSON", "value": "[" * 100_000}, "value"),
        ({**good, "type": "PRIVATE_KEY"}, "value"),
        ({**good, "valeu": CANARY}, "valeu"),
        ({**good, "version": 2}, "version"),
    ]
    headers = {**admin, "content-type": "application/json"}
    for body, field in cases:
        resp = http.post(base, content=json.dumps(body), headers=headers)
        assert_problem(resp, 400, field)
        assert CANARY not in resp.text
    # a PUT is checked the same way, and changes nothing when refused
    assert http.post(base, json={**good, "value": VALUE}, headers=admin).status_code == 201
    for body, field in [
        ({}, "value"),
        ({"value": ""}, "value"),
        ({"value": CANARY, "type": "nope"}, "type"),
        ({"value": CANARY, "type": "JSON"}, "value"),
        ({"value": CANARY, "name": "other"}, "name"),
    ]:
        resp = http.put(f"{base}/db", json=body, headers=admin)
        assert_problem(resp, 400, field)
        assert CANARY not in resp.text
    assert http.get(f"{base}/db", headers=admin).json()["version"] == 1
    assert _read(session_factory, project_id, "db") == VALUE
    assert _count(session_factory) == 1
    assert [a for a, _, _ in _secret_actions(session_factory)] == ["secret.created"]


def test_names_are_shared_with_secret_references(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    agent_id = create_agent(http, admin)["agentId"]
    base = f"/v1/projects/{project_id}/secrets"
    refs = f"/v1/projects/{project_id}/secret-references"
    reference = example("04-create-secret-reference-aws", agentId=agent_id, projectId=project_id)
    assert http.post(f"{refs}/Shared-Name", json=reference, headers=admin).status_code == 201
    body = {"name": "shared-name", "type": "PASSWORD", "value": VALUE}
    problem = assert_problem(http.post(base, json=body, headers=admin), 409, "name")
    assert "Shared-Name" in problem["detail"]
    assert http.post(base, json={**body, "name": "hosted-one"}, headers=admin).status_code == 201
    resp = http.post(f"{refs}/HOSTED-ONE", json=reference, headers=admin)
    assert_problem(resp, 409, "secretReferenceName")
    # and within hosted secrets, case-insensitively
    resp = http.post(base, json={**body, "name": "Hosted-One"}, headers=admin)
    assert_problem(resp, 409, "name")
    # a name is only taken within its project
    other = _project(http, admin, "snowflake")
    resp = http.post(f"/v1/projects/{other}/secrets", json=body, headers=admin)
    assert resp.status_code == 201
    assert _count(session_factory) == 2


def test_delete_refused_while_an_environment_refers_to_it(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    agent_id = create_agent(http, admin)["agentId"]
    resp = http.post(
        f"/v1/projects/{project_id}/data-platform-connections",
        json=example("03-create-connection-redshift"),
        headers=admin,
    )
    assert resp.status_code == 201
    base = f"/v1/projects/{project_id}/secrets"
    body = {"name": "finance-prod-redshift", "type": "PASSWORD", "value": VALUE}
    assert http.post(base, json=body, headers=admin).status_code == 201
    env = example("05-create-environment-redshift", agentId=agent_id)
    # the example names secretKey "password": a PASSWORD secret has no keys
    resp = http.post(f"/v1/projects/{project_id}/environments", json=env, headers=admin)
    props = "connectionOverrides[0].connectionProperties"
    assert_problem(resp, 400, f"{props}.password.secretKey")
    env["connectionOverrides"][0]["connectionProperties"]["password"] = {
        "secretName": "FINANCE-PROD-REDSHIFT"
    }
    resp = http.post(f"/v1/projects/{project_id}/environments", json=env, headers=admin)
    assert resp.status_code == 201, resp.text
    assert resp.json()["connectionOverrides"][0]["connectionProperties"]["password"] == {
        "secretName": "finance-prod-redshift",
        "secretKey": None,
    }
    problem = assert_problem(http.delete(f"{base}/finance-prod-redshift", headers=admin), 409)
    assert "prod" in problem["detail"]
    assert _count(session_factory) == 1
    assert (
        http.delete(f"/v1/projects/{project_id}/environments/prod", headers=admin).status_code
        == 204
    )
    assert http.delete(f"{base}/finance-prod-redshift", headers=admin).status_code == 204


def test_delete_refused_while_a_hosted_reference_names_it(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    base = f"/v1/projects/{project_id}/secrets"
    body = {"name": "db", "type": "PASSWORD", "value": VALUE}
    assert http.post(base, json=body, headers=admin).status_code == 201
    reference = {
        **example(
            "04-create-secret-reference-aws",
            agentId=create_agent(http, admin)["agentId"],
            projectId=project_id,
        ),
        "agentType": "Hosted",
        "secretName": "DB",
        "secretKey": None,
    }
    refs = f"/v1/projects/{project_id}/secret-references"
    assert http.post(f"{refs}/db-ref", json=reference, headers=admin).status_code == 201
    problem = assert_problem(http.delete(f"{base}/db", headers=admin), 409)
    assert "db-ref" in problem["detail"]
    # a reference to another store with that secret name does not hold it
    other = {**reference, "agentType": "AWS", "secretName": f"stead/{project_id}/DB"}
    assert http.post(f"{refs}/aws-ref", json=other, headers=admin).status_code == 201
    assert http.delete(f"{refs}/db-ref", headers=admin).status_code == 204
    assert http.delete(f"{base}/db", headers=admin).status_code == 204
    assert _count(session_factory) == 0


def test_json_secret_keys_are_checked_for_environments(
    http: TestClient, admin: dict[str, str]
) -> None:
    project_id = _project(http, admin)
    agent_id = create_agent(http, admin)["agentId"]
    http.post(
        f"/v1/projects/{project_id}/data-platform-connections",
        json=example("03-create-connection-redshift"),
        headers=admin,
    )
    value = json.dumps({"password": VALUE, "port": 5439})
    body = {"name": "finance-prod-redshift", "type": "JSON", "value": value}
    assert (
        http.post(f"/v1/projects/{project_id}/secrets", json=body, headers=admin).status_code == 201
    )
    env = example("05-create-environment-redshift", agentId=agent_id)
    url = f"/v1/projects/{project_id}/environments"
    field = "connectionOverrides[0].connectionProperties.password.secretKey"
    for password in [
        {"secretName": "finance-prod-redshift"},
        {"secretName": "finance-prod-redshift", "secretKey": "passwd"},
        {"secretName": "finance-prod-redshift", "secretKey": "port"},
    ]:
        env["connectionOverrides"][0]["connectionProperties"]["password"] = password
        problem = assert_problem(http.post(url, json=env, headers=admin), 400, field)
        assert VALUE not in json.dumps(problem)
    env["connectionOverrides"][0]["connectionProperties"]["password"] = {
        "secretName": "finance-prod-redshift",
        "secretKey": "password",
    }
    assert http.post(url, json=env, headers=admin).status_code == 201


def test_permissions(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    base = f"/v1/projects/{project_id}/secrets"
    body = {"name": "db", "type": "PASSWORD", "value": VALUE}
    assert http.post(base, json=body, headers=admin).status_code == 201
    viewer = member_auth(http, session_factory, project_id, "VIEWER")
    assert http.get(base, headers=viewer).json()["total"] == 1
    assert http.get(f"{base}/db", headers=viewer).status_code == 200
    assert_problem(http.post(base, json={**body, "name": "x"}, headers=viewer), 403)
    assert_problem(http.put(f"{base}/db", json={"value": "x"}, headers=viewer), 403)
    assert_problem(http.delete(f"{base}/db", headers=viewer), 403)
    contributor = member_auth(http, session_factory, project_id, "CONTRIBUTOR")
    resp = http.post(base, json={**body, "name": "x"}, headers=contributor)
    assert resp.status_code == 201
    outsider = member_auth(http, session_factory, _project(http, admin, "snowflake"), "OWNER")
    assert_problem(http.get(base, headers=outsider), 404)
    assert_problem(http.get(f"{base}/db", headers=outsider), 404)
    assert_problem(http.get(base), 401)
    assert_problem(http.get("/v1/projects/not-a-uuid/secrets", headers=admin), 400, "projectId")


def test_pagination(http: TestClient, admin: dict[str, str]) -> None:
    base = f"/v1/projects/{_project(http, admin)}/secrets"
    for n in range(3):
        body = {"name": f"s{n}", "type": "PASSWORD", "value": VALUE}
        assert http.post(base, json=body, headers=admin).status_code == 201
    page = http.get(base, params={"page": 1, "size": 2}, headers=admin).json()
    assert (page["total"], [r["name"] for r in page["results"]]) == (3, ["s2"])
    assert_problem(http.get(base, params={"size": 101}, headers=admin), 400, "size")


def test_secrets_go_with_their_project(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    other = _project(http, admin, "snowflake")
    for pid in (project_id, other):
        body = {"name": "db", "type": "PASSWORD", "value": VALUE}
        assert http.post(f"/v1/projects/{pid}/secrets", json=body, headers=admin).status_code == 201
    assert http.delete(f"/v1/projects/{project_id}", headers=admin).status_code == 204
    assert _count(session_factory) == 1
    assert _count(session_factory, HostedSecretVersion) == 1
    assert _read(session_factory, other, "db") == VALUE


def test_values_are_encrypted_and_bound_to_their_row(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    base = f"/v1/projects/{project_id}/secrets"
    for name, value in [("a", "value-of-secret-a"), ("b", "value-of-secret-b")]:
        body = {"name": name, "type": "PASSWORD", "value": value}
        assert http.post(base, json=body, headers=admin).status_code == 201
    with session_factory() as session:
        rows = {
            name: version
            for name, version in session.execute(
                select(HostedSecret.name, HostedSecretVersion).join(
                    HostedSecretVersion, HostedSecretVersion.secret_id == HostedSecret.id
                )
            )
        }
    a, b = rows["a"], rows["b"]
    assert b"value-of-secret" not in a.ciphertext + a.wrapped_key + a.nonce
    assert len(a.nonce) == 12 and len(a.wrapped_key) == 12 + 32 + 16
    assert a.key_id == b.key_id and a.wrapped_key != b.wrapped_key
    # swapping the encrypted columns between rows makes both unreadable, not each other's value
    with session_scope(session_factory, write=True) as session:
        for row, source in [(a, b), (b, a)]:
            merged = session.merge(row)
            merged.ciphertext, merged.nonce, merged.wrapped_key = (
                source.ciphertext,
                source.nonce,
                source.wrapped_key,
            )
    for name in ("a", "b"):
        with pytest.raises(SecretUnreadable) as caught, session_factory() as session:
            read_value(session, project_id=project_id, name=name)
        assert "value-of-secret" not in str(caught.value)


def test_a_foreign_master_key_cannot_read(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(http, admin)
    body = {"name": "db", "type": "PASSWORD", "value": VALUE}
    resp = http.post(f"/v1/projects/{project_id}/secrets", json=body, headers=admin)
    assert resp.status_code == 201
    foreign = make_sessionmaker(http.app.state.engine)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="no master keyring"), foreign() as session:
        read_value(session, project_id=project_id, name="db")
    attach_keyring(foreign, Keyring([os.urandom(32)]))
    with pytest.raises(SecretUnreadable, match="not configured"), foreign() as session:
        read_value(session, project_id=project_id, name="db")
    assert _read(session_factory, project_id, "db") == VALUE
