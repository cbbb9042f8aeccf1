"""The environment page, ``/console/projects/{id}/environments/{name}``: a secret field shows
what it points at and keeps it when "Replace" is left blank; Test connection against the
warehouses' test servers (the Redshift wire shim, the Snowflake server) shows success and the
driver's reason for a failure; the dbt profile download; per-user access; what a reader sees;
canary credentials absent from pages, headers and logs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from stead.audit.models import AuditEvent
from stead.settings import Settings
from tests.console.project_world import (
    SLOW,
    TIMEOUT,
    Recorder,
    api_client,
    assert_not_logged,
    logs,  # noqa: F401 - fixture
    main_text,
    make_project,
    press_test_connection,
)
from tests.support.console import SQLITE_ONLY, Live, Pages, screenshot
from tests.support.factories import example
from tests.support.keys import pkcs8, rsa_key
from tests.support.outbound import LOCAL
from tests.support.redshift_shim import RedshiftServer, redshift_server_session  # noqa: F401

#: A wrong password typed into "Replace": it must reach no page, header or log line.
WRONG = "wrong-canary-5d1e0b7f"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The console's settings: loopback warehouses allowed, room for a slow test."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        github_api_url="http://127.0.0.1:9/unused",
        warehouse_connect_timeout_seconds=TIMEOUT,
        warehouse_query_timeout_seconds=TIMEOUT,
        **LOCAL,
    )


@pytest.fixture
def api(live: Live) -> httpx.Client:
    return api_client(live)


def shim_properties(server: RedshiftServer, password: str) -> dict[str, Any]:
    """Redshift properties of an environment on the wire shim (no SSL there)."""
    return {
        "url": {"value": server.host},
        "port": {"value": str(server.port)},
        "username": {"value": server.user},
        "password": {"value": password},
        "defaultDatabase": {"value": server.database},
        "defaultSchema": {"value": "public"},
        "useSsl": {"value": "false"},
    }


def _save(page: Page, name: str) -> None:
    page.get_by_role("button", name=f"Save environment {name}").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status").first).to_contain_text(f"Environment {name} saved")


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_redshift_replace_keep_and_test_connection(
    live: Live,
    pages: Pages,
    api: httpx.Client,
    redshift_server_session: RedshiftServer,  # noqa: F811
    logs: pytest.LogCaptureFixture,  # noqa: F811
    js: bool,
    db_url: str,
) -> None:
    server = redshift_server_session
    world = make_project(live, api, "redshift")
    world.environment("prod", **shim_properties(server, server.password))
    _, owner = live.user(project_id=world.project_id, project_role="OWNER")
    page = pages.as_user(owner, js=js)
    seen = Recorder(pages, page)
    page.goto(world.environment_page("prod"))

    # the stored password: what it points at, never a value; an empty "Replace" input
    expect(page.locator("#current-password")).to_contain_text(
        "hosted secret prod-password (stored by Stead)"
    )
    replace = page.get_by_label("Replace password")
    expect(replace).to_have_value("")
    # properties are named as people name them, not by their API keys
    rows = page.locator("section[aria-labelledby=properties-title] tbody th")
    expect(rows).to_have_text(
        [
            "Host",
            "Port",
            "User name",
            "Password",
            "Default database",
            "Default schema",
            "Use SSL",
            "Default storage location (S3 bucket)",
        ]
    )
    expect(page.get_by_label("Use SSL")).to_have_value("false")
    default_level = page.locator("dt", has_text="Default access level").locator(
        "xpath=following-sibling::dd[1]"
    )
    expect(default_level).to_have_text("Read only (Viewer)")
    expect(page.locator("#property-port-help")).to_have_text(re.compile(r"^A number from 1"))
    assert "Connection succeeded" in press_test_connection(page, "prod", js)
    if js and db_url.startswith("sqlite"):
        screenshot(page, "environment")

    # replace it with a wrong one: the test fails with the driver's reason
    page.goto(world.environment_page("prod"))
    page.get_by_label("Replace password").fill(WRONG)
    _save(page, "prod")
    version = world.get("/secrets/prod-password")["version"]
    text = press_test_connection(page, "prod", js)
    assert "Connection failed" in text and "28P01" in text
    assert "password" in text

    # blank "Replace" keeps the stored secret; other fields change
    page.goto(world.environment_page("prod"))
    page.get_by_label("Default schema").fill("analytics")
    page.get_by_label("Display name").fill("Production EU")
    _save(page, "prod")
    stored = world.get("/environments/prod")
    properties = stored["connectionOverrides"][0]["connectionProperties"]
    assert properties["password"] == {"secretName": "prod-password", "set": True}
    assert properties["defaultSchema"] == {"value": "analytics"}
    assert stored["displayName"] == "Production EU"
    assert world.get("/secrets/prod-password")["version"] == version
    with live.factory() as session:  # the audit event names what changed, and only that
        updates = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "environment.updated")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert updates is not None
        assert updates.details == {"fields": ["connectionOverrides", "displayName"]}
    assert "28P01" in press_test_connection(page, "prod", js)  # still the wrong one

    # replace it with the right one: success again
    page.goto(world.environment_page("prod"))
    page.get_by_label("Replace password").fill(server.password)
    _save(page, "prod")
    assert world.get("/secrets/prod-password")["version"] == version + 1
    assert "Connection succeeded" in press_test_connection(page, "prod", js)

    seen.assert_absent(server.password, WRONG)
    assert_not_logged(logs, server.password, WRONG)
    assert WRONG not in main_text(page)
    with live.factory() as session:
        trail = [
            repr((e.action, e.target_id, e.details)) for e in session.scalars(select(AuditEvent))
        ]
    assert any("environment.connection_tested" in row for row in trail)
    assert not any(WRONG in row or server.password in row for row in trail)


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_dbt_profile_download_is_the_apis_profile(
    live: Live, pages: Pages, api: httpx.Client, js: bool
) -> None:
    world = make_project(live, api, "snowflake")
    world.hosted("growth-prod-private-key", pkcs8(rsa_key(number=1)), "PRIVATE_KEY")
    world.environment("prod")
    _, viewer = live.user(project_id=world.project_id, project_role="VIEWER")
    page = pages.as_user(viewer, js=js, path=world.environment_page("prod"))
    with page.expect_download() as download:
        page.get_by_role("link", name="Download dbt profile for prod").click()
    assert download.value.suggested_filename == "profiles.yml"
    text = Path(download.value.path()).read_text()
    expected = api.get(f"{world.base}/environments/prod/profile", params={"format": "dbt"})
    assert expected.status_code == 200
    assert text == expected.text
    assert "env_var('STEAD_" in text  # the key stays out: a reference to it


@SQLITE_ONLY
def test_reader_sees_no_edit_or_test_buttons(live: Live, pages: Pages, api: httpx.Client) -> None:
    world = make_project(live, api, "redshift")
    world.environment("prod")
    _, viewer = live.user(project_id=world.project_id, project_role="VIEWER")
    page = pages.as_user(viewer, path=world.environment_page("prod"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Environment prod")
    for name in ("Save environment prod", "Test connection for prod", "Set access to prod"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_label("Replace password")).to_have_count(0)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    base = world.environment_page("prod")
    for path in ("", "/connection-test", "/access"):
        answer = page.request.post(base + path, form={"csrf_token": token})
        assert answer.status == 403, path


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_per_user_access_set_and_remove(
    live: Live, pages: Pages, api: httpx.Client, js: bool
) -> None:
    world = make_project(live, api, "redshift")
    world.environment("prod")
    _, owner = live.user(project_id=world.project_id, project_role="OWNER")
    user_id, alice = live.user(project_id=world.project_id, project_role="CONTRIBUTOR")
    page = pages.as_user(owner, js=js, path=world.environment_page("prod"))

    page.get_by_label("User", exact=True).select_option(label=alice)
    page.get_by_label(re.compile("^Access level")).select_option("noAccess")
    page.get_by_role("button", name="Set access to prod").click()
    page.wait_for_load_state()
    row = page.get_by_role("row", name=alice)
    expect(row).to_contain_text("No access")
    access = world.get("/environments/prod/access")["results"]
    assert [(a["userId"], a["accessLevel"]) for a in access] == [(user_id, "noAccess")]

    page.get_by_role("button", name=f"Remove access of {alice} to prod").click()
    page.wait_for_load_state()
    expect(page.get_by_role("row", name=alice)).to_have_count(0)
    assert world.get("/environments/prod/access")["results"] == []


@SQLITE_ONLY
def test_edit_errors_at_their_fields_store_nothing(
    live: Live, pages: Pages, api: httpx.Client
) -> None:
    world = make_project(live, api, "redshift")
    world.environment("prod")
    before = world.get("/environments/prod")
    _, owner = live.user(project_id=world.project_id, project_role="OWNER")
    page = pages.as_user(owner, js=False, path=world.environment_page("prod"))
    page.get_by_label("Port", exact=True).fill("70000")
    page.get_by_label("Replace password").fill(WRONG)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save environment prod").click()
    assert answer.value.status == 400
    expect(page.get_by_label("Port", exact=True)).to_have_attribute("aria-invalid", "true")
    summary = page.get_by_role("alert").get_by_role("link", name="must be a whole number")
    expect(summary).to_have_attribute("href", "#property-port")
    expect(summary).to_have_text(re.compile(r"^Port: must be a whole number"))
    expect(page.locator("#property-port-error")).to_contain_text("1 to 65535")
    expect(page.get_by_label("Replace password")).to_have_value("")  # never sent back
    assert world.get("/environments/prod") == before
    assert WRONG not in page.content()


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_a_test_that_cannot_run_says_why_in_the_region(
    live: Live, pages: Pages, api: httpx.Client, js: bool
) -> None:
    """The password is a reference into AWS Secrets Manager, which this server has no access
    to: the problem's status and detail, in the result region."""
    world = make_project(live, api, "redshift")
    resp = api.post(
        f"{world.base}/secret-references/finance-prod-redshift",
        json=example(
            "04-create-secret-reference-aws", agentId=world.agent_id, projectId=world.project_id
        ),
    )
    assert resp.status_code == 201, resp.text
    world.environment(
        "prod", password={"secretName": "finance-prod-redshift", "secretKey": "password"}
    )
    expected = api.post(f"{world.base}/environments/prod/connection-test")
    assert expected.status_code >= 400
    _, owner = live.user(project_id=world.project_id, project_role="OWNER")
    page = pages.as_user(owner, js=js, path=world.environment_page("prod"))
    expect(page.locator("#current-password")).to_contain_text(
        "secret reference finance-prod-redshift to AWS secret stead/"
    )
    with page.expect_response(lambda r: r.url.endswith("/connection-test"), timeout=SLOW) as answer:
        page.get_by_role("button", name="Test connection for prod").click()
    # without JavaScript the problem's status; htmx (which swaps no 5xx) gets 200
    assert answer.value.status == (200 if js else expected.status_code)
    region = page.locator("#connection-test-result")
    expect(region).to_contain_text("The connection test could not run")
    expect(region).to_contain_text(expected.json()["detail"])


@SQLITE_ONLY
def test_an_environment_name_with_spaces_and_accents_round_trips(
    live: Live, pages: Pages, api: httpx.Client
) -> None:
    world = make_project(live, api, "redshift")
    world.environment("prød eu #1")
    _, owner = live.user(project_id=world.project_id, project_role="OWNER")
    page = pages.as_user(owner, js=False, path=f"{world.page}?tab=environments")
    page.get_by_role("link", name="prød eu #1").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", level=1)).to_have_text("Environment prød eu #1")
    page.get_by_label("Display name").fill("EU")
    page.get_by_role("button", name="Save environment prød eu #1").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status").first).to_contain_text("saved")
    assert world.get("/environments/pr%C3%B8d%20eu%20%231")["displayName"] == "EU"
