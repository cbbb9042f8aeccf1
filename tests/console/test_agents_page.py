"""``/console/agents`` in a real browser: create (credentials shown once), edit, allow-list,
delete by typing the name; members read the list without any write control."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from stead.agents.models import Agent
from tests.support.console import SQLITE_ONLY, Live, Pages, screenshot


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_create_edit_allow_list_and_delete(
    live: Live, pages: Pages, js: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    finance = live.project("finance")
    page = pages.as_role("ADMIN", js=js, path="/console/agents")
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    page.get_by_label("Name").fill("eu-west")
    page.get_by_label("Cloud provider").select_option("aws")
    page.get_by_label("Deployment").select_option("eks")
    page.get_by_label("Restricted: serve only the projects of its allow-list").check()
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Create agent").click()
    assert answer.value.status == 201
    assert answer.value.headers["cache-control"] == "no-store"
    expect(page.get_by_role("heading", name="Agent eu-west created")).to_be_visible()
    secret = page.get_by_label("Client secret").input_value()
    assert len(secret) >= 40
    page.get_by_role("link", name="Done: go to agent eu-west").click()
    assert secret not in page.content()
    expect(page.get_by_role("row", name="Status")).to_contain_text("stopped, not connected")

    page.get_by_label("Allowed projects").fill(f"{finance}: prod, dev")
    page.get_by_role("button", name="Save the allow-list of agent eu-west").click()
    expect(page.get_by_role("status")).to_have_text("Allow-list of agent eu-west saved.")
    # an Admin who is not a member sees the project by its id only
    expect(page.get_by_role("row", name=finance)).to_contain_text("prod, dev")
    assert "finance" not in page.locator("#allow-title + p + table").inner_text()

    page.get_by_label("Description").fill("EU loads")
    page.get_by_label("Name").fill("eu-west-1")
    page.get_by_role("button", name="Save agent eu-west").click()
    expect(page.get_by_role("heading", name="Agent eu-west-1")).to_be_visible()
    page.goto("/console/agents")
    expect(page.get_by_role("row", name="eu-west-1")).to_contain_text("Restricted: 1 project")
    assert secret not in page.content()

    page.get_by_role("link", name="eu-west-1").click()
    page.get_by_label("Type eu-west-1 to confirm").fill("eu-west")
    page.get_by_role("button", name="Delete agent eu-west-1").click()
    expect(page.get_by_label("Type eu-west-1 to confirm")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Type eu-west-1 to confirm").fill("eu-west-1")
    page.get_by_role("button", name="Delete agent eu-west-1").click()
    expect(page.get_by_role("status")).to_have_text("Agent eu-west-1 deleted.")
    with live.factory() as session:
        assert session.scalars(select(Agent).where(Agent.name == "eu-west-1")).first() is None
    logs = capfd.readouterr()
    assert secret not in logs.out + logs.err
    if js:
        screenshot(page, "agents")


@SQLITE_ONLY
def test_bad_input_writes_nothing(live: Live, pages: Pages) -> None:
    page = pages.as_role("ADMIN", js=False, path="/console/agents")
    page.get_by_label("Name").fill("gcp-agent")
    page.get_by_label("Cloud provider").select_option("gcp")
    page.get_by_label("Deployment").select_option("fargate")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Create agent").click()
    assert answer.value.status == 400
    expect(page.get_by_label("Deployment")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("not a deployment of gcp")
    expect(page.get_by_label("Name")).to_have_value("gcp-agent")
    with live.factory() as session:
        assert session.scalars(select(Agent).where(Agent.name == "gcp-agent")).first() is None

    page.get_by_label("Deployment").select_option("gke")
    page.get_by_role("button", name="Create agent").click()
    page.get_by_role("link", name="Done: go to agent gcp-agent").click()
    page.get_by_label("Allowed projects").fill("not-a-project")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save the allow-list of agent gcp-agent").click()
    assert answer.value.status == 400
    expect(page.get_by_label("Allowed projects")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("'not-a-project' is not a project id")


@SQLITE_ONLY
def test_a_member_reads_but_cannot_change(live: Live, pages: Pages) -> None:
    hidden = live.project("hidden-project-name")
    admin = pages.as_role("SUPER_ADMIN", js=False, path="/console/agents")
    admin.get_by_label("Name").fill("shared")
    admin.get_by_role("button", name="Create agent").click()
    with live.factory() as session:
        agent_id = session.scalars(select(Agent.id).where(Agent.name == "shared")).one()
    admin.goto(f"/console/agents/{agent_id}")
    admin.get_by_label("Allowed projects").fill(hidden)
    admin.get_by_role("button", name="Save the allow-list of agent shared").click()
    expect(admin.get_by_role("row", name="hidden-project-name")).to_be_visible()
    page = pages.as_role("MEMBER", path="/console/agents")
    expect(page.get_by_role("row", name="shared")).to_be_visible()
    expect(page.get_by_role("button", name="Create agent")).to_have_count(0)
    page.goto(f"/console/agents/{agent_id}")
    expect(page.get_by_role("button")).to_have_count(1)  # only "Log out"
    assert "hidden-project-name" not in page.content()
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    refused = page.request.post(
        f"{live.url}/console/agents/{agent_id}/delete",
        form={"confirm": "shared", "csrf_token": token},
    )
    assert refused.status == 403
    with live.factory() as session:
        assert session.scalars(select(Agent).where(Agent.name == "shared")).one()
