"""Single sign-on in Chromium against two real OpenID Connect providers: PyPI's
``oidc-provider-mock`` (a thread in this process) and npm's ``oidc-provider`` (a node
subprocess, ``tests/support/oidc_node``: PKCE required, S256 only). A person clicks "Sign in
with ..." on the login page, signs in at the provider and lands on the console page they
asked for, with the roles their groups map to; what the provider can refuse is refused with a
page that says why.

The browser may only reach 127.0.0.1: every other request (the node provider's page asks for a
web font) is aborted.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import oidc_provider_mock
import pytest
import werkzeug.serving
from playwright.sync_api import Page, Route
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.audit.models import AuditEvent
from stead.identity.models import ProjectMember, User
from stead.settings import Settings
from tests.support.console import Live, Pages, screenshot
from tests.support.outbound import LOCAL
from tests.support.postgres import free_port
from tests.support.processes import server_process
from tests.support.served import serve_app

NODE_PROVIDER = Path(__file__).resolve().parents[1] / "support" / "oidc_node"
CLIENT_ID = "stead-console"
CLIENT_SECRET = "canary-browser-client-secret-51d0"
GROUP_ROLES = {"stead-admins": "ADMIN", "sales": {"Sales": "CONTRIBUTOR"}}
#: The people of both providers (login name / subject -> claims).
PEOPLE: dict[str, dict[str, Any]] = {
    "ada": {
        "email": "ada@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "groups": ["stead-admins", "sales"],
    },
    "mallory": {"email": "mallory@example.com", "email_verified": False, "name": "Mallory"},
}


@pytest.fixture(scope="session")
def stead_port() -> int:
    """The port this worker's console servers listen on: the providers know its callback."""
    return free_port()


