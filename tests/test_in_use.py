"""A delete refused because something still uses the object: the 409 names each object that
blocks it, with its project, in ``detail`` and in ``blockedBy``; nothing is deleted."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.environments.test_environments import arrange
from tests.support.factories import assert_problem, create_agent

PROJECT = "finance-analytics"


def _blocked(resp: Any, what: str) -> list[dict[str, str]]:
    problem = assert_problem(resp, 409)
    assert problem["detail"].startswith(f"{what} is used by "), problem["detail"]
    blockers: list[dict[str, str]] = problem["blockedBy"]
    for blocker in blockers:
        assert f"{blocker['name']!r} of project {blocker['project']!r}" in problem["detail"]
    return blockers


def test_every_refused_delete_names_what_blocks_it(http: TestClient, admin: dict[str, str]) -> None:
    env = arrange(http, admin, "redshift")
    assert http.post(env.base, json=env.body, headers=admin).status_code == 201
    project = f"/v1/projects/{env.project_id}"

    # an agent used by an environment and by a secret reference names both
    agent = http.get(f"/v1/agents/{env.agent_id}", headers=admin).json()["name"]
    assert _blocked(
        http.delete(f"/v1/agents/{env.agent_id}", headers=admin), f"Agent {agent!r}"
    ) == [
        {"type": "environment", "name": "prod", "project": PROJECT},
        {"type": "secretReference", "name": "finance-prod-redshift", "project": PROJECT},
    ]
    connection = f"{project}/data-platform-connections/finance-dwh-prod"
    assert _blocked(http.delete(connection, headers=admin), "Connection 'finance-dwh-prod'") == [
        {"type": "environment", "name": "prod", "project": PROJECT}
    ]
    reference = f"{project}/secret-references/finance-prod-redshift"
    assert _blocked(
        http.delete(reference, headers=admin), "Secret reference 'finance-prod-redshift'"
    ) == [{"type": "environment", "name": "prod", "project": PROJECT}]

    # a hosted secret named by an environment, then by a hosted-store secret reference
    secret = {"name": "spare", "type": "PASSWORD", "value": "CANARY-in-use-1"}
    assert http.post(f"{project}/secrets", json=secret, headers=admin).status_code == 201
    override = {
        "connectionName": "finance-dwh-prod",
        "connectionProperties": {"password": {"secretName": "spare"}},
    }
    resp = http.patch(f"{env.base}/prod", json={"connectionOverrides": [override]}, headers=admin)
    assert resp.status_code == 200, resp.text
    resp = http.delete(f"{project}/secrets/spare", headers=admin)
    assert _blocked(resp, "Hosted secret 'spare'") == [
        {"type": "environment", "name": "prod", "project": PROJECT}
    ]
    assert "CANARY" not in resp.text
    assert http.delete(f"{env.base}/prod", headers=admin).status_code == 204
    hosted_reference = {
        "agentId": create_agent(http, admin)["agentId"],
        "agentType": "Hosted",
        "secretReferenceType": "PASSWORD",
        "secretName": "spare",
    }
    resp = http.post(f"{project}/secret-references/spare-ref", json=hosted_reference, headers=admin)
    assert resp.status_code == 201, resp.text
    assert _blocked(
        http.delete(f"{project}/secrets/spare", headers=admin), "Hosted secret 'spare'"
    ) == [{"type": "secretReference", "name": "spare-ref", "project": PROJECT}]
    # nothing was deleted along the way
    assert http.get(f"/v1/agents/{env.agent_id}", headers=admin).status_code == 200
    assert http.get(connection, headers=admin).status_code == 200
    assert http.get(f"{project}/secrets/spare", headers=admin).status_code == 200
