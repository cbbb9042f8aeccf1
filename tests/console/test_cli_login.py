"""``stead login --sso``: the CLI (a real subprocess listening on a loopback port) and the
console's ``/console/cli/authorize`` page in Chromium; then the CLI acts as the person. Also
the page's refusals, the code's rules (60 s, single use, PKCE, redirect URI), revoking from the
account page, and that no code or token is shown, stored or logged."""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update
from typer.testing import CliRunner

from stead.audit.models import AuditEvent
from stead.cli.main import app
from stead.db import session_scope, utcnow
from stead.identity.grants import REVOKED, s256
from stead.identity.models import CliCode, CliGrant
from tests.support.console import Live, Pages, csrf_of, http_login, screenshot
from tests.support.factories import USER_PASSWORD
from tests.support.rows import all_text

TOKEN = "/oauth/dpc/token"
PROJECT_FILE = """\
version: 1
projects:
  - name: made-by-cli
    warehouse: snowflake
    agentDeploymentType: full_saas
"""


def _cli_env(config_home: Path) -> dict[str, str]:
    """The environment of a ``stead`` subprocess: only what it needs (no STEAD_* of ours)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(config_home),
        "XDG_CONFIG_HOME": str(config_home),
        "BROWSER": "true",  # a browser that opens nothing: the test's Chromium does
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def sso_login(live: Live, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``stead login --sso`` running against ``live``; yields the process and the authorize
    URL it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stead.cli.main", "login", "--sso", "--url", live.url],
        env=_cli_env(tmp_path / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        url = ""
        for line in proc.stderr:
            if "/console/cli/authorize?" in line:
                url = line.strip()
                break
        assert url.startswith(f"{live.url}/console/cli/authorize?"), url
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=20)


def test_login_sso_end_to_end_in_chromium_then_the_cli_acts_as_the_person(
    live: Live, pages: Pages, sso_login: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    proc, url = sso_login
    _, email = live.user("ADMIN", email="ada@example.com")
    # another program on this machine cannot end or hijack the login without its state
    loopback = parse_qs(urlsplit(url).query)["redirect_uri"][0]
    forged = httpx.get(loopback, params={"code": "forged", "state": "guessed"}, timeout=30)
    assert forged.status_code == 400 and proc.poll() is None
    page = pages.anonymous()
    page.goto(url)
    expect(page).to_have_url(re.compile(r"/console/login\?next="))  # log in first
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Allow the Stead CLI on")
    expect(page.locator("main")).to_contain_text(email)
    screenshot(page, "cli-authorize")
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are logged in")
    assert page.url.startswith("http://127.0.0.1:") and "/callback?code=" in page.url
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    assert f"as {email} (ADMIN)" in out

    profile = tmp_path / "home" / "stead" / "config.toml"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    stored = profile.read_text()
    assert "refresh_token" in stored and "client_secret" not in stored
    env = {"XDG_CONFIG_HOME": str(tmp_path / "home"), "STEAD_URL": None, "STEAD_CLIENT_ID": None}
    runner = CliRunner()
    who = runner.invoke(app, ["whoami"], env=env)
    assert who.exit_code == 0, who.output
    assert f"{email} (ada), role ADMIN, on {live.url}" in who.output
    assert "logged in with the browser (--sso)" in who.output
    project_file = tmp_path / "stead.yaml"
    project_file.write_text(PROJECT_FILE)
    applied = runner.invoke(app, ["apply", "-f", str(project_file), "--auto-approve"], env=env)
    assert applied.exit_code == 0, applied.output
    with live.factory() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "project.created")
        ).one()
        grant_events = [
            (e.action, e.actor_name)
            for e in session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.startswith("cli_grant."))
                .order_by(AuditEvent.id)
            )
        ]
    assert (event.actor_type, event.actor_name) == ("user", email)
    assert grant_events == [("cli_grant.approved", email), ("cli_grant.issued", email)]
    # the browser saw no token; the code it carried is stored only as a hash
    code = parse_qs(urlsplit(page.url).query)["code"][0]
    assert code not in all_text(live.factory)

    out_ = runner.invoke(app, ["logout"], env=env)
    assert out_.exit_code == 0 and "logged out" in out_.output, out_.output
    assert "refresh_token" not in profile.read_text()
    assert runner.invoke(app, ["whoami"], env=env).exit_code == 1


def test_deny_sends_access_denied_back_and_the_cli_says_so(
    live: Live, pages: Pages, sso_login: tuple[subprocess.Popen[str], str]
) -> None:
    proc, url = sso_login
    _, email = live.user()
    page = pages.as_user(email)
    page.goto(url)
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("The login did not complete")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "access_denied" in err, out + err


def test_allow_and_deny_stand_apart_and_deny_is_the_lesser_button(live: Live, pages: Pages) -> None:
    _, email = live.user()
    page = pages.as_user(email)
    page.goto("/console/cli/authorize?" + urlencode(_params(REDIRECT, secrets.token_urlsafe(48))))
    expect(page.get_by_text("is the name the command line gave for its computer")).to_be_visible()
    allow = page.get_by_role("button", name="Allow").bounding_box()
    deny_button = page.get_by_role("button", name="Deny")
    deny = deny_button.bounding_box()
    assert allow is not None and deny is not None
    assert deny["x"] - (allow["x"] + allow["width"]) >= 16  # a gap of at least 1rem
    expect(deny_button).to_have_class("secondary outline")


# --- the page and the code, over HTTP ----------------------------------------------------------


def _params(redirect_uri: str, verifier: str, **extra: str) -> dict[str, str]:
    return {
        "client_id": "stead-cli",
        "redirect_uri": redirect_uri,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "state": "st-" + secrets.token_urlsafe(8),
        "device_name": "laptop-7",
        **extra,
    }


@pytest.fixture
def browser_http(live: Live) -> Iterator[tuple[httpx.Client, str]]:
    """An HTTP client logged in to the console as a new user; yields it and the CSRF token."""
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=30) as client:
        _, email = live.user()
        yield client, http_login(client, email)


def _approve(client: httpx.Client, params: dict[str, str], decision: str = "allow") -> str:
    page = client.get("/console/cli/authorize", params=params)
    assert page.status_code == 200, page.text
    resp = client.post(
        "/console/cli/authorize",
        data={**params, "csrf_token": csrf_of(page.text), "decision": decision},
    )
    assert resp.status_code == 303, resp.text
    return resp.headers["location"]


def _exchange(client: httpx.Client, code: str, verifier: str, redirect_uri: str) -> Any:
    return client.post(
        TOKEN,
        data={
            "grant_type": "authorization_code",
            "client_id": "stead-cli",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
        },
    )


REDIRECT = "http://127.0.0.1:53682/callback"


def test_the_code_is_single_use_bound_to_verifier_and_redirect_and_expires(
    live: Live, browser_http: tuple[httpx.Client, str]
) -> None:
    client, _ = browser_http
    verifier = secrets.token_urlsafe(48)
    params = _params(REDIRECT, verifier)
    page = client.get("/console/cli/authorize", params=params)
    assert "Allow the Stead CLI on laptop-7 to act as you?" in page.text
    csp = page.headers["content-security-policy"]
    assert "form-action 'self' http://127.0.0.1:53682" in csp
    location = _approve(client, params)
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [params["state"]] and len(query["code"][0]) >= 43
    code = query["code"][0]

    wrong = _exchange(client, code, secrets.token_urlsafe(48), REDIRECT)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert "code_verifier" in wrong.json()["error_description"]
    elsewhere = _exchange(client, code, verifier, "http://127.0.0.1:1/callback")
    assert elsewhere.json()["error"] == "invalid_grant"
    tokens = _exchange(client, code, verifier, REDIRECT)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    (grant,) = client.get("/v1/users/me/grants", headers=headers).json()["results"]
    assert grant["method"] == "browser" and grant["name"] == "stead CLI on laptop-7"
    replay = _exchange(client, code, verifier, REDIRECT)
    assert replay.status_code == 400 and "revoked" in replay.json()["error_description"]
    assert client.get("/v1/users/me", headers=headers).status_code == 401

    late_verifier = secrets.token_urlsafe(48)
    late = _params(REDIRECT, late_verifier)
    late_code = parse_qs(urlsplit(_approve(client, late)).query)["code"][0]
    with session_scope(live.factory, write=True) as session:
        session.execute(update(CliCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = _exchange(client, late_code, late_verifier, REDIRECT)
    assert expired.status_code == 400 and "expired" in expired.json()["error_description"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redirect_uri", "https://evil.example/callback"),
        ("redirect_uri", "http://localhost:53682/callback"),
        ("redirect_uri", "http://10.0.0.1:53682/callback"),
        ("redirect_uri", "http://127.0.0.1/callback"),
        ("redirect_uri", "http://127.0.0.2:53682/callback"),
        ("code_challenge_method", "plain"),
        ("code_challenge", "short"),
        ("client_id", "someone-else"),
        ("state", ""),
    ],
)
def test_a_bad_authorization_request_shows_an_error_page_and_never_redirects(
    live: Live, browser_http: tuple[httpx.Client, str], field: str, value: str
) -> None:
    client, csrf = browser_http
    params = {**_params(REDIRECT, secrets.token_urlsafe(48)), field: value}
    page = client.get("/console/cli/authorize", params=params)
    assert page.status_code == 400 and "location" not in page.headers
    assert field in page.text
    posted = client.post(
        "/console/cli/authorize", data={**params, "csrf_token": csrf, "decision": "allow"}
    )
    assert posted.status_code == 400 and "location" not in posted.headers
    with live.factory() as session:
        assert session.scalars(select(CliCode)).all() == []


def test_the_page_needs_a_session_and_the_form_its_csrf_token(live: Live) -> None:
    params = _params("http://[::1]:53682/callback", secrets.token_urlsafe(48))
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=30) as client:
        page = client.get("/console/cli/authorize", params=params)
        assert page.status_code == 303
        target = "/console/cli/authorize?" + urlencode(params)
        assert page.headers["location"] == "/console/login?" + urlencode({"next": target})
        _, email = live.user()
        http_login(client, email)
        assert client.get("/console/cli/authorize", params=params).status_code == 200
        forged = client.post("/console/cli/authorize", data={**params, "decision": "allow"})
        assert forged.status_code == 403 and "location" not in forged.headers
    with live.factory() as session:
        assert session.scalars(select(CliCode)).all() == []


def test_revoking_on_the_account_page_stops_the_cli_at_once(
    live: Live, browser_http: tuple[httpx.Client, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    client, _ = browser_http
    verifier = secrets.token_urlsafe(48)
    location = _approve(client, _params(REDIRECT, verifier))
    code = parse_qs(urlsplit(location).query)["code"][0]
    body = _exchange(client, code, verifier, REDIRECT).json()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get("/v1/users/me", headers=headers).status_code == 200  # cached now
    account = client.get("/console/account")
    assert "stead CLI on laptop-7" in account.text
    grant_id = re.search(r'name="grant_id" value="([^"]+)"', account.text)
    assert grant_id is not None
    revoked = client.post(
        "/console/account/grants/revoke",
        data={"grant_id": grant_id.group(1), "csrf_token": csrf_of(account.text)},
    )
    assert revoked.status_code == 303
    assert client.get("/v1/users/me", headers=headers).status_code == 401
    refreshed = client.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "client_id": "stead-cli",
            "refresh_token": body["refresh_token"],
        },
    )
    assert refreshed.json()["error"] == "invalid_grant"
    after = client.get("/console/account").text
    assert "stead CLI on laptop-7 is logged out." in after
    # canary: neither the code nor a token is in a page, the database or a log line
    stored = all_text(live.factory)
    # the server's log lines (this test's own HTTP client logs the redirect it received)
    logged = "\n".join(
        f"{r.name} {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith(("stead", "uvicorn"))
    )
    assert "/console/cli/authorize" in logged and "cli_grant.revoked" in stored
    for secret in (code, body["access_token"], body["refresh_token"]):
        assert secret not in stored and secret not in logged
        assert secret not in account.text and secret not in after


# --- stead login --email, and the stored login refreshing itself --------------------------------


def _cli(home: Path, *args: str, input: str | None = None, **env: str) -> Any:  # noqa: A002
    base: dict[str, str | None] = {
        "XDG_CONFIG_HOME": str(home),
        "STEAD_URL": None,
        "STEAD_CLIENT_ID": None,
        "STEAD_CLIENT_SECRET": None,
        "STEAD_PASSWORD": None,
    }
    return CliRunner().invoke(app, list(args), input=input, env={**base, **env})


def _profile(home: Path) -> dict[str, str]:
    import tomllib

    return dict(tomllib.loads((home / "stead" / "config.toml").read_text())["profiles"]["default"])


def test_login_with_email_and_password_then_the_login_refreshes_itself(
    live: Live, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    _, email = live.user("MEMBER")
    prompted = _cli(home, "login", "--url", live.url, "--email", email, input=USER_PASSWORD + "\n")
    assert prompted.exit_code == 0, prompted.output
    assert f"as {email} (MEMBER)" in prompted.output and USER_PASSWORD not in prompted.output
    path = home / "stead" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = _profile(home)
    assert set(first) == {"url", "refresh_token", "access_token", "expires_at"}
    who = _cli(home, "whoami")
    assert who.exit_code == 0 and "logged in with a password (--email)" in who.output
    assert "UTC if not used; each use extends it to 30 days" in who.output
    assert _profile(home) == first  # a valid access token is used as it is

    # an expired access token is refreshed before the command; the new tokens are stored
    path.write_text(path.read_text().replace(first["expires_at"], "1000"))
    assert _cli(home, "whoami").exit_code == 0
    second = _profile(home)
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # a refused access token (401) is refreshed once, transparently
    path.write_text(path.read_text().replace(second["access_token"], "not-a-token"))
    assert _cli(home, "whoami").exit_code == 0
    third = _profile(home)
    assert third["refresh_token"] != second["refresh_token"]
    with live.factory() as session:
        actions = [
            e.action
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action.startswith("cli_grant."))
            )
        ]
    assert actions == ["cli_grant.issued", "cli_grant.refreshed", "cli_grant.refreshed"]

    # a second login (environment password) replaces the first one in the profile, and the
    # first one is revoked on the server: no live login is left that nobody holds
    again = _cli(home, "login", "--email", email, STEAD_PASSWORD=USER_PASSWORD)
    assert again.exit_code == 0, again.output
    assert "the login it replaces: revoked on the server" in again.output
    assert _profile(home)["url"] == live.url
    with live.factory() as session:
        grants = session.scalars(select(CliGrant).order_by(CliGrant.created_at)).all()
    assert [g.revoked_at is None for g in grants] == [False, True]


def test_login_with_a_wrong_password_or_a_locked_user_stores_nothing(
    live: Live, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    _, email = live.user()
    wrong = _cli(
        home, "login", "--url", live.url, "--email", email, STEAD_PASSWORD="not the password"
    )
    assert wrong.exit_code == 1
    assert wrong.output == "error: Invalid email or password\n"
    assert not (home / "stead" / "config.toml").exists()
    for _ in range(4):
        _cli(home, "login", "--url", live.url, "--email", email, STEAD_PASSWORD="still wrong!")
    locked = _cli(home, "login", "--url", live.url, "--email", email, STEAD_PASSWORD=USER_PASSWORD)
    assert locked.exit_code == 1 and "try again in" in locked.output
    assert not (home / "stead" / "config.toml").exists()
    both = _cli(home, "login", "--url", live.url, "--email", email, "--sso")
    assert both.exit_code == 2


def test_a_revoked_login_tells_the_person_to_log_in_again(live: Live, tmp_path: Path) -> None:
    home = tmp_path / "home"
    user_id, email = live.user("ADMIN")
    _cli(home, "login", "--url", live.url, "--email", email, STEAD_PASSWORD=USER_PASSWORD)
    path = home / "stead" / "config.toml"
    path.write_text(path.read_text().replace(_profile(home)["expires_at"], "1000"))
    with httpx.Client(base_url=live.url, timeout=30) as client:
        token = client.post(
            TOKEN, data={"grant_type": "password", "username": email, "password": USER_PASSWORD}
        ).json()["access_token"]
        client.post(
            f"/v1/users/{user_id}/revoke-tokens", headers={"Authorization": f"Bearer {token}"}
        )
    ended = _cli(home, "audit")
    assert ended.exit_code == 1, ended.output
    assert ended.output == f"error: {REVOKED}\n"
    # the dead login is forgotten: nobody is logged in
    assert _profile(home) == {"url": live.url}
    assert (
        _cli(home, "whoami").output
        == "error: not logged in (profile 'default'): run `stead login`\n"
    )


def test_a_login_revoked_elsewhere_is_said_so_then_forgotten_and_logout_is_quiet(
    live: Live, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    _, email = live.user()
    _cli(home, "login", "--url", live.url, "--email", email, STEAD_PASSWORD=USER_PASSWORD)
    headers = {"Authorization": f"Bearer {_profile(home)['access_token']}"}
    with httpx.Client(base_url=live.url, headers=headers) as client:
        (grant,) = client.get("/v1/users/me/grants").json()["results"]
        assert client.delete(f"/v1/users/me/grants/{grant['id']}").status_code == 204
    # the stored access token is refused (401), its refresh too: the reason, once
    who = _cli(home, "whoami")
    assert who.exit_code == 1 and who.output == f"error: {REVOKED}\n"
    assert _profile(home) == {"url": live.url}
    later = _cli(home, "whoami")
    assert later.output == "error: not logged in (profile 'default'): run `stead login`\n"
    assert _cli(home, "logout").output == "not logged in (profile 'default'): nothing to forget\n"

    # logging out of a login that ended meanwhile forgets it without talk of a stolen token
    _cli(home, "login", "--email", email, STEAD_PASSWORD=USER_PASSWORD)
    headers = {"Authorization": f"Bearer {_profile(home)['access_token']}"}
    with httpx.Client(base_url=live.url, headers=headers) as client:
        (grant,) = client.get("/v1/users/me/grants").json()["results"]
        assert client.delete(f"/v1/users/me/grants/{grant['id']}").status_code == 204
    out = _cli(home, "logout")
    assert out.exit_code == 0
    assert out.output == (
        f"forgot the login (the server had already ended it); profile 'default' keeps {live.url}\n"
    )
    with live.factory() as session:
        reasons = [
            (e.details or {}).get("reason")
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action == "cli_grant.revoked")
            )
        ]
    assert reasons == ["logout", "logout"]  # no replay


def test_apply_given_a_yaml_file_as_saved_plan_suggests_f(tmp_path: Path) -> None:
    file = tmp_path / "new.yaml"
    file.write_text(PROJECT_FILE)
    out = _cli(tmp_path / "home", "apply", str(file))
    assert out.exit_code == 1
    assert f"to apply a file, run `stead apply -f {file}`" in out.output


def test_login_sso_gives_up_when_the_browser_does_not_come_back(live: Live, tmp_path: Path) -> None:
    home = tmp_path / "home"
    waited = _cli(home, "login", "--sso", "--no-browser", "--timeout", "0.5", "--url", live.url)
    assert waited.exit_code == 1
    assert f"{live.url}/console/cli/authorize?" in waited.output
    assert "no answer from the browser within 0.5 s" in waited.output
    assert not (home / "stead" / "config.toml").exists()


def test_the_account_page_tells_two_logins_of_one_device_apart(
    live: Live, pages: Pages, tmp_path: Path
) -> None:
    _, email = live.user()
    with httpx.Client(base_url=live.url) as client:
        for _ in range(2):
            made = client.post(
                TOKEN,
                data={
                    "grant_type": "password",
                    "client_id": "stead-cli",
                    "username": email,
                    "password": USER_PASSWORD,
                    "device_name": "vm",
                },
            )
            assert made.status_code == 200, made.text
    with live.factory() as session:
        # the second login a second later than the first (else both could be in one second)
        first = session.scalars(select(CliGrant).order_by(CliGrant.created_at)).first()
        assert first is not None
        session.execute(
            update(CliGrant)
            .where(CliGrant.id == first.id)
            .values(created_at=first.created_at - timedelta(seconds=5), method="browser")
        )
        session.commit()
    page = pages.as_user(email)
    page.goto(f"{live.url}/console/account")
    expect(page).to_have_title("Account · Stead console")
    buttons = page.get_by_role("button", name=re.compile(r"^Revoke stead CLI on vm"))
    expect(buttons).to_have_count(2)
    names = buttons.all_inner_texts()
    assert len(set(names)) == 2, names
    assert any(
        re.fullmatch(
            r"Revoke stead CLI on vm \(browser login created "
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)",
            n,
        )
        for n in names
    ), names
    assert any("(password login created" in n for n in names), names
