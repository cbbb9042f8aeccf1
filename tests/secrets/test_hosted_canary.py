"""A canary value goes into Stead through every path that takes a secret (hosted secrets, inline
environment values, their error answers, resolution) and is then searched for in every response
body and header, every log record (the in-process app at DEBUG, SQL included, and the log file of
a real ``stead serve``), every audit row, and the database's own bytes: the SQLite file with its
write-ahead log, every column of every PostgreSQL table, and a ``pg_dump``."""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.db import sqlite_files
from stead.demo import create_super_admin, start_server
from stead.secrets.store import MASTER_KEY_FILE, read_key_file, read_value
from stead.settings import Settings
from tests.support.factories import example
from tests.support.keys import pkcs8_encrypted, rsa_key
from tests.support.postgres import PG_BIN, free_port

CANARY = "canary-7f3e1c-LEAK"
PROPS = "connectionOverrides"


class Client(Protocol):
    def request(self, method: str, url: str, **kwargs: Any) -> Any: ...


def _key_material() -> tuple[str, list[str]]:
    """An encrypted key (passphrase: the canary) and the lines of its body to search for."""
    pem = pkcs8_encrypted(rsa_key(2048, number=7), CANARY)
    return pem, [line for line in pem.splitlines()[1:-1] if len(line) >= 32]


def _exercise(client: Client, headers: dict[str, str]) -> list[Any]:
    """Put the canary through every path; return every response."""
    responses: list[Any] = []

    def call(method: str, url: str, status: int, **kwargs: Any) -> Any:
        if method == "POST":  # the idempotency store keeps responses: they are scanned too
            kwargs["headers"] = {"Idempotency-Key": uuid.uuid4().hex, **kwargs.get("headers", {})}
        resp = client.request(
            method, url, headers={**headers, **kwargs.pop("headers", {})}, **kwargs
        )
        assert resp.status_code == status, (method, url, resp.text)
        responses.append(resp)
        return resp

    redshift = call("POST", "/v1/projects", 201, json=example("01-create-project-redshift"))
    snowflake = call("POST", "/v1/projects", 201, json=example("01-create-project-snowflake"))
    agent_id = call("POST", "/v1/agents", 201, json=example("02-create-agent")).json()["agentId"]
    rs = f"/v1/projects/{redshift.json()['projectId']}"
    sf = f"/v1/projects/{snowflake.json()['projectId']}"
    call(
        "POST",
        f"{rs}/data-platform-connections",
        201,
        json=example("03-create-connection-redshift"),
    )
    call(
        "POST",
        f"{sf}/data-platform-connections",
        201,
        json=example("03-create-connection-snowflake"),
    )
    reference = example(
        "04-create-secret-reference-aws",
        agentId=agent_id,
        projectId=redshift.json()["projectId"],
    )
    call("POST", f"{rs}/secret-references/finance-prod-redshift", 201, json=reference)

    # hosted secrets: created, new version, and every refusal
    secret = {"name": "canary-pw", "type": "PASSWORD", "value": CANARY}
    call("POST", f"{rs}/secrets", 201, json=secret)
    call("PUT", f"{rs}/secrets/canary-pw", 200, json={"value": CANARY + "-v2"})
    call("POST", f"{rs}/secrets", 409, json=secret)
    call("POST", f"{rs}/secrets", 400, json={**secret, "type": "JSON"})
    call(
        "POST",
        f"{rs}/secrets",
        201,
        json={**secret, "name": "j", "type": "JSON", "value": f'{{"p": "{CANARY}"}}'},
    )
    bad_key = f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n"
    call("POST", f"{rs}/secrets", 400, json={**secret, "type": "PRIVATE_KEY", "value": bad_key})
    call("POST", f"{rs}/secrets", 400, json={**secret, "value": CANARY * 5000})
    call("POST", f"{rs}/secrets", 400, json={**secret, "name": "x", "extra": CANARY})
    call(
        "POST",
        f"{rs}/secrets",
        400,
        content=f'{{"name": "x", "type": "PASSWORD", "value": "{CANARY}',
        headers={"content-type": "application/json"},
    )
    call("PUT", f"{rs}/secrets/missing", 404, json={"value": CANARY})
    call("PUT", f"{rs}/secrets/canary-pw", 400, json={"value": CANARY, "type": "PEM"})
    call("PUT", f"{rs}/secrets/canary-pw", 400, json={"value": CANARY, "type": "JSON"})

    # inline values in environments, accepted and refused
    env = example("05-create-environment-redshift", agentId=agent_id)
    props = env["connectionOverrides"][0]["connectionProperties"]
    props["password"] = {"value": CANARY}
    call("POST", f"{rs}/environments", 201, json=env)
    props["password"] = {"value": CANARY + "-patched"}
    call(
        "PATCH",
        f"{rs}/environments/prod",
        200,
        json={"connectionOverrides": env["connectionOverrides"]},
    )
    props["port"] = {"value": "not a port"}
    call("POST", f"{rs}/environments", 400, json={**env, "name": "refused"})
    call(
        "PATCH",
        f"{rs}/environments/prod",
        400,
        json={"connectionOverrides": env["connectionOverrides"]},
    )

    pem, _ = _key_material()
    env = example("05-create-environment-snowflake", agentId=agent_id)
    props = env["connectionOverrides"][0]["connectionProperties"]
    props["privateKey"] = {"value": pem}
    props["passphrase"] = {"value": "wrong-" + CANARY}
    call("POST", f"{sf}/environments", 400, json=env)
    props["passphrase"] = {"value": CANARY}
    call("POST", f"{sf}/environments", 201, json=env)
    props["privateKey"] = {"value": CANARY}
    call("POST", f"{sf}/environments", 400, json={**env, "name": "refused"})

    # everything read back
    for url in [
        f"{rs}/secrets",
        f"{rs}/secrets/canary-pw",
        f"{rs}/environments/prod",
        f"{sf}/environments/prod",
        f"{sf}/secrets",
        "/v1/audit-events",
    ]:
        responses.append(client.request("GET", url, headers=headers))
    return responses


