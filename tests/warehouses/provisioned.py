"""A project provisioned over HTTP from the example request bodies (``stead/demo_examples``),
up to its environment."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.environments.models import Environment
from tests.support.factories import create_agent, example

SECRET_NAMES = {"redshift": "finance-prod-redshift", "snowflake": "growth-prod-private-key"}
PROPS = "connectionOverrides[0].connectionProperties"


@dataclass(frozen=True)
class Provisioned:
    """A project with its agent, DWH connection and secret reference, and the example
    environment body (``05-create-environment-<warehouse>``) filled in for them."""

    project_id: str
    agent_id: str
    body: dict[str, Any]

    @property
    def base(self) -> str:
        return f"/v1/projects/{self.project_id}/environments"

    def with_properties(self, **changes: Any) -> dict[str, Any]:
        """A copy of the body with connection properties changed (``None`` removes one)."""
        out = copy.deepcopy(self.body)
        props = out["connectionOverrides"][0]["connectionProperties"]
        for key, value in changes.items():
            if value is None:
                props.pop(key, None)
            else:
                props[key] = value
        return out


def provision(http: TestClient, headers: dict[str, str], warehouse: str) -> Provisioned:
    """Run the example provisioning flow for ``warehouse`` (``redshift`` or ``snowflake``) up to,
    not including, the environment."""
    resp = http.post(
        "/v1/projects", json=example(f"01-create-project-{warehouse}"), headers=headers
    )
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["projectId"]
    agent_id = create_agent(http, headers)["agentId"]
    resp = http.post(
        f"/v1/projects/{project_id}/data-platform-connections",
        json=example(f"03-create-connection-{warehouse}"),
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    resp = http.post(
        f"/v1/projects/{project_id}/secret-references/{SECRET_NAMES[warehouse]}",
        json=example("04-create-secret-reference-aws", agentId=agent_id, projectId=project_id),
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    body = example(f"05-create-environment-{warehouse}", agentId=agent_id)
    return Provisioned(project_id, agent_id, body)


def count_environments(factory: sessionmaker[Session]) -> int:
    """How many environments the database holds."""
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Environment)) or 0


def properties(resp: Any) -> dict[str, Any]:
    """The connection properties of an environment response."""
    return resp.json()["connectionOverrides"][0]["connectionProperties"]  # type: ignore[no-any-return]
