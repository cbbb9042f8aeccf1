"""Passwords typed into the console never come back: not in a page, a header, a log line or
an audit row."""

from __future__ import annotations

import pytest
from playwright.sync_api import Response, expect
from sqlalchemy import select

from stead.audit.models import AuditEvent
from stead.console.sessions import ConsoleSession
from tests.support.console import Live, Pages, log_in

CANARY = "canary-pw-5b1d0c7e-console"
WRONG = "canary-wrong-9e2f41aa"
NEXT = "canary-next-3c8d2b61"


def test_canary_passwords_never_come_back(
    live: Live, pages: Pages, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    _, email = live.user("SUPER_ADMIN", password=CANARY)
    live.project("Finance")
    seen: list[str] = []

    def keep(response: Response) -> None:
        seen.append(str(response.headers))
        if response.request.resource_type == "document":
            seen.append(response.text())

    page = pages.anonymous()
    pages.on(page, "response", keep)
    log_in(page, email, WRONG)
    expect(page.get_by_role("alert")).to_contain_text("Invalid email or password")
    log_in(page, email, CANARY)
    expect(page).to_have_url(f"{live.url}/console/projects")
    page.goto("/console/account")
    page.get_by_label("Current password").fill(WRONG)
    page.get_by_label("New password", exact=True).fill(NEXT)
    page.get_by_label("New password again").fill(NEXT)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_contain_text("is not correct")
    page.get_by_label("Current password").fill(CANARY)
    page.get_by_label("New password", exact=True).fill(NEXT)
    page.get_by_label("New password again").fill(NEXT)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password has been changed")
    page.get_by_role("button", name=f"Log out {email}").click()
    expect(page).to_have_url(f"{live.url}/console/login?logged_out=1")

    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    with live.factory() as db:
        audit = [str((e.action, e.details)) for e in db.scalars(select(AuditEvent))]
        stored = [str(vars(s)) for s in db.scalars(select(ConsoleSession))]
    assert any("user.password_changed" in a for a in audit)
    assert len(seen) > 10 and "/console/" in logged
    for secret in (CANARY, WRONG, NEXT):
        assert not [s for s in seen if secret in s], secret
        assert secret not in logged
        assert not [a for a in audit if secret in a]
        assert not [s for s in stored if secret in s]
