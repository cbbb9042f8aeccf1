"""``stead demo``: the documented DPC provisioning flow, replayed over HTTP against a real server.

The flow (DPC's documented provisioning order, README "Running it yourself"): token -> project ->
agent -> connection -> secret reference -> environment -> repository, for a Redshift and a
Snowflake project, with the example request bodies shipped in ``stead/demo_examples``. The
repository is a local bare git repository associated through the ``git`` provider, so the demo
works offline.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from dulwich.objects import Blob, Commit, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from stead.db import make_engine, make_sessionmaker, session_scope
from stead.identity.service import create_api_client, create_user, find_user, hash_secret
from stead.migrations import upgrade
from stead.tls import client_context

WAREHOUSES = ("redshift", "snowflake")


def example(name: str, **substitutions: str) -> dict[str, Any]:
    """An example request body with its ``{{placeholders}}`` filled in."""
    text = resources.files("stead.demo_examples").joinpath(f"{name}.json").read_text()
    for key, value in substitutions.items():
        text = text.replace("{{" + key + "}}", value)
    result: dict[str, Any] = json.loads(text)
    return result


def create_bare_repository(path: Path, *, branch: str = "main") -> Path:
    """Create a bare git repository at ``path`` with one commit (a README) on ``branch``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    repo = Repo.init_bare(str(path), mkdir=True)
    blob = Blob.from_string(b"# Pipelines\n\nProvisioned by Stead.\n")
    tree = Tree()
    tree.add(b"README.md", 0o100644, blob.id)
    commit = Commit()
    commit.tree = tree.id
    commit.author = commit.committer = b"Stead <stead@localhost>"
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = b"Initial commit\n"
    for obj in (blob, tree, commit):
        repo.object_store.add_object(obj)
    head = Ref(f"refs/heads/{branch}".encode())
    repo.refs[head] = commit.id
    repo.refs.set_symbolic_ref(Ref(b"HEAD"), head)
    repo.close()
    return path


@dataclass
class Step:
    """One HTTP call of the flow: what was sent and what came back."""

    method: str
    path: str
    status: int
    body: Any


@dataclass
class Provisioned:
    """What one warehouse's flow created."""

    warehouse: str
    project_id: str = ""
    project_name: str = ""
    agent_id: str = ""
    connection: str = ""
    secret_reference: str = ""
    environment: str = ""
    repository: dict[str, Any] = field(default_factory=dict)


class FlowError(RuntimeError):
    """A call of the flow did not answer as docs/api.md says."""


#: ``call(method, path, expected_status, **httpx_kwargs)`` -> the answer's JSON body (or None).
Call = Callable[..., Any]


def _caller(http: httpx.Client, report: Callable[[Step], None]) -> Call:
    """A :data:`Call` that reports every step and raises :class:`FlowError` on an unexpected
    status."""

    def call(method: str, path: str, expected: int, **kwargs: Any) -> Any:
        resp = http.request(method, path, **kwargs)
        body = resp.json() if resp.content else None
        report(Step(method, path, resp.status_code, body))
        if resp.status_code != expected:
            raise FlowError(f"{method} {path} answered {resp.status_code}: {resp.text}")
        return body

    return call


