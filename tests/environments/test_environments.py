"""Environments (docs/api.md, Environments) through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.connections.models import Connection
from stead.environments.models import Environment
from stead.secrets.store import read_value
from tests.support.factories import (
    assert_problem,
    create_agent,
    example,
    hosted_agent_id,
    member_auth,
)

PROPS = "connectionOverrides[0].connectionProperties"
UNKNOWN_UUID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
CANARY = "canary-Pa55w0rd-7f3e1c"

SECRET_NAMES = {"redshift": "finance-prod-redshift", "snowflake": "growth-prod-private-key"}


@dataclass
class Arranged:
    """A project with its DWH connection, an agent and a secret reference, plus the example
    environment body filled in for them."""

    project_id: str
    agent_id: str
    body: dict[str, Any]

    @property
    def base(self) -> str:
        return f"/v1/projects/{self.project_id}/environments"


def _secret_reference(
    http: TestClient, headers: dict[str, str], project_id: str, name: str, agent_id: str
) -> None:
    body = example("04-create-secret-reference-aws", agentId=agent_id, projectId=project_id)
    resp = http.post(
        f"/v1/projects/{project_id}/secret-references/{name}", json=body, headers=headers
    )
    assert resp.status_code == 201, resp.text


def arrange(http: TestClient, headers: dict[str, str], warehouse: str) -> Arranged:
    """Provision the example provisioning flow up to (not including) the environment."""
    resp = http.post(
        "/v1/projects", json=example(f"01-create-project-{warehouse}"), headers=headers
    )
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["projectId"]
    agent_id = create_agent(http, headers)["agentId"]
    resp = http.post(
        f"/v1/projects/{project_id}/data-platform-connections",
        json=example(f"03-create-connection-{warehouse}"),
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    _secret_reference(http, headers, project_id, SECRET_NAMES[warehouse], agent_id)
    body = example(f"05-create-environment-{warehouse}", agentId=agent_id)
    return Arranged(project_id, agent_id, body)


def _count(factory: sessionmaker[Session], model: type[Any] = Environment) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _actions(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.target_type == "environment")
                .order_by(AuditEvent.id)
            )
        )


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with ``value`` at the dotted ``path`` (``...`` deletes it).

    Integer segments index lists; ``connectionOverrides.0.connectionProperties.port``.
    """
    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


