"""Provision a Redshift project over HTTP from the example request bodies
(``stead/demo_examples``): agent, DWH connection, secret reference and environment (used by the
people-and-access and audit tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from tests.support.factories import create_agent, example

CONNECTION = "finance-dwh-prod"
SECRET_REFERENCE = "finance-prod-redshift"


@dataclass(frozen=True)
class Provisioned:
    """What :func:`provision` created."""

    project_id: str
    agent_id: str
    environment: str

    @property
    def base(self) -> str:
        return f"/v1/projects/{self.project_id}"


def _ok(resp: Any, status: int = 201) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def environment_body(agent_id: str, name: str, access: str) -> dict[str, Any]:
    """The Redshift example environment ``name`` with ``defaultUserAccessLevel`` ``access``."""
    body = example("05-create-environment-redshift", agentId=agent_id)
    body.update(name=name, defaultUserAccessLevel=access)
    return body


def provision(
    http: TestClient,
    headers: dict[str, str],
    name: str,
    environment: str = "prod",
    access: str = "default",
) -> Provisioned:
    """Create project ``name`` with an agent, the example connection and secret reference, and
    one environment (``defaultUserAccessLevel`` = ``access``)."""
    body = example("01-create-project-redshift")
    body["name"] = name
    project_id = _ok(http.post("/v1/projects", json=body, headers=headers))["projectId"]
    base = f"/v1/projects/{project_id}"
    agent_id = create_agent(http, headers)["agentId"]
    _ok(
        http.post(
            f"{base}/data-platform-connections",
            json=example("03-create-connection-redshift"),
            headers=headers,
        )
    )
    _ok(
        http.post(
            f"{base}/secret-references/{SECRET_REFERENCE}",
            json=example("04-create-secret-reference-aws", agentId=agent_id, projectId=project_id),
            headers=headers,
        )
    )
    _ok(
        http.post(
            f"{base}/environments",
            json=environment_body(agent_id, environment, access),
            headers=headers,
        )
    )
    return Provisioned(project_id, agent_id, environment)
