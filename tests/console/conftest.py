"""Console fixtures: a live server (uvicorn in a thread: ``tests.support.served.serve_app``) and
a real Chromium driven by Playwright, one browser per worker, whose pages (each in a context
of its own) are cleaned and reused from test to test.

- ``live``: the running app on the test's database (``db_url``: SQLite and PostgreSQL; restrict
  a test with ``tests.support.console.SQLITE_ONLY``), with ``live.user(...)`` and
  ``live.project(...)`` to arrange state.
- ``pages``: browser pages: ``pages.anonymous(js=...)``, ``pages.as_user(email, js=...)``,
  ``pages.as_role("ADMIN", js=False, project_id=..., project_role=...)`` (logs in through the
  form), ``pages.on(page, event, handler)`` for a handler that ends with the test.
- ``tests.support.console.screenshot(page, name)`` saves ``docs/console/<name>.png``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright
from sqlalchemy import Engine

from stead.app import create_app
from stead.settings import Settings
from tests.support.console import CHROMIUM, Live, PagePool, Pages
from tests.support.served import serve_app

#: How long an ``expect`` waits for the page (Playwright's default is 5 s): a page whose
#: request runs a few steps can take longer on a busy two-core machine.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def console_listener() -> Iterator[socket.socket]:
    """One listening socket on 127.0.0.1 per worker, on which each test's console server
    accepts in turn: the console keeps one origin, so the browser's pages serve test after
    test (:class:`tests.support.console.PagePool`)."""
    # IPPROTO_TCP named, not 0 as socket.create_server leaves it: asyncio sets TCP_NODELAY only
    # on sockets that say TCP, and without it every answer waited 40 ms for a delayed ACK.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    yield listener
    listener.close()


@pytest.fixture
def live(
    settings: Settings, console_listener: socket.socket, engines: dict[str, Engine]
) -> Iterator[Live]:
    """The app on ``settings`` (the test's database, through the worker's engine for it when
    there is one) served by uvicorn on the worker's console socket."""
    app = create_app(settings, engine=engines.get(settings.database_url))
    with serve_app(app, listener=console_listener) as url:
        yield Live(url, app, app.state.sessionmaker)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Chromium's headless shell (Debian's ``chromium-headless-shell`` package), one per
    worker. Fails, never skips, when it is missing: ``.ci/run`` installs it."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install the Debian package chromium-headless-shell",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def page_pool(browser: Browser) -> Iterator[PagePool]:
    """The worker's browser pages, handed out clean to each test."""
    pool = PagePool(browser)
    yield pool
    pool.close()


@pytest.fixture
def pages(live: Live, page_pool: PagePool) -> Iterator[Pages]:
    """Pages on ``live`` (see :class:`Pages`), given back to the pool after the test."""
    made = Pages(live, page_pool)
    try:
        yield made
    finally:
        made.release()
