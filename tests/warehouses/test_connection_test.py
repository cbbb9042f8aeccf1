"""Connection tests against the warehouses' test servers (docs/api.md, Connection tests):
Snowflake is fakesnow behind a login that checks the key-pair JWT, Redshift is PostgreSQL behind
the wire shim with md5 passwords (tests/support). Credentials come from hosted secrets and from
external stores (moto's Secrets Manager, OpenBao)."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from stead.audit.models import AuditEvent
from stead.cli.main import app as cli
from stead.environments.models import Environment
from stead.outbound import Policy
from stead.secrets.keys import fingerprint
from stead.secrets.models import HostedSecret
from stead.settings import Settings
from stead.warehouses.connection_test import UNREACHABLE_MESSAGE, RedshiftTarget, attempt
from tests.support.factories import assert_problem, create_agent, example, user_auth
from tests.support.keys import pkcs8, pkcs8_encrypted, rsa_key
from tests.support.moto_server import (  # noqa: F401 - fixture
    REGION,
    ROOT_KEYS,
    MotoServer,
    moto_server_session,
)
from tests.support.openbao import OpenBao, openbao_session  # noqa: F401 - fixture
from tests.support.outbound import LOCAL
from tests.support.redshift_shim import RedshiftServer, redshift_server_session  # noqa: F401
from tests.support.served import serve_here
from tests.support.silent_server import silent_url  # noqa: F401 - fixture
from tests.support.snowflake_server import (  # noqa: F401 - fixture
    SnowflakeServer,
    snowflake_server_session,
)

#: The timeouts of the tests that wait for one; the others keep generous ones, since a
#: connection test's first Snowflake connection in a process also imports the connector, which
#: takes seconds on a busy machine.
SHORT_TIMEOUTS = {"warehouse_connect_timeout_seconds": 2.0, "warehouse_query_timeout_seconds": 2.0}


def _deadline(timeouts: dict[str, float]) -> float:
    """The latest a test timing out on ``timeouts`` may answer: both timeouts, the one-second
    grace, and slack for the CI box."""
    return sum(timeouts.values()) + 1.0 + 2.0


DEADLINE = _deadline(SHORT_TIMEOUTS)
ACCOUNT = "acmeorg-growth"
SF_USER = "SVC_GROWTH"
PROPS = "connectionOverrides[0].connectionProperties"
_numbers = itertools.count(1)


def public_pem(number: int) -> str:
    from cryptography.hazmat.primitives import serialization

    return (
        rsa_key(number=number)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def snowflake(snowflake_server_session: SnowflakeServer) -> SnowflakeServer:  # noqa: F811
    """The Snowflake test server, with ``SVC_GROWTH`` of ``acmeorg-growth`` registered with the
    public key of test key 1 and role ``TRANSFORMER``."""
    snowflake_server_session.reset()
    snowflake_server_session.add_user(
        ACCOUNT, SF_USER, public_keys=(public_pem(1),), roles=("TRANSFORMER",)
    )
    return snowflake_server_session


@pytest.fixture
def redshift(redshift_server_session: RedshiftServer) -> RedshiftServer:  # noqa: F811
    """PostgreSQL behind the Redshift wire shim."""
    return redshift_server_session


@pytest.fixture
def moto(moto_server_session: MotoServer) -> MotoServer:  # noqa: F811
    moto_server_session.reset()
    return moto_server_session


@pytest.fixture
def settings(
    db_url: str,
    tmp_path: Path,
    snowflake: SnowflakeServer,
    moto: MotoServer,
    openbao_session: OpenBao,  # noqa: F811
) -> Settings:
    """Settings whose Snowflake is the test server and whose external stores are moto and
    OpenBao, with 20 s connect and query timeouts (:data:`SHORT_TIMEOUTS` where a test waits
    for one)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        github_api_url="http://127.0.0.1:9/unused",
        snowflake_host=snowflake.host,
        snowflake_port=snowflake.port,
        snowflake_protocol="http",
        warehouse_connect_timeout_seconds=20.0,
        warehouse_query_timeout_seconds=20.0,
        aws_region=REGION,
        aws_endpoint_url=moto.url,
        **ROOT_KEYS,
        vault_addr=openbao_session.url,
        vault_token=openbao_session.root_token,
        **LOCAL,
    )


