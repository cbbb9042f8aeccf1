"""Arranging the project and environment pages' tests: an API client on the live server, a
provisioned project (over ``/v1``, as users of the API would), and helpers that read a page."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Response, expect

from stead.demo import create_bare_repository
from stead.tls import client_context
from tests.support.console import Live, Pages
from tests.support.factories import create_agent, example, new_client

_numbers = itertools.count(1)

#: The warehouses' connect and query timeouts, in seconds (a loaded machine is slow).
TIMEOUT = 15
#: Milliseconds a connection test may take: both timeouts, the grace second, and slack.
SLOW = (2 * TIMEOUT + 10) * 1000

#: A hosted secret's value and a repository token that no page, header or log line may hold.
CANARY = "canary-7f3c9e2a-hosted-value"
TOKEN_CANARY = "glpat-canary-7f3c9e2a-token"


def api_client(live: Live) -> httpx.Client:
    """An HTTP client on the live server with a Super Admin API client's bearer token."""
    client_id, secret = new_client(live.factory)
    http = httpx.Client(base_url=live.url, timeout=30, verify=client_context())
    resp = http.post(
        "/oauth/dpc/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert resp.status_code == 200, resp.text
    http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
    return http


def ok(resp: httpx.Response, status: int = 201) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else None


@dataclass
class World:
    """A project made over ``/v1``: ``warehouse`` ``redshift`` or ``snowflake``, with its agent,
    DWH connection and the API client that made it."""

    api: httpx.Client
    project_id: str
    name: str
    agent_id: str
    warehouse: str

    @property
    def base(self) -> str:
        return f"/v1/projects/{self.project_id}"

    @property
    def page(self) -> str:
        return f"/console/projects/{self.project_id}"

    def environment_page(self, name: str) -> str:
        return f"{self.page}/environments/{name}"

    def hosted(self, name: str, value: str, kind: str = "PASSWORD") -> None:
        ok(self.api.post(f"{self.base}/secrets", json={"name": name, "type": kind, "value": value}))

    def environment(self, name: str, **properties: Any) -> dict[str, Any]:
        """Create environment ``name`` from the warehouse's example, ``properties`` changed; a
        Redshift password not given is :data:`CANARY`, inline (Stead stores it as a hosted
        secret)."""
        body = example(f"05-create-environment-{self.warehouse}", agentId=self.agent_id)
        body["name"] = name
        if self.warehouse == "redshift":
            properties.setdefault("password", {"value": CANARY})
        body["connectionOverrides"][0]["connectionProperties"].update(properties)
        return dict(ok(self.api.post(f"{self.base}/environments", json=body)))

    def get(self, path: str = "") -> Any:
        return ok(self.api.get(self.base + path), 200)


def make_project(live: Live, api: httpx.Client, warehouse: str, name: str | None = None) -> World:
    """A project of ``warehouse`` with a new agent and the example DWH connection."""
    body = example(f"01-create-project-{warehouse}")
    body["name"] = name or f"{warehouse}-{next(_numbers)}"
    project_id = ok(api.post("/v1/projects", json=body))["projectId"]
    agent_id = create_agent(api, {})["agentId"]  # type: ignore[arg-type]
    ok(
        api.post(
            f"/v1/projects/{project_id}/data-platform-connections",
            json=example(f"03-create-connection-{warehouse}"),
        )
    )
    return World(api, project_id, body["name"], agent_id, warehouse)


def furnish(world: World, tmp: Path) -> None:
    """Give a Redshift project everything its tabs show: a hosted secret (value
    :data:`CANARY`), the example secret reference, the example environment ``prod`` reading it,
    and a ``git`` repository on a local bare repository (token :data:`TOKEN_CANARY`)."""
    world.hosted("canary-pw", CANARY)
    ok(
        world.api.post(
            f"{world.base}/secret-references/finance-prod-redshift",
            json=example(
                "04-create-secret-reference-aws",
                agentId=world.agent_id,
                projectId=world.project_id,
            ),
        )
    )
    world.environment(
        "prod", password={"secretName": "finance-prod-redshift", "secretKey": "password"}
    )
    remote = create_bare_repository(tmp / f"{world.name}.git")
    ok(
        world.api.post(
            f"{world.base}/repositories",
            json={
                "provider": "git",
                "repositoryName": f"{world.name}-pipelines",
                "providerParameters": {"url": remote.resolve().as_uri()},
            },
            headers={"Git-Provider-Access-Token": TOKEN_CANARY},
        )
    )


class Recorder:
    """Every response a page received (status, headers, body of HTML and text answers)."""

    def __init__(self, pages: Pages, page: Page) -> None:
        self.seen: list[tuple[str, int, dict[str, str], bytes]] = []
        pages.on(page, "response", self._record)

    def _record(self, response: Response) -> None:
        body = b""
        kind = response.headers.get("content-type", "")
        if kind.startswith(("text/", "application/json", "application/problem+json")):
            try:
                body = response.body()
            except Exception:  # a redirect has no body to read
                body = b""
        self.seen.append((response.url, response.status, dict(response.headers), body))

    def assert_absent(self, *needles: str) -> None:
        assert self.seen
        for url, _, headers, body in self.seen:
            text = repr(headers).encode() + body
            for needle in needles:
                assert needle.encode() not in text, (needle, url)


@pytest.fixture
def logs(live: Live, caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the live server at DEBUG and above (the app's logging setup replaces
    the root handlers, so caplog's goes back once the app exists)."""
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    yield caplog


def assert_not_logged(logs: pytest.LogCaptureFixture, *needles: str) -> None:
    """No captured log record (its message or any attribute) holds a needle."""
    assert logs.records
    for record in logs.records:
        text = repr(vars(record)) + record.getMessage()
        for needle in needles:
            assert needle not in text, record.name


def main_text(page: Page) -> str:
    """The text of the page's ``<main>``."""
    return page.locator("main").inner_text()


def press_test_connection(page: Page, name: str, js: bool) -> str:
    """Press "Test connection for <name>"; the text of the result region."""
    region = page.locator("#connection-test-result")
    button = page.get_by_role("button", name=f"Test connection for {name}")
    with page.expect_response(lambda r: r.url.endswith("/connection-test"), timeout=SLOW) as answer:
        button.click()
    assert answer.value.status == 200
    if js:  # htmx swapped the region in place
        assert not page.url.endswith("/connection-test")
    else:  # the whole page came back, with the result
        page.wait_for_load_state()
        assert page.url.endswith("/connection-test")
    expect(region).to_contain_text("Connection", timeout=SLOW)
    expect(region).to_have_attribute("aria-live", "polite")
    return region.inner_text()
