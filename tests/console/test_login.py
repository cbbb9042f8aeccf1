"""Logging in and out of the console in a real browser, with JavaScript on and off."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.console import SQLITE_ONLY, Live, Pages, log_in, screenshot
from tests.support.factories import USER_PASSWORD


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_login_then_logout(live: Live, pages: Pages, js: bool) -> None:
    _, email = live.user("ADMIN")
    page = pages.anonymous(js=js)
    page.goto("/")
    expect(page).to_have_url(f"{live.url}/console/login?next=%2Fconsole%2Fprojects")
    if js:
        screenshot(page, "login")
    log_in(page, email, USER_PASSWORD)
    expect(page).to_have_url(f"{live.url}/console/projects")
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    page.get_by_role("button", name=f"Log out {email}").click()
    expect(page).to_have_url(f"{live.url}/console/login?logged_out=1")
    expect(page.get_by_role("status")).to_have_text("You have logged out.")
    page.goto("/console/projects")
    expect(page).to_have_url(f"{live.url}/console/login?next=%2Fconsole%2Fprojects")


@SQLITE_ONLY
def test_wrong_password_gets_the_generic_message(live: Live, pages: Pages) -> None:
    _, email = live.user()
    page = pages.anonymous()
    log_in(page, email, "not the password at all")
    expect(page.get_by_role("alert")).to_contain_text("Invalid email or password")
    expect(page.get_by_role("alert")).to_be_focused()
    log_in(page, "nobody@example.com", "not the password at all")
    expect(page.get_by_role("alert")).to_contain_text("Invalid email or password")
