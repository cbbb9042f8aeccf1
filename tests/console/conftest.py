"""Console fixtures: a live server (uvicorn in a thread: ``tests.support.served.serve_app``) and
a real Chromium driven by Playwright, one browser per worker and a new context per page.

- ``live``: the running app on the test's database (``db_url``: SQLite and PostgreSQL; restrict
  a test with ``tests.support.console.SQLITE_ONLY``), with ``live.user(...)`` and
  ``live.project(...)`` to arrange state.
- ``pages``: browser pages: ``pages.anonymous(js=...)``, ``pages.as_user(email, js=...)``,
  ``pages.as_role("ADMIN", js=False, project_id=..., project_role=...)`` (logs in through the
  form); every context is closed after the test.
- ``tests.support.console.screenshot(page, name)`` saves ``docs/console/<name>.png``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from stead.app import create_app
from stead.settings import Settings
from tests.support.console import CHROMIUM, Live, Pages
from tests.support.served import serve_app

#: How long an ``expect`` waits for the page (Playwright's default is 5 s): a page whose
#: request runs a few steps can take longer on a busy two-core machine.
expect.set_options(timeout=15_000)


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    """The app on ``settings`` (the test's database) served by uvicorn on a free port."""
    app = create_app(settings)
    with serve_app(app) as url:
        yield Live(url, app, app.state.sessionmaker)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Chromium (Debian's ``chromium`` package), one per worker. Fails, never skips, when it
    is missing: ``.ci/run`` installs it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package chromium", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def pages(live: Live, browser: Browser) -> Iterator[Pages]:
    """Pages on ``live`` (see :class:`Pages`); their contexts close after the test."""
    made = Pages(live, browser)
    try:
        yield made
    finally:
        for context in made.contexts:
            context.close()
