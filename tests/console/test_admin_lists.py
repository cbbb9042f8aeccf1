"""The admin lists (users, agents, API clients, audit) search and page like the projects page:
with JavaScript htmx swaps only the results inside ``<main>`` (the server answers an
``HX-Request`` with the template's ``results`` block) and keeps the URL in step; without it the
same links and forms load whole pages."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Page, Response, expect

from stead.agents import service as agents_service
from stead.agents.schemas import AgentCreate
from stead.db import session_scope
from stead.demo import example
from stead.identity.actor import Actor
from stead.identity.service import get_account
from tests.console.test_audit_page import _seed as seed_events
from tests.support.console import SQLITE_ONLY, Live, Pages, http_login
from tests.support.factories import new_client

#: Objects made per list: more than one page of 50.
MADE = 55


def _users(live: Live) -> None:
    for i in range(MADE):
        live.user(email=f"team-{i:02d}@example.com")


def _agents(live: Live) -> None:
    with session_scope(live.factory, write=True) as session:
        actor = Actor(
            type="api_client",
            id=str(uuid.uuid4()),
            name="tests",
            role="SUPER_ADMIN",
            account_id=get_account(session).id,
        )
        for i in range(MADE):
            data = AgentCreate.model_validate(
                {**example("02-create-agent"), "name": f"team-{i:02d}"}
            )
            agents_service.create(session, actor=actor, data=data)


def _clients(live: Live) -> None:
    for i in range(MADE):
        new_client(live.factory, name=f"team-{i:02d}")


#: page -> how to fill it with more than a page of objects named ``team-NN``.
LISTS: dict[str, Callable[[Live], None]] = {
    "/console/users": _users,
    "/console/agents": _agents,
    "/console/api-clients": _clients,
}


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("path", list(LISTS))
def test_search_and_paging_swap_the_results_only(
    path: str, js: bool, live: Live, pages: Pages
) -> None:
    LISTS[path](live)
    page = pages.as_role("SUPER_ADMIN", js=js)
    errors: list[str] = []
    pages.on(page, "console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(path)
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(50)
    stay(page, js)

    with page.expect_response(lambda r: "page=1" in r.url) as answer:
        page.locator("#results").get_by_role("link", name="Next").click()
    expect(page).to_have_url(re.compile(r"\?page=1$"))
    expect(rows.first).to_be_visible()
    assert 1 <= rows.count() < 50
    assert_swapped(page, answer.value, js)

    search = page.get_by_role("searchbox")
    with page.expect_response(lambda r: "q=team-0" in r.url) as answer:
        if js:  # as you type
            search.press_sequentially("team-0", delay=20)
        else:
            search.fill("team-0")
            page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(10)
    expect(page).to_have_url(re.compile(r"\?q=team-0$"))
    by = "email" if path.endswith("users") else "name"
    expect(page.locator("#results")).to_contain_text(f"whose {by} starts with “team-0”")
    assert_swapped(page, answer.value, js)
    assert errors == []  # nothing refused by the CSP, no failed request


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_audit_filters_and_paging_swap_the_results_only(js: bool, live: Live, pages: Pages) -> None:
    seed_events(live, 60)
    page = pages.as_role("SUPER_ADMIN", js=js, path="/console/audit")
    stay(page, js)
    rows = page.locator("#results tbody tr")
    page.get_by_label("Action").fill("thing.made")
    with page.expect_response(lambda r: "action=thing.made" in r.url) as answer:
        page.get_by_role("button", name="Show events").click()
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("thing-59")
    expect(page).to_have_url(re.compile(r"action=thing.made"))
    assert_swapped(page, answer.value, js)

    with page.expect_response(lambda r: "older=" in r.url) as answer:
        page.locator("#results").get_by_role("link", name="Next").click()
    expect(rows).to_have_count(10)
    expect(page).to_have_url(re.compile(r"action=thing.made&older="))
    assert_swapped(page, answer.value, js)

    # a bad filter: the messages at the field and the summary, which takes focus
    page.get_by_label("Project id").fill("not-a-project")
    page.get_by_role("button", name="Show events").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#error-summary")).to_contain_text("Project: must be a project id")
    expect(page.get_by_label("Project id")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("main")).to_have_count(1)
    if js:
        assert page.evaluate("window.__stayed") is True


def stay(page: Page, js: bool) -> None:
    """With JavaScript, mark the document: the mark survives only while it is not loaded
    again."""
    if js:
        page.evaluate("window.__stayed = true")


def assert_swapped(page: Page, answer: Response, js: bool) -> None:
    """With JavaScript: the document stayed and the answer was the results block alone (no
    ``<html>``, one ``#results``); without it: a whole page came."""
    body = answer.text()
    if js:
        assert page.evaluate("window.__stayed") is True
        assert "<html" not in body and body.lstrip().startswith('<section id="results"')
        expect(page.locator("#results")).to_have_count(1)
        expect(page.locator("main")).to_have_count(1)
    else:
        assert "<html" in body


@pytest.fixture
def client(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=30) as made:
        yield made


@SQLITE_ONLY
@pytest.mark.parametrize(
    "path", ["/console/projects", "/console/users", "/console/agents", "/console/api-clients"]
)
def test_htmx_restoring_a_page_from_history_gets_the_whole_page(
    path: str, live: Live, client: httpx.Client
) -> None:
    _, email = live.user("SUPER_ADMIN")
    http_login(client, email)
    fragment = client.get(path, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="results"' in fragment.text
    # htmx's request for a page missing from its history cache is an HX-Request too
    restored = client.get(
        path, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert restored.status_code == 200
    assert restored.text.lstrip().startswith("<!doctype html>") and "<main" in restored.text
