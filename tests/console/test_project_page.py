"""The project page, ``/console/projects/{id}``: its tabs show what ``/v1`` shows (with
JavaScript on and off), rename, delete by typing the name, and a reader's page without edit
forms (docs/console.md)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.console.project_world import (
    CANARY,
    TOKEN_CANARY,
    Recorder,
    World,
    api_client,
    furnish,
    main_text,
    make_project,
)
from tests.support.console import SQLITE_ONLY, Live, Pages, screenshot, table_rows


@pytest.fixture
def api(live: Live) -> httpx.Client:
    return api_client(live)


@pytest.fixture
def world(live: Live, api: httpx.Client, tmp_path: Path) -> World:
    world = make_project(live, api, "redshift", name="finance")
    furnish(world, tmp_path)
    return world


def _tab(page: Page, label: str) -> str:
    page.get_by_role("navigation", name="Project sections").get_by_role(
        "link", name=label, exact=True
    ).click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", level=2, name=label)).to_be_visible()
    return main_text(page)


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_tabs_show_what_the_api_shows(
    live: Live, pages: Pages, world: World, js: bool, db_url: str
) -> None:
    owner_id, owner = live.user(project_id=world.project_id, project_role="OWNER")
    _, viewer = live.user(project_id=world.project_id, project_role="VIEWER")
    page = pages.as_user(owner, js=js)
    seen = Recorder(pages, page)
    page.get_by_role("link", name=world.name, exact=True).click()
    page.wait_for_load_state()
    assert page.url.endswith(world.page)

    project = world.get()
    text = main_text(page)
    for shown in (project["name"], project["warehouse"], project["agentDeploymentType"]):
        assert shown in text
    for connection in world.get("/data-platform-connections")["results"]:
        assert connection["name"] in text and connection["authType"] in text
    if js and db_url.startswith("sqlite"):
        screenshot(page, "project")

    text = _tab(page, "Environments")
    environments = world.get("/environments")["results"]
    for environment in environments:
        assert environment["name"] in text and environment["defaultAgentName"] in text
    link = page.get_by_role("link", name="prod", exact=True)
    assert link.get_attribute("href") == f"{world.page}/environments/prod"

    text = _tab(page, "Secrets")
    for secret in world.get("/secrets")["results"]:
        assert secret["name"] in text
    for reference in world.get("/secret-references")["results"]:
        assert reference["name"] in text and reference["secretName"] in text
        assert reference["agentType"] in text

    text = _tab(page, "Repository")
    repository = world.get("/repositories")
    assert repository["provider"] in text and repository["repositoryName"] in text
    assert repository["cloneUrl"] in text

    text = _tab(page, "Members")
    for member in world.get("/members")["results"]:
        assert member["name"] in text and member["projectRole"] in text
    assert owner in text and viewer in text
    manage = page.get_by_role("link", name=f"Manage members and invitations of {world.name}")
    assert manage.get_attribute("href") == f"{world.page}/members"

    text = _tab(page, "Audit")
    events = world.api.get("/v1/audit-events", params={"projectId": world.project_id}).json()
    actions = {e["action"] for e in events["results"]}
    assert {"project.created", "environment.created", "secret.created"} <= actions
    assert {e["Action"] for e in table_rows(page.locator("main table"))} == actions
    assert owner_id not in text  # nothing happened as the owner yet

    seen.assert_absent(CANARY, TOKEN_CANARY)


@SQLITE_ONLY
def test_audit_tab_pages_by_keyset(live: Live, pages: Pages, api: httpx.Client) -> None:
    world = make_project(live, api, "snowflake")
    for n in range(60):
        resp = api.patch(world.base, json={"description": f"revision {n}"})
        assert resp.status_code == 200
    _, owner = live.user(project_id=world.project_id, project_role="OWNER")
    page = pages.as_user(owner, js=False, path=f"{world.page}?tab=audit")
    rows = page.locator("main table tbody tr")
    expect(rows).to_have_count(50)
    events = table_rows(page.locator("main table"))
    assert "Project" not in events[0]  # every event is this project's
    times = [e["When (UTC)"] for e in events]
    assert times == sorted(times, reverse=True)  # newest first
    assert {e["Action"] for e in events} == {"project.updated"}
    assert events[0]["Details"].startswith("{") and "description" in events[0]["Details"]
    page.get_by_role("link", name="Next").click()
    page.wait_for_load_state()
    assert "older=" in page.url
    # the rest: 10 more updates, the project and its connection created
    expect(rows).to_have_count(12)
    assert table_rows(page.locator("main table"))[-1]["Action"] == "project.created"
    expect(page.get_by_role("link", name="Next")).to_have_count(0)
    page.get_by_role("link", name="First").click()
    expect(rows).to_have_count(50)


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_rename(live: Live, pages: Pages, api: httpx.Client, js: bool) -> None:
    world = make_project(live, api, "snowflake", name="growth")
    make_project(live, api, "snowflake", name="taken")
    _, owner = live.user(project_id=world.project_id, project_role="OWNER")
    page = pages.as_user(owner, js=js, path=world.page)

    # a name breaking the rules: 400, the message at the field, nothing changed
    page.get_by_label("Name").fill("growth/eu")
    with page.expect_response(lambda r: r.url.endswith("/rename")) as answer:
        page.get_by_role("button", name="Rename project growth").click()
    assert answer.value.status == 400
    field = page.get_by_label("Name")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#name-error")).to_contain_text("/")
    expect(page.get_by_role("alert")).to_contain_text("There is a problem")
    assert world.get()["name"] == "growth"

    # a name another project has: 409 at the field
    page.get_by_label("Name").fill("TAKEN")
    with page.expect_response(lambda r: r.url.endswith("/rename")) as answer:
        page.get_by_role("button", name="Rename project growth").click()
    assert answer.value.status == 409
    expect(page.locator("#name-error")).to_contain_text("already used")
    assert world.get()["name"] == "growth"

    page.get_by_label("Name").fill("growth-eu")
    page.get_by_label("Description").fill("Growth analytics, EU")
    page.get_by_role("button", name="Rename project growth").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", level=1)).to_have_text("growth-eu")
    expect(page.get_by_role("status").first).to_contain_text("Project renamed to growth-eu")
    project = world.get()
    assert (project["name"], project["description"]) == ("growth-eu", "Growth analytics, EU")


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_delete_by_typing_the_name(live: Live, pages: Pages, api: httpx.Client, js: bool) -> None:
    world = make_project(live, api, "redshift", name="Sales")
    world.environment("prod")
    _, owner = live.user(project_id=world.project_id, project_role="OWNER")
    page = pages.as_user(owner, js=js, path=world.page)
    button = page.get_by_role("button", name="Delete project Sales")

    for wrong in ("sales", "Sales ", "Sale"):
        page.get_by_label("Type Sales to confirm").fill(wrong)
        with page.expect_response(lambda r: r.url.endswith("/delete")) as answer:
            button.click()
        assert answer.value.status == 400
        expect(page.get_by_label("Type Sales to confirm")).to_have_attribute("aria-invalid", "true")
        assert world.api.get(world.base).status_code == 200

    page.get_by_label("Type Sales to confirm").fill("Sales")
    page.get_by_role("button", name="Delete project Sales").click()
    page.wait_for_load_state()
    assert page.url.endswith("/console/projects")
    expect(page.get_by_role("status").first).to_contain_text("Project Sales was deleted")
    assert world.api.get(world.base).status_code == 404
    assert page.goto(world.page).status == 404  # type: ignore[union-attr]


@SQLITE_ONLY
def test_a_reader_sees_no_edit_forms_and_may_not_post(
    live: Live, pages: Pages, api: httpx.Client
) -> None:
    world = make_project(live, api, "redshift", name="ledger")
    world.environment("prod")
    _, viewer = live.user(project_id=world.project_id, project_role="VIEWER")
    page = pages.as_user(viewer, js=True, path=world.page)
    expect(page.get_by_role("heading", level=1)).to_have_text("ledger")
    expect(page.get_by_role("button", name="Rename project ledger")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete project ledger")).to_have_count(0)
    tabs = page.get_by_role("navigation", name="Project sections")
    expect(tabs.get_by_role("link", name="Audit")).to_have_count(0)
    expect(page.get_by_role("link", name="Manage members and invitations of ledger")).to_have_count(
        0
    )
    assert page.goto(f"{world.page}?tab=audit").status == 403  # type: ignore[union-attr]

    page.goto(world.page)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    for path, form in (("rename", {"name": "mine"}), ("delete", {"confirm": "ledger"})):
        answer = page.request.post(f"{world.page}/{path}", form={"csrf_token": token, **form})
        assert answer.status == 403, path
    assert world.get()["name"] == "ledger"