def _prop(body: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return _with(body, f"connectionOverrides.0.connectionProperties.{key}", value)


def _override(override: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return _with(override, f"connectionProperties.{key}", value)


# "<field>(.<field>|[<index>])*": no pydantic union member or validator names in a path
_CLEAN_PATH = re.compile(r"[A-Za-z]+(?:\[\d+\]|\.[A-Za-z]+)*")


def _clean_paths(problem: dict[str, Any]) -> bool:
    return all(_CLEAN_PATH.fullmatch(v.split(":")[0]) for v in problem["violations"])


REDSHIFT_PROPERTIES = {
    "url": {"value": "finance.cq1example.eu-west-1.redshift.amazonaws.com"},
    "port": {"value": "5439"},
    "username": {"value": "etl_service"},
    "password": {"secretName": "finance-prod-redshift", "secretKey": "password"},
    "defaultDatabase": {"value": "analytics"},
    "defaultSchema": {"value": "public"},
    "useSsl": {"value": "true"},
    "defaultStorageLocation": {"value": "finance-etl-staging"},
}
SNOWFLAKE_PROPERTIES = {
    "account": {"value": "acmeorg-growth"},
    "username": {"value": "SVC_GROWTH"},
    "privateKey": {"secretName": "growth-prod-private-key", "secretKey": None},
    "defaultRole": {"value": "TRANSFORMER"},
    "defaultWarehouse": {"value": "TRANSFORM_WH"},
    "defaultDatabase": {"value": "GROWTH"},
    "defaultSchema": {"value": "MARTS"},
}


@pytest.mark.parametrize(
    ("warehouse", "connection", "properties", "level"),
    [
        ("redshift", "finance-dwh-prod", REDSHIFT_PROPERTIES, "readOnly"),
        ("snowflake", "growth-dwh-prod", SNOWFLAKE_PROPERTIES, "runner"),
    ],
)
def test_create_read_list_delete(
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    warehouse: str,
    connection: str,
    properties: dict[str, Any],
    level: str,
) -> None:
    env = arrange(http, admin, warehouse)
    resp = http.post(env.base, json=env.body, headers=admin)
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"{env.base}/prod"
    created = resp.json()
    agent = http.get(f"/v1/agents/{env.agent_id}", headers=admin).json()
    assert created == {
        "name": "prod",
        "displayName": "Production",
        "description": env.body.get("description"),
        "defaultAgentId": env.agent_id,
        "defaultAgentName": agent["name"],
        "defaultUserAccessLevel": level,
        "defaultConnections": {"DWH": {warehouse: connection}},
        "connectionOverrides": [{"connectionName": connection, "connectionProperties": properties}],
        "createdAt": created["createdAt"],
        "updatedAt": created["updatedAt"],
    }
    assert created["createdAt"].endswith("Z") and len(created["createdAt"]) == 24

    assert http.get(f"{env.base}/prod", headers=admin).json() == created
    assert http.get(f"{env.base}/PROD", headers=admin).json() == created
    listed = http.get(env.base, headers=admin).json()
    assert listed == {
        "page": 0,
        "size": 25,
        "total": 1,
        "results": [
            {
                "name": "prod",
                "displayName": "Production",
                "defaultAgentId": env.agent_id,
                "defaultAgentName": agent["name"],
                "defaultUserAccessLevel": level,
            }
        ],
    }

    assert http.delete(f"{env.base}/prod", headers=admin).status_code == 204
    assert_problem(http.get(f"{env.base}/prod", headers=admin), 404)
    assert_problem(http.delete(f"{env.base}/prod", headers=admin), 404)
    assert _actions(session_factory) == ["environment.created", "environment.deleted"]


def test_defaults_and_enum_case(http: TestClient, admin: dict[str, str]) -> None:
    env = arrange(http, admin, "redshift")
    body = _with(env.body, "displayName", ...)
    del body["description"]
    body = _prop(_prop(body, "defaultSchema", ...), "useSsl", ...)
    body["defaultUserAccessLevel"] = "NOACCESS"
    body["defaultConnections"] = {"dwh": {"RedShift": "FINANCE-DWH-PROD"}}
    body["connectionOverrides"][0]["connectionName"] = "Finance-DWH-Prod"
    resp = http.post(f"/dpc/v1/projects/{env.project_id}/environments", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    got = http.get(f"{env.base}/prod", headers=admin).json()
    assert got["displayName"] == "prod" and got["description"] is None
    assert got["defaultUserAccessLevel"] == "noAccess"
    assert got["defaultConnections"] == {"DWH": {"redshift": "finance-dwh-prod"}}
    props = got["connectionOverrides"][0]["connectionProperties"]
    assert got["connectionOverrides"][0]["connectionName"] == "finance-dwh-prod"
    assert props["defaultSchema"] == {"value": "public"} and props["useSsl"] == {"value": "true"}


def test_values_are_normalised(http: TestClient, admin: dict[str, str]) -> None:
    env = arrange(http, admin, "redshift")
    body = _prop(_prop(env.body, "port", {"value": "05439"}), "useSsl", {"value": "FALSE"})
    body = _prop(body, "password", {"secretName": "FINANCE-PROD-REDSHIFT"})
    resp = http.post(env.base, json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    props = resp.json()["connectionOverrides"][0]["connectionProperties"]
    assert props["port"] == {"value": "5439"} and props["useSsl"] == {"value": "false"}
    # the reference is stored under its own spelling
    assert props["password"] == {"secretName": "finance-prod-redshift", "secretKey": None}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("acmeorg-growth", "acmeorg-growth"),
        ("ACMEORG-GROWTH", "acmeorg-growth"),
        ("acmeorg.growth", "acmeorg-growth"),
        ("https://AcmeOrg-Growth.snowflakecomputing.com/", "acmeorg-growth"),
        ("acmeorg-growth_eu.snowflakecomputing.com", "acmeorg-growth_eu"),
        ("XY12345", "xy12345"),
        ("xy12345.eu-west-1", "xy12345.eu-west-1"),
        ("https://xy12345.us-east-2.aws.snowflakecomputing.com", "xy12345.us-east-2.aws"),
        ("xy12345.west-europe.azure/", "xy12345.west-europe.azure"),
    ],
)
def test_snowflake_account_forms(
    http: TestClient, admin: dict[str, str], given: str, expected: str
) -> None:
    env = arrange(http, admin, "snowflake")
    resp = http.post(env.base, json=_prop(env.body, "account", {"value": given}), headers=admin)
    assert resp.status_code == 201, resp.text
    props = resp.json()["connectionOverrides"][0]["connectionProperties"]
    assert props["account"] == {"value": expected}
    got = http.get(f"{env.base}/prod", headers=admin).json()
    assert got["connectionOverrides"][0]["connectionProperties"]["account"] == {"value": expected}


def _redshift_cases(env: Arranged, agents: dict[str, str]) -> list[tuple[dict[str, Any], str]]:
    body = env.body
    return [
        (_with(body, "name", ""), "name"),
        (_with(body, "name", "a/b"), "name"),
        (_with(body, "name", ...), "name"),
        (_with(body, "displayName", ""), "displayName"),
        (_with(body, "displayName", "x" * 256), "displayName"),
        (_with(body, "displayName", "bell\x07"), "displayName"),
        (_with(body, "description", "d" * 2001), "description"),
        (_with(body, "description", "nul\x00"), "description"),
        (_with(body, "defaultAgent", env.agent_id), "defaultAgent"),
        (_with(body, "defaultAgentId", ...), "defaultAgentId"),
        (_with(body, "defaultAgentId", UNKNOWN_UUID), "defaultAgentId"),
        (_with(body, "defaultAgentId", "not-a-uuid"), "defaultAgentId"),
        (_with(body, "defaultAgentId", agents["hosted"]), "defaultAgentId"),
        (_with(body, "defaultAgentId", agents["restricted"]), "defaultAgentId"),
        (_with(body, "defaultUserAccessLevel", "superuser"), "defaultUserAccessLevel"),
        (_with(body, "defaultUserAccessLevel", ...), "defaultUserAccessLevel"),
        (_with(body, "defaultConnections", ...), "defaultConnections"),
        (_with(body, "defaultConnections", {}), "defaultConnections.DWH"),
        (_with(body, "defaultConnections", "finance-dwh-prod"), "defaultConnections"),
        (_with(body, "defaultConnections.ETL", {"redshift": "x"}), "defaultConnections.ETL"),
        (_with(body, "defaultConnections.DWH", {}), "defaultConnections.DWH"),
        (
            _with(
                body, "defaultConnections.DWH", {"redshift": "finance-dwh-prod", "snowflake": "x"}
            ),
            "defaultConnections.DWH",
        ),
        (
            _with(body, "defaultConnections.DWH", {"snowflake": "finance-dwh-prod"}),
            "defaultConnections.DWH.snowflake",
        ),
        (
            _with(body, "defaultConnections.DWH", {"redshift": "nope"}),
            "defaultConnections.DWH.redshift",
        ),
        (_with(body, "defaultConnections.DWH", {"redshift": 5}), "defaultConnections.DWH.redshift"),
        (
            _with(body, "defaultConnections.DWH", {"redshift": "nul\x00"}),
            "defaultConnections.DWH.redshift",
        ),
        (_with(body, "connectionOverrides", []), "connectionOverrides"),
        (
            _with(body, "connectionOverrides", body["connectionOverrides"] * 2),
            "connectionOverrides",
        ),
        (
            _with(body, "connectionOverrides.0.connectionName", "other"),
            "connectionOverrides[0].connectionName",
        ),
        (
            _with(body, "connectionOverrides.0.connectionProperties", ...),
            "connectionOverrides[0].connectionProperties",
        ),
        (_with(body, "connectionOverrides.0.extra", 1), "connectionOverrides[0].extra"),
        (_prop(body, "pasword", {"value": "x"}), f"{PROPS}.pasword"),
        (_prop(body, "url", ...), f"{PROPS}.url"),
        (_prop(body, "port", ...), f"{PROPS}.port"),
        (_prop(body, "username", ...), f"{PROPS}.username"),
        (_prop(body, "password", ...), f"{PROPS}.password"),
        (_prop(body, "defaultDatabase", ...), f"{PROPS}.defaultDatabase"),
        (_prop(body, "url", {"value": "https://finance.example.com"}), f"{PROPS}.url.value"),
        (_prop(body, "url", {"value": "finance.example.com:5439"}), f"{PROPS}.url.value"),
        (_prop(body, "url", {"value": "finance.example.com/db"}), f"{PROPS}.url.value"),
        (_prop(body, "port", {"value": "0"}), f"{PROPS}.port.value"),
        (_prop(body, "port", {"value": "65536"}), f"{PROPS}.port.value"),
        (_prop(body, "port", {"value": "54x"}), f"{PROPS}.port.value"),
        (_prop(body, "port", {"value": "５４３９"}), f"{PROPS}.port.value"),
        (_prop(body, "port", {"value": 5439}), f"{PROPS}.port.value"),
        (_prop(body, "useSsl", {"value": "yes"}), f"{PROPS}.useSsl.value"),
        (
            _prop(body, "defaultStorageLocation", {"value": "s3://finance-etl-staging"}),
            f"{PROPS}.defaultStorageLocation.value",
        ),
        (_prop(body, "username", {"value": ""}), f"{PROPS}.username.value"),
        (_prop(body, "port", {}), f"{PROPS}.port"),
        (_prop(body, "port", "5439"), f"{PROPS}.port"),
        (
            _prop(body, "port", {"value": "5439", "secretName": "finance-prod-redshift"}),
            f"{PROPS}.port",
        ),
        (_prop(body, "port", {"value": "5439", "secretKey": "k"}), f"{PROPS}.port"),
        (_prop(body, "port", {"value": "5439", "unit": "tcp"}), f"{PROPS}.port.unit"),
        (_prop(body, "password", {"secretName": "nope"}), f"{PROPS}.password.secretName"),
        (_prop(body, "password", {"secretName": "nul\x00"}), f"{PROPS}.password.secretName"),
        (
            _prop(body, "password", {"secretName": "finance-prod-redshift", "secretKey": "\x00"}),
            f"{PROPS}.password.secretKey",
        ),
        (_prop(body, "username", {"value": "nul\x00"}), f"{PROPS}.username.value"),
        (_prop(body, "password", {"value": ""}), f"{PROPS}.password.value"),
        (_prop(body, "password", {"value": CANARY, "set": True}), f"{PROPS}.password"),
        (
            _prop(body, "password", {"secretName": "finance-prod-redshift", "set": False}),
            f"{PROPS}.password.set",
        ),
    ]


def test_validation_rules_redshift(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "redshift")
    restricted = create_agent(http, admin, restrictedAccess=True)["agentId"]
    agents = {"hosted": hosted_agent_id(session_factory), "restricted": restricted}
    for body, field in _redshift_cases(env, agents):
        resp = http.post(env.base, json=body, headers=admin)
        problem = assert_problem(resp, 400, field)
        assert _clean_paths(problem), problem["violations"]
        assert CANARY not in resp.text
    assert _count(session_factory) == 0
    assert _actions(session_factory) == []


def test_validation_rules_snowflake(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "snowflake")
    body = env.body
    cases = [
        (_prop(body, "account", ...), f"{PROPS}.account"),
        (_prop(body, "username", ...), f"{PROPS}.username"),
        (_prop(body, "privateKey", ...), f"{PROPS}.privateKey"),
        (_prop(body, "password", {"secretName": "growth-prod-private-key"}), f"{PROPS}.password"),
        (_prop(body, "url", {"value": "acmeorg-growth.snowflakecomputing.com"}), f"{PROPS}.url"),
        (
            _prop(body, "privateKey", {"value": f"-----BEGIN PRIVATE KEY-----{CANARY}"}),
            f"{PROPS}.privateKey.value",
        ),
        (
            _prop(body, "privateKey", {"value": f"-----BEGIN PRIVATE KEY-----\n{CANARY}"}),
            f"{PROPS}.privateKey.value",
        ),
        (_prop(body, "passphrase", {"secretName": "nope"}), f"{PROPS}.passphrase.secretName"),
        (
            _with(body, "defaultConnections.DWH", {"redshift": "growth-dwh-prod"}),
            "defaultConnections.DWH.redshift",
        ),
        (
            _with(body, "defaultConnections.DWH", {"snowflake": "finance-dwh-prod"}),
            "defaultConnections.DWH.snowflake",
        ),
    ]
    for account in [
        "",
        "acmeorg",
        "acmeorg-",
        "http://acmeorg-growth",
        "acme org-growth",
        "acmeorg-growth.eu-west-1",
        "xy12345.eu-west-1.oracle",
        "a.b.c.d",
        "acme_org-growth",
        "xy12345.eu-west-1.aws.privatelink.example.com",
    ]:
        cases.append((_prop(body, "account", {"value": account}), f"{PROPS}.account.value"))
    for body_, field in cases:
        resp = http.post(env.base, json=body_, headers=admin)
        assert _clean_paths(assert_problem(resp, 400, field))
        assert CANARY not in resp.text
    resp = http.post(env.base, json=_prop(body, "account", {"value": "acme"}), headers=admin)
    message = assert_problem(resp, 400, f"{PROPS}.account.value")["violations"][0]
    assert "orgname-accountname" in message and "locator.region.cloud" in message
    assert _count(session_factory) == 0


def test_sensitive_inline_value_becomes_a_hosted_secret(
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    capfd: pytest.CaptureFixture[str],
) -> None:
    env = arrange(http, admin, "redshift")
    resp = http.post(env.base, json=_prop(env.body, "password", {"value": CANARY}), headers=admin)
    assert resp.status_code == 201, resp.text
    stored = resp.json()["connectionOverrides"][0]["connectionProperties"]["password"]
    assert stored == {"secretName": "prod-password", "set": True}
    assert CANARY not in resp.text
    with session_factory() as session:
        assert read_value(session, project_id=env.project_id, name="prod-password") == CANARY
        details = [str(d) for d in session.scalars(select(AuditEvent.details))]
    assert not any(CANARY in d for d in details)
    out, err = capfd.readouterr()
    assert CANARY not in out + err


def test_text_that_cannot_be_stored_is_refused(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "redshift")
    lone = "x\ud800"  # an unpaired surrogate: JSON can carry it, UTF-8 cannot
    cases = [
        (_with(env.body, "description", lone), "description"),
        (_prop(env.body, "username", {"value": lone}), f"{PROPS}.username.value"),
        (_prop(env.body, "password", {"secretName": lone}), f"{PROPS}.password.secretName"),
        (_prop(env.body, lone, {"value": "x"}), PROPS),
        (
            _with(env.body, "defaultConnections.DWH", {lone: "finance-dwh-prod"}),
            "defaultConnections.DWH",
        ),
        (_with(env.body, "defaultConnections", {lone: {}}), "defaultConnections"),
        (
            _with(env.body, "defaultConnections.DWH", {"redshift": lone}),
            "defaultConnections.DWH.redshift",
        ),
    ]
    headers = {**admin, "content-type": "application/json"}
    assert http.post(env.base, json=env.body, headers=admin).status_code == 201
    before = http.get(f"{env.base}/prod", headers=admin).json()
    for body, field in cases:
        resp = http.post(env.base, content=json.dumps({**body, "name": "other"}), headers=headers)
        assert _clean_paths(assert_problem(resp, 400, field))
        patch = {k: v for k, v in body.items() if k != "name"}
        resp = http.patch(f"{env.base}/prod", content=json.dumps(patch), headers=headers)
        assert _clean_paths(assert_problem(resp, 400, field))
    assert _count(session_factory) == 1
    assert http.get(f"{env.base}/prod", headers=admin).json() == before


def test_agent_kinds_follow_the_deployment_type(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    body = {**example("01-create-project-redshift"), "agentDeploymentType": "FULL_SAAS"}
    project_id = http.post("/v1/projects", json=body, headers=admin).json()["projectId"]
    base = f"/v1/projects/{project_id}/environments"
    resp = http.post(
        f"/v1/projects/{project_id}/data-platform-connections",
        json=example("03-create-connection-redshift"),
        headers=admin,
    )
    assert resp.status_code == 201, resp.text
    hosted = hosted_agent_id(session_factory)
    customer = create_agent(http, admin)["agentId"]
    _secret_reference(http, admin, project_id, "finance-prod-redshift", hosted)
    body = example("05-create-environment-redshift", agentId=customer)
    assert_problem(http.post(base, json=body, headers=admin), 400, "defaultAgentId")
    resp = http.post(base, json={**body, "defaultAgentId": hosted.upper()}, headers=admin)
    assert resp.status_code == 201, resp.text
    assert resp.json()["defaultAgentId"] == hosted


def test_restricted_agent_must_allow_the_project(http: TestClient, admin: dict[str, str]) -> None:
    env = arrange(http, admin, "redshift")
    restricted = create_agent(http, admin, restrictedAccess=True)["agentId"]
    body = {**env.body, "defaultAgentId": restricted}
    assert_problem(http.post(env.base, json=body, headers=admin), 400, "defaultAgentId")
    resp = http.put(
        f"/v1/agents/{restricted}/allowlist",
        json={"projects": {env.project_id: {"environments": []}}},
        headers=admin,
    )
    assert resp.status_code == 200, resp.text
    assert http.post(env.base, json=body, headers=admin).status_code == 201


def test_duplicate_name_is_case_insensitive(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "redshift")
    assert (
        http.post(env.base, json={**env.body, "name": "Straße"}, headers=admin).status_code == 201
    )
    dup = http.post(env.base, json={**env.body, "name": "STRASSE"}, headers=admin)
    assert assert_problem(dup, 409, "name")["type"].endswith("/problems/conflict")
    assert _count(session_factory) == 1


def test_unicode_name_round_trips_through_urls(http: TestClient, admin: dict[str, str]) -> None:
    env = arrange(http, admin, "snowflake")
    name = "Prüfung ✓ 本番 #2?"
    resp = http.post(env.base, json={**env.body, "name": name}, headers=admin)
    assert resp.status_code == 201, resp.text
    location = resp.headers["location"]
    assert location == f"{env.base}/{quote(name, safe='')}"
    assert http.get(location, headers=admin).json()["name"] == name
    patched = http.patch(location, json={"description": "ü"}, headers=admin)
    assert patched.status_code == 200 and patched.json()["name"] == name
    assert http.get(env.base, headers=admin).json()["results"][0]["name"] == name
    assert http.delete(location, headers=admin).status_code == 204


def test_patch(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "redshift")
    created = http.post(env.base, json=env.body, headers=admin).json()
    url = f"{env.base}/prod"
    other_agent = create_agent(http, admin)

    resp = http.patch(
        url,
        json={
            "displayName": "Prod EU",
            "description": None,
            "defaultUserAccessLevel": "ADMIN",
            "defaultAgentId": other_agent["agentId"],
        },
        headers=admin,
    )
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["displayName"] == "Prod EU" and got["description"] is None
    assert got["defaultUserAccessLevel"] == "admin"
    assert (got["defaultAgentId"], got["defaultAgentName"]) == (
        other_agent["agentId"],
        other_agent["name"],
    )
    assert got["connectionOverrides"] == created["connectionOverrides"]
    assert got["createdAt"] == created["createdAt"] and got["updatedAt"] >= created["updatedAt"]

    # the properties given are set (the host kept: a stored secret goes nowhere else); those
    # left out (the password, useSsl, the S3 bucket) stay
    props = {
        "url": REDSHIFT_PROPERTIES["url"],
        "port": REDSHIFT_PROPERTIES["port"],
        "username": {"value": "etl2"},
        "defaultDatabase": {"value": "dw"},
        "defaultSchema": {"value": "staging"},
    }
    override = {"connectionName": "finance-dwh-prod", "connectionProperties": props}
    resp = http.patch(url, json={"connectionOverrides": [override]}, headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json()["connectionOverrides"][0]["connectionProperties"] == {
        **REDSHIFT_PROPERTIES,
        **props,
    }

    # a sensitive property given replaces the stored reference
    _secret_reference(http, admin, env.project_id, "rotated", env.agent_id)
    props2 = {**props, "password": {"secretName": "rotated"}}
    resp = http.patch(
        url,
        json={"connectionOverrides": [{**override, "connectionProperties": props2}]},
        headers=admin,
    )
    assert resp.status_code == 200, resp.text
    stored = resp.json()["connectionOverrides"][0]["connectionProperties"]
    assert stored["password"] == {"secretName": "rotated", "secretKey": None}

    # displayName null goes back to the name
    resp = http.patch(url, json={"displayName": None}, headers=admin)
    assert resp.json()["displayName"] == "prod"
    # an empty PATCH changes nothing
    before = http.get(url, headers=admin).json()
    resp = http.patch(url, json={}, headers=admin)
    assert resp.status_code == 200 and resp.json() == before
    assert _actions(session_factory) == ["environment.created"] + ["environment.updated"] * 5


@pytest.mark.parametrize("prefix", ["/v1", "/dpc/v1"])
def test_patch_changes_only_the_properties_it_names(
    http: TestClient, admin: dict[str, str], prefix: str
) -> None:
    """JSON merge patch (RFC 7396) of the connection properties, on the DPC route too."""
    env = arrange(http, admin, "snowflake")
    assert http.post(env.base, json=env.body, headers=admin).status_code == 201
    url = f"{prefix}{env.base.removeprefix('/v1')}/prod"

    def patch(properties: dict[str, Any]) -> Any:
        override = {"connectionName": "growth-dwh-prod", "connectionProperties": properties}
        return http.patch(url, json={"connectionOverrides": [override]}, headers=admin)

    resp = patch({"defaultWarehouse": {"value": "BIG_WH"}})
    assert resp.status_code == 200, resp.text
    stored = resp.json()["connectionOverrides"][0]["connectionProperties"]
    assert stored == {**SNOWFLAKE_PROPERTIES, "defaultWarehouse": {"value": "BIG_WH"}}
    assert (
        http.get(url, headers=admin).json()["connectionOverrides"][0]["connectionProperties"]
        == stored
    )

    # null removes an optional property, and only that one
    resp = patch({"defaultRole": None})
    assert resp.status_code == 200, resp.text
    stored = resp.json()["connectionOverrides"][0]["connectionProperties"]
    assert "defaultRole" not in stored
    assert stored == {k: v for k, v in SNOWFLAKE_PROPERTIES.items() if k != "defaultRole"} | {
        "defaultWarehouse": {"value": "BIG_WH"}
    }

    # a required property cannot be removed; the answer names it and nothing changes
    resp = patch({"account": None})
    problem = assert_problem(resp, 400, f"{PROPS}.account")
    assert any("cannot be removed" in v for v in problem["violations"])
    assert (
        http.get(url, headers=admin).json()["connectionOverrides"][0]["connectionProperties"]
        == stored
    )


def test_patch_null_returns_a_property_to_its_default(
    http: TestClient, admin: dict[str, str]
) -> None:
    env = arrange(http, admin, "redshift")
    assert http.post(env.base, json=env.body, headers=admin).status_code == 201
    url = f"{env.base}/prod"
    override = {"connectionName": "finance-dwh-prod"}
    staging = {"defaultSchema": {"value": "staging"}}
    resp = http.patch(
        url,
        json={"connectionOverrides": [{**override, "connectionProperties": staging}]},
        headers=admin,
    )
    assert resp.json()["connectionOverrides"][0]["connectionProperties"]["defaultSchema"] == {
        "value": "staging"
    }
    reset = {"defaultSchema": None, "defaultStorageLocation": None}
    resp = http.patch(
        url,
        json={"connectionOverrides": [{**override, "connectionProperties": reset}]},
        headers=admin,
    )
    assert resp.status_code == 200, resp.text
    stored = resp.json()["connectionOverrides"][0]["connectionProperties"]
    assert stored["defaultSchema"] == {"value": "public"}
    assert "defaultStorageLocation" not in stored
    assert stored["url"] == REDSHIFT_PROPERTIES["url"]


def test_patch_validation_changes_nothing(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "redshift")
    assert http.post(env.base, json=env.body, headers=admin).status_code == 201
    url = f"{env.base}/prod"
    before = http.get(url, headers=admin).json()
    override = env.body["connectionOverrides"][0]
    cases = [
        ({"name": "renamed"}, "name"),
        ({"name": None}, "name"),
        ({"defaultAgentId": None}, "defaultAgentId"),
        ({"defaultAgentId": UNKNOWN_UUID}, "defaultAgentId"),
        ({"defaultUserAccessLevel": None}, "defaultUserAccessLevel"),
        ({"defaultUserAccessLevel": "owner"}, "defaultUserAccessLevel"),
        ({"defaultConnections": None}, "defaultConnections"),
        ({"defaultConnections": {"DWH": {"redshift": "nope"}}}, "defaultConnections.DWH.redshift"),
        ({"connectionOverrides": None}, "connectionOverrides"),
        ({"connectionOverrides": []}, "connectionOverrides"),
        ({"displayName": ""}, "displayName"),
        ({"description": "d" * 2001}, "description"),
        ({"description": "nul\x00"}, "description"),
        (
            {"connectionOverrides": [{**override, "connectionName": "x"}]},
            "connectionOverrides[0].connectionName",
        ),
        (
            {"connectionOverrides": [_override(override, "port", {"value": "0"})]},
            f"{PROPS}.port.value",
        ),
        ({"connectionOverrides": [_override(override, "url", None)]}, f"{PROPS}.url"),
        ({"connectionOverrides": [_override(override, "pasword", None)]}, f"{PROPS}.pasword"),
        (
            {"connectionOverrides": [_override(override, "port", {"value": 1})]},
            f"{PROPS}.port.value",
        ),
        ({"connectionOverrides": [_override(override, "port", {})]}, f"{PROPS}.port"),
        (
            {"connectionOverrides": [_override(override, "password", {"value": ""})]},
            f"{PROPS}.password.value",
        ),
        (
            {"connectionOverrides": [_override(override, "password", {"secretName": CANARY})]},
            f"{PROPS}.password.secretName",
        ),
    ]
    for body, field in cases:
        resp = http.patch(url, json=body, headers=admin)
        assert _clean_paths(assert_problem(resp, 400, field))
        assert CANARY not in resp.text
    assert http.get(url, headers=admin).json() == before
    assert _actions(session_factory) == ["environment.created"]
    for missing in ["nope", "prod%00", "%20prod"]:
        assert_problem(http.get(f"{env.base}/{missing}", headers=admin), 404)
        assert_problem(http.patch(f"{env.base}/{missing}", json={}, headers=admin), 404)
        assert_problem(http.delete(f"{env.base}/{missing}", headers=admin), 404)


def test_patch_moves_to_another_connection(http: TestClient, admin: dict[str, str]) -> None:
    env = arrange(http, admin, "redshift")
    assert http.post(env.base, json=env.body, headers=admin).status_code == 201
    url = f"{env.base}/prod"
    resp = http.post(
        f"/v1/projects/{env.project_id}/data-platform-connections",
        json={**example("03-create-connection-redshift"), "name": "finance-dwh-2"},
        headers=admin,
    )
    assert resp.status_code == 201
    moved = {"defaultConnections": {"DWH": {"redshift": "finance-dwh-2"}}}
    # the override must name the same connection as defaultConnections
    stale = {**moved, "connectionOverrides": env.body["connectionOverrides"]}
    assert_problem(
        http.patch(url, json=stale, headers=admin), 400, "connectionOverrides[0].connectionName"
    )
    resp = http.patch(url, json=moved, headers=admin)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["defaultConnections"] == {"DWH": {"redshift": "finance-dwh-2"}}
    assert got["connectionOverrides"][0]["connectionName"] == "finance-dwh-2"
    assert got["connectionOverrides"][0]["connectionProperties"] == REDSHIFT_PROPERTIES
    # the first connection is free again
    assert (
        http.delete(
            f"/v1/projects/{env.project_id}/data-platform-connections/finance-dwh-prod",
            headers=admin,
        ).status_code
        == 204
    )


def test_patch_null_removes_an_optional_sensitive_property(
    http: TestClient, admin: dict[str, str]
) -> None:
    env = arrange(http, admin, "snowflake")
    _secret_reference(http, admin, env.project_id, "growth-passphrase", env.agent_id)
    body = _prop(env.body, "passphrase", {"secretName": "growth-passphrase", "secretKey": "p"})
    assert http.post(env.base, json=body, headers=admin).status_code == 201
    url = f"{env.base}/prod"
    override = copy.deepcopy(body["connectionOverrides"][0])
    del override["connectionProperties"]["privateKey"]
    del override["connectionProperties"]["passphrase"]
    kept = http.patch(url, json={"connectionOverrides": [override]}, headers=admin).json()
    props = kept["connectionOverrides"][0]["connectionProperties"]
    assert props["passphrase"] == {"secretName": "growth-passphrase", "secretKey": "p"}
    assert props["privateKey"] == SNOWFLAKE_PROPERTIES["privateKey"]
    override["connectionProperties"]["passphrase"] = None
    resp = http.patch(url, json={"connectionOverrides": [override]}, headers=admin)
    assert resp.status_code == 200, resp.text
    props = resp.json()["connectionOverrides"][0]["connectionProperties"]
    assert "passphrase" not in props and "privateKey" in props
    # a required one cannot be removed
    override["connectionProperties"]["privateKey"] = None
    assert_problem(
        http.patch(url, json={"connectionOverrides": [override]}, headers=admin),
        400,
        f"{PROPS}.privateKey",
    )


def test_connection_in_use_cannot_be_deleted(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "snowflake")
    assert http.post(env.base, json=env.body, headers=admin).status_code == 201
    url = f"/v1/projects/{env.project_id}/data-platform-connections/growth-dwh-prod"
    problem = assert_problem(http.delete(url, headers=admin), 409)
    assert "prod" in problem["detail"]
    assert _count(session_factory, Connection) == 1
    assert http.delete(f"{env.base}/prod", headers=admin).status_code == 204
    assert http.delete(url, headers=admin).status_code == 204


def test_environment_deleted_with_its_project(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "redshift")
    other = arrange(http, admin, "snowflake")
    assert http.post(env.base, json=env.body, headers=admin).status_code == 201
    assert http.post(other.base, json=other.body, headers=admin).status_code == 201
    assert http.delete(f"/v1/projects/{env.project_id}", headers=admin).status_code == 204
    assert _count(session_factory) == 1
    assert _count(session_factory, Connection) == 1
    assert http.get(f"{other.base}/prod", headers=admin).status_code == 200
    # the agent is free to go once no environment uses it
    assert http.delete(f"/v1/agents/{env.agent_id}", headers=admin).status_code == 202


def test_permissions(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "redshift")
    assert http.post(env.base, json=env.body, headers=admin).status_code == 201
    url = f"{env.base}/prod"
    viewer = member_auth(http, session_factory, env.project_id, "VIEWER")
    assert http.get(url, headers=viewer).status_code == 200
    assert http.get(env.base, headers=viewer).json()["total"] == 1
    assert_problem(http.post(env.base, json={**env.body, "name": "v"}, headers=viewer), 403)
    assert_problem(http.patch(url, json={"description": "v"}, headers=viewer), 403)
    assert_problem(http.delete(url, headers=viewer), 403)
    outsider = member_auth(
        http, session_factory, arrange(http, admin, "snowflake").project_id, "OWNER"
    )
    assert_problem(http.get(url, headers=outsider), 404)
    assert_problem(http.get(f"/v1/projects/{UNKNOWN_UUID}/environments", headers=admin), 404)
    contributor = member_auth(http, session_factory, env.project_id, "CONTRIBUTOR")
    resp = http.patch(url, json={"description": "c"}, headers=contributor)
    assert resp.status_code == 200 and resp.json()["description"] == "c"
    assert _count(session_factory) == 1


def test_pagination(http: TestClient, admin: dict[str, str]) -> None:
    env = arrange(http, admin, "redshift")
    names = [f"env{i}" for i in range(5)]
    for name in names:
        assert (
            http.post(env.base, json={**env.body, "name": name}, headers=admin).status_code == 201
        )
    seen = []
    for page in range(3):
        body = http.get(env.base, params={"page": page, "size": 2}, headers=admin).json()
        assert body["total"] == 5 and body["page"] == page and body["size"] == 2
        seen += [e["name"] for e in body["results"]]
    assert seen == names
    assert_problem(http.get(env.base, params={"page": -1}, headers=admin), 400, "page")
