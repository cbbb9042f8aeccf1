"""Real ``stead serve`` processes for the reliability tests (several at once, restartable)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from stead.demo import create_super_admin, example, start_server
from tests.support.postgres import PG_BIN, free_port
from tests.support.served import bearer_headers


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

    def headers(self) -> dict[str, str]:
        """``Authorization`` headers with a new bearer token of the SUPER_ADMIN client."""
        return bearer_headers(self.url, self.client_id, self.client_secret)

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


def start(db_url: str, data_dir: Path, credentials: tuple[str, str] | None = None) -> Served:
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
            example("04-create-secret-reference-aws", agentId=agent_id, projectId=project_id),
        ),
        (f"{base}/environments", example("05-create-environment-redshift", agentId=agent_id)),
    ]
    for path, body in steps:
        resp = client.post(path, json=body)
        assert resp.status_code == 201, f"{path}: {resp.text}"
    return {"project_id": project_id, "agent_id": agent_id, "environment": "prod"}


class PgCluster:
    """A private PostgreSQL cluster that a test may stop and start (a database outage)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.sock = base / "sock"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        """``initdb`` and start."""
        self.sock.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sock, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections."""
        opts = (
            f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-w", "-l", str(self.base / "log"), "-o", opts, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster (``fast``: disconnect clients, roll back open transactions)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")


@contextmanager
def pg_cluster(base: Path) -> Iterator[PgCluster]:
    """A started :class:`PgCluster` under ``base``, stopped and removed afterwards."""
    cluster = PgCluster(base)
    cluster.init()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)
