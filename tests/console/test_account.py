"""``/console/account``: changing one's password and ending one's sessions, in a browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from stead.identity.models import User
from stead.identity.service import NO_PASSWORD
from tests.support.console import SQLITE_ONLY, Live, Pages, log_in
from tests.support.factories import USER_PASSWORD

NEW_PASSWORD = "canary-account-password-91c2"


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_password_change_ends_the_other_sessions(live: Live, pages: Pages, js: bool) -> None:
    _, email = live.user()
    elsewhere = pages.as_user(email)
    page = pages.as_user(email, js=js)
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("row")).to_have_count(3)  # header + two sessions
    page.get_by_label("Current password").fill(USER_PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password has been changed")
    expect(page.get_by_role("row")).to_have_count(2)  # only this session is left
    assert NEW_PASSWORD not in page.content()
    elsewhere.reload()
    expect(elsewhere).to_have_url(f"{live.url}/console/login?next=%2Fconsole%2Fprojects")
    log_in(elsewhere, email, NEW_PASSWORD)
    expect(elsewhere).to_have_url(f"{live.url}/console/projects")


@SQLITE_ONLY
@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_wrong_current_password_is_shown_at_its_field(live: Live, pages: Pages, js: bool) -> None:
    _, email = live.user()
    page = pages.as_user(email, js=js, path="/console/account")
    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD + "x")
    page.get_by_role("button", name="Change password").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("does not match the new password")
    if js:
        expect(summary).to_be_focused()
    confirm = page.get_by_label("New password again")
    expect(confirm).to_have_attribute("aria-invalid", "true")
    expect(confirm).to_have_attribute("aria-describedby", "confirm_password-error")
    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    current = page.get_by_label("Current password")
    expect(current).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#current_password-error")).to_have_text("is not correct")
    assert NEW_PASSWORD not in page.content()
    log_in(pages.anonymous(), email, USER_PASSWORD)  # the password did not change


@SQLITE_ONLY
def test_end_one_session_and_all_others(live: Live, pages: Pages) -> None:
    _, email = live.user()
    others = [pages.as_user(email), pages.as_user(email)]
    page = pages.as_user(email, js=False, path="/console/account")
    expect(page.get_by_role("row")).to_have_count(4)
    page.get_by_role("button", name="End session from").first.click()
    expect(page.get_by_role("status")).to_have_text("The session has ended.")
    expect(page.get_by_role("row")).to_have_count(3)
    page.get_by_role("button", name="End all other sessions").click()
    expect(page.get_by_role("status")).to_have_text("1 other session ended.")
    expect(page.get_by_role("row")).to_have_count(2)
    for other in others:
        other.reload()
        assert "/console/login" in other.url


@SQLITE_ONLY
def test_a_user_without_a_password_is_told_how_to_get_one(live: Live, pages: Pages) -> None:
    user_id, email = live.user()
    page = pages.as_user(email)
    with live.factory.begin() as db:
        db.execute(update(User).where(User.id == user_id).values(password_hash=NO_PASSWORD))
    page.goto("/console/account")
    expect(page.get_by_text("You sign in with single sign-on and have no password")).to_be_visible()
    expect(page.get_by_text("ask an administrator for a password reset link")).to_be_visible()
    expect(page.get_by_label("Current password")).to_have_count(0)
    expect(page.get_by_role("button", name="Change password")).to_have_count(0)
