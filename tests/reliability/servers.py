"""Real ``stead serve`` processes for the reliability tests (several at once, restartable)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from stead.demo import create_super_admin, example, start_server
from tests.support.postgres import free_port


@dataclass
class Served:
    """A running ``stead serve`` and the SUPER_ADMIN credentials created for its database."""

    url: str
    client_id: str
    client_secret: str
    data_dir: Path
    db_url: str
    port: int
    proc: subprocess.Popen[bytes]

    def token(self) -> str:
        """A fresh bearer token for the SUPER_ADMIN client."""
        resp = httpx.post(
            f"{self.url}/oauth/dpc/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
            timeout=30,
        )
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def headers(self) -> dict[str, str]:
        """``Authorization`` headers with a fresh token."""
        return {"Authorization": f"Bearer {self.token()}"}

    def kill(self) -> None:
        """SIGKILL the server (no shutdown of any kind) and reap it."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)

    def restart(self) -> None:
        """Start ``stead serve`` again on the same port, data directory and database."""
        self.proc = start_server(self.data_dir, self.port, database_url=self.db_url)

    def stop(self) -> None:
        """Terminate the server if it runs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start(
    db_url: str, data_dir: Path, credentials: tuple[str, str] | None = None
) -> Served:
    """Migrate ``db_url``, create a SUPER_ADMIN client (unless ``credentials`` are given) and
    run ``stead serve`` on a free port with ``data_dir``."""
    client_id, secret = credentials or create_super_admin(db_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = start_server(data_dir, port, database_url=db_url)
    return Served(f"http://127.0.0.1:{port}", client_id, secret, data_dir, db_url, port, proc)


@contextmanager
def serve(db_url: str, data_dir: Path) -> Iterator[Served]:
    """:func:`start` for the duration of a ``with`` block."""
    served = start(db_url, data_dir)
    try:
        yield served
    finally:
        served.stop()


def provision(client: httpx.Client, *, name: str = "finance-analytics") -> dict[str, str]:
    """Run the Redshift provisioning flow over ``client`` (project, agent, connection, secret
    reference, environment), asserting each step's 201; return the ids and names created."""
    project = example("01-create-project-redshift")
    project["name"] = name
    resp = client.post("/v1/projects", json=project)
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["projectId"]
    agent = example("02-create-agent")
    agent["name"] = f"agent for {name}"
    resp = client.post("/v1/agents", json=agent)
    assert resp.status_code == 201, resp.text
    agent_id = resp.json()["agentId"]
    base = f"/v1/projects/{project_id}"
    steps = [
        (f"{base}/data-platform-connections", example("03-create-connection-redshift")),
        (
            f"{base}/secret-references/finance-prod-redshift",
            example("04-create-secret-reference-aws", agentId=agent_id),
        ),
        (f"{base}/environments", example("05-create-environment-redshift", agentId=agent_id)),
    ]
    for path, body in steps:
        resp = client.post(path, json=body)
        assert resp.status_code == 201, f"{path}: {resp.text}"
    return {"project_id": project_id, "agent_id": agent_id, "environment": "prod"}