@dataclass
class Project:
    """A project of one warehouse with its agent and DWH connection; makes secrets and
    environments in it."""

    http: TestClient
    admin: dict[str, str]
    warehouse: str
    project_id: str
    agent_id: str
    moto: MotoServer
    vault: OpenBao

    @property
    def base(self) -> str:
        return f"/v1/projects/{self.project_id}"

    def hosted(self, value: str, kind: str = "PASSWORD") -> str:
        name = f"hosted-{next(_numbers)}"
        resp = self.http.post(
            f"{self.base}/secrets",
            json={"name": name, "type": kind, "value": value},
            headers=self.admin,
        )
        assert resp.status_code == 201, resp.text
        return name

    def external(self, store: str, value: str, key: str | None = None) -> str:
        """A secret reference to ``value`` put in ``store`` (``AWS`` or ``Vault``), as JSON
        ``{key: value}`` when ``key`` is given."""
        number = next(_numbers)
        stored = json.dumps({key: value}) if key else value
        if store == "AWS":
            name = f"stead/{self.project_id}/test-{number}"
            client: Any = self.moto.client("secretsmanager")
            client.create_secret(Name=name, SecretString=stored)
        else:
            name = f"stead/{self.project_id}/test-{number}-{uuid.uuid4().hex[:8]}"
            vault: Any = self.vault.client()
            vault.secrets.kv.v2.create_or_update_secret(
                path=name, secret={key or "value": value}, mount_point="secret"
            )
            key = key or "value"
        reference = f"ref-{number}"
        body: dict[str, Any] = {
            "agentId": self.agent_id,
            "agentType": store,
            "secretReferenceType": "PASSWORD",
            "secretName": name,
        }
        if key:
            body["secretKey"] = key
        resp = self.http.post(
            f"{self.base}/secret-references/{reference}", json=body, headers=self.admin
        )
        assert resp.status_code == 201, resp.text
        return reference

    def body(self, name: str, **properties: Any) -> dict[str, Any]:
        """The example environment named ``name`` with ``properties`` changed
        (``None`` removes one)."""
        body = example(f"05-create-environment-{self.warehouse}", agentId=self.agent_id)
        body["name"] = name
        props = body["connectionOverrides"][0]["connectionProperties"]
        for key, value in properties.items():
            if value is None:
                props.pop(key, None)
            else:
                props[key] = value
        return body

    def create(self, name: str, *, validate: bool = False, **properties: Any) -> Any:
        return self.http.post(
            f"{self.base}/environments",
            json=self.body(name, **properties),
            params={"validate": "true"} if validate else None,
            headers=self.admin,
        )

    def environment(self, name: str, **properties: Any) -> str:
        resp = self.create(name, **properties)
        assert resp.status_code == 201, resp.text
        return name

    def test(self, name: str, headers: dict[str, str] | None = None) -> Any:
        return self.http.post(
            f"{self.base}/environments/{name}/connection-test", headers=headers or self.admin
        )

    def result(self, name: str) -> dict[str, Any]:
        resp = self.test(name)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        assert set(body) == {"ok", "latencyMs", "serverVersion", "error"}
        assert isinstance(body["latencyMs"], int) and body["latencyMs"] >= 0
        assert body["ok"] == (body["error"] is None)
        return body


def _project(
    http: TestClient, admin: dict[str, str], warehouse: str, moto: MotoServer, vault: OpenBao
) -> Project:
    resp = http.post("/v1/projects", json=example(f"01-create-project-{warehouse}"), headers=admin)
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["projectId"]
    agent_id = create_agent(http, admin)["agentId"]
    resp = http.post(
        f"/v1/projects/{project_id}/data-platform-connections",
        json=example(f"03-create-connection-{warehouse}"),
        headers=admin,
    )
    assert resp.status_code == 201, resp.text
    return Project(http, admin, warehouse, project_id, agent_id, moto, vault)


@pytest.fixture
def sf(
    http: TestClient,
    admin: dict[str, str],
    moto: MotoServer,
    openbao_session: OpenBao,  # noqa: F811
) -> Project:
    return _project(http, admin, "snowflake", moto, openbao_session)


@pytest.fixture
def rs(
    http: TestClient,
    admin: dict[str, str],
    moto: MotoServer,
    openbao_session: OpenBao,  # noqa: F811
) -> Project:
    return _project(http, admin, "redshift", moto, openbao_session)


