# ruff: noqa: F811 - the fixtures imported below are used as arguments
"""Using a stored secret is a permission on the environment that uses it (docs/permissions.md,
"Using a stored secret"): a caller cannot send another environment's secret to a host of its
own choosing, nor replace a secret behind an environment hidden from it; every test is audited
with its host, and no answer repeats a credential, however short. The attacker's host is a
PostgreSQL-wire listener on 127.0.0.1 that asks for the password in clear text."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from tests.support.cleartext_listener import CleartextListener, cleartext_listener  # noqa: F401
from tests.support.factories import assert_problem, login, new_user
from tests.support.redshift_shim import RedshiftServer
from tests.warehouses.test_connection_test import (  # noqa: F401 - fixtures
    PROPS,
    Project,
    moto,
    moto_server_session,
    openbao_session,
    redshift,
    redshift_properties,
    redshift_server_session,
    rs,
    settings,
    snowflake,
    snowflake_server_session,
)

#: Shorter than the 8 characters below which log redaction does not remember a value.
SHORT_SECRET = "hunter2"


def _attacker(listener: CleartextListener, password: Any) -> dict[str, Any]:
    return {
        "url": {"value": "127.0.0.1"},
        "port": {"value": str(listener.port)},
        "username": {"value": "victim"},
        "password": password,
        "defaultDatabase": {"value": "dev"},
        "useSsl": {"value": "false"},
    }


def _user(
    rs: Project, factory: sessionmaker[Session], role: str = "CONTRIBUTOR"
) -> tuple[str, dict[str, str]]:
    user_id, email = new_user(factory, project_id=rs.project_id, project_role=role)
    return user_id, login(rs.http, email)


def _hide(rs: Project, environment: str, user_id: str, level: str = "noAccess") -> None:
    url = f"{rs.base}/environments/{environment}/access/{user_id}"
    resp = rs.http.put(url, json={"accessLevel": level}, headers=rs.admin)
    assert resp.status_code == 200, resp.text


def _events(factory: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with factory() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_another_environments_secret_never_reaches_the_callers_host(
    rs: Project,
    redshift: RedshiftServer,
    cleartext_listener: CleartextListener,  # noqa: F811
    session_factory: sessionmaker[Session],
) -> None:
    """With ``?validate=true`` and an existing secret as password, the secret went in
    clear text to the caller's host, even from an environment the caller had ``noAccess`` to."""
    secret = rs.hosted(redshift.password)
    rs.environment("prod", **redshift_properties(redshift, {"secretName": secret}))
    user_id, contributor = _user(rs, session_factory)
    _hide(rs, "prod", user_id)
    envs = f"{rs.base}/environments"
    evil = {
        **rs.body("evil"),
        "connectionOverrides": [
            {
                "connectionName": "finance-dwh-prod",
                "connectionProperties": _attacker(cleartext_listener, {"secretName": secret}),
            }
        ],
    }
    for validate in ("true", "false"):
        resp = rs.http.post(envs, json=evil, params={"validate": validate}, headers=contributor)
        body = assert_problem(resp, 403, f"{PROPS}.password.secretName")
        assert "prod" in body["detail"]
    # with access to prod (the Owner), the secret still goes only to prod's host
    for validate in ("true", "false"):
        resp = rs.http.post(envs, json=evil, params={"validate": validate}, headers=rs.admin)
        assert_problem(resp, 403, f"{PROPS}.password.secretName")
    # a second reference to the same store path is the same secret
    reference = rs.external("AWS", redshift.password)
    rs.environment("staging", **redshift_properties(redshift, {"secretName": reference}))
    refs = f"{rs.base}/secret-references"
    first = rs.http.get(f"{refs}/{reference}", headers=rs.admin).json()
    copy = {k: first[k] for k in ("agentId", "agentType", "secretReferenceType", "secretName")}
    assert rs.http.post(f"{refs}/copy", json=copy, headers=contributor).status_code == 201
    _hide(rs, "staging", user_id)
    resp = rs.create("evil", **_attacker(cleartext_listener, {"secretName": "copy"}))
    assert_problem(resp, 403, f"{PROPS}.password.secretName")
    # moving prod to another host keeps its secret only if the caller gives the value again
    patch = {
        "connectionOverrides": [
            {
                "connectionName": "finance-dwh-prod",
                "connectionProperties": _attacker(cleartext_listener, {"secretName": secret}),
            }
        ]
    }
    resp = rs.http.patch(f"{envs}/prod", json=patch, params={"validate": "true"}, headers=rs.admin)
    assert_problem(resp, 403, f"{PROPS}.password.secretName")
    assert cleartext_listener.received == []
    # the legitimate test of prod still runs, and is audited with its host
    assert rs.result("prod")["ok"] is True
    tested = _events(session_factory, "environment.connection_tested")
    assert tested[-1].details["host"] == f"{redshift.host}:{redshift.port}"
    assert tested[-1].details["ok"] is True and tested[-1].details["validation"] is False


def test_a_short_secret_is_not_echoed_and_validations_are_audited(
    rs: Project,
    cleartext_listener: CleartextListener,  # noqa: F811
    session_factory: sessionmaker[Session],
) -> None:
    """A password under 8 characters came back in the error message of a host that
    repeats it. A caller who gives the value itself may test any host; the test is audited."""
    props = _attacker(cleartext_listener, {"value": SHORT_SECRET})
    resp = rs.create("mine", validate=True, **props)
    body = assert_problem(resp, 400, PROPS)
    assert body["warehouseError"]["code"] == "28P01"
    assert cleartext_listener.received == [SHORT_SECRET]  # the caller's own credential went
    assert SHORT_SECRET not in resp.text and "[REDACTED]" in body["warehouseError"]["message"]
    (event,) = _events(session_factory, "environment.connection_tested")
    assert event.target_id == "mine" and event.actor_id
    assert event.details == {
        "host": f"127.0.0.1:{cleartext_listener.port}",
        "ok": False,
        "code": "28P01",
        "validation": True,
    }
    # stored without validate, the environment's own test is refused nothing and masks it too
    rs.environment("mine", **props)
    result = rs.result("mine")
    assert result["ok"] is False and SHORT_SECRET not in json.dumps(result)
    with session_factory() as session:
        details = [e.details for e in session.scalars(select(AuditEvent))]
    assert SHORT_SECRET not in json.dumps(details)


def test_a_hidden_environments_secret_cannot_be_replaced(
    rs: Project, redshift: RedshiftServer, session_factory: sessionmaker[Session]
) -> None:
    """A caller without access to an environment replaced the secret it uses."""
    secret = rs.hosted(redshift.password)
    rs.environment("prod", **redshift_properties(redshift, {"secretName": secret}))
    user_id, contributor = _user(rs, session_factory)
    url = f"{rs.base}/secrets/{secret}"
    for level in ("noAccess", "readOnly", "runner"):
        _hide(rs, "prod", user_id, level)
        resp = rs.http.put(url, json={"value": "attacker-chosen"}, headers=contributor)
        assert_problem(resp, 403)
    assert rs.http.get(url, headers=rs.admin).json()["version"] == 1
    assert rs.result("prod")["ok"] is True
    _hide(rs, "prod", user_id, "admin")
    assert (
        rs.http.put(url, json={"value": redshift.password}, headers=contributor).status_code == 200
    )
    # a secret no environment uses is the project's: project.write is enough
    free = rs.hosted("free")
    resp = rs.http.put(f"{rs.base}/secrets/{free}", json={"value": "x"}, headers=contributor)
    assert resp.status_code == 200
