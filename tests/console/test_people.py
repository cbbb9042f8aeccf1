"""People in the console, in a real browser: the invitation mail from a real SMTP server leads
to a password, a session and the project with the buttons the role allows; expired, revoked
and used invitations; the admin's password reset link; disabling and role changes that end
sessions at once; the last Owner kept; canary passwords and tokens in no page, header, log line
or audit row."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import text, update

from stead.db import session_scope, utcnow
from stead.identity.models import Invitation, LoginFailures, SsoIdentity
from stead.scim.models import ScimUser
from stead.settings import Settings
from tests.support.console import SQLITE_ONLY, Live, Pages, screenshot
from tests.support.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server,
    smtp_servers,
)

CANARY_PASSWORD = "CANARY-invitee-password-7a6b5c"
RESET_PASSWORD = "CANARY-reset-password-1f2e3d"
LINK = re.compile(r"https?://[^\s]+/console/(invitations|reset)/([A-Za-z0-9_-]+)")


@pytest.fixture
def settings(settings: Settings, smtp_server: SmtpServer) -> Settings:  # noqa: F811
    """The usual test settings, with mail going to the local SMTP server."""
    return settings.model_copy(update=smtp_server.settings())


def _link(smtp: SmtpServer, kind: str) -> tuple[str, str]:
    """The path and token of the last mailed link of ``kind`` (invitations, reset)."""
    content = smtp.mailbox.messages[-1].get_content()
    match = LINK.search(content)
    assert match and match.group(1) == kind, content
    return f"/console/{kind}/{match.group(2)}", match.group(2)


def _invite(page: Page, project_id: str, email: str, role: str) -> None:
    page.goto(f"/console/projects/{project_id}/members")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Role", exact=True).select_option(role)
    page.get_by_role("button", name="Invite to").click()
    expect(page.get_by_role("status")).to_contain_text(f"{email} has been invited as {role}")


def _all_rows(live: Live) -> str:
    with live.factory() as session:
        dump = []
        for table in (
            "users",
            "audit_events",
            "invitations",
            "password_resets",
            "console_sessions",
        ):
            dump.append(repr(session.execute(text(f"SELECT * FROM {table}")).all()))
        return "\n".join(dump)


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_an_invitation_mail_leads_to_the_project_with_the_role_s_buttons(
    live: Live,
    pages: Pages,
    smtp_server: SmtpServer,  # noqa: F811
    js: bool,
    capfd: pytest.CaptureFixture[str],
) -> None:
    project_id = live.project("finance")
    owner_id, owner_email = live.user(project_id=project_id, project_role="OWNER")
    owner = pages.as_user(owner_email, js=js)
    _invite(owner, project_id, "reader@example.com", "VIEWER")
    path, token = _link(smtp_server, "invitations")

    guest = pages.anonymous(js=js)
    answer = guest.goto(path)
    assert answer is not None and answer.status == 200
    assert answer.headers["referrer-policy"] == "same-origin"
    assert answer.headers["cache-control"] == "no-store"
    main = guest.locator("main")
    expect(main).to_contain_text("finance")
    expect(main).to_contain_text("VIEWER")
    expect(main).to_contain_text(owner_email)
    if js:
        screenshot(guest, "invitation")
    # Passwords that differ: the message at the field, nothing created.
    guest.get_by_label("Password", exact=True).fill(CANARY_PASSWORD)
    guest.get_by_label("Password again").fill(CANARY_PASSWORD + "x")
    guest.get_by_role("button", name="Create my user and join finance").click()
    expect(guest.get_by_label("Password again")).to_have_attribute("aria-invalid", "true")
    expect(guest.get_by_role("alert")).to_contain_text("does not match")
    assert CANARY_PASSWORD not in guest.content()  # a password input never gets its value back
    guest.get_by_label("Password", exact=True).fill(CANARY_PASSWORD)
    guest.get_by_label("Password again").fill(CANARY_PASSWORD)
    guest.get_by_role("button", name="Create my user and join finance").click()
    guest.wait_for_load_state()
    assert guest.url.endswith(f"/console/projects/{project_id}"), guest.url

    # A working session: the reader sees the members but no button to change them.
    guest.goto(f"/console/projects/{project_id}/members")
    main = guest.locator("main")
    expect(main).to_contain_text("reader@example.com")
    expect(main).to_contain_text(owner_email)
    for name in ("Invite", "Remove", "Change role", "Revoke"):
        expect(guest.get_by_role("button", name=re.compile(name))).to_have_count(0)
    # The owner sees them all.
    owner.goto(f"/console/projects/{project_id}/members")
    expect(owner.get_by_role("button", name="Remove reader@example.com")).to_be_visible()
    expect(owner.get_by_role("button", name="Change role of reader@example.com")).to_be_visible()
    expect(owner.get_by_role("button", name="Invite to finance")).to_be_visible()
    if js:
        screenshot(owner, "members")

    # Used: the link now shows an error page and creates nothing.
    again = pages.anonymous(js=js)
    used = again.goto(path)
    assert used is not None and used.status == 409
    expect(again.locator("main")).to_contain_text("used already")
    expect(again.get_by_label("Password")).to_have_count(0)

    logs = capfd.readouterr()
    everything = logs.out + logs.err + _all_rows(live)
    assert token not in everything and CANARY_PASSWORD not in everything


@SQLITE_ONLY
def test_an_existing_user_logs_in_to_accept(
    live: Live,
    pages: Pages,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    project_id = live.project("growth")
    _, owner_email = live.user(project_id=project_id, project_role="OWNER")
    _, email = live.user()
    _invite(pages.as_user(owner_email), project_id, email, "CONTRIBUTOR")
    path, _ = _link(smtp_server, "invitations")
    guest = pages.anonymous()
    guest.goto(path)
    guest.get_by_label("Password").fill("not the password at all")
    guest.get_by_role("button", name="Log in and join growth").click()
    expect(guest.get_by_role("alert")).to_contain_text("Invalid email or password")
    guest.get_by_label("Password").fill("correct horse battery staple")
    guest.get_by_role("button", name="Log in and join growth").click()
    guest.wait_for_load_state()
    assert guest.url.endswith(f"/console/projects/{project_id}"), guest.url
    guest.goto(f"/console/projects/{project_id}/members")
    expect(guest.locator("main")).to_contain_text(email)


@SQLITE_ONLY
def test_expired_and_revoked_invitations_show_an_error_page(
    live: Live,
    pages: Pages,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    project_id = live.project("ops")
    _, owner_email = live.user(project_id=project_id, project_role="OWNER")
    owner = pages.as_user(owner_email)
    _invite(owner, project_id, "late@example.com", "VIEWER")
    expired_path, _ = _link(smtp_server, "invitations")
    _invite(owner, project_id, "gone@example.com", "VIEWER")
    revoked_path, _ = _link(smtp_server, "invitations")
    with session_scope(live.factory, write=True) as session:
        session.execute(
            update(Invitation)
            .where(Invitation.email == "late@example.com")
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    owner.goto(f"/console/projects/{project_id}/members")
    owner.get_by_role("button", name="Revoke invitation for gone@example.com").click()
    expect(owner.get_by_role("status")).to_contain_text("revoked")

    guest = pages.anonymous(js=False)
    expired = guest.goto(expired_path)
    assert expired is not None and expired.status == 409
    expect(guest.locator("main")).to_contain_text("expired")
    revoked = guest.goto(revoked_path)
    assert revoked is not None and revoked.status == 404
    expect(guest.get_by_label("Password")).to_have_count(0)
    # A forged post to the revoked link creates nothing either.
    with live.factory() as session:
        users_before = session.execute(text("SELECT count(*) FROM users")).scalar()
    answer = guest.request.post(
        revoked_path, form={"password": "x" * 20, "confirm_password": "x" * 20}
    )
    assert answer.status == 403
    with live.factory() as session:
        assert session.execute(text("SELECT count(*) FROM users")).scalar() == users_before


@SQLITE_ONLY
def test_the_last_owner_is_kept(live: Live, pages: Pages) -> None:
    project_id = live.project("solo")
    _, owner_email = live.user(project_id=project_id, project_role="OWNER")
    owner = pages.as_user(owner_email, path=f"/console/projects/{project_id}/members")
    owner.get_by_label(f"Role of {owner_email}").select_option("VIEWER")
    owner.get_by_role("button", name=f"Change role of {owner_email}").click()
    select = owner.get_by_label(f"Role of {owner_email}")
    expect(select).to_have_attribute("aria-invalid", "true")
    expect(owner.get_by_role("alert")).to_contain_text("at least one OWNER")
    owner.get_by_role("button", name=f"Remove {owner_email}").click()
    expect(owner.get_by_role("alert")).to_contain_text("at least one OWNER")
    owner.goto(f"/console/projects/{project_id}/members")
    expect(owner.get_by_label(f"Role of {owner_email}")).to_have_value("OWNER")


def _row_button(page: Page, label: str) -> Any:
    return page.get_by_role("button", name=label, exact=True)


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_admin_reset_link_works_once_and_ends_sessions(
    live: Live,
    pages: Pages,
    smtp_server: SmtpServer,  # noqa: F811
    js: bool,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _, email = live.user()
    victim = pages.as_user(email, js=js)
    admin = pages.as_role("ADMIN", js=js, path="/console/users")
    if js:
        screenshot(admin, "users")
    _row_button(admin, f"Reset password of {email}").click()
    shown = admin.get_by_label("Reset link").input_value()
    path, token = _link(smtp_server, "reset")
    assert shown.endswith(path)
    # Shown once: the users page never holds it again.
    listed = admin.goto("/console/users")
    assert listed is not None and token not in listed.text() and token not in str(listed.headers)
    # The user was signed out at once: their next click goes to the login page.
    victim.goto("/console/projects")
    assert "/console/login" in victim.url

    guest = pages.anonymous(js=js)
    page = guest.goto(path)
    assert page is not None and page.headers["cache-control"] == "no-store"
    guest.get_by_label("New password", exact=True).fill(RESET_PASSWORD)
    guest.get_by_label("New password again").fill(RESET_PASSWORD)
    guest.get_by_role("button", name="Set the new password").click()
    expect(guest.get_by_role("heading", name="Your password has been changed")).to_be_visible()
    pages.as_user(email, RESET_PASSWORD, js=js)
    again = pages.anonymous(js=js).goto(path)
    assert again is not None and again.status == 409

    logs = capfd.readouterr()
    everything = logs.out + logs.err + _all_rows(live)
    assert token not in everything and RESET_PASSWORD not in everything


@SQLITE_ONLY
def test_disable_and_role_change_end_sessions_at_once(live: Live, pages: Pages) -> None:
    _, email = live.user()
    _, other = live.user()
    victim = pages.as_user(email)
    second = pages.as_user(other)
    admin = pages.as_role("ADMIN", path="/console/users")
    _row_button(admin, f"Disable {email}").click()
    expect(admin.get_by_role("status")).to_contain_text(f"{email} is disabled")
    victim.goto("/console/account")
    assert "/console/login" in victim.url
    _row_button(admin, f"Enable {email}").click()
    expect(admin.get_by_role("status")).to_contain_text(f"{email} is enabled")

    admin.get_by_label(f"Role of {other}").select_option("ADMIN")
    _row_button(admin, f"Change role of {other}").click()
    expect(admin.get_by_role("status")).to_contain_text("their sessions have ended")
    second.goto("/console/account")
    assert "/console/login" in second.url
    # An admin cannot change their own role: no buttons on their own row.
    expect(admin.get_by_role("button", name=re.compile("(you)"))).to_have_count(0)

    # End sessions: the user's next click goes to the login page.
    third = pages.as_user(email)
    _row_button(admin, f"End sessions of {email}").click()
    expect(admin.get_by_role("status")).to_contain_text(f"Every session of {email} has ended")
    third.goto("/console/account")
    assert "/console/login" in third.url

    # A lockout shows in the list and Unlock clears it.
    with session_scope(live.factory, write=True) as session:
        session.add(
            LoginFailures(
                email_key=email.lower(),
                source="203.0.113.9",
                failures=5,
                locked_until=utcnow() + timedelta(minutes=5),
            )
        )
    admin.goto("/console/users")
    expect(admin.get_by_role("row", name=re.compile(re.escape(email)))).to_contain_text("locked")
    _row_button(admin, f"Unlock {email}").click()
    expect(admin.get_by_role("status")).to_contain_text(f"{email} is unlocked")
    expect(_row_button(admin, f"Unlock {email}")).to_have_count(0)


@SQLITE_ONLY
def test_a_member_gets_no_users_page(live: Live, pages: Pages) -> None:
    member = pages.as_role("MEMBER")
    answer = member.goto("/console/users")
    assert answer is not None and answer.status == 403
    expect(member.get_by_role("button", name=re.compile("Disable"))).to_have_count(0)


@SQLITE_ONLY
def test_a_project_the_user_cannot_see_is_404(live: Live, pages: Pages, tmp_path: Path) -> None:
    hidden = live.project("hidden")
    page = pages.as_role("MEMBER")
    answer = page.goto(f"/console/projects/{hidden}/members")
    assert answer is not None and answer.status == 404
    expect(page.locator("main")).not_to_contain_text("hidden")


def test_users_written_by_scim_or_linked_to_sso_are_marked(live: Live, pages: Pages) -> None:
    scim_id, scim_email = live.user()
    sso_id, sso_email = live.user()
    _, plain = live.user()
    with session_scope(live.factory, write=True) as session:
        session.add(ScimUser(user_id=scim_id, user_name=scim_email, user_name_key=scim_email))
        session.add(
            SsoIdentity(
                user_id=sso_id,
                issuer="https://idp.example.com",
                subject="subject-1",
                last_login_at=utcnow(),
            )
        )
    admin = pages.as_role("ADMIN", path="/console/users")

    def header(email: str) -> str:
        return admin.get_by_role("rowheader", name=re.compile(re.escape(email))).inner_text()

    assert header(scim_email) == f"{scim_email} SCIM"
    assert header(sso_email) == f"{sso_email} SSO"
    assert header(plain) == plain