def redshift_properties(server: RedshiftServer, password: Any, **changes: Any) -> dict[str, Any]:
    """Properties of an environment on the shim (SSL off: the shim has none)."""
    return {
        "url": {"value": server.host},
        "port": {"value": str(server.port)},
        "username": {"value": server.user},
        "password": password,
        "defaultDatabase": {"value": server.database},
        "defaultSchema": {"value": "public"},
        "useSsl": {"value": "false"},
        **changes,
    }


def _events(factory: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with factory() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# -- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["hosted", "Vault"])
def test_snowflake_key_pair_applies_role_warehouse_database_schema(
    sf: Project, snowflake: SnowflakeServer, store: str, session_factory: sessionmaker[Session]
) -> None:
    pem = pkcs8(rsa_key(number=1))
    secret = sf.hosted(pem, "PRIVATE_KEY") if store == "hosted" else sf.external(store, pem, "pk")
    sf.environment("prod", privateKey={"secretName": secret})
    body = sf.result("prod")
    assert body["ok"] is True and body["serverVersion"] == "10.0.0" and body["error"] is None
    assert snowflake.logins() == [
        {
            "account": "ACMEORG-GROWTH",
            "user": SF_USER,
            "role": "TRANSFORMER",
            "warehouse": "TRANSFORM_WH",
            "database": "GROWTH",
            "schema": "MARTS",
        }
    ]
    [event] = _events(session_factory, "environment.connection_tested")
    assert event.target_id == "prod" and event.details == {
        "host": snowflake.host,
        "ok": True,
        "code": None,
        "validation": False,
    }


def test_snowflake_encrypted_key_with_its_passphrase_in_aws(
    sf: Project, snowflake: SnowflakeServer
) -> None:
    passphrase = f"pp-{uuid.uuid4().hex}"
    key = sf.hosted(pkcs8_encrypted(rsa_key(number=1), passphrase), "PRIVATE_KEY")
    phrase = sf.external("AWS", passphrase)
    sf.environment("prod", privateKey={"secretName": key}, passphrase={"secretName": phrase})
    assert sf.result("prod")["ok"] is True


@pytest.mark.parametrize("store", ["hosted", "AWS"])
def test_redshift_password(rs: Project, redshift: RedshiftServer, store: str) -> None:
    if store == "hosted":
        password = {"secretName": rs.hosted(redshift.password)}
    else:
        reference = rs.external(store, redshift.password, "password")
        password = {"secretName": reference, "secretKey": "password"}
    rs.environment("prod", **redshift_properties(redshift, password))
    body = rs.result("prod")
    assert body["ok"] is True and body["serverVersion"].startswith("PostgreSQL 15")


def _sample(metrics: str, line_start: str) -> float:
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(line_start)
    ]
    return values[0] if values else 0.0


def test_tests_and_secret_reads_are_counted(rs: Project, redshift: RedshiftServer) -> None:
    """``/metrics`` counts connection tests by outcome and secret reads by store
    (docs/operations.md, "Metrics")."""
    ok = 'stead_connection_tests_total{outcome="ok",warehouse="redshift"}'
    refused = 'stead_connection_tests_total{outcome="28P01",warehouse="redshift"}'
    aws = 'stead_secret_store_requests_total{outcome="ok",store="AWS"}'
    timed = 'stead_connection_test_duration_seconds_count{warehouse="redshift"}'
    before = rs.http.get("/metrics").text
    reference = rs.external("AWS", redshift.password, "password")
    good = {"secretName": reference, "secretKey": "password"}
    rs.environment("good", **redshift_properties(redshift, good))
    assert rs.result("good")["ok"] is True
    rs.environment("bad", **redshift_properties(redshift, {"secretName": rs.hosted("wrong")}))
    assert rs.result("bad")["error"]["code"] == "28P01"
    after = rs.http.get("/metrics").text
    for line, more in ((ok, 1), (refused, 1), (aws, 1), (timed, 2)):
        assert _sample(after, line) >= _sample(before, line) + more, line


# -- failures: each its own answer -------------------------------------------------------------


def _failure(project: Project, name: str) -> tuple[str, str]:
    body = project.result(name)
    assert body["ok"] is False and body["serverVersion"] is None
    return body["error"]["code"], body["error"]["message"]


