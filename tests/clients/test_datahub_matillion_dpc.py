"""DataHub's ``matillion_dpc`` ingestion source (``MatillionAPIClient`` in
``metadata-ingestion/src/datahub/ingestion/source/matillion_dpc/matillion_api.py``), replayed
against Stead over HTTP with the library it uses, ``requests``.

What the source does, and this module repeats:

- one ``requests.Session`` mounted with urllib3 ``Retry`` (3 tries, 429/5xx, GET only), whose
  default headers carry ``Content-Type: application/json`` on every request, GETs included;
- token: ``requests.post(custom_oauth_token_url, data={grant_type, client_id, client_secret,
  audience}, headers={"Content-Type": "application/x-www-form-urlencoded"})``, then
  ``Authorization: Bearer`` on the session; a 401 from the API fetches a new token and retries
  once;
- base URL ``custom_base_url`` (``https://HOST/dpc``) + ``/v1/projects`` and
  ``/v1/projects/{projectId}/environments``;
- paging: ``size=25&page=N`` (params in that order), next page while ``page + 1`` is below
  ``ceil(total / size)`` and the page was not empty;
- items parsed with its pydantic models: a project needs ``id`` and ``name`` (``description``
  optional), an environment ``name`` (``defaultAgentId``, ``defaultAgentName`` optional).
"""

from __future__ import annotations

from typing import Any

import httpx
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tests.clients.conftest import AUDIENCE
from tests.support.provision import environment_body, provision
from tests.support.served import Served


class DataHubMatillionClient:
    """The source's API client: same session setup, token request, retry on 401 and paging."""

    def __init__(self, base_url: str, token_url: str, client_id: str, client_secret: str) -> None:
        self.base_url, self.token_url = base_url, token_url
        self.client_id, self.client_secret = client_id, client_secret
        self.session = requests.Session()
        adapter = HTTPAdapter(
            max_retries=Retry(
                total=3,
                backoff_factor=1,
                status_forcelist=[429, 500, 502, 503, 504],
                allowed_methods=["GET"],
            )
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Content-Type": "application/json"})
        self.token_requests = 0
        self.generate_token()

    def generate_token(self) -> None:
        response = requests.post(
            self.token_url,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "audience": AUDIENCE,
            },
            timeout=30,
        )
        response.raise_for_status()
        access_token = response.json().get("access_token")
        assert access_token, "No access_token in OAuth2 response"
        self.session.headers.update({"Authorization": f"Bearer {access_token}"})
        self.token_requests += 1

    def make_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}/{endpoint}"
        response = self.session.request(method, url, timeout=30, **kwargs)
        if response.status_code == 401:
            self.generate_token()
            response = self.session.request(method, url, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def paginated(self, endpoint: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params = {"size": 25, "page": 0}
        while True:
            response = self.make_request("GET", endpoint, params=params)
            page_items = response.get("results", [])
            items.extend(page_items)
            size = response.get("size", params["size"])
            total_pages = (response.get("total", 0) + size - 1) // size if size > 0 else 0
            if response.get("page", params["page"]) + 1 >= total_pages or not page_items:
                return items
            params["page"] += 1

    def get_projects(self) -> list[dict[str, Any]]:
        projects = self.paginated("v1/projects")
        for project in projects:  # MatillionProject(id: str, name: str, description: str | None)
            assert isinstance(project["id"], str) and isinstance(project["name"], str)
            assert project.get("description") is None or isinstance(project["description"], str)
        return projects

    def get_environments(self, project_id: str) -> list[dict[str, Any]]:
        environments = self.paginated(f"v1/projects/{project_id}/environments")
        for environment in environments:  # MatillionEnvironment(name, defaultAgentId/Name)
            assert isinstance(environment["name"], str)
        return environments


def _client(served: Served) -> DataHubMatillionClient:
    # the recipe: api_config.custom_base_url and custom_oauth_token_url point at Stead
    return DataHubMatillionClient(
        f"{served.url}/dpc",
        f"{served.url}/oauth/dpc/token",
        served.client_id,
        served.client_secret,
    )


def test_ingests_every_project_and_its_environments(served: Served, arrange: httpx.Client) -> None:
    first = provision(arrange, {}, "finance")  # type: ignore[arg-type]
    resp = arrange.post(
        f"{first.base}/environments", json=environment_body(first.agent_id, "dev", "default")
    )
    assert resp.status_code == 201, resp.text
    for n in range(26):
        body = {"name": f"project {n:02}", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}
        assert arrange.post("/v1/projects", json=body).status_code == 201

    source = _client(served)
    projects = source.get_projects()
    assert len(projects) == 27 and len({p["id"] for p in projects}) == 27  # pages of 25 and 2
    assert {p["name"] for p in projects} >= {"finance", "project 00", "project 25"}
    by_project = {p["id"]: source.get_environments(p["id"]) for p in projects}
    environments = by_project.pop(first.project_id)
    assert sorted(e["name"] for e in environments) == ["dev", "prod"]
    assert {e["defaultAgentId"] for e in environments} == {first.agent_id}
    assert all(e["defaultAgentName"] for e in environments)
    assert not any(by_project.values())
    assert source.token_requests == 1


def test_a_401_fetches_a_new_token_and_retries(served: Served, arrange: httpx.Client) -> None:
    assert arrange.post("/v1/projects", json={**_project_body(), "name": "p"}).status_code == 201
    source = _client(served)
    source.session.headers["Authorization"] = "Bearer expired.token.value"
    assert [p["name"] for p in source.get_projects()] == ["p"]
    assert source.token_requests == 2


def _project_body() -> dict[str, str]:
    return {"name": "x", "warehouse": "SNOWFLAKE", "agentDeploymentType": "FULL_SAAS"}
