"""``/console/audit`` in a real browser: filters in the query string, keyset paging, CSV and
JSON exports of the same filters, and only the events the person may read."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import insert, select

from stead.audit.models import AuditEvent
from stead.db import session_scope
from stead.identity.models import Account
from tests.support.console import SQLITE_ONLY, Live, Pages, screenshot, table_rows


def _seed(live: Live, count: int, project_id: str | None = None) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with session_scope(live.factory, write=True) as session:
        account = session.scalars(select(Account.id)).one()
        session.execute(
            insert(AuditEvent),
            [
                {
                    "account_id": account,
                    "actor_type": "user",
                    "actor_id": "seed",
                    "actor_name": "seeder@example.com",
                    "action": "thing.made",
                    "target_type": "thing",
                    "target_id": f"thing-{i}",
                    "project_id": project_id,
                    "details": {"n": i},
                    "created_at": start + timedelta(minutes=i),
                    "updated_at": start,
                }
                for i in range(count)
            ],
        )


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_filters_paging_and_exports(live: Live, pages: Pages, js: bool) -> None:
    finance = live.project("finance")
    live.project("growth")
    _seed(live, 60, finance)
    page = pages.as_role("SUPER_ADMIN", js=js, path="/console/audit?action=thing.made")
    expect(page.get_by_role("heading", name="Audit")).to_be_visible()
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(50)
    # newest first: the last seeded event, then older ones
    expect(rows.first).to_contain_text("thing-59")
    events = table_rows(page.locator("#results table"))
    assert [e["Target"] for e in events[:2]] == ["thing thing-59", "thing thing-58"]
    assert {(e["Action"], e["Actor"], e["Project"]) for e in events} == {
        ("thing.made", "seeder@example.com (user)", finance[:8])
    }
    times = [e["Time (UTC)"] for e in events]
    assert times == sorted(times, reverse=True)
    assert events[0]["Details"] == '{"n": 59}'
    page.get_by_role("link", name="Next").click()
    expect(page).to_have_url(re.compile(r"/console/audit\?action=thing.made&older=[\w-]+$"))
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("thing-9")
    page.get_by_role("link", name="Previous").click()
    expect(rows.first).to_contain_text("thing-59")

    page.goto("/console/audit")
    page.get_by_label("Action").fill("project.created")
    page.get_by_label("Project id").fill(finance)
    page.get_by_role("button", name="Show events").click()
    expect(page).to_have_url(re.compile(f"action=project.created&project={finance}"))
    expect(rows).to_have_count(1)
    (event,) = table_rows(page.locator("#results table"))
    assert (event["Action"], event["Project"]) == ("project.created", finance[:8])
    assert event["Target"] == f"project {finance}"
    if js:
        screenshot(page, "audit")
    page.reload()  # the filters live in the URL
    expect(page.get_by_label("Action")).to_have_value("project.created")
    expect(rows).to_have_count(1)

    csv_href = page.get_by_role("link", name="CSV").get_attribute("href")
    json_href = page.get_by_role("link", name="JSON").get_attribute("href")
    assert csv_href and json_href
    got = page.request.get(live.url + csv_href)
    assert got.status == 200
    assert got.headers["content-disposition"] == 'attachment; filename="audit-events.csv"'
    (row,) = list(csv.DictReader(io.StringIO(got.text())))
    assert (row["action"], row["projectId"]) == ("project.created", finance)
    exported = json.loads(page.request.get(live.url + json_href).text())
    assert [e["action"] for e in exported] == ["project.created"]
    seeded = page.request.get(f"{live.url}/console/audit/export?format=json&action=thing.made")
    things = json.loads(seeded.text())
    assert [e["target"]["id"] for e in things] == [f"thing-{i}" for i in range(60)]


@SQLITE_ONLY
def test_bad_filters_are_shown_at_their_fields(live: Live, pages: Pages) -> None:
    page = pages.as_role("ADMIN")
    # "to" is a date-time, but after year 9999 once in UTC
    response = page.goto("/console/audit?from=yesterday&project=nope&to=9999-12-31T23:59-01:00")
    assert response is not None and response.status == 400
    expect(page.get_by_label("From (UTC, inclusive)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("To (UTC, exclusive)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Project id")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("must be a date")
    expect(page.get_by_role("alert")).to_contain_text("between years 1 and 9999")
    expect(page.get_by_role("alert")).to_be_focused()


@SQLITE_ONLY
def test_a_member_reads_only_the_trail_of_projects_they_own(live: Live, pages: Pages) -> None:
    mine = live.project("mine")
    theirs = live.project("theirs")
    _seed(live, 3, theirs)
    page = pages.as_role(project_id=mine, project_role="OWNER", path="/console/audit")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(1)
    (event,) = table_rows(page.locator("#results table"))
    assert (event["Action"], event["Project"]) == ("project.created", mine[:8])
    assert theirs not in page.content()
    exported = json.loads(page.request.get(f"{live.url}/console/audit/export?format=json").text())
    assert {e["projectId"] for e in exported} == {mine}
    response = page.goto(f"/console/audit?project={theirs}")
    assert response is not None and response.status == 404
    assert theirs not in page.content() or "not found" in page.content().lower()
    assert page.request.get(f"{live.url}/console/audit/export?project={theirs}").status == 404
    viewer = pages.as_role(project_id=mine, project_role="VIEWER", path="/console/audit")
    expect(viewer.locator("#results")).to_contain_text("No events match")
    response = viewer.goto(f"/console/audit?project={mine}")
    assert response is not None and response.status == 403


@SQLITE_ONLY
def test_downloads_hold_no_admission_slot(live: Live) -> None:
    """More unread downloads than admission slots: the server still answers."""
    from stead.audit.service import EXPORT_BATCH
    from stead.pipeline.admission import MAX_ACTIVE
    from tests.support.factories import new_client

    _seed(live, EXPORT_BATCH * 3)
    client_id, secret = new_client(live.factory, "ADMIN")
    with httpx.Client(base_url=live.url, timeout=10) as http:
        token = http.post(
            "/oauth/dpc/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        with contextlib.ExitStack() as stack:
            for _ in range(MAX_ACTIVE + 1):
                download = stack.enter_context(
                    http.stream("GET", "/v1/audit-events/export", headers=headers)
                )
                assert download.status_code == 200
                next(download.iter_bytes())  # started, then left unread
            assert http.get("/v1/audit-events", headers=headers).status_code == 200