def test_snowflake_failures(
    sf: Project, snowflake: SnowflakeServer, http: TestClient, settings: Settings
) -> None:
    right = sf.hosted(pkcs8(rsa_key(number=1)), "PRIVATE_KEY")
    wrong = sf.hosted(pkcs8(rsa_key(number=2)), "PRIVATE_KEY")
    encrypted = sf.hosted(pkcs8_encrypted(rsa_key(number=1), "the right one"), "PRIVATE_KEY")
    wrong_phrase = sf.external("AWS", "not the right one")
    sf.environment("wrong-key", privateKey={"secretName": wrong})
    sf.environment(
        "wrong-passphrase",
        privateKey={"secretName": encrypted},
        passphrase={"secretName": wrong_phrase},
    )
    sf.environment("unknown-user", privateKey={"secretName": right}, username={"value": "GHOST"})
    sf.environment("role", privateKey={"secretName": right}, defaultRole={"value": "SYSADMIN"})
    sf.environment("fine", privateKey={"secretName": right})

    code, message = _failure(sf, "wrong-key")
    assert code == "390144" and message.startswith("Failed to connect to DB")
    assert "JWT token is invalid" in message and fingerprint(rsa_key(number=2)) in message
    code, message = _failure(sf, "wrong-passphrase")
    assert (code, message) == ("PASSPHRASE", "passphrase does not open the private key")
    assert snowflake.logins() == []  # caught before the driver ran
    # Snowflake gives one answer for an unknown user and a key it does not know.
    code, message = _failure(sf, "unknown-user")
    assert code == "390144" and fingerprint(rsa_key(number=1)) in message
    assert "the user does not exist" in message
    code, message = _failure(sf, "role")
    assert code == "390189" and "Role 'SYSADMIN'" in message

    app: Any = http.app
    app.state.settings = settings.model_copy(update={"snowflake_port": closed_port()})
    code, message = _failure(sf, "fine")
    assert (code, message) == ("UNREACHABLE", UNREACHABLE_MESSAGE.format(warehouse="Snowflake"))
    app.state.settings = settings
    assert sf.result("fine")["ok"] is True


def test_redshift_failures(rs: Project, redshift: RedshiftServer) -> None:
    right = {"secretName": rs.hosted(redshift.password)}
    wrong = {"secretName": rs.hosted("not-the-password")}
    rs.environment("wrong-password", **redshift_properties(redshift, wrong))
    rs.environment(
        "unknown-user", **redshift_properties(redshift, right, username={"value": "nobody"})
    )
    rs.environment(
        "unknown-database",
        **redshift_properties(redshift, right, defaultDatabase={"value": "nodb"}),
    )
    # a stored secret goes only to its environments' host: another port needs its own
    elsewhere = {"secretName": rs.hosted(redshift.password)}
    rs.environment(
        "unreachable",
        **redshift_properties(redshift, elsewhere, port={"value": str(closed_port())}),
    )
    # SSL is on unless useSsl is false: the shim has none, so the driver stops there.
    rs.environment("ssl-by-default", **redshift_properties(redshift, right, useSsl=None))

    code, message = _failure(rs, "wrong-password")
    assert code == "28P01"
    assert message.startswith(f'password authentication failed for user "{redshift.user}"')
    # PostgreSQL (like Redshift) does not tell an unknown user from a wrong password.
    code, message = _failure(rs, "unknown-user")
    assert code == "28P01" and message.startswith(
        'password authentication failed for user "nobody"'
    )
    code, message = _failure(rs, "unknown-database")
    assert code == "3D000" and 'database "nodb" does not exist' in message
    code, message = _failure(rs, "unreachable")
    unreachable = ("UNREACHABLE", UNREACHABLE_MESSAGE.format(warehouse="Redshift"))
    assert (code, message) == unreachable
    # A server that refuses SSL is no Redshift: the same answer as a closed port.
    assert _failure(rs, "ssl-by-default") == unreachable


def test_an_answer_does_not_tell_whether_a_string_is_someones_secret(
    rs: Project, redshift: RedshiftServer
) -> None:
    """A guessed user name that is a secret the test does not use comes back as sent: masking
    it would confirm the guess. The test's own secret is masked whatever its length."""
    guess = f"guessed-{uuid.uuid4().hex[:8]}"
    rs.hosted(guess)  # now a secret value this server has handled
    right = {"secretName": rs.hosted(redshift.password)}
    rs.environment("guess", **redshift_properties(redshift, right, username={"value": guess}))
    code, message = _failure(rs, "guess")
    assert code == "28P01" and f'for user "{guess}"' in message
    short = rs.hosted("zq")  # a 2-character user name read from a secret
    rs.environment("short", **redshift_properties(redshift, right, username={"secretName": short}))
    code, message = _failure(rs, "short")
    assert code == "28P01" and 'for user "[REDACTED]"' in message and "zq" not in message


