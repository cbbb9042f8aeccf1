"""The provisioning wizard ``/console/projects/new`` in Chromium: Redshift with a hosted
secret and a ``git`` repository served over HTTP (JavaScript on and off), Snowflake with a
secret reference (the warehouse switched by htmx), a failing step that leaves nothing and shows
its error at the field, and a keyboard-only run. What the wizard made is read back over
``/v1``; the canary secrets appear in no page, header, log line or database row."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Response, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import select

from stead.agents import service as agents_service
from stead.agents.schemas import AgentCreate
from stead.audit.models import AuditEvent
from stead.console.pages.wizard import restore_pem
from stead.db import session_scope
from stead.demo import example
from stead.identity.actor import Actor
from stead.identity.service import get_account
from tests.support.console import SQLITE_ONLY, Live, Pages, screenshot
from tests.support.factories import new_client
from tests.support.git_server import GitServer, git_server_session  # noqa: F401 - fixture
from tests.support.keys import pkcs8, rsa_key
from tests.support.postgres import free_port
from tests.support.rows import all_text, row_counts

CANARY_PASSWORD = "canary-wizard-pw-5e1f0b"
CANARY_TOKEN = "canary-wizard-token-8c2d4a"
CANARIES = (CANARY_PASSWORD, CANARY_TOKEN)


@pytest.fixture
def git_server(git_server_session: GitServer) -> GitServer:  # noqa: F811 - fixture use
    """The git HTTP server, its tokens forgotten for this test."""
    git_server_session.reset()
    return git_server_session


@pytest.fixture
def agent(live: Live) -> str:
    """A customer-hosted agent of the account (the ``02-create-agent`` example)."""
    with session_scope(live.factory, write=True) as session:
        actor = Actor(
            type="api_client",
            id=str(uuid.uuid4()),
            name="tests",
            role="SUPER_ADMIN",
            account_id=get_account(session).id,
        )
        data = AgentCreate.model_validate({**example("02-create-agent"), "name": "eu-agent"})
        return agents_service.create(session, actor=actor, data=data).id


@pytest.fixture
def api(live: Live) -> Iterator[httpx.Client]:
    """``/v1`` of the live server as a Super Admin API client."""
    client_id, secret = new_client(live.factory)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        token = client.post(
            "/oauth/dpc/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


class Seen:
    """Every answer a page received: bodies (text ones) and headers."""

    def __init__(self, pages: Pages, page: Page) -> None:
        self.texts: list[str] = []
        pages.on(page, "response", self._keep)

    def _keep(self, response: Response) -> None:
        self.texts.append(repr(response.all_headers()))
        kind = response.headers.get("content-type", "")
        if kind.startswith(("text/", "application/json")) and not 300 <= response.status < 400:
            self.texts.append(response.text())


def _label(page: Page, text: str) -> Any:
    """The input labelled ``text`` exactly (a required one's label ends with " *")."""
    return page.get_by_label(re.compile(rf"^{re.escape(text)}( \*)?$"))


def fill_redshift(page: Page, agent: str, name: str = "Finance") -> None:
    """Fill the Project, connection, environment and credential parts for Redshift."""
    _label(page, "Project name").fill(name)
    warehouse = _label(page, "Warehouse")
    # Chosen only when it is not already: Playwright's select_option fires "change" even for
    # the selected option, where a person's choice fires none, and htmx would then swap empty
    # Redshift properties in over the ones filled below while they are being filled.
    if warehouse.input_value() != "REDSHIFT":
        warehouse.select_option("REDSHIFT")
        expect(_label(page, "Host")).to_be_visible()
    _label(page, "Connection name").fill("finance-dwh-prod")
    _label(page, "Environment name").fill("prod")
    _label(page, "Agent").select_option(agent)
    _label(page, "Default access level").select_option("runner")
    _label(page, "Host").fill("finance.abc123.eu-west-1.redshift.amazonaws.com")
    _label(page, "Port").fill("5439")
    _label(page, "User name").fill("svc_finance")
    _label(page, "Default database").fill("finance")
    _label(page, "Value").check()
    _label(page, "Secret value").fill(CANARY_PASSWORD)


def git_repository(page: Page, git_server: GitServer, url: str | None = None) -> str:
    """Fill the Repository part with a new bare repository on the git server; its URL."""
    repo = f"finance-{uuid.uuid4().hex[:8]}"
    git_server.create_repo(repo, head="main", branches=["main"])
    git_server.add_token(CANARY_TOKEN, read=[repo])
    remote = url or f"{git_server.url}/{repo}.git"
    _label(page, "Provider").select_option("git")
    _label(page, "Repository URL").fill(remote)
    _label(page, "Access token").fill(CANARY_TOKEN)
    return remote


def created_project(page: Page) -> str:
    """The id of the project the wizard redirected to.

    Raises:
        AssertionError: the wizard did not redirect within the page's timeout; with the
            page's URL and the errors it shows (the form came back), which a bare timeout
            would not tell.
    """
    try:
        page.wait_for_url("**/console/projects/*-*")
    except PlaywrightTimeout:
        shown = page.locator(".field-error, [role=alert]").all_inner_texts()
        raise AssertionError(f"no project page: {page.url} shows {shown}") from None
    return page.url.rsplit("/", 1)[1]


@pytest.fixture
def logs(live: Live, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of the live server at DEBUG and above (the app's logging setup
    replaces the root handlers, so caplog's handler is put back once the app exists)."""
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_canary(live: Live, seen: Seen, logs: pytest.LogCaptureFixture) -> None:
    assert any("<h1>New project</h1>" in text for text in seen.texts)  # the pages were seen
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in logs.records)
    assert "/console/projects/new" in logged  # and the access log
    stored = all_text(live.factory)
    for canary in CANARIES:
        assert canary not in logged
        assert canary not in stored
        assert all(canary not in text for text in seen.texts)


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_redshift_with_a_hosted_secret_and_a_git_repository(
    js: bool,
    live: Live,
    pages: Pages,
    agent: str,
    api: httpx.Client,
    git_server: GitServer,
    logs: pytest.LogCaptureFixture,
) -> None:
    page = pages.as_role("ADMIN", js=js)
    seen = Seen(pages, page)
    page.goto("/console/projects/new")
    for legend in ("Project", "Warehouse connection", "Environment", "Credential", "Repository"):
        expect(page.locator("fieldset > legend", has_text=legend).first).to_have_text(legend)
    if js:
        screenshot(page, "wizard")
    fill_redshift(page, agent)
    remote = git_repository(page, git_server)
    page.get_by_role("button", name="Create project").click()
    project_id = created_project(page)

    project = api.get(f"/v1/projects/{project_id}").json()
    assert (project["name"], project["warehouse"]) == ("Finance", "REDSHIFT")
    base = f"/v1/projects/{project_id}"
    assert api.get(f"{base}/data-platform-connections/finance-dwh-prod").status_code == 200
    secrets = api.get(f"{base}/secrets").json()["results"]
    assert [(s["name"], s["type"]) for s in secrets] == [("prod-password", "PASSWORD")]
    env = api.get(f"{base}/environments/prod").json()
    assert env["defaultAgentId"] == agent
    assert env["defaultUserAccessLevel"] == "runner"
    properties = env["connectionOverrides"][0]["connectionProperties"]
    assert properties["password"] == {"secretName": "prod-password", "secretKey": None}
    assert properties["url"] == {"value": "finance.abc123.eu-west-1.redshift.amazonaws.com"}
    assert properties["useSsl"] == {"value": "true"}
    repository = api.get(f"{base}/repositories").json()
    assert (repository["provider"], repository["cloneUrl"]) == ("git", remote)
    assert repository["defaultBranch"] == "main"
    members = api.get(f"{base}/members").json()["results"]
    assert [m["projectRole"] for m in members] == ["OWNER"]
    assert_no_canary(live, seen, logs)


@SQLITE_ONLY
def test_snowflake_with_a_secret_reference(
    live: Live, pages: Pages, agent: str, api: httpx.Client
) -> None:
    page = pages.as_role("ADMIN", path="/console/projects/new")
    expect(_label(page, "Host")).to_be_visible()
    _label(page, "Warehouse").select_option("SNOWFLAKE")  # htmx swaps the properties in
    expect(_label(page, "Account")).to_be_visible()
    expect(_label(page, "Host")).to_have_count(0)
    expect(page.locator("#credential-label")).to_contain_text("Private key")
    _label(page, "Project name").fill("Growth")
    _label(page, "Connection name").fill("growth-dwh-prod")
    _label(page, "Environment name").fill("prod")
    _label(page, "Agent").select_option(agent)
    _label(page, "Account").fill("acmeorg-growth")
    _label(page, "User name").fill("SVC_GROWTH")
    _label(page, "Default warehouse").fill("TRANSFORM_WH")
    _label(page, "Secret reference").check()
    _label(page, "Store").select_option("AWS")
    _label(page, "Secret name in the store").fill("stead/{projectId}/growth/snowflake")
    _label(page, "Key in the secret").fill("private_key")
    page.get_by_role("button", name="Create project").click()
    project_id = created_project(page)

    base = f"/v1/projects/{project_id}"
    assert api.get(base).json()["warehouse"] == "SNOWFLAKE"
    connection = api.get(f"{base}/data-platform-connections/growth-dwh-prod").json()
    assert connection["authType"] == "KEY_PAIR"
    reference = api.get(f"{base}/secret-references/prod-privateKey").json()
    assert reference["agentType"] == "AWS"
    assert reference["secretName"] == f"stead/{project_id}/growth/snowflake"
    assert reference["secretKey"] == "private_key"
    env = api.get(f"{base}/environments/prod").json()
    properties = env["connectionOverrides"][0]["connectionProperties"]
    assert properties["privateKey"] == {"secretName": "prod-privateKey", "secretKey": None}
    assert properties["account"] == {"value": "acmeorg-growth"}
    assert api.get(f"{base}/secrets").json()["total"] == 0


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_a_failing_step_shows_its_error_at_the_field_and_leaves_nothing(
    js: bool,
    live: Live,
    pages: Pages,
    agent: str,
    api: httpx.Client,
    git_server: GitServer,
    logs: pytest.LogCaptureFixture,
) -> None:
    page = pages.as_role("ADMIN", js=js)
    seen = Seen(pages, page)
    page.goto("/console/projects/new")
    before = row_counts(live.factory)

    # the repository cannot be reached: asked last, after every other step has been made
    fill_redshift(page, agent)
    git_repository(page, git_server, url=f"http://127.0.0.1:{free_port()}/absent.git")
    page.get_by_role("button", name="Create project").click()
    url_field = _label(page, "Repository URL")
    expect(url_field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#repository_url-error")).to_be_visible()
    assert row_counts(live.factory) == before
    # what was typed is kept, but no secret is written back into the form
    expect(_label(page, "Project name")).to_have_value("Finance")
    expect(_label(page, "Secret value")).to_have_value("")
    expect(_label(page, "Access token")).to_have_value("")
    assert page.locator("input[type=password][value]").count() == 0

    # a name that is taken: the error is at the project's name
    taken = {"name": "Finance", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}
    assert api.post("/v1/projects", json=taken).status_code == 201
    before = row_counts(live.factory)
    _label(page, "Secret value").fill(CANARY_PASSWORD)
    _label(page, "Provider").select_option("")
    page.get_by_role("button", name="Create project").click()
    expect(_label(page, "Project name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#name-error")).to_contain_text("already used")
    expect(page.locator("#error-summary")).to_contain_text("Project name")
    assert row_counts(live.factory) == before
    assert api.get("/v1/projects").json()["total"] == 1
    assert_no_canary(live, seen, logs)


CHOICE_LEGENDS = (
    "Value (when the credential is a value)",
    "Secret reference (when the credential is a secret reference)",
    "git (when the provider is git)",
    "GitHub or GitLab (when the provider is one of them)",
    "Any provider (when one is chosen)",
)
CHOICE_FIELDS = (
    "Secret value",
    "Store",
    "Secret name in the store",
    "Key in the secret",
    "Repository URL",
    "Owner or namespace",
    "Repository name",
    "Access token",
)


def _shown(page: Page, *labels: str) -> None:
    """Of the fields that belong to a choice, exactly ``labels`` are visible."""
    for label in CHOICE_FIELDS:
        field = _label(page, label)
        if label in labels:
            expect(field).to_be_visible()
            expect(field).to_be_enabled()
        else:
            expect(field).to_be_hidden()
            expect(field).to_be_disabled()


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_the_fields_of_a_choice_show_when_it_is_chosen(
    js: bool, live: Live, pages: Pages, agent: str
) -> None:
    page = pages.as_role("ADMIN", js=js, path="/console/projects/new")
    for legend in CHOICE_LEGENDS:  # each choice's fields say when they apply
        expect(page.locator("fieldset > legend", has_text=legend)).to_have_count(1)
    expect(page.locator("#properties > legend")).to_have_text(
        "Connection properties of Amazon Redshift"
    )
    if not js:  # everything stays visible, as the legends say
        for label in CHOICE_FIELDS:
            expect(_label(page, label)).to_be_visible()
        return

    _shown(page, "Secret value")
    _label(page, "Secret reference").check()
    _shown(page, "Store", "Secret name in the store", "Key in the secret")
    _label(page, "Value").check()
    _shown(page, "Secret value")
    _label(page, "Provider").select_option("git")
    _shown(page, "Secret value", "Repository URL", "Repository name", "Access token")
    _label(page, "Provider").select_option("gitlab")
    _shown(page, "Secret value", "Owner or namespace", "Repository name", "Access token")
    _label(page, "Provider").select_option("")
    _shown(page, "Secret value")
    _label(page, "Warehouse").select_option("SNOWFLAKE")  # htmx brings Snowflake's own
    expect(page.locator("#properties > legend")).to_have_text("Connection properties of Snowflake")
    expect(_label(page, "Account")).to_be_visible()
    expect(_label(page, "Host")).to_have_count(0)

    # a value typed and then left for a secret reference is not sent
    _label(page, "Warehouse").select_option("REDSHIFT")
    expect(_label(page, "Host")).to_be_visible()
    fill_redshift(page, agent)
    _label(page, "Secret reference").check()
    _label(page, "Secret name in the store").fill("another-team/redshift")
    with page.expect_request(lambda r: r.method == "POST") as sent:
        page.get_by_role("button", name="Create project").click()
    body = sent.value.post_data or ""
    assert "reference_secret_name=another-team" in body
    assert "secret_value" not in body and CANARY_PASSWORD not in body
    expect(page.locator("#error-summary")).to_be_focused()
    _shown(page, "Store", "Secret name in the store", "Key in the secret")


def _tab_to(page: Page, element_id: str) -> None:
    for _ in range(80):
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


@SQLITE_ONLY
def test_keyboard_only_and_every_input_has_its_label(
    live: Live, pages: Pages, agent: str, api: httpx.Client
) -> None:
    page = pages.as_role("ADMIN", path="/console/projects/new")
    inputs = page.locator("form.wizard :is(input, select, textarea):not([type=hidden])")
    for index in range(inputs.count()):
        element = inputs.nth(index)
        element_id = element.get_attribute("id")
        label = page.locator(f"label[for='{element_id}']").inner_text().replace("*", "").strip()
        found = _label(page, label)
        expect(found).to_have_count(1)
        assert found.get_attribute("id") == element_id, label

    typed = {
        "name": "Keyboard",
        "connection_name": "kb-dwh",
        "environment_name": "prod",
        "prop_url": "kb.abc123.eu-west-1.redshift.amazonaws.com",
        "prop_port": "5439",
        "prop_username": "svc_kb",
        "prop_defaultDatabase": "kb",
        "secret_value": CANARY_PASSWORD,
    }
    for element_id, text in typed.items():
        _tab_to(page, element_id)
        page.keyboard.type(text)
    _tab_to(page, "agent")
    page.keyboard.type("eu-agent")  # a select's type-ahead picks the option
    _tab_to(page, "credential-value")
    page.keyboard.press("Space")
    _tab_to(page, "secret_value")
    page.keyboard.press("Enter")  # submits the form
    project_id = created_project(page)
    env = api.get(f"/v1/projects/{project_id}/environments/prod").json()
    assert env["defaultAgentId"] == agent
    assert api.get(f"/v1/projects/{project_id}").json()["name"] == "Keyboard"


@SQLITE_ONLY
def test_a_member_who_may_not_create_projects_gets_403(live: Live, pages: Pages) -> None:
    page = pages.as_role("MEMBER")
    answer = page.goto("/console/projects/new")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("button", name="Create project")).to_have_count(0)


@SQLITE_ONLY
def test_without_javascript_the_warehouse_is_switched_by_a_reload(
    live: Live, pages: Pages, agent: str
) -> None:
    page = pages.as_role("ADMIN", js=False, path="/console/projects/new")
    _label(page, "Project name").fill("Growth")
    _label(page, "Warehouse").select_option("SNOWFLAKE")
    before = row_counts(live.factory)
    page.get_by_role("button", name="Show the fields of this warehouse").click()
    expect(_label(page, "Account")).to_be_visible()
    expect(_label(page, "Host")).to_have_count(0)
    expect(_label(page, "Project name")).to_have_value("Growth")
    expect(page.locator("#error-summary")).to_have_count(0)
    assert row_counts(live.factory) == before
    page.goto("/console/projects/new?warehouse=snowflake")
    expect(_label(page, "Private key passphrase")).to_have_attribute("type", "password")


def test_a_pem_pasted_into_a_password_input_gets_its_lines_back() -> None:
    pem = pkcs8(rsa_key())
    one_line = pem.replace("\n", "")  # what a password input sends
    assert restore_pem(one_line) == pem
    assert restore_pem(pem) == pem
    assert restore_pem("not a key") == "not a key"


@SQLITE_ONLY
def test_a_secret_outside_the_scope_is_refused_at_its_field_and_audited(
    live: Live, pages: Pages, agent: str
) -> None:
    page = pages.as_role("ADMIN", path="/console/projects/new")
    fill_redshift(page, agent)
    _label(page, "Secret reference").check()
    _label(page, "Store").select_option("AWS")
    _label(page, "Secret name in the store").fill("another-team/redshift")
    before = row_counts(live.factory)
    page.get_by_role("button", name="Create project").click()
    field = _label(page, "Secret name in the store")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#reference_secret_name-error")).to_contain_text("outside")
    after = row_counts(live.factory)
    assert after.pop("audit_events") == before.pop("audit_events") + 1
    assert after == before
    with live.factory() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert last is not None
    assert (last.action, last.target_id) == ("access.denied", "POST /console/projects/new")


_WIRE_NAME = re.compile(r"(?<!\{)\b[a-z]+[A-Z]\w*\b(?!\})")  # camelCase, but not {projectId}


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_hints_and_messages_use_the_labels_people_see(
    js: bool, live: Live, pages: Pages, agent: str
) -> None:
    page = pages.as_role("ADMIN", js=js)
    for warehouse in ("SNOWFLAKE", "REDSHIFT"):
        page.goto(f"/console/projects/new?warehouse={warehouse}")
        words = page.locator("form.wizard :is(label, small, legend)").all_inner_texts()
        assert words and not [w for w in words if _WIRE_NAME.search(w)], words
        assert not [w for w in words if "as a string" in w or "`" in w], words

    fill_redshift(page, agent)
    _label(page, "Host").fill("finance.example.com:5439")
    before = row_counts(live.factory)
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("#error-summary")).to_be_focused()
    summary = page.get_by_role("alert").get_by_role("link")
    expect(summary).to_have_text(
        ["Host: must be a host name without a port; give the port in 'Port'"]
    )
    expect(summary).to_have_attribute("href", "#prop_url")
    expect(page.locator("#prop_url-error")).to_have_text(
        "must be a host name without a port; give the port in 'Port'"
    )
    assert "connectionProperties" not in page.locator("main").inner_text()
    assert row_counts(live.factory) == before
