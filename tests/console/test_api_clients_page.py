"""``/console/api-clients`` in a real browser: a secret is shown once, works at the token
endpoint, and never appears again; rotate and revoke; who may see the page."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.console import SQLITE_ONLY, Live, Pages, screenshot


def _token(live: Live, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(
        f"{live.url}/oauth/dpc/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_a_secret_is_shown_once_and_works(
    live: Live, pages: Pages, js: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    page = pages.as_role("ADMIN", js=js, path="/console/api-clients")
    expect(page.get_by_role("heading", name="API clients", exact=True)).to_be_visible()
    if js:
        screenshot(page, "api-clients")
    page.get_by_label("Name").fill("nightly-loader")
    page.get_by_label("Role").select_option("MEMBER")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Create API client").click()
    assert answer.value.status == 201
    assert answer.value.headers["cache-control"] == "no-store"
    expect(page.get_by_role("heading", name="API client nightly-loader created")).to_be_visible()
    secret = page.get_by_label("Client secret").input_value()
    client_id = page.locator("#client-id").inner_text()
    assert len(secret) >= 40
    copy = page.get_by_role("button", name="Copy the secret of nightly-loader")
    if js:
        copy.click()
        expect(page.locator('[data-copy-status="client-secret"]')).not_to_be_empty()
    else:
        expect(copy).to_be_hidden()
    assert _token(live, client_id, secret).status_code == 200

    # never again: the list, a reload of it, the way back to the POST's answer
    page.get_by_role("link", name="Done: back to API clients").click()
    expect(page.get_by_role("row", name="nightly-loader")).to_contain_text("Active")
    assert secret not in page.content()
    page.reload()
    assert secret not in page.content()
    page.go_back()
    assert secret not in page.content()

    # rotating shows a new secret once; the old one stops working
    page.goto("/console/api-clients")
    page.get_by_role("button", name="Rotate secret of nightly-loader").click()
    expect(page.get_by_role("heading", name="New secret for nightly-loader")).to_be_visible()
    rotated = page.get_by_label("Client secret").input_value()
    assert rotated != secret
    assert _token(live, client_id, secret).status_code == 401
    assert _token(live, client_id, rotated).status_code == 200

    page.goto("/console/api-clients")
    page.get_by_role("button", name="Revoke API client nightly-loader").click()
    expect(page.get_by_role("status")).to_have_text("API client nightly-loader is revoked.")
    expect(page.get_by_role("row", name="nightly-loader")).to_contain_text("Revoked")
    assert _token(live, client_id, rotated).status_code == 401
    logs = capfd.readouterr()
    assert secret not in logs.out + logs.err and rotated not in logs.out + logs.err


@SQLITE_ONLY
def test_bad_input_and_roles(live: Live, pages: Pages) -> None:
    page = pages.as_role("ADMIN", js=False, path="/console/api-clients")
    expect(page.get_by_label("Role").locator("option")).to_have_text(["Admin", "Member"])
    page.get_by_label("Name").fill("   ")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Create API client").click()
    assert answer.value.status == 400
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(0)
    # an Admin may not make a Super Admin client, even with a forged form
    forged = page.request.post(
        f"{live.url}/console/api-clients",
        form={
            "name": "sneaky",
            "role": "SUPER_ADMIN",
            "csrf_token": page.locator("input[name=csrf_token]").first.get_attribute("value") or "",
        },
    )
    assert forged.status == 403
    assert "Only a Super Admin may manage SUPER_ADMIN API clients" in forged.text()
    page.reload()
    assert "sneaky" not in page.content()


@SQLITE_ONLY
def test_a_member_does_not_see_the_page(live: Live, pages: Pages) -> None:
    page = pages.as_role("MEMBER")
    expect(page.get_by_role("link", name="API clients")).to_have_count(0)
    response = page.goto("/console/api-clients")
    assert response is not None and response.status == 403
    expect(page.get_by_role("button", name="Create API client")).to_have_count(0)