def test_a_silent_warehouse_times_out_without_holding_the_database(
    rs: Project,
    redshift: RedshiftServer,
    http: TestClient,
    settings: Settings,
    silent_url: str,  # noqa: F811
) -> None:
    app: Any = http.app
    # Twice the usual short timeouts: the two tests must still be waiting when the third comes,
    # after a second's sleep and a write that may take 1.5 s on a busy machine (with 2 s, the
    # first test once answered before the third was sent).
    timeouts = {name: 2 * seconds for name, seconds in SHORT_TIMEOUTS.items()}
    deadline = _deadline(timeouts)
    app.state.settings = settings.model_copy(update={"warehouse_max_tests": 2, **timeouts})
    silent = {"port": {"value": silent_url.rsplit(":", 1)[1]}}
    password = {"secretName": rs.hosted(redshift.password)}
    rs.environment("silent", **redshift_properties(redshift, password, **silent))
    answers: dict[str, Any] = {}

    def timed(name: str, call: Any) -> None:
        started = time.monotonic()
        answers[name] = call()
        answers[f"{name} seconds"] = time.monotonic() - started

    workers = [
        threading.Thread(target=timed, args=("test", lambda: rs.test("silent"))),
        threading.Thread(
            target=timed,
            args=(
                "validate",
                lambda: rs.create(
                    "new", validate=True, **redshift_properties(redshift, password, **silent)
                ),
            ),
        ),
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0)
    # Meanwhile writes go through: the tests hold no transaction, lock or admission slot ...
    started = time.monotonic()
    rs.hosted("written while two tests wait")
    assert time.monotonic() - started < 1.5
    # ... but a third test waits for none of the two running ones.
    url = f"{rs.base}/environments/silent/connection-test"
    keyed = {**rs.admin, "Idempotency-Key": f"busy-{uuid.uuid4()}"}
    third = rs.http.post(url, headers=keyed)
    assert assert_problem(third, 503)["type"].endswith("/connection-tests-busy")
    assert third.headers["retry-after"] == "1"
    for worker in workers:
        worker.join(timeout=deadline + 5)
    assert answers["test seconds"] < deadline and answers["validate seconds"] < deadline
    body = answers["test"].json()
    assert body["ok"] is False and body["error"]["code"] == "TIMEOUT", body
    refused = assert_problem(answers["validate"], 400, PROPS)
    assert refused["warehouseError"]["code"] == "TIMEOUT"
    assert rs.http.get(f"{rs.base}/environments/new", headers=rs.admin).status_code == 404
    # The refusal was not kept under its Idempotency-Key: the retry runs the test.
    again = rs.http.post(url, headers=keyed)
    assert again.status_code == 200 and again.json()["error"]["code"] == "TIMEOUT"


def test_snowflake_timeout(
    sf: Project,
    http: TestClient,
    settings: Settings,
    silent_url: str,  # noqa: F811
) -> None:
    sf.environment("prod", privateKey={"secretName": sf.hosted(pkcs8(rsa_key(number=1)))})
    app: Any = http.app
    app.state.settings = settings.model_copy(
        update={"snowflake_port": int(silent_url.rsplit(":", 1)[1]), **SHORT_TIMEOUTS}
    )
    started = time.monotonic()
    code, message = _failure(sf, "prod")
    assert time.monotonic() - started < DEADLINE
    assert code == "TIMEOUT" and "no answer within 5 s" in message


# -- who may test, and what it needs -----------------------------------------------------------