@pytest.fixture(scope="session")
def mock_provider() -> Iterator[str]:
    """``oidc-provider-mock`` on 127.0.0.1 (any client; nonce required); its issuer URL."""
    app = oidc_provider_mock.app(
        require_nonce=True,
        user_claims=[oidc_provider_mock.User(sub=sub, claims=c) for sub, c in PEOPLE.items()],
    )
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def node_provider(stead_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """npm ``oidc-provider`` as a subprocess on 127.0.0.1; its issuer URL. Fails (never skips)
    without node or without ``npm ci`` in ``tests/support/oidc_node`` (``.ci/run`` runs it)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: install Node.js 20 (Debian package nodejs)", pytrace=False)
    if not (NODE_PROVIDER / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"run `npm ci` in {NODE_PROVIDER}", pytrace=False)
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_URI": f"http://127.0.0.1:{stead_port}/console/sso/callback",
        "ACCOUNTS": json.dumps(PEOPLE),
    }
    issuer = f"http://127.0.0.1:{port}"
    with server_process(
        [node, str(NODE_PROVIDER / "provider.mjs")],
        ready_url=f"{issuer}/.well-known/openid-configuration",
        log=tmp_path_factory.mktemp("oidc-node") / "provider.log",
        env=env,
    ):
        yield issuer


@dataclass(frozen=True)
class Idp:
    """The provider a test signs in with: ``mock`` or ``node``, and its issuer URL."""

    name: str
    url: str


@pytest.fixture
def idp(request: pytest.FixtureRequest) -> Idp:
    """The provider a test signs in with (parametrize indirectly: ``mock`` or ``node``)."""
    return Idp(request.param, str(request.getfixturevalue(f"{request.param}_provider")))


@pytest.fixture
def password_login() -> str:
    """``STEAD_PASSWORD_LOGIN`` (parametrize directly: ``all`` or ``super-admins``)."""
    return "all"


@pytest.fixture
def settings(
    db_url: str, tmp_path: Path, idp: Idp, stead_port: int, password_login: str
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        public_url=f"http://127.0.0.1:{stead_port}",
        **LOCAL,
        oidc_issuer=idp.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_allowed_domains="example.com",
        oidc_display_name="Company SSO",
        oidc_groups_claim="groups",
        oidc_group_roles=json.dumps(GROUP_ROLES),
        password_login=password_login,
    )


@pytest.fixture
def live(settings: Settings, stead_port: int) -> Iterator[Live]:
    """The console on :func:`stead_port` (its public URL, which the providers redirect to)."""
    app = create_app(settings)
    with serve_app(app, stead_port):
        yield Live(settings.public_url, app, app.state.sessionmaker)


def _local_only(route: Route) -> None:
    if urlsplit(route.request.url).hostname == "127.0.0.1":
        route.continue_()
    else:
        route.abort()


def _browser(pages: Pages) -> Page:
    page = pages.anonymous()
    page.context.route("**/*", _local_only)
    return page


def _sign_in_at(page: Page, provider: str, who: str) -> None:
    """Sign in as ``who`` on the provider's own pages."""
    if provider == "mock":
        page.locator('input[name="sub"]').fill(who)
        page.get_by_role("button", name="Authorize").click()
    else:
        page.locator('input[name="login"]').fill(who)
        page.locator('input[name="password"]').fill("any password")
        page.get_by_role("button", name="Sign-in").click()
        page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()


def _events(factory: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with factory() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


@pytest.mark.parametrize("idp", ["mock", "node"], indirect=True)
def test_a_person_signs_in_with_the_company_provider(live: Live, pages: Pages, idp: Idp) -> None:
    sales = live.project("Sales")
    page = _browser(pages)
    page.goto("/console/account")  # not signed in: the login page, then back here
    assert "/console/login" in page.url
    if idp.name == "mock":
        screenshot(page, "login-sso")
    page.get_by_role("button", name="Sign in with Company SSO").click()
    page.wait_for_load_state()
    assert page.url.startswith(idp.url), page.url
    _sign_in_at(page, idp.name, "ada")
    assert page.url == f"{live.url}/console/account", page.url
    assert page.get_by_text("ada@example.com").count() > 0
    with live.factory() as session:
        user = session.scalars(select(User)).one()
        assert (user.email, user.role, user.display_name) == (
            "ada@example.com",
            "ADMIN",
            "Ada Lovelace",
        )
        member = session.scalars(select(ProjectMember)).one()
        assert (member.principal_id, member.project_id, member.role) == (
            user.id,
            sales,
            "CONTRIBUTOR",
        )
    assert [e.details["via"] for e in _events(live.factory, "user.created")] == ["sso"]
    assert len(_events(live.factory, "user.sso_login")) == 1
    # Signed in: the projects page shows the mapped project.
    page.goto("/console/projects")
    assert page.get_by_role("link", name="Sales").count() == 1


@pytest.mark.parametrize("idp", ["mock", "node"], indirect=True)
def test_an_unverified_email_is_refused_in_the_browser(live: Live, pages: Pages, idp: Idp) -> None:
    page = _browser(pages)
    page.goto("/console/login")
    page.get_by_role("button", name="Sign in with Company SSO").click()
    page.wait_for_load_state()
    _sign_in_at(page, idp.name, "mallory")
    assert page.get_by_role("heading", name="Single sign-on refused").is_visible()
    assert page.get_by_role("alert").inner_text() == (
        "The identity provider has not verified mallory@example.com."
    )
    with live.factory() as session:
        assert session.scalars(select(User)).all() == []
    [refusal] = _events(live.factory, "user.sso_refused")
    assert refusal.details["reason"] == "email not verified"
    page.get_by_role("link", name="Back to log in").click()
    assert page.url.endswith("/console/login")


@pytest.mark.parametrize("idp", ["mock"], indirect=True)
def test_denying_at_the_provider_is_refused(live: Live, pages: Pages, idp: Idp) -> None:
    page = _browser(pages)
    page.goto("/console/login")
    page.get_by_role("button", name="Sign in with Company SSO").click()
    page.get_by_role("button", name="Deny").click()
    page.wait_for_load_state()
    assert page.get_by_role("alert").inner_text() == (
        "You cancelled the login at the identity provider."
    )
    [refusal] = _events(live.factory, "user.sso_refused")
    assert refusal.details["reason"] == "provider error: access_denied"


@pytest.mark.parametrize("password_login", ["all", "super-admins"])
@pytest.mark.parametrize("idp", ["mock"], indirect=True)
def test_the_sso_button_comes_first_and_is_as_wide_as_the_password_button(
    live: Live, pages: Pages, idp: Idp, password_login: str
) -> None:
    page = _browser(pages)
    page.goto("/console/login")
    sso = page.get_by_role("button", name="Sign in with Company SSO").bounding_box()
    name = "Log in as a Super Admin" if password_login == "super-admins" else "Log in"
    password = page.get_by_role("button", name=name, exact=True).bounding_box()
    assert sso is not None and password is not None
    assert sso["y"] < password["y"]
    assert (sso["x"], sso["width"]) == (password["x"], password["width"])
    if password_login == "super-admins":
        heading = page.get_by_role("heading", level=2)
        assert heading.inner_text() == "Super Admins (break-glass)"
        assert page.get_by_text("Administrators", exact=True).count() == 0
