"""Console sessions over real HTTP: cookie flags, a new id at login, CSRF and the Origin check,
the headers of every console answer, and the separation of cookie and bearer credentials."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from stead.app import create_app
from stead.audit.models import AuditEvent
from stead.console.sessions import ConsoleSession, hash_id
from stead.settings import Settings
from tests.support.console import SQLITE_ONLY, Live, csrf_of, http_login
from tests.support.factories import USER_PASSWORD, login, new_user
from tests.support.served import serve


@pytest.fixture
def client(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=30) as made:
        yield made


def _sessions(live: Live, user_id: str) -> list[ConsoleSession]:
    with live.factory() as db:
        query = select(ConsoleSession).where(ConsoleSession.user_id == user_id)
        return list(db.scalars(query))


def test_login_sets_a_fresh_http_only_lax_cookie(live: Live, client: httpx.Client) -> None:
    user_id, email = live.user()
    planted = "planted-before-login"
    client.cookies.set("stead_session", planted)
    form = client.get("/console/login")
    resp = client.post(
        "/console/login",
        data={"email": email, "password": USER_PASSWORD, "csrf_token": csrf_of(form.text)},
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == "/console/projects"
    cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("stead_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert "secure" not in flags  # the public URL is http here
    value = cookie.split(";")[0].split("=", 1)[1]
    assert value != planted and len(value) >= 43  # 256 bits, URL-safe base64
    rows = _sessions(live, user_id)
    assert [r.id_hash for r in rows] == [hash_id(value)]  # only the hash is stored
    assert value not in {r.csrf_seed for r in rows}


@SQLITE_ONLY
def test_login_ends_the_session_the_browser_brought(live: Live, client: httpx.Client) -> None:
    user_id, email = live.user()
    http_login(client, email)
    first = client.cookies["stead_session"]
    http_login(client, email)
    assert client.cookies["stead_session"] != first
    assert [r.id_hash for r in _sessions(live, user_id)] == [
        hash_id(client.cookies["stead_session"])
    ]


@SQLITE_ONLY
def test_https_public_url_makes_a_host_prefixed_secure_cookie(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"public_url": "https://stead.example.com"}))
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        _, email = new_user(app.state.sessionmaker)
        form = client.get("/console/login")
        assert "__Host-stead_login_csrf=" in form.headers["set-cookie"]
        resp = client.post(
            "/console/login",
            data={"email": email, "password": USER_PASSWORD, "csrf_token": csrf_of(form.text)},
        )
    cookie = next(
        c for c in resp.headers.get_list("set-cookie") if c.startswith("__Host-stead_session=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/", "secure"} <= flags
    assert not any(f.startswith("domain") for f in flags)


def _count(live: Live, model: type, *where: object) -> int:
    with live.factory() as db:
        return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_csrf_refusals_write_nothing(live: Live, client: httpx.Client) -> None:
    user_id, email = live.user()
    token = http_login(client, email)
    with httpx.Client(base_url=live.url, timeout=30) as other:
        other_token = http_login(other, email)
    assert other_token != token
    assert len(_sessions(live, user_id)) == 2
    audit_before = _count(live, AuditEvent)
    url = "/console/account/sessions/end-others"
    refusals = [
        {},  # no token
        {"data": {"csrf_token": "wrong"}},
        {"data": {"csrf_token": other_token}},  # another session's token
        {"headers": {"X-CSRF-Token": other_token}},
        {"data": {"csrf_token": token}, "headers": {"Origin": "https://evil.example"}},
        {"data": {"csrf_token": token}, "headers": {"Origin": "null"}},
        {"data": {"csrf_token": token}, "headers": {"Sec-Fetch-Site": "cross-site"}},
    ]
    for kwargs in refusals:
        resp = client.post(url, **kwargs)  # type: ignore[arg-type]
        assert resp.status_code == 403, kwargs
        assert resp.headers["content-type"].startswith("text/html")
        assert "stack" not in resp.text.lower() and "Traceback" not in resp.text
    assert len(_sessions(live, user_id)) == 2
    assert _count(live, AuditEvent) == audit_before
    # The same request with the right token, from this origin, works.
    resp = client.post(url, data={"csrf_token": token}, headers={"Origin": live.url})
    assert resp.status_code == 303
    assert len(_sessions(live, user_id)) == 1
    # htmx sends the header instead of the field.
    resp = client.post("/console/logout", headers={"X-CSRF-Token": token})
    assert resp.status_code == 303
    assert _sessions(live, user_id) == []


@SQLITE_ONLY
def test_login_form_needs_its_own_token(live: Live, client: httpx.Client) -> None:
    user_id, email = live.user()
    client.get("/console/login")
    for token in ("", "forged"):
        resp = client.post(
            "/console/login",
            data={"email": email, "password": USER_PASSWORD, "csrf_token": token},
        )
        assert resp.status_code == 403
        assert "stead_session=" not in resp.headers.get("set-cookie", "")
    assert _sessions(live, user_id) == []
    resp = client.post(
        "/console/login",
        data={"email": email, "password": USER_PASSWORD, "csrf_token": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert resp.status_code == 403


_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"


@SQLITE_ONLY
def test_headers_on_every_console_answer(live: Live, client: httpx.Client) -> None:
    _, email = live.user()
    answers = [client.get("/console/login"), client.get("/console/projects")]
    http_login(client, email)
    answers += [
        client.get("/console/projects"),
        client.get("/console/account"),
        client.get("/console/no-such-page"),
        client.get("/console/static/console.js"),
    ]
    for resp in answers:
        headers = resp.headers
        assert headers.get_list("content-security-policy") == [_CSP], resp.url
        assert headers.get_list("referrer-policy") == ["same-origin"]
        assert headers["x-content-type-options"] == "nosniff"
        assert re.fullmatch(r"app;dur=\d+(\.\d+)?", headers["server-timing"])
    for resp in answers[:-1]:
        assert resp.headers["cache-control"] == "no-store", resp.url
    assert answers[-1].headers["cache-control"] == "no-cache"
    missing = answers[-2]
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "Page not found" in missing.text
    vendor = client.get("/console/static/vendor/htmx-2.0.11.min.js")
    assert vendor.status_code == 200
    assert vendor.headers["cache-control"] == "public, max-age=31536000, immutable"
    api = client.get("/healthz")
    assert api.headers["content-security-policy"] == "frame-ancestors 'none'"  # /v1's own
    assert "server-timing" not in api.headers


@SQLITE_ONLY
def test_front_page_redirects_to_the_console(client: httpx.Client) -> None:
    resp = client.get("/")
    assert resp.status_code == 303 and resp.headers["location"] == "/console"
    resp = client.get("/console")
    assert resp.status_code == 303 and resp.headers["location"] == "/console/projects"
    resp = client.get("/console/projects?q=x")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/console/login?next=%2Fconsole%2Fprojects%3Fq%3Dx"


@SQLITE_ONLY
def test_cookie_and_bearer_are_not_interchangeable(live: Live, client: httpx.Client) -> None:
    _, email = live.user("SUPER_ADMIN")
    http_login(client, email)
    assert client.get("/console/projects").status_code == 200
    # /v1 takes only a bearer token: the session cookie alone is refused.
    assert client.get("/v1/projects").status_code == 401
    with TestClient(live.app) as api:
        bearer = login(api, email)
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=30) as other:
        assert other.get("/v1/projects", headers=bearer).status_code == 200
        # /console takes only the cookie: a bearer token is no session.
        resp = other.get("/console/projects", headers=bearer)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/console/login")


@SQLITE_ONLY
def test_next_only_leads_into_the_console(live: Live, client: httpx.Client) -> None:
    _, email = live.user()
    for target, expected in [
        ("/console/account", "/console/account"),
        ("https://evil.example/console", "/console/projects"),
        ("//evil.example/console", "/console/projects"),
        ("/v1/projects", "/console/projects"),
        ("/console\\@evil.example", "/console/projects"),
        ("/console/../v1/projects", "/console/projects"),
        ("/console/%2e%2e/v1/projects", "/console/projects"),
        ("/console/projects?q=a", "/console/projects?q=a"),
    ]:
        form = client.get("/console/login", params={"next": target})
        resp = client.post(
            "/console/login",
            data={
                "email": email,
                "password": USER_PASSWORD,
                "csrf_token": csrf_of(form.text),
                "next": target,
            },
        )
        assert resp.headers["location"] == expected, target


@SQLITE_ONLY
def test_lockout_is_shown_on_the_login_page(live: Live, client: httpx.Client) -> None:
    _, email = live.user()
    statuses = []
    for _ in range(6):
        form = client.get("/console/login")
        resp = client.post(
            "/console/login",
            data={"email": email, "password": "wrong password!", "csrf_token": csrf_of(form.text)},
        )
        statuses.append(resp.status_code)
    # The fifth failure locks the (email, address) pair (STEAD_LOGIN_MAX_FAILURES).
    assert statuses == [401] * 4 + [429] * 2
    assert "try again in" in resp.text
    form = client.get("/console/login")
    resp = client.post(
        "/console/login",
        data={"email": email, "password": USER_PASSWORD, "csrf_token": csrf_of(form.text)},
    )
    assert resp.status_code == 429  # locked: even the right password is refused
    assert "stead_session=" not in resp.headers.get("set-cookie", "")


@pytest.mark.process
@SQLITE_ONLY
def test_token_paths_are_redacted_in_the_server_log(db_url: str, tmp_path: Path) -> None:
    with (
        serve(db_url, tmp_path / "served") as served,
        httpx.Client(base_url=served.url) as client,
    ):
        client.get("/console/invitations/secret-invitation-token-123")
        client.get("/console/reset/secret-reset-token-456")
    logged = served.log.read_text()
    assert '"path": "/console/invitations/[redacted]"' in logged
    assert '"path": "/console/reset/[redacted]"' in logged
    assert "secret-invitation-token-123" not in logged
    assert "secret-reset-token-456" not in logged


def test_role_change_and_lock_end_sessions(live: Live, client: httpx.Client) -> None:
    user_id, email = live.user("ADMIN")
    _, admin_email = live.user("SUPER_ADMIN")
    http_login(client, email)
    assert len(_sessions(live, user_id)) == 1
    with TestClient(live.app) as api:
        headers = login(api, admin_email)
        resp = api.patch(f"/v1/users/{user_id}", json={"role": "MEMBER"}, headers=headers)
        assert resp.status_code == 200, resp.text
    assert _sessions(live, user_id) == []
    assert client.get("/console/projects").status_code == 303
    http_login(client, email)
    with httpx.Client(base_url=live.url, timeout=30) as attacker:
        for _ in range(5):
            form = attacker.get("/console/login")
            attacker.post(
                "/console/login",
                data={
                    "email": email,
                    "password": "wrong password!",
                    "csrf_token": csrf_of(form.text),
                },
            )
    assert _sessions(live, user_id) == []  # locked: every session ended
