"""Matillion's Terraform provider ``matillion-public/terraform-provider-matillion-streaming``
(``internal/client``), replayed against Stead over HTTP exactly as the provider calls DPC.

What the provider does, and this module repeats:

- token: ``golang.org/x/oauth2/clientcredentials`` with ``EndpointParams{"audience": ...}``.
  Its default auth style sends the client id and secret as HTTP Basic, each form-urlencoded
  first (RFC 6749 section 2.3.1), and the form body ``audience=...&grant_type=client_credentials``.
- every API call: base URL ``https://<region>.api.matillion.com/dpc/v1``, headers
  ``account-id`` and the bearer token, ``Content-Type: application/json`` only with a body, and
  *exactly one* accepted status per call (``doRequest``'s ``expectedStatus``): create 201,
  read 200, update 202, delete 202, credentials 200, list 200.
- ``matillion-streaming_agent``: create (``agentType: streaming``, ``description`` left out
  when empty), then read back; every read must give back what was planned (name, description,
  deployment, cloud provider) or Terraform stops with "inconsistent result after apply", and a
  read of a non-streaming agent is an error. Update sends ``name`` and ``description``
  (``omitempty``) then reads back. Import is a read.
- ``matillion-streaming_agent_credentials``: ``GET /agents/{id}/credentials``, non-empty
  ``clientId`` and ``clientSecret``.
- list: ``?page=N`` with no size, until a page is empty or shorter than ``size``.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from tests.clients.conftest import AUDIENCE
from tests.support.served import Served

GO_HEADERS = {"User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip"}
ACCOUNT_ID = "12345"


class ProviderClient:
    """The provider's ``client.Client``: one method per call it makes, same wire, same checks."""

    def __init__(self, served: Served) -> None:
        self.api_url = f"{served.url}/dpc/v1"
        self.http = httpx.Client(headers=GO_HEADERS, timeout=30)
        self.token = go_oauth2_token(self.http, served.url, served.client_id, served.client_secret)

    def request(
        self, method: str, url: str, expected: int, body: dict[str, Any] | None = None
    ) -> Any:
        headers = {"account-id": ACCOUNT_ID, "Authorization": f"Bearer {self.token}"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = httpx.Request("POST", url, json=body).content  # Go's json.Marshal
        resp = self.http.request(method, url, headers=headers, content=content)
        assert resp.status_code == expected, f"status code: {resp.status_code}, {resp.text}"
        return resp.json() if resp.content else None

    def create(self, name: str, description: str, deployment: str, cloud_provider: str) -> str:
        body = {"name": name, "deployment": deployment, "cloudProvider": cloud_provider}
        if description:  # `json:"description,omitempty"`
            body["description"] = description
        body["agentType"] = "streaming"
        created = self.request("POST", f"{self.api_url}/agents", 201, body)
        return str(created["agentId"])

    def get(self, agent_id: str) -> dict[str, str]:
        agent = self.request("GET", f"{self.api_url}/agents/{agent_id}", 200)
        # Go decodes a JSON null into a string field as "" (encoding/json)
        return {
            key: agent.get(key) or ""
            for key in (
                "agentId",
                "name",
                "description",
                "deployment",
                "cloudProvider",
                "agentType",
            )
        }

    def update(self, agent_id: str, name: str, description: str) -> None:
        body = {k: v for k, v in (("name", name), ("description", description)) if v}
        self.request("PATCH", f"{self.api_url}/agents/{agent_id}", 202, body)

    def delete(self, agent_id: str) -> None:
        self.request("DELETE", f"{self.api_url}/agents/{agent_id}", 202)

    def credentials(self, agent_id: str) -> dict[str, str]:
        got = self.request("GET", f"{self.api_url}/agents/{agent_id}/credentials", 200)
        return {
            "clientId": got.get("clientId") or "",
            "clientSecret": got.get("clientSecret") or "",
        }

    def list(self) -> list[dict[str, Any]]:
        agents: list[dict[str, Any]] = []
        page = 0
        while True:
            response = self.request("GET", f"{self.api_url}/agents?page={page}", 200)
            if not response["results"]:
                break
            agents += response["results"]
            if len(response["results"]) < response["size"]:
                break
            page += 1
        return agents


def go_oauth2_token(http: httpx.Client, host: str, client_id: str, client_secret: str) -> str:
    """``clientcredentials.Config.Token`` with the default auth style (credentials in the
    header, each ``url.QueryEscape``d, then Basic-encoded)."""
    basic = base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode())
    resp = http.post(
        f"{host}/oauth/dpc/token",
        headers={
            "Authorization": f"Basic {basic.decode()}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        content=f"audience={quote_plus(AUDIENCE)}&grant_type=client_credentials",
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    token = resp.json()
    assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
    assert token["access_token"]
    return str(token["access_token"])


@pytest.fixture
def provider(served: Served) -> ProviderClient:
    return ProviderClient(served)


def test_agent_resource_lifecycle(provider: ProviderClient) -> None:
    plan = {
        "name": "tf-streaming",
        "description": "Test agent for credentials data source",
        "deployment": "fargate",
        "cloudProvider": "aws",
    }
    # terraform apply: Create, then read back into state
    agent_id = provider.create(
        plan["name"], plan["description"], plan["deployment"], plan["cloudProvider"]
    )
    state = provider.get(agent_id)
    assert state == {**plan, "agentId": agent_id, "agentType": "streaming"}

    # data "matillion-streaming_agent_credentials": credentials without any refresh first
    creds = provider.credentials(agent_id)
    assert creds["clientId"] and creds["clientSecret"]
    assert provider.credentials(agent_id) == creds  # a refresh of the plan shows no change

    # terraform apply after editing name and description: Update (202), then read back
    plan.update(name="tf-streaming-renamed", description="edited in HCL")
    provider.update(agent_id, plan["name"], plan["description"])
    assert provider.get(agent_id) == {**plan, "agentId": agent_id, "agentType": "streaming"}

    # terraform import: a read of the id
    assert provider.get(agent_id)["agentType"] == "streaming"

    # terraform destroy: Delete (202); a later refresh finds it gone
    provider.delete(agent_id)
    resp = provider.http.get(
        f"{provider.api_url}/agents/{agent_id}",
        headers={"account-id": ACCOUNT_ID, "Authorization": f"Bearer {provider.token}"},
    )
    assert resp.status_code == 404


def test_agent_without_description_reads_back_empty(provider: ProviderClient) -> None:
    # the schema's default description is "": Create leaves it out, the read must give ""
    agent_id = provider.create("tf-no-description", "", "aks", "azure")
    assert provider.get(agent_id) == {
        "agentId": agent_id,
        "name": "tf-no-description",
        "description": "",
        "deployment": "aks",
        "cloudProvider": "azure",
        "agentType": "streaming",
    }
    # an update that only renames keeps the (empty) description
    provider.update(agent_id, "tf-renamed", "")
    assert provider.get(agent_id)["description"] == ""
    assert provider.credentials(agent_id)["clientSecret"]


def test_list_pages_until_a_short_page(provider: ProviderClient) -> None:
    created = {
        provider.create(f"tf-agent-{n:02}", "", "gke", "gcp") for n in range(26)
    }  # with the hosted agent: 27 agents, pages of 25 and 2
    listed = provider.list()
    ids = [a["agentId"] for a in listed]
    assert len(ids) == len(set(ids)) == 27
    assert created < set(ids)


def test_basic_credentials_are_form_urldecoded(served: Served) -> None:
    # RFC 6749 section 2.3.1: a client may percent-encode every character of the pair
    with httpx.Client(timeout=30) as http:
        encoded_id = "".join(f"%{b:02X}" for b in served.client_id.encode())
        encoded_secret = quote(served.client_secret, safe="")
        basic = base64.b64encode(f"{encoded_id}:{encoded_secret}".encode()).decode()
        resp = http.post(
            f"{served.url}/oauth/dpc/token",
            headers={"Authorization": f"Basic {basic}"},
            data={"grant_type": "client_credentials", "audience": AUDIENCE},
        )
        assert resp.status_code == 200, resp.text
        wrong = base64.b64encode(f"{encoded_id}:{encoded_secret}x".encode()).decode()
        refused = http.post(
            f"{served.url}/oauth/dpc/token",
            headers={"Authorization": f"Basic {wrong}"},
            data={"grant_type": "client_credentials"},
        )
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
