"""``stead admin scim-token --name NAME`` prints a working SCIM token once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from tests.scim.conftest import scim_headers
from tests.support.factories import auth


def test_admin_scim_token_command(db_url: str, tmp_path: Path, http: TestClient) -> None:
    stead = Path(sys.executable).with_name("stead")
    env = {**os.environ, "STEAD_DATABASE_URL": db_url, "STEAD_DATA_DIR": str(tmp_path / "cli")}
    made = subprocess.run(
        [str(stead), "admin", "scim-token", "--name", "okta"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[1]
    assert "shown only once" in made.stdout
    assert http.get("/scim/v2/Users", headers=scim_headers(token)).status_code == 200
    admin = auth(http, http.app.state.sessionmaker)  # type: ignore[attr-defined]
    [listed] = http.get("/v1/scim-tokens", headers=admin).json()["results"]
    assert (listed["name"], listed["createdBy"]) == ("okta", "stead admin")
    assert token not in str(listed)
    empty = subprocess.run(
        [str(stead), "admin", "scim-token", "--name", " "],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert empty.returncode == 2 and "name" in empty.stderr


def test_admin_scim_token_help_points_at_the_scim_tokens_page() -> None:
    from typer.testing import CliRunner

    from stead.cli.main import app

    shown = CliRunner().invoke(app, ["admin", "scim-token", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "SCIM tokens page (/console/scim-tokens)" in shown.output
    assert "users page" not in shown.output
