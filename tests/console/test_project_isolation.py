"""Isolation: an Owner of project A gets 404 for every console URL of project B (the page, each
tab, the environment page, its test, profile and forms), the same answer as for a project that
does not exist, and finds no trace of B in the projects list, its search, or A's audit tab."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page

from tests.console.project_world import Recorder, World, api_client, main_text, make_project
from tests.support.console import Live, Pages

TABS = ("overview", "environments", "secrets", "repository", "members", "audit")


def _urls(world: World, user_id: str) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """The GET and the POST URLs of a project's pages (POSTs with a form that would work)."""
    env = world.environment_page("prod")
    gets = [world.page] + [f"{world.page}?tab={tab}" for tab in TABS]
    gets += [env, f"{env}/profile", world.environment_page("missing")]
    posts = [
        (f"{world.page}/rename", {"name": "mine-now"}),
        (f"{world.page}/delete", {"confirm": world.name}),
        (env, {"displayName": "mine", "replace-password": "x"}),
        (f"{env}/connection-test", {}),
        (f"{env}/access", {"userId": user_id, "accessLevel": "admin"}),
        (f"{env}/access/{user_id}/remove", {}),
    ]
    return gets, posts


def _csrf(page: Page) -> str:
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    return token


def test_an_owner_of_a_sees_nothing_of_b(live: Live, pages: Pages) -> None:
    api = api_client(live)
    alpha = make_project(live, api, "redshift", name="alpha-analytics")
    bravo = make_project(live, api, "redshift", name="bravo-hidden-ledger")
    for world in (alpha, bravo):
        world.environment("prod")
    user_id, owner = live.user(project_id=alpha.project_id, project_role="OWNER")
    page = pages.as_user(owner, js=False)
    seen = Recorder(pages, page)
    token = _csrf(page)

    # the same URLs of A answer (the 404s below are not a broken page)
    gets, _ = _urls(alpha, user_id)
    for url in gets[:-1]:
        assert page.request.get(url).status == 200, url

    # every URL of B: 404, like a project that does not exist
    nowhere = World(api, str(uuid.uuid4()), "nowhere", alpha.agent_id, "redshift")
    for world in (bravo, nowhere):
        gets, posts = _urls(world, user_id)
        for url in gets:
            answer = page.request.get(url)
            assert answer.status == 404, url
            assert "Page not found" in answer.text()
        for url, form in posts:
            answer = page.request.post(url, form={"csrf_token": token, **form})
            assert answer.status == 404, url
    assert bravo.get()["name"] == "bravo-hidden-ledger"
    assert bravo.get("/environments/prod")["displayName"] == "Production"
    assert bravo.get("/environments/prod/access")["results"] == []

    # no trace of B: the list, its search, A's audit tab
    page.goto("/console/projects")
    assert "alpha-analytics" in main_text(page)
    for query in ("bravo", "BRAVO-hidden", "b"):
        page.goto(f"/console/projects?q={query}")
        assert "bravo-hidden-ledger" not in main_text(page).lower()
        assert bravo.project_id not in page.content()
    page.goto(f"{alpha.page}?tab=audit")
    text = main_text(page)
    assert "project.created" in text
    assert "bravo" not in text and bravo.project_id not in text

    seen.assert_absent(bravo.project_id, "bravo-hidden-ledger")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_session_of_another_user_is_no_key_to_b(live: Live, pages: Pages) -> None:
    """A Super Admin sees B; their page's forms carry their own CSRF token, which is no use to
    A's Owner (403 before anything runs), and A's Owner still gets 404 for B with their own."""
    api = api_client(live)
    alpha = make_project(live, api, "snowflake", name="alpha")
    bravo = make_project(live, api, "snowflake", name="bravo")
    admin_page = pages.as_role("SUPER_ADMIN", js=False, path=bravo.page)
    admin_token = _csrf(admin_page)
    _, owner = live.user(project_id=alpha.project_id, project_role="OWNER")
    page = pages.as_user(owner, js=False)
    answer = page.request.post(
        f"{bravo.page}/rename", form={"csrf_token": admin_token, "name": "taken-over"}
    )
    assert answer.status == 403
    answer = page.request.post(
        f"{bravo.page}/rename", form={"csrf_token": _csrf(page), "name": "taken-over"}
    )
    assert answer.status == 404
    assert bravo.get()["name"] == "bravo"
