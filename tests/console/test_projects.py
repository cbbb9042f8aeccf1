"""``/console/projects``: only what the user may see, prefix search, keyset paging, and
search as you type."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.console import SQLITE_ONLY, Live, Pages, http_login, screenshot


def _names(page_html: str) -> list[str]:
    import re

    return re.findall(r'<th scope="row"><a href="/console/projects/[^"]+">([^<]+)</a>', page_html)


@pytest.fixture
def client(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=30) as made:
        yield made


def test_a_member_sees_only_their_projects(live: Live, pages: Pages) -> None:
    finance, _hidden = live.projects(["Finance", "Hidden Ops"])
    live.projects(["Fintech"])
    page = pages.as_role("MEMBER", js=False, project_id=finance, project_role="VIEWER")
    rows = page.get_by_role("main").get_by_role("row")
    expect(rows).to_have_count(2)
    expect(page.get_by_role("link", name="Finance")).to_be_visible()
    assert "Hidden Ops" not in page.content() and "Fintech" not in page.content()
    expect(page.get_by_text("1 project", exact=True)).to_be_visible()
    page.get_by_label("Search projects by name").fill("fin")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(f"{live.url}/console/projects?q=fin")
    expect(rows).to_have_count(2)
    assert "Fintech" not in page.content()
    # Users and agents are not in a member's navigation; Projects is.
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    expect(nav.get_by_role("link", name="API clients")).to_have_count(0)
    expect(nav.get_by_role("link", name="Projects")).to_have_attribute("aria-current", "page")


@SQLITE_ONLY
def test_search_as_you_type_swaps_the_results(live: Live, pages: Pages) -> None:
    live.projects(["Finance", "fintech", "Marketing", "Ops"])
    page = pages.as_role("SUPER_ADMIN")
    errors: list[str] = []
    pages.on(page, "console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.evaluate("window.__stayed = true")  # survives only if the page is not reloaded
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(4)
    page.get_by_label("Search projects by name").press_sequentially("FIN", delay=30)
    expect(rows).to_have_count(2)
    expect(page).to_have_url(f"{live.url}/console/projects?q=FIN")
    assert page.evaluate("window.__stayed") is True
    expect(page.locator("#results")).to_contain_text("2 projects whose name starts with “FIN”")
    assert errors == []  # nothing refused by the CSP, no failed request
    screenshot(page, "projects")


@SQLITE_ONLY
def test_keyset_paging_forward_back_and_last(live: Live, client: httpx.Client) -> None:
    names = [f"p-{i:03d}" for i in range(1, 121)]
    live.projects(names)
    _, email = live.user("SUPER_ADMIN")
    http_login(client, email)
    first = client.get("/console/projects")
    assert _names(first.text) == names[:50]
    assert "120 projects" in first.text
    second = client.get(_link(first.text, "Next"))
    assert _names(second.text) == names[50:100]
    third = client.get(_link(second.text, "Next"))
    assert _names(third.text) == names[100:]
    assert 'rel="next"' not in third.text
    back = client.get(_link(third.text, "Previous"))
    assert _names(back.text) == names[50:100]
    last = client.get(_link(first.text, "Last"))
    assert _names(last.text) == names[70:]
    assert _names(client.get(_link(last.text, "Previous")).text) == names[20:70]
    # A prefix search pages in name order.
    searched = client.get("/console/projects", params={"q": "P-1"})
    assert _names(searched.text) == names[99:]
    assert "21 projects" in searched.text
    bad = client.get("/console/projects", params={"after": "not-a-number"})
    assert bad.status_code == 400
    assert "after is not a valid cursor" in bad.text


@SQLITE_ONLY
def test_large_filtered_results_are_not_counted(live: Live, client: httpx.Client) -> None:
    live.projects([f"bulk-{i:04d}" for i in range(1001)])
    _, email = live.user("SUPER_ADMIN")
    http_login(client, email)
    assert "1,001 projects" in client.get("/console/projects").text  # the account's count
    assert "1,000+ projects" in client.get("/console/projects", params={"q": "bulk"}).text
    exactly = client.get("/console/projects", params={"q": "bulk-0"}).text  # 1,000 match
    assert "1,000 projects whose name starts with" in exactly


def _link(html: str, label: str) -> str:
    import re

    found = re.search(rf'<a href="([^"]+)"[^>]*>{label}</a>', html)
    assert found, label
    return found.group(1).replace("&amp;", "&")
