"""Keyboard only, beyond the wizard: signing in, inviting a member, creating an API client and
the plan page, with Tab, Shift+Tab, typing and Enter alone. Every control reached shows a focus
ring, and a form that comes back with errors puts focus on its error summary."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.console.test_plan_page import document
from tests.support.console import SQLITE_ONLY, Live, Pages
from tests.support.factories import USER_PASSWORD

#: Tab presses after which a control counts as unreachable.
LIMIT = 60


def focused_matches(page: Page, selector: str) -> bool:
    """Whether the focused element matches the CSS ``selector``."""
    return bool(
        page.evaluate(
            "(s) => !!document.activeElement && document.activeElement.matches(s)", selector
        )
    )


def assert_focus_visible(page: Page) -> None:
    """The focused element matches ``:focus-visible`` and draws an outline of 2px or more."""
    seen = page.evaluate(
        """() => {
          const e = document.activeElement, s = getComputedStyle(e);
          const box = e.getBoundingClientRect();
          return {visible: e.matches(':focus-visible'), style: s.outlineStyle,
                  width: parseFloat(s.outlineWidth), shown: box.width > 0 && box.height > 0,
                  what: e.outerHTML.slice(0, 80)};
        }"""
    )
    assert seen["visible"] and seen["shown"], seen
    assert seen["style"] != "none" and seen["width"] >= 2, seen["what"]


def tab_to(page: Page, selector: str) -> None:
    """Press Tab until the element matching ``selector`` has focus, checking that every control
    on the way shows its focus ring."""
    page.wait_for_load_state()  # the style sheets, which draw the ring, are in
    for _ in range(LIMIT):
        page.keyboard.press("Tab")
        assert_focus_visible(page)
        if focused_matches(page, selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def expect_summary_focused(page: Page, text: str) -> None:
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text(text)


def retype(page: Page, text: str) -> None:
    """Replace the focused input's text, as a person would: select all, then type."""
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type(text)


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_sign_in(js: bool, live: Live, pages: Pages) -> None:
    _, email = live.user("MEMBER")
    page = pages.anonymous(js=js)
    page.goto("/console/login")
    page.keyboard.press("Tab")  # the first stop is the skip link, shown when focused
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    assert_focus_visible(page)

    tab_to(page, "#email")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    assert focused_matches(page, "#password")
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    expect_summary_focused(page, "There is a problem")
    assert page.url.endswith("/console/login")

    tab_to(page, "#password")  # the email is kept; the password is typed again
    expect(page.locator("#email")).to_have_value(email)
    page.keyboard.type(USER_PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live.url}/console/projects")
    tab_to(page, "form[action='/console/logout'] button")
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


@SQLITE_ONLY
def test_invite_a_member(live: Live, pages: Pages) -> None:
    project_id = live.project("Finance")
    # an account Admin: with no mail server set, the page shows the invitation link
    _, owner = live.user("ADMIN", project_id=project_id, project_role="OWNER")
    page = pages.as_user(owner, path=f"/console/projects/{project_id}/members")
    invite = "form[action$='/invite'] button[type=submit]"

    tab_to(page, "#email")
    page.keyboard.type("not-an-email")
    tab_to(page, invite)
    page.keyboard.press("Enter")  # the browser's own check stops it, at the field
    expect(page.locator("#email")).to_be_focused()
    assert focused_matches(page, ":invalid")

    retype(page, "reader@example.com")
    page.keyboard.press("Tab")
    assert focused_matches(page, "#project_role")
    page.keyboard.type("CONTRIBUTOR")  # a select's type-ahead picks the option
    tab_to(page, invite)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text(
        "pass this link on to reader@example.com"
    )
    tab_to(page, "button[data-copy='accept-url']")
    page.keyboard.press("Enter")
    expect(page.locator("[data-copy-status='accept-url']")).not_to_be_empty()
    expect(page.get_by_role("row", name="reader@example.com")).to_contain_text("CONTRIBUTOR")

    # someone who is a member already: the server's message, in the summary that takes focus
    tab_to(page, "#email")
    retype(page, owner)
    tab_to(page, invite)
    page.keyboard.press("Enter")
    expect_summary_focused(page, "Email: ")
    expect(page.locator("#email")).to_have_attribute("aria-invalid", "true")
    page.keyboard.press("Tab")  # the summary's link leads to the field
    assert focused_matches(page, "#error-summary a[href='#email']")
    page.keyboard.press("Enter")
    expect(page.locator("#email")).to_be_focused()


@SQLITE_ONLY
def test_create_an_api_client(live: Live, pages: Pages) -> None:
    page = pages.as_role("ADMIN", path="/console/api-clients")
    tab_to(page, "#name")
    page.keyboard.press("Enter")  # nothing typed: the browser's own check stops it
    expect(page.locator("#name")).to_be_focused()
    assert focused_matches(page, ":invalid")
    page.keyboard.type("   ")  # the server's check: the form comes back with its error
    page.keyboard.press("Enter")
    expect_summary_focused(page, "Name: ")
    expect(page.locator("#name")).to_have_attribute("aria-invalid", "true")

    tab_to(page, "#name")
    retype(page, "keyboard-loader")
    page.keyboard.press("Tab")
    assert focused_matches(page, "#role")
    page.keyboard.type("Admin")
    tab_to(page, "form[action='/console/api-clients'] button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="API client keyboard-loader created")).to_be_visible()
    tab_to(page, "button[data-copy]")
    page.keyboard.press("Enter")
    expect(page.locator("[data-copy-status]")).not_to_be_empty()
    tab_to(page, "a[href='/console/api-clients']:not([aria-current])")
    page.keyboard.press("Enter")
    row = page.get_by_role("row", name="keyboard-loader")
    expect(row).to_contain_text("ADMIN")
    expect(row).to_contain_text("Active")


@SQLITE_ONLY
def test_the_plan_page(live: Live, pages: Pages) -> None:
    page = pages.as_role("SUPER_ADMIN", path="/console/plan")
    preview = "form[action='/console/plan'] button[type=submit]"
    tab_to(page, preview)
    page.keyboard.press("Enter")  # nothing pasted
    expect_summary_focused(page, "Paste a YAML document or choose a file.")

    tab_to(page, "#document")
    page.keyboard.insert_text(document("keyboard"))
    tab_to(page, preview)
    page.keyboard.press("Enter")
    expect(page.locator("#plan")).to_contain_text("Plan: 5 to create")
    tab_to(page, "form[action='/console/plan/apply'] button[type=submit]")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live.url}/console/plan")
    expect(page.get_by_role("status")).to_have_text("Applied 5 change(s).")