def _authorize(
    http: httpx.Client, report: Callable[[Step], None], client_id: str, client_secret: str
) -> None:
    """Get a token with the client credentials and send it with every later call of ``http``.

    Raises:
        FlowError: the token endpoint did not answer 200.
    """
    token = http.post(
        "/oauth/dpc/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    report(Step("POST", "/oauth/dpc/token", token.status_code, {"token_type": "Bearer"}))
    if token.status_code != 200:
        raise FlowError(f"token endpoint answered {token.status_code}")
    http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"


def _secret_reference_body(warehouse: str, agent_id: str, project_id: str) -> dict[str, Any]:
    """The secret reference the warehouse's example environment reads its credential from, named
    inside the project's default scope (``stead/<projectId>/``)."""
    reference = example("04-create-secret-reference-aws", agentId=agent_id, projectId=project_id)
    if warehouse == "snowflake":
        reference.update(
            secretName=f"stead/{project_id}/prod/growth/snowflake",
            secretKey="private_key",
            description="Snowflake private key for the prod environment",
        )
    return reference


def _repository_body(warehouse: str, git_dir: Path) -> dict[str, Any]:
    """The example repository body, turned into a ``git`` provider association of a new bare
    repository in ``git_dir`` (so the demo needs no GitHub)."""
    name = example("06-associate-repository")["repositoryName"]
    if warehouse == "snowflake":
        name = "growth-pipelines"
    remote = create_bare_repository(git_dir / f"{name}.git")
    return {
        "provider": "git",
        "repositoryName": name,
        "providerParameters": {"url": remote.resolve().as_uri()},
    }


def _provision(call: Call, warehouse: str, git_dir: Path, git_token: str | None) -> Provisioned:
    """The flow for one warehouse: project, agent, connection, secret reference, environment,
    repository; then the environment is read back."""
    done = Provisioned(warehouse=warehouse)
    project_body = example(f"01-create-project-{warehouse}")
    done.project_name = project_body["name"]
    done.project_id = call("POST", "/v1/projects", 201, json=project_body)["projectId"]
    base = f"/v1/projects/{done.project_id}"
    agent_body = example("02-create-agent")
    agent_body["name"] = f"{agent_body['name']} ({warehouse})"
    done.agent_id = call("POST", "/v1/agents", 201, json=agent_body)["agentId"]
    connection_body = example(f"03-create-connection-{warehouse}")
    done.connection = call("POST", f"{base}/data-platform-connections", 201, json=connection_body)[
        "name"
    ]
    environment_body = example(f"05-create-environment-{warehouse}", agentId=done.agent_id)
    props = environment_body["connectionOverrides"][0]["connectionProperties"]
    done.secret_reference = next(v["secretName"] for v in props.values() if "secretName" in v)
    reference = _secret_reference_body(warehouse, done.agent_id, done.project_id)
    call("POST", f"{base}/secret-references/{done.secret_reference}", 201, json=reference)
    done.environment = call("POST", f"{base}/environments", 201, json=environment_body)["name"]
    done.repository = call(
        "POST",
        f"{base}/repositories",
        201,
        json=_repository_body(warehouse, git_dir),
        headers={"Git-Provider-Access-Token": git_token or secrets.token_urlsafe(16)},
    )
    call("GET", f"{base}/environments/{done.environment}", 200)
    return done


def run_flow(
    base_url: str,
    client_id: str,
    client_secret: str,
    git_dir: Path,
    report: Callable[[Step], None] = lambda step: None,
    git_token: str | None = None,
) -> list[Provisioned]:
    """Replay the provisioning flow for both warehouses against the server at ``base_url``.

    ``git_dir`` receives the bare repositories; ``git_token`` is sent as the
    ``Git-Provider-Access-Token`` (default: a random one; a ``file://`` remote ignores it).

    Returns one :class:`Provisioned` per warehouse. Raises :class:`FlowError` on the first call
    whose status differs from the documented one (docs/api.md, Status codes).
    """
    with httpx.Client(base_url=base_url, timeout=30, verify=client_context()) as http:
        _authorize(http, report, client_id, client_secret)
        call = _caller(http, report)
        return [_provision(call, warehouse, git_dir, git_token) for warehouse in WAREHOUSES]


def start_server(
    data_dir: Path, port: int, database_url: str = "", env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``stead serve`` on 127.0.0.1:``port`` with ``data_dir``, ``file://`` git remotes
    allowed and the ``STEAD_*`` variables of ``env`` added; wait until it is ready.

    Raises:
        RuntimeError: the server exited or did not become ready within 60 s.
    """
    env = {
        **os.environ,
        "STEAD_DATA_DIR": str(data_dir),
        "STEAD_DATABASE_URL": database_url,
        # The demo's repositories are bare repositories on this machine (file:// remotes), which
        # the outbound policy refuses unless allowed.
        "STEAD_OUTBOUND_GIT_ALLOW_FILE": "true",
        **(env or {}),
    }
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [sys.executable, "-m", "stead.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, log=data_dir / "server.log")
        return proc
    except BaseException:
        # not ready, or interrupted while waiting: the caller never gets the process to stop
        proc.terminate()
        proc.wait()
        raise


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], *, seconds: float = 60, log: Path | None = None
) -> None:
    """Poll ``GET <url>/readyz`` every 0.1 s until it answers 200, while ``proc`` (the server
    behind ``url``) runs.

    Raises:
        RuntimeError: ``proc`` exited (the message names ``log`` when given), or ``url`` was
            not ready within ``seconds``.
    """
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=1, verify=client_context()) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                see = f"; see {log}" if log is not None else ""
                raise RuntimeError(f"stead serve exited with {proc.returncode}{see}")
            try:
                if http.get(f"{url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready within {seconds:g} s")


def create_super_admin(database_url: str) -> tuple[str, str]:
    """Migrate the database and create a SUPER_ADMIN API client: ``(client_id, client_secret)``."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine), write=True) as session:
            client, secret = create_api_client(session, name="demo super admin", role="SUPER_ADMIN")
            client_id = client.client_id
    finally:
        engine.dispose()
    return client_id, secret


#: The console login ``stead demo --serve`` creates.
DEMO_ADMIN_EMAIL = "admin@example.com"


def create_console_admin(database_url: str) -> tuple[str, str]:
    """Create the demo's Super Admin user (:data:`DEMO_ADMIN_EMAIL`) with a new random password
    (or give the existing one a new password): ``(email, password)``, for the console login
    ``stead demo --serve`` prints."""
    password = secrets.token_urlsafe(16)
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine), write=True) as session:
            user = find_user(session, email=DEMO_ADMIN_EMAIL)
            if user is None:
                create_user(
                    session,
                    email=DEMO_ADMIN_EMAIL,
                    password=password,
                    display_name="Demo admin",
                    role="SUPER_ADMIN",
                )
            else:
                user.password_hash = hash_secret(password)
    finally:
        engine.dispose()
    return DEMO_ADMIN_EMAIL, password
