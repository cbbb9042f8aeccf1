"""``/console/plan`` in a real browser: a pasted or uploaded file's plan in words and colour,
problems at their lines, Apply creating the objects as the person, and an Apply refused when
the plan changed since the preview."""

from __future__ import annotations

import textwrap

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from stead.agents.models import Agent
from stead.environments.models import Environment
from stead.projects.models import Project
from tests.support.console import SQLITE_ONLY, Live, Pages, screenshot

CANARY = "canary-plan-secret-5d2e"


def document(project: str = "finance", agent: str = "eu agent") -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        agents:
          - name: {agent}
            agentType: data_productivity_cloud
            cloudProvider: aws
            deployment: fargate
        projects:
          - name: {project}
            warehouse: redshift
            agentDeploymentType: hybrid
            connections:
              - name: dwh
                platformConnectionType: dwh
                authProvider: redshift
                authType: password
            secretReferences:
              - name: dwh-password
                agentName: {agent}
                agentType: AWS
                secretName: "stead/{{projectId}}/prod/redshift"
                secretKey: password
            environments:
              - name: prod
                defaultAgentName: {agent}
                defaultUserAccessLevel: readOnly
                defaultConnections: {{DWH: {{redshift: dwh}}}}
                connectionOverrides:
                  - connectionName: dwh
                    connectionProperties:
                      url: {{value: examplecluster.abc123.eu-west-1.redshift.amazonaws.com}}
                      port: {{value: "5439"}}
                      username: {{value: loader}}
                      password: {{secretName: dwh-password, secretKey: password}}
                      defaultDatabase: {{value: finance}}
        """
    )


def _preview(page: Page, text: str) -> None:
    page.goto("/console/plan")
    page.get_by_label("YAML document").fill(text)
    page.get_by_role("button", name="Preview the plan").click()


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_plan_then_apply_creates_the_objects(live: Live, pages: Pages, js: bool) -> None:
    page = pages.as_role("SUPER_ADMIN", js=js)
    _preview(page, document())
    plan = page.locator("table.plan tbody tr")
    expect(plan).to_have_count(5)
    for label in (
        'agent "eu agent"',
        'project "finance"',
        'project "finance" / environment "prod"',
    ):
        row = page.get_by_role("row", name=label, exact=False).first
        expect(row).to_contain_text("create")
        expect(row).to_have_class("plan-create")
    expect(page.locator("#plan")).to_contain_text("Plan: 5 to create, 0 to update")
    if js:
        screenshot(page, "plan")
    page.get_by_role("button", name="Apply this plan").click()
    expect(page).to_have_url(f"{live.url}/console/plan")
    expect(page.get_by_role("status")).to_have_text("Applied 5 change(s).")
    with live.factory() as session:
        project = session.scalars(select(Project).where(Project.name == "finance")).one()
        assert session.scalars(select(Agent).where(Agent.name == "eu agent")).one()
        env = session.scalars(select(Environment).where(Environment.project_id == project.id))
        assert [e.name for e in env] == ["prod"]
    # planned again: nothing left to do
    _preview(page, document())
    expect(page.locator("#plan")).to_contain_text("0 to create, 0 to update, 0 to replace")
    expect(page.get_by_text("Nothing to apply")).to_be_visible()
    expect(page.get_by_role("button", name="Apply this plan")).to_have_count(0)


@SQLITE_ONLY
def test_a_changed_plan_is_refused(live: Live, pages: Pages) -> None:
    page = pages.as_role("SUPER_ADMIN", js=False)
    _preview(page, document("growth", agent="us agent"))
    expect(page.locator("table.plan tbody tr")).to_have_count(5)
    live.project("growth", warehouse="redshift")  # someone else creates the project meanwhile
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Apply this plan").click()
    assert answer.value.status == 409
    expect(page.get_by_role("alert").first).to_contain_text(
        "The plan changed since the preview, so nothing was applied"
    )
    expect(page.get_by_role("row", name='project "growth"').first).to_contain_text("no change")
    with live.factory() as session:
        assert session.scalars(select(Agent).where(Agent.name == "us agent")).first() is None


@SQLITE_ONLY
def test_problems_at_their_lines_and_secrets_refused(live: Live, pages: Pages) -> None:
    page = pages.as_role("SUPER_ADMIN")
    _preview(page, document().replace("warehouse: redshift", "warehouse: oracle"))
    expect(page.get_by_label("YAML document")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("line 9 projects[0].warehouse")
    _preview(page, "projects: [\n  {name: x\n")
    expect(page.get_by_role("alert")).to_contain_text("not valid YAML")
    expect(page.get_by_label("YAML document")).to_have_value("")

    with_secret = document() + (
        "    secrets:\n"
        "      - name: api-key\n"
        "        type: STRING\n"  # not even a valid type: still refused, never shown
        f"        value: {CANARY}\n"
    )
    page.goto("/console/plan")
    path = live.app.state.settings.data_dir / "with-secret.yaml"
    path.write_text(with_secret)
    page.get_by_label("Or upload a YAML file").set_input_files(str(path))
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Preview the plan").click()
    assert answer.value.status == 400
    expect(page.get_by_role("alert")).to_contain_text("projects[0].secrets[0].value")
    assert CANARY not in page.content()
    with live.factory() as session:
        assert session.scalars(select(Project)).first() is None


@SQLITE_ONLY
def test_a_member_plans_but_may_not_create_a_project(live: Live, pages: Pages) -> None:
    page = pages.as_role("MEMBER", js=False)
    _preview(page, document().split("projects:")[0] + "projects: []\n")
    expect(page.get_by_role("row", name='agent "eu agent"')).to_contain_text("create")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Apply this plan").click()
    assert answer.value.status == 403
    expect(page.get_by_role("alert")).to_contain_text("The server refused a change")
    with live.factory() as session:
        assert session.scalars(select(Agent).where(Agent.name == "eu agent")).first() is None
