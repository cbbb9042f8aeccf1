"""The Python MCP server ``matillion-api-server`` (tools ``get_matillion_token``,
``get_matillion_projects``, ``get_project_environments``; built on the ``mcp`` SDK and
``requests``), replayed against Stead over HTTP.

What each tool does, and this module repeats: a fresh token per tool call
(``requests.post(token_url, data={grant_type, client_id, client_secret, audience},
headers={"Content-Type": "application/x-www-form-urlencoded"})``), then one GET on
``https://HOST/dpc/v1/...`` with ``Authorization: Bearer`` and ``account-id`` headers,
``raise_for_status()`` and the JSON body handed to the model as text. Projects are paged by the
tool's own ``page``/``size`` arguments (defaults 0 and 25) in the query string.
"""

from __future__ import annotations

from typing import Any

import httpx
import requests

from tests.clients.conftest import AUDIENCE
from tests.support.provision import provision
from tests.support.served import Served

ACCOUNT_ID = "acme"


class MatillionMcpTools:
    """The server's three tools, with its host names replaced by Stead's."""

    def __init__(self, served: Served) -> None:
        self.host, self.client_id, self.secret = served.url, served.client_id, served.client_secret

    def get_matillion_token(self) -> dict[str, Any]:
        response = requests.post(
            f"{self.host}/oauth/dpc/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.secret,
                "audience": AUDIENCE,
            },
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def _get(self, url: str) -> Any:
        token = self.get_matillion_token().get("access_token")
        assert token, "Error: Failed to get access token"
        response = requests.get(
            url, headers={"Authorization": f"Bearer {token}", "account-id": ACCOUNT_ID}
        )
        response.raise_for_status()
        return response.json()

    def get_matillion_projects(self, page: int = 0, size: int = 25) -> Any:
        return self._get(f"{self.host}/dpc/v1/projects?page={page}&size={size}")

    def get_project_environments(self, project_id: str) -> Any:
        return self._get(f"{self.host}/dpc/v1/projects/{project_id}/environments")


def test_tools(served: Served, arrange: httpx.Client) -> None:
    provisioned = provision(arrange, {}, "finance")  # type: ignore[arg-type]
    for name in ("growth", "ops"):
        body = {"name": name, "warehouse": "SNOWFLAKE", "agentDeploymentType": "FULL_SAAS"}
        assert arrange.post("/v1/projects", json=body).status_code == 201
    tools = MatillionMcpTools(served)

    token = tools.get_matillion_token()
    assert token["access_token"] and token["token_type"] == "Bearer"
    assert token["expires_in"] == 1800

    first = tools.get_matillion_projects()
    assert (first["page"], first["size"], first["total"]) == (0, 25, 3)
    assert [p["name"] for p in first["results"]] == ["finance", "growth", "ops"]
    second = tools.get_matillion_projects(page=1, size=2)
    assert [p["name"] for p in second["results"]] == ["ops"] and second["total"] == 3

    environments = tools.get_project_environments(provisioned.project_id)
    assert environments["total"] == 1
    assert environments["results"][0]["name"] == "prod"
    assert environments["results"][0]["defaultAgentId"] == provisioned.agent_id

    # what the tools report to the model for a bad argument: the HTTP error, not a crash
    try:
        tools.get_project_environments("not-a-project")
    except requests.HTTPError as exc:
        assert exc.response.status_code == 400
        assert "projectId" in exc.response.json()["violations"][0]
    else:
        raise AssertionError("a malformed project id must be refused")