def test_readers_may_not_test_and_a_missing_driver_is_503(
    rs: Project,
    redshift: RedshiftServer,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rs.environment("prod", **redshift_properties(redshift, {"secretName": rs.hosted("x-pw")}))
    viewer = user_auth(rs.http, session_factory, rs.project_id, "VIEWER")
    assert_problem(rs.test("prod", headers=viewer), 403)
    assert_problem(rs.test("nope"), 404)
    monkeypatch.setitem(sys.modules, "redshift_connector", None)  # as if not installed
    body = assert_problem(rs.test("prod"), 503)
    assert body["type"].endswith("/driver-missing") and "stead[redshift]" in body["detail"]
    assert _events(session_factory, "environment.connection_tested") == []


def test_secrets_that_cannot_be_used_are_problems(rs: Project, redshift: RedshiftServer) -> None:
    reference = rs.external("AWS", "pw-that-will-vanish")
    rs.environment("gone", **redshift_properties(redshift, {"secretName": reference}))
    port = {"secretName": rs.hosted("not a port")}
    password = {"secretName": rs.hosted(redshift.password)}
    rs.environment("port", **redshift_properties(redshift, password, port=port))
    rs.moto.reset()
    assert_problem(rs.test("gone"), 400)
    body = assert_problem(rs.test("port"), 400, f"{PROPS}.port.secretName")
    assert "not a port" not in json.dumps(body)


# -- validate=true -----------------------------------------------------------------------------


def _count(factory: sessionmaker[Session], model: type[Any]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_validate_refuses_and_stores_nothing(
    rs: Project, redshift: RedshiftServer, session_factory: sessionmaker[Session]
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    before = (_count(session_factory, Environment), _count(session_factory, HostedSecret))
    resp = rs.create("prod", validate=True, **redshift_properties(redshift, {"value": canary}))
    body = assert_problem(resp, 400, PROPS)
    assert body["warehouseError"]["code"] == "28P01" and canary not in resp.text
    assert "28P01" in body["violations"][0] and "28P01" in body["detail"]
    after = (_count(session_factory, Environment), _count(session_factory, HostedSecret))
    assert after == before
    assert rs.http.get(f"{rs.base}/environments/prod", headers=rs.admin).status_code == 404

    good = redshift_properties(redshift, {"value": redshift.password})
    assert rs.create("prod", validate=True, **good).status_code == 201
    stored = rs.http.get(f"{rs.base}/environments/prod", headers=rs.admin).json()
    patch = {
        "connectionOverrides": [
            {
                "connectionName": "finance-dwh-prod",
                "connectionProperties": {**good, "password": {"value": canary}},
            }
        ]
    }
    url = f"{rs.base}/environments/prod"
    resp = rs.http.patch(url, json=patch, params={"validate": "true"}, headers=rs.admin)
    assert assert_problem(resp, 400, PROPS)["warehouseError"]["code"] == "28P01"
    assert rs.http.get(url, headers=rs.admin).json() == stored
    assert rs.result("prod")["ok"] is True
    # Without validate the same change is stored (and its test then fails).
    assert rs.http.patch(url, json=patch, headers=rs.admin).status_code == 200
    assert rs.result("prod")["error"]["code"] == "28P01"


def test_validate_snowflake_key(sf: Project, snowflake: SnowflakeServer) -> None:
    resp = sf.create("prod", validate=True, privateKey={"value": pkcs8(rsa_key(number=2))})
    assert assert_problem(resp, 400, PROPS)["warehouseError"]["code"] == "390144"
    resp = sf.create("prod", validate=True, privateKey={"value": pkcs8(rsa_key(number=1))})
    assert resp.status_code == 201, resp.text
    assert snowflake.logins()[0]["role"] == "TRANSFORMER"


# -- secrets stay secret -----------------------------------------------------------------------


@pytest.fixture
def logs(http: TestClient, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at DEBUG and above (caplog's handler put back after the app replaced
    the root handlers)."""
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    return caplog


def test_canary_credentials_never_leave(
    sf: Project,
    rs: Project,
    redshift: RedshiftServer,
    session_factory: sessionmaker[Session],
    logs: pytest.LogCaptureFixture,
) -> None:
    password = f"canary-pw-{uuid.uuid4().hex}"
    passphrase = f"canary-pp-{uuid.uuid4().hex}"
    key = pkcs8(rsa_key(number=2))
    encrypted = pkcs8_encrypted(rsa_key(number=1), f"canary-right-{uuid.uuid4().hex}")
    canaries = [password, passphrase, key.splitlines()[5], encrypted.splitlines()[5]]
    rs.environment("pw", **redshift_properties(redshift, {"secretName": rs.hosted(password)}))
    sf.environment("key", privateKey={"secretName": sf.hosted(key, "PRIVATE_KEY")})
    sf.environment(
        "phrase",
        privateKey={"secretName": sf.hosted(encrypted, "PRIVATE_KEY")},
        passphrase={"secretName": sf.external("Vault", passphrase)},
    )
    answers = [rs.test("pw").text, sf.test("key").text, sf.test("phrase").text]
    answers.append(
        rs.create("v", validate=True, **redshift_properties(redshift, {"value": password})).text
    )
    answers.append(sf.create("v", validate=True, privateKey={"value": key}).text)
    assert [json.loads(a)["error"]["code"] for a in answers[:3]] == [
        "28P01",
        "390144",
        "PASSPHRASE",
    ]
    logged = logs.text + "\n".join(str(r.__dict__) for r in logs.records)
    with session_factory() as session:
        events = [str(e.details) for e in session.scalars(select(AuditEvent))]
    for canary in canaries:
        for text in [*answers, logged, *events]:
            assert canary not in text


# -- the command line --------------------------------------------------------------------------


def test_stead_env_test(settings: Settings, redshift: RedshiftServer) -> None:
    from stead.sdk import Client

    with (
        serve_here(settings) as served,
        Client(served.url, served.client_id, served.client_secret) as client,
    ):
        project_id = client.projects.create(example("01-create-project-redshift")).project_id
        agent_id = client.agents.create({**example("02-create-agent")}).agent_id
        client.connections.create(project_id, example("03-create-connection-redshift"))
        client.secrets.create(
            project_id, {"name": "pw", "type": "PASSWORD", "value": redshift.password}
        )
        body = example("05-create-environment-redshift", agentId=agent_id)
        properties = redshift_properties(redshift, {"secretName": "pw"})
        body["connectionOverrides"][0]["connectionProperties"] = properties
        client.environments.create(project_id, body, validate=True)
        properties["port"] = {"value": str(closed_port())}
        properties["password"] = {"value": redshift.password}  # "pw" stays with prod's host
        client.environments.create(project_id, {**body, "name": "broken"})
        flags = ["--url", served.url, "--client-id", served.client_id]
        flags += ["--client-secret", served.client_secret]
        for project in (project_id, "FINANCE-analytics"):
            ok = CliRunner().invoke(cli, ["env", "test", project, "prod", *flags])
            assert ok.exit_code == 0, ok.output
            assert ok.output.startswith("ok: PostgreSQL 15")
        unknown = CliRunner().invoke(cli, ["env", "test", "finance", "prod", *flags])
        assert unknown.exit_code == 1 and "no such project: 'finance'" in unknown.output
        broken = CliRunner().invoke(cli, ["env", "test", project_id, "broken", "--json", *flags])
        assert broken.exit_code == 3, broken.output
        assert json.loads(broken.stdout)["error"]["code"] == "UNREACHABLE"
        missing = CliRunner().invoke(cli, ["env", "test", project_id, "nope", *flags])
        assert missing.exit_code == 1
        assert (
            missing.output == "error: Environment 'nope' not found in project 'finance-analytics'\n"
        )


# -- the outbound policy ----------------------------------------------------------------------


class _Impostor(socketserver.BaseRequestHandler):
    """What listens on a port that is no warehouse: sends ``server.banner``, reads, answers
    ``server.reply`` and hangs up."""

    def handle(self) -> None:
        server: Any = self.server
        self.request.settimeout(2)
        if server.banner:
            self.request.sendall(server.banner)
        with contextlib.suppress(OSError):
            self.request.recv(4096)  # the client's first words, whatever they are
        self.request.sendall(server.reply)


@pytest.fixture
def impostors() -> Iterator[dict[str, int]]:
    """Ports on 127.0.0.1 of an SSH server (banner, then it hangs up on a stranger) and an HTTP
    server (400 to anything)."""
    kinds = {
        "ssh": (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", b"Invalid SSH identification string.\r\n"),
        "http": (
            b"",
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
    }
    servers = {}
    for name, (banner, reply) in kinds.items():
        server: Any = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Impostor)
        server.daemon_threads = True
        server.banner, server.reply = banner, reply
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    yield {name: server.server_address[1] for name, server in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


def test_what_is_not_a_warehouse_gets_one_answer(
    rs: Project,
    redshift: RedshiftServer,
    impostors: dict[str, int],
    http: TestClient,
    settings: Settings,
) -> None:
    """Redshift's host and port are the caller's: a closed port, an SSH server and an HTTP
    server get the same answer, so the test tells nothing about what listens where. (Snowflake's
    are the admin's: the caller names an account under snowflakecomputing.com.)"""
    ports = {"closed": closed_port(), **impostors}

    def password() -> dict[str, str]:
        # a stored secret goes to one host only: each environment here has its own
        return {"secretName": rs.hosted("the caller's guess")}

    for name, port in ports.items():
        rs.environment(name, **redshift_properties(redshift, password(), port={"value": str(port)}))
        # SSL on (the default) as well: the SSH banner's first byte is the 'S' of "SSL yes".
        rs.environment(
            f"{name}-ssl",
            **redshift_properties(redshift, password(), port={"value": str(port)}, useSsl=None),
        )
    # .invalid never resolves (RFC 6761).
    app: Any = http.app
    app.state.settings = settings.model_copy(
        update={"outbound_warehouse_hosts": "127.0.0.1,*.invalid"}
    )
    nowhere = {"url": {"value": "warehouse.no-such-host.invalid"}}
    rs.environment("unresolved", **redshift_properties(redshift, password(), **nowhere))
    unreachable = ("UNREACHABLE", UNREACHABLE_MESSAGE.format(warehouse="Redshift"))
    assert _failure(rs, "unresolved") == unreachable
    for name in ports:
        assert _failure(rs, name) == unreachable, name
        assert _failure(rs, f"{name}-ssl") == unreachable, name
    # A warehouse that refuses the login keeps its own code.
    rs.environment("warehouse", **redshift_properties(redshift, password()))
    assert _failure(rs, "warehouse")[0] == "28P01"


def test_loopback_and_unlisted_warehouses_are_refused_unless_allowed(
    rs: Project,
    sf: Project,
    redshift: RedshiftServer,
    snowflake: SnowflakeServer,
    http: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    password = {"secretName": rs.hosted(redshift.password)}
    rs.environment("stored", **redshift_properties(redshift, password))
    sf.environment("stored", privateKey={"secretName": sf.hosted(pkcs8(rsa_key(number=1)))})
    app: Any = http.app
    app.state.settings = settings.model_copy(update={"outbound_allowed_networks": ""})
    before = len(_events(session_factory, "environment.connection_tested"))

    created = rs.create("new", validate=True, **redshift_properties(redshift, password))
    problem = assert_problem(created, 400, f"{PROPS}.url")
    assert problem["type"].endswith("/destination-refused")
    assert "loopback" in problem["detail"]
    assert rs.http.get(f"{rs.base}/environments/new", headers=rs.admin).status_code == 404
    assert_problem(rs.test("stored"), 400, f"{PROPS}.url")
    # The configured Snowflake host is allowed as a host, not as a loopback address.
    assert_problem(sf.test("stored"), 400, f"{PROPS}.account")
    # A name that resolves to loopback (through /etc/hosts) is refused as well (with a secret
    # of its own: the stored one goes only to the host of environment "stored").
    own = {"secretName": rs.hosted(redshift.password)}
    localhost = redshift_properties(redshift, own, url={"value": "localhost"})
    assert_problem(rs.create("named", validate=True, **localhost), 400, f"{PROPS}.url")
    # A host outside the vendors' domains and the configured ones is refused by its name.
    app.state.settings = settings.model_copy(update={"outbound_warehouse_hosts": ""})
    problem = assert_problem(rs.test("stored"), 400, f"{PROPS}.url")
    assert "STEAD_OUTBOUND_WAREHOUSE_HOSTS" in problem["detail"]
    assert len(_events(session_factory, "environment.connection_tested")) == before

    app.state.settings = settings
    assert rs.result("stored")["ok"] is True
    assert sf.result("stored")["ok"] is True


def test_the_driver_connects_to_the_address_that_was_checked(
    redshift: RedshiftServer, settings: Settings
) -> None:
    """DNS rebinding: the name is resolved once, right before connecting, and a Redshift
    connection without SSL is made to that address (the driver never resolves the name)."""
    answers = {"warehouse.stead.invalid": ["127.0.0.1"]}
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[host]

    lab = settings.model_copy(update={"outbound_warehouse_hosts": "*.stead.invalid"})
    target = RedshiftTarget(
        host="warehouse.stead.invalid",
        port=redshift.port,
        user=redshift.user,
        password=redshift.password,
        database=redshift.database,
        schema="public",
        ssl=False,
    )
    policy = Policy.from_settings(lab, resolver=resolver)
    result = attempt(target, lab, policy)
    assert result.ok is True, result
    assert asked == ["warehouse.stead.invalid"]
    # The name now answers with a loopback address, which this installation refuses: nothing
    # is sent, and the answer is the one for any unreachable host.
    strict = lab.model_copy(update={"outbound_allowed_networks": ""})
    result = attempt(target, strict, Policy.from_settings(strict, resolver=resolver))
    assert result.error is not None
    assert (result.error.code, result.error.message) == (
        "UNREACHABLE",
        UNREACHABLE_MESSAGE.format(warehouse="Redshift"),
    )
