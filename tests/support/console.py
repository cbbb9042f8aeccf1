"""Console test helpers: the live server's handle, browser pages logged in through the form,
and README screenshots. The fixtures that make them are in ``tests/console/conftest.py``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Locator, Page
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy.orm import Session, sessionmaker

from stead.db import session_scope
from stead.identity.actor import Actor
from stead.identity.service import get_account
from stead.projects import service as project_service
from stead.projects.schemas import ProjectCreate
from stead.tls import client_context
from tests.support.factories import USER_PASSWORD, new_user

#: Chromium's headless shell, the build Playwright itself runs headless: the same engine as the
#: full browser at less CPU per page load (figures in docs/decisions.md, "The test suite").
CHROMIUM = Path("/usr/lib/chromium/chromium-headless-shell")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"

#: Run a test on SQLite only (the default ``db_url`` runs it on both backends).
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@dataclass
class Live:
    """A console server running in this process.

    Attributes:
        url: its base URL (``http://127.0.0.1:<port>``).
        app: the application (its ``state`` holds the settings and session factories).
        factory: sessions on its database, for arranging and checking state.
    """

    url: str
    app: FastAPI
    factory: sessionmaker[Session]

    def user(
        self,
        role: str = "MEMBER",
        *,
        email: str | None = None,
        password: str = USER_PASSWORD,
        project_id: str | None = None,
        project_role: str | None = None,
    ) -> tuple[str, str]:
        """Create a user (a project member when ``project_id`` and ``project_role`` are
        given); return ``(user_id, email)``."""
        return new_user(
            self.factory,
            role=role,
            email=email,
            password=password,
            project_id=project_id,
            project_role=project_role,
        )

    def project(self, name: str, *, warehouse: str = "snowflake") -> str:
        """Create a project through the project service as a Super Admin; return its id."""
        return self.projects([name], warehouse=warehouse)[0]

    def projects(self, names: list[str], *, warehouse: str = "snowflake") -> list[str]:
        """Create projects (in one transaction) through the project service; return their ids."""
        with session_scope(self.factory, write=True) as session:
            admin = Actor(
                type="api_client",
                id=str(uuid.uuid4()),
                name="tests",
                role="SUPER_ADMIN",
                account_id=get_account(session).id,
            )
            return [
                project_service.create(
                    session,
                    actor=admin,
                    data=ProjectCreate.model_validate(
                        {"name": name, "warehouse": warehouse, "agentDeploymentType": "FULL_SAAS"}
                    ),
                ).id
                for name in names
            ]


@dataclass
class PagePool:
    """Browser pages kept for the tests of one worker, each in a context of its own.

    A new page (its context and renderer process) costs Chromium more CPU than going to a URL
    in a page already open (docs/decisions.md, "The test suite"). The console's servers of a
    worker all listen on one socket (``tests/console/conftest.py``), so their pages keep one
    origin from test to test and can be handed out again once cleaned: :meth:`give_back`
    clears the origin's storage and the context's cookies and routes, and leaves the page on
    ``about:blank``.
    """

    browser: Browser
    idle: dict[tuple[str, bool], list[Page]] = field(default_factory=dict)

    def take(self, base_url: str, *, js: bool) -> Page:
        """A clean page whose relative URLs resolve against ``base_url``, JavaScript on or
        off: one given back, else a new one."""
        idle = self.idle.get((base_url, js))
        if idle:
            return idle.pop()
        context = self.browser.new_context(
            base_url=base_url, java_script_enabled=js, viewport={"width": 1280, "height": 800}
        )
        context.set_default_timeout(30_000)  # a wizard step can take seconds on a busy machine
        return context.new_page()

    def give_back(self, page: Page, base_url: str, *, js: bool) -> None:
        """Clean ``page`` for another test, or close it (and its context) when it cannot be
        cleaned, say after a test left it on a navigation that never ends."""
        try:
            if js and page.url.startswith(base_url):
                page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
            page.goto("about:blank")
            page.context.clear_cookies()
            page.context.unroute_all()
        except PlaywrightError:
            page.context.close()
            return
        self.idle.setdefault((base_url, js), []).append(page)

    def close(self) -> None:
        """Close every page kept, with its context."""
        for idle in self.idle.values():
            for page in idle:
                page.context.close()
        self.idle.clear()


@dataclass
class Pages:
    """Browser pages on the live console for one test, from the worker's :class:`PagePool`;
    :meth:`release` gives them back after the test."""

    live: Live
    pool: PagePool
    taken: list[tuple[Page, bool]] = field(default_factory=list)
    listeners: list[tuple[Page, str, Callable[..., Any]]] = field(default_factory=list)

    def anonymous(self, *, js: bool = True) -> Page:
        """A page in a context of its own with no cookies, JavaScript on or off."""
        page = self.pool.take(self.live.url, js=js)
        self.taken.append((page, js))
        return page

    def on(self, page: Page, event: str, handler: Callable[..., Any]) -> None:
        """``page.on(event, handler)`` for this test only: the handler is removed when the
        page is given back."""
        page.on(event, handler)
        self.listeners.append((page, event, handler))

    def release(self) -> None:
        """Remove the test's handlers and give its pages back to the pool."""
        for page, event, handler in self.listeners:
            page.remove_listener(event, handler)
        for page, js in self.taken:
            self.pool.give_back(page, self.live.url, js=js)
        self.listeners.clear()
        self.taken.clear()

    def as_user(
        self,
        email: str,
        password: str = USER_PASSWORD,
        *,
        js: bool = True,
        path: str = "/console/projects",
    ) -> Page:
        """A page logged in as ``email``, showing ``path``. The login goes through the login
        form over HTTP and the browser gets the session's cookie, which spares it two page loads
        (the form itself is tested in the browser by ``tests/console/test_login.py`` with
        :func:`log_in`)."""
        page = self.anonymous(js=js)
        with httpx.Client(base_url=self.live.url, verify=client_context()) as client:
            http_login(client, email, password)
            page.context.add_cookies(
                [
                    {
                        "name": cookie.name,
                        "value": cookie.value or "",
                        "url": self.live.url,
                        "httpOnly": True,
                        "sameSite": "Lax",
                    }
                    for cookie in client.cookies.jar
                ]
            )
        page.goto(path)
        # the browser's session was taken: the page was shown, not the login form
        assert urlsplit(page.url).path == urlsplit(path).path, page.url
        return page

    def as_role(
        self,
        role: str = "MEMBER",
        *,
        js: bool = True,
        project_id: str | None = None,
        project_role: str | None = None,
        path: str = "/console/projects",
    ) -> Page:
        """A page logged in as a new user of account role ``role`` (and ``project_role`` in
        ``project_id`` when given), showing ``path``."""
        _, email = self.live.user(role, project_id=project_id, project_role=project_role)
        return self.as_user(email, js=js, path=path)


def log_in(page: Page, email: str, password: str = USER_PASSWORD) -> None:
    """Log in through the form (the page goes to ``/console/login`` first)."""
    page.goto("/console/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def screenshot(page: Page, name: str) -> Path:
    """Save ``page`` (the whole page) as ``docs/console/<name>.png`` for the README."""
    DOCS.mkdir(parents=True, exist_ok=True)
    path = DOCS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token in a console page's first form."""
    found = _CSRF_FIELD.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def http_login(client: httpx.Client, email: str, password: str = USER_PASSWORD) -> str:
    """Log ``client`` (an ``httpx.Client`` on the live server, cookies kept) in through the
    login form; return the session's CSRF token (read from the projects page)."""
    form = client.get("/console/login")
    resp = client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
    )
    assert resp.status_code == 303, resp.text
    return csrf_of(client.get("/console/account").text)


def table_rows(table: Locator) -> list[dict[str, str]]:
    """The body rows of ``table`` as ``{column heading: cell text}``, each cell read under the
    heading of its column (row header cells included), so a test does not depend on the order
    of the columns."""
    rows: list[dict[str, str]] = table.evaluate(
        """table => {
          const headings = [...table.tHead.rows[0].cells].map(cell => cell.innerText.trim());
          return [...table.tBodies[0].rows].map(row => Object.fromEntries(
            [...row.cells].map((cell, i) => [headings[i], cell.innerText.trim()])));
        }"""
    )
    return rows