def _needles(data_dir: Path) -> list[bytes]:
    """The canary, the key's body lines, and the master key (raw and base64)."""
    _, lines = _key_material()
    master = read_key_file(data_dir / MASTER_KEY_FILE)
    return [
        CANARY.encode(),
        *(line.encode() for line in lines),
        *master,
        *(base64.b64encode(key) for key in master),
    ]


def _assert_clean_responses(responses: list[Any], needles: list[bytes]) -> None:
    for resp in responses:
        raw = resp.content + repr(resp.headers.raw).encode()
        for needle in needles:
            assert needle not in raw, (resp.request.method, resp.request.url)


def _database_bytes(db_url: str) -> Iterator[bytes]:
    """The database's contents: the SQLite files, or every row of every PostgreSQL table and a
    ``pg_dump`` of the database."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        for path in sqlite_files(Path(url.database)):
            if path.exists():
                yield path.read_bytes()
        return
    engine = create_engine(db_url)
    with engine.connect() as conn:
        tables = MetaData()
        tables.reflect(bind=conn)
        for table in tables.sorted_tables:
            for row in conn.execute(select(table)):
                yield repr(tuple(row)).encode()
                yield b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
    engine.dispose()
    dump = subprocess.run(
        [str(PG_BIN / "pg_dump"), url.set(drivername="postgresql").render_as_string(False)],
        capture_output=True,
        check=True,
    )
    assert b"hosted_secret_versions" in dump.stdout
    yield dump.stdout


def _assert_clean_database(db_url: str, needles: list[bytes]) -> None:
    chunks = list(_database_bytes(db_url))
    # the scan sees what is there: the secret's name and the generated secret's name
    assert any(b"canary-pw" in chunk for chunk in chunks)
    assert any(b"prod-password" in chunk for chunk in chunks)
    for chunk in chunks:
        for needle in needles:
            assert needle not in chunk


@pytest.fixture
def logs(http: TestClient, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at DEBUG and above, SQLAlchemy's statements and parameters included (the
    app's logging setup replaces the root handlers, so caplog's goes back once the app exists)."""
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    return caplog


def test_canary_in_process(
    http: TestClient,
    admin: dict[str, str],
    logs: pytest.LogCaptureFixture,
    session_factory: sessionmaker[Session],
    db_url: str,
    settings: Settings,
    capfd: pytest.CaptureFixture[str],
) -> None:
    responses = _exercise(http, admin)
    project_id = responses[0].json()["projectId"]
    with session_factory() as session:  # resolution: the value comes back out
        assert read_value(session, project_id=project_id, name="canary-pw") == CANARY + "-v2"
        assert (
            read_value(session, project_id=project_id, name="prod-password") == CANARY + "-patched"
        )
        details = [repr((e.target_id, e.details)) for e in session.scalars(select(AuditEvent))]
    needles = _needles(Path(settings.data_dir))
    _assert_clean_responses(responses, needles)

    # the capture saw the requests and the SQL (with its parameters), and holds no needle
    names = {record.name for record in logs.records}
    assert {"stead.access", "sqlalchemy.engine.Engine"} <= names
    for record in logs.records:
        text = (repr(vars(record)) + record.getMessage()).encode()
        assert not any(needle in text for needle in needles), record.name
    out, err = capfd.readouterr()
    assert not any(needle in (out + err).encode() for needle in needles)

    assert any("secret.created" in d or "canary-pw" in d for d in details)
    assert not any(CANARY in d for d in details)
    _assert_clean_database(db_url, needles)


@pytest.mark.process
def test_canary_through_a_real_server(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    client_id, client_secret = create_super_admin(db_url)
    monkeypatch.setenv("STEAD_LOG_LEVEL", "DEBUG")
    port = free_port()
    server = start_server(data_dir, port, db_url)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            token = client.post(
                "/oauth/dpc/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": client_secret,
                },
            ).json()["access_token"]
            responses = _exercise(client, {"Authorization": f"Bearer {token}"})
    finally:
        server.terminate()
        server.wait(timeout=30)
    needles = _needles(data_dir)
    _assert_clean_responses(responses, needles)
    log = (data_dir / "server.log").read_bytes()
    # one access line per request at least (the log is the server's own, at DEBUG)
    assert log.count(b'"logger": "stead.access"') >= len(responses)
    for needle in needles:
        assert needle not in log
    assert b"/secrets/canary-pw" in log  # the scan sees what is there
    _assert_clean_database(db_url, needles)
