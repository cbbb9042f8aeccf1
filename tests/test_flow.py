"""The main job end to end: the DPC provisioning flow over real HTTP against ``stead serve``."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stead.demo import Step, create_super_admin, run_flow, start_server
from stead.identity.service import HASH_PARAMETERS
from tests.support.postgres import free_port

GIT_TOKEN_CANARY = "ghp_CANARYgitTOKEN0123456789abcdef"


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[str, str, str, Path]]:
    """A real ``stead serve`` on ``db_url``: ``(base_url, client_id, client_secret, log_path)``."""
    client_id, secret = create_super_admin(db_url)
    port = free_port()
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    proc = start_server(data_dir, port, database_url=db_url)
    yield f"http://127.0.0.1:{port}", client_id, secret, data_dir / "server.log"
    proc.terminate()
    proc.wait(timeout=20)


@pytest.mark.process
def test_provisioning_flow_for_both_warehouses(
    served: tuple[str, str, str, Path], tmp_path: Path
) -> None:
    base_url, client_id, secret, log_path = served
    steps: list[Step] = []
    results = run_flow(
        base_url,
        client_id,
        secret,
        tmp_path / "git",
        report=steps.append,
        git_token=GIT_TOKEN_CANARY,
    )
    assert [r.warehouse for r in results] == ["redshift", "snowflake"]
    assert all(s.status < 400 for s in steps)

    token = httpx.post(
        f"{base_url}/oauth/dpc/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
        },
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers) as http:
        listed = http.get("/v1/projects").json()
        assert listed["total"] == 2
        assert [p["name"] for p in listed["results"]] == ["finance-analytics", "growth-marketing"]
        redshift, snowflake = results
        env = http.get(f"/v1/projects/{redshift.project_id}/environments/prod").json()
        assert env["displayName"] == "Production"
        assert env["defaultAgentId"] == redshift.agent_id
        assert env["defaultAgentName"] == "eu-west-1 fargate agent (redshift)"
        assert env["defaultUserAccessLevel"] == "readOnly"
        assert env["defaultConnections"] == {"DWH": {"redshift": "finance-dwh-prod"}}
        props = env["connectionOverrides"][0]["connectionProperties"]
        assert props["password"] == {"secretName": "finance-prod-redshift", "secretKey": "password"}
        assert props["port"] == {"value": "5439"}
        env = http.get(f"/v1/projects/{snowflake.project_id}/environments/prod").json()
        assert env["defaultUserAccessLevel"] == "runner"
        assert (
            env["connectionOverrides"][0]["connectionProperties"]["privateKey"]["secretName"]
            == "growth-prod-private-key"
        )
        repo = http.get(f"/v1/projects/{redshift.project_id}/repositories").json()
        assert repo["provider"] == "git" and repo["repositoryName"] == "finance-pipelines"
        assert repo["defaultBranch"] == "main"
        everything = [
            http.get(f"/v1/projects/{r.project_id}/{what}").text
            for r in results
            for what in (
                "environments",
                "secret-references",
                "repositories",
                "data-platform-connections",
            )
        ]

    log = log_path.read_text()
    assert '"path": "/v1/projects"' in log  # the access log is there, and it is clean:
    for canary in (secret, token, GIT_TOKEN_CANARY):
        assert canary not in log
        assert all(canary not in body for body in everything)


def test_stead_demo_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    proc = subprocess.run(
        [sys.executable, "-m", "stead.cli.main", "demo", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo complete" in proc.stdout
    assert "finance-analytics" in proc.stdout and "growth-marketing" in proc.stdout
    assert (tmp_path / "demo" / "stead.db").exists()
    assert f"data kept in {tmp_path / 'demo'}" in proc.stdout
    # Outside the suite (whose own process hashes cheaply) secrets get production's cost.
    with sqlite3.connect(tmp_path / "demo" / "stead.db") as db:
        (stored,) = db.execute("SELECT secret_hash FROM api_clients").fetchone()
    params = HASH_PARAMETERS
    assert stored.startswith(
        f"$argon2id$v=19$m={params.memory_cost},t={params.time_cost},p={params.parallelism}$"
    )
    assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 64 * 1024, 4)


@pytest.mark.process
def test_stead_demo_removes_its_fresh_data_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    proc = subprocess.run(
        [sys.executable, "-m", "stead.cli.main", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**env, "TMPDIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "removed the data directory" in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.process
def test_stead_demo_serve_shows_its_client_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stead.cli.main", "demo", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "TMPDIR": str(tmp_path), "COLUMNS": "300"},
    )
    assert proc.stdout is not None
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving at "):
                break
        shown = dict(
            line.strip().split(":", 1) for line in lines if line.startswith("  client ")
        )
        base_url = lines[-1].split()[2].removesuffix("/docs")
        token = httpx.post(
            f"{base_url}/oauth/dpc/token",
            data={
                "grant_type": "client_credentials",
                "client_id": shown["client id"].strip(),
                "client_secret": shown["client secret"].strip(),
            },
        )
        assert token.status_code == 200, "".join(lines)
        projects = httpx.get(
            f"{base_url}/v1/projects",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        assert projects.json()["total"] == 2
        # The console login it printed works.
        login = dict(line.strip().split(":", 1) for line in lines if line.startswith("  e"))
        login |= dict(line.strip().split(":", 1) for line in lines if line.startswith("  pass"))
        assert f"console: {base_url}/console" in "".join(lines)
        with httpx.Client(base_url=base_url) as browser:
            form = browser.get("/console/login").text
            csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            page = browser.post(
                "/console/login",
                data={
                    "email": login["email"].strip(),
                    "password": login["password"].strip(),
                    "csrf_token": csrf,
                },
                follow_redirects=True,
            )
        assert page.status_code == 200 and str(page.url).endswith("/console/projects")
        assert "2 projects" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, rest
    (kept,) = tmp_path.iterdir()
    assert f"data kept in {kept}" in rest and (kept / "stead.db").exists()


@pytest.mark.process
def test_stead_demo_serve_stopped_with_sigterm_stops_its_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stead.cli.main", "demo", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "TMPDIR": str(tmp_path), "COLUMNS": "300"},
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("serving at "):
                break
        base_url = line.split()[2].removesuffix("/docs")
        assert httpx.get(f"{base_url}/healthz").status_code == 200
        proc.send_signal(signal.SIGTERM)  # to the demo alone, as kill or systemd sends it
        rest = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "demo complete" in rest
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/healthz")
