"""``stead env test`` against a server without the warehouse's driver answers at once: the 503
names its cause (no ``Retry-After``), so the CLI does not retry it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stead.cli.main import app as cli
from stead.demo import example
from stead.sdk import Client
from tests.support.served import serve

# Loaded by the server's Python at start-up (site.py imports sitecustomize from its path): the
# driver is then absent as if not installed, which is what importlib.util.find_spec reports.
HIDE_DRIVER = "import sys\nsys.modules['redshift_connector'] = None\n"


@pytest.mark.process
def test_a_missing_driver_is_reported_at_once(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE_DRIVER)
    monkeypatch.setenv("PYTHONPATH", str(site))
    with (
        serve(db_url, tmp_path / "server") as served,
        Client(served.url, served.client_id, served.client_secret) as client,
    ):
        project_id = client.projects.create(example("01-create-project-redshift")).project_id
        agent_id = client.agents.create(example("02-create-agent")).agent_id
        client.connections.create(project_id, example("03-create-connection-redshift"))
        client.secrets.create(
            project_id,
            {"name": "finance-prod-redshift", "type": "JSON", "value": '{"password": "pw"}'},
        )
        client.environments.create(
            project_id, example("05-create-environment-redshift", agentId=agent_id)
        )
        flags = ["--url", served.url, "--client-id", served.client_id]
        flags += ["--client-secret", served.client_secret]
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["env", "test", project_id, "prod", *flags])
        elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert "503" in result.output and "stead[redshift]" in result.output
    assert elapsed < 2.0, f"{elapsed:.1f} s: the answer was retried"
