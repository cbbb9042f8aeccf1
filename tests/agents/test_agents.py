"""Agents (docs/api.md, Agents) through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.agents import service
from stead.agents.models import Agent, AgentAllowedProject
from stead.audit.models import AuditEvent
from stead.connections.models import Connection
from stead.db import session_scope
from stead.environments.models import Environment
from stead.errors import BadRequest
from stead.projects.models import Project
from stead.secrets.store import rotate_master_key
from stead.settings import Settings
from tests.support.factories import (
    assert_problem,
    auth,
    create_agent,
    example,
    hosted_agent_id,
)

UNKNOWN_ID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"


def _count(factory: sessionmaker[Session], model: Any = Agent) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _actions(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.like("agent.%"))
                .order_by(AuditEvent.id)
            )
        )


def _project(
    http: TestClient, headers: dict[str, str], name: str = "finance", deployment: str = "HYBRID"
) -> str:
    body = {"name": name, "warehouse": "REDSHIFT", "agentDeploymentType": deployment}
    resp = http.post("/v1/projects", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


def _environment(factory: sessionmaker[Session], project_id: str, agent_id: str) -> None:
    """An environment row using ``agent_id`` (the environments API is another module's)."""
    with session_scope(factory, write=True) as session:
        connection = Connection(
            project_id=project_id,
            name="dwh",
            name_key="dwh",
            platform_connection_type="DWH",
            auth_provider="REDSHIFT",
            auth_type="PASSWORD",
        )
        session.add(connection)
        session.flush()
        session.add(
            Environment(
                project_id=project_id,
                connection_id=connection.id,
                name="prod",
                name_key="prod",
                display_name="prod",
                default_agent_id=agent_id,
                default_user_access_level="default",
                connection_properties={},
            )
        )


def test_create_read_list_delete(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    resp = http.post("/v1/agents", json=example("02-create-agent"), headers=admin)
    assert resp.status_code == 201, resp.text
    agent = resp.json()
    agent_id = agent["agentId"]
    assert resp.headers["location"] == f"/v1/agents/{agent_id}"
    assert agent == {
        "agentId": agent_id,
        "name": "eu-west-1 fargate agent",
        "description": "Customer-hosted agent in the data VPC.",
        "agentType": "data_productivity_cloud",
        "cloudProvider": "aws",
        "deployment": "fargate",
        "agentStatus": "stopped",
        "connected": False,
        "enableAutoUpdates": True,
        "restrictedAccess": False,
        "trackName": "current",
        "hosted": False,
        "clientId": agent["clientId"],
        "createdAt": agent["createdAt"],
        "updatedAt": agent["updatedAt"],
        "versionDetails": {"trackName": "current", "currentVersion": None},
    }
    assert str(uuid.UUID(agent["clientId"])) == agent["clientId"]
    assert agent["createdAt"].endswith("Z") and len(agent["createdAt"]) == 24
    assert http.get(f"/v1/agents/{agent_id}", headers=admin).json() == agent
    assert http.get(f"/dpc/v1/agents/{agent_id.upper()}", headers=admin).json() == agent

    listed = http.get("/v1/agents", headers=admin).json()
    assert listed["total"] == 2
    hosted, mine = listed["results"]
    assert hosted["agentId"] == hosted_agent_id(session_factory)
    assert hosted["hosted"] is True and hosted["agentStatus"] == "running"
    assert mine == agent

    deleted = http.delete(f"/v1/agents/{agent_id}", headers=admin)
    assert deleted.status_code == 202 and deleted.content == b""
    assert_problem(http.get(f"/v1/agents/{agent_id}", headers=admin), 404)
    assert _actions(session_factory) == ["agent.created", "agent.deleted"]
    # a deleted name can be reused
    assert (
        http.post("/v1/agents", json=example("02-create-agent"), headers=admin).status_code == 201
    )


def test_enums_are_case_insensitive_and_defaults(http: TestClient, admin: dict[str, str]) -> None:
    azure = create_agent(
        http,
        admin,
        agentType="Data_Productivity_Cloud",
        cloudProvider="AZURE",
        deployment="Container App",
    )
    assert (azure["agentType"], azure["cloudProvider"], azure["deployment"]) == (
        "data_productivity_cloud",
        "azure",
        "container app",
    )
    gcp = create_agent(
        http,
        admin,
        agentType="STREAMING",
        cloudProvider="google_cloud",
        deployment="gce",
        enableAutoUpdates=False,
    )
    assert (gcp["cloudProvider"], gcp["deployment"]) == ("gcp", "gce")
    snowflake = create_agent(http, admin, cloudProvider="snowflake", deployment="native app")
    assert snowflake["deployment"] == "native app"

    minimal = {
        "name": "minimal",
        "agentType": "data_productivity_cloud",
        "cloudProvider": "aws",
        "deployment": "eks",
    }
    got = http.post("/v1/agents", json=minimal, headers=admin).json()
    assert got["enableAutoUpdates"] is True and got["restrictedAccess"] is False
    assert got["description"] is None and got["trackName"] is None
    streaming = http.post(
        "/v1/agents", json={**minimal, "name": "stream", "agentType": "streaming"}, headers=admin
    ).json()
    assert streaming["enableAutoUpdates"] is False


def test_validation_rules(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    good = example("02-create-agent")
    streaming = {**good, "agentType": "streaming", "enableAutoUpdates": False}
    cases = [
        ({**good, "name": ""}, "name"),
        ({**good, "name": " padded"}, "name"),
        ({**good, "name": "a/b"}, "name"),
        ({**good, "name": "x" * 256}, "name"),
        ({**good, "description": "d" * 2001}, "description"),
        ({**good, "description": "nul\u0000byte"}, "description"),
        ({**good, "agentType": "batch"}, "agentType"),
        ({**good, "cloudProvider": "oracle"}, "cloudProvider"),
        ({**good, "deployment": "lambda"}, "deployment"),
        ({**good, "deployment": "aks"}, "deployment"),  # an Azure deployment on AWS
        ({**good, "cloudProvider": "gcp", "deployment": "fargate"}, "deployment"),
        ({**good, "cloudProvider": "azure", "deployment": "aci"}, "deployment"),  # streaming only
        ({**good, "cloudProvider": "gcp", "deployment": "gce"}, "deployment"),  # streaming only
        ({**streaming, "cloudProvider": "azure", "deployment": "container app"}, "deployment"),
        ({**streaming, "cloudProvider": "snowflake", "deployment": "native app"}, "cloudProvider"),
        ({**streaming, "enableAutoUpdates": True}, "enableAutoUpdates"),
        ({**good, "enableAutoUpdates": "sometimes"}, "enableAutoUpdates"),
        ({**good, "restrictedAccess": [True]}, "restrictedAccess"),
        ({**good, "trackName": ""}, "trackName"),
        ({**good, "trackName": "t" * 65}, "trackName"),
        ({**good, "trackName": "\u0000"}, "trackName"),
        ({k: v for k, v in good.items() if k != "deployment"}, "deployment"),
        ({k: v for k, v in good.items() if k != "name"}, "name"),
        ({**good, "agentTyp": "streaming"}, "agentTyp"),
        ({**good, "hosted": True}, "hosted"),
    ]
    for body, field in cases:
        assert_problem(http.post("/v1/agents", json=body, headers=admin), 400, field)
    assert_problem(
        http.post(
            "/v1/agents", content=b"{", headers={**admin, "content-type": "application/json"}
        ),
        400,
    )
    assert _count(session_factory) == 1  # the hosted agent only
    assert _actions(session_factory) == []


def test_duplicate_name_is_case_insensitive(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    first = create_agent(http, admin, name="Straße")
    body = assert_problem(
        http.post(
            "/v1/agents", json={**example("02-create-agent"), "name": "STRASSE"}, headers=admin
        ),
        409,
        "name",
    )
    assert body["existingId"] == first["agentId"]
    hosted = assert_problem(
        http.post(
            "/v1/agents", json={**example("02-create-agent"), "name": "HOSTED AGENT"}, headers=admin
        ),
        409,
        "name",
    )
    assert hosted["existingId"] == hosted_agent_id(session_factory)
    assert _count(session_factory) == 2


def test_member_reads_but_cannot_change(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    agent_id = create_agent(http, admin)["agentId"]
    member = auth(http, session_factory, "MEMBER")
    assert http.get("/v1/agents", headers=member).json()["total"] == 2
    assert http.get(f"/v1/agents/{agent_id}", headers=member).status_code == 200
    assert http.get(f"/v1/agents/{agent_id}/allowlist", headers=member).json() == {"projects": {}}
    before = _actions(session_factory)
    assert_problem(http.post("/v1/agents", json=example("02-create-agent"), headers=member), 403)
    assert_problem(http.delete(f"/v1/agents/{agent_id}", headers=member), 403)
    assert_problem(http.patch(f"/v1/agents/{agent_id}", json={"name": "x"}, headers=member), 403)
    assert_problem(http.get(f"/v1/agents/{agent_id}/credentials", headers=member), 403)
    assert_problem(
        http.put(f"/v1/agents/{agent_id}/allowlist", json={"projects": {}}, headers=member), 403
    )
    assert_problem(
        http.patch(
            f"/v1/agents/{agent_id}/allowlist", json={"projects": {UNKNOWN_ID: {}}}, headers=member
        ),
        403,
    )
    assert_problem(
        http.post(
            f"/v1/agents/{agent_id}/credentials", json={"action": "SECRET_REFRESH"}, headers=member
        ),
        403,
    )
    assert _count(session_factory) == 2 and _actions(session_factory) == before
    # an ADMIN may manage agents
    admin_client = auth(http, session_factory, "ADMIN")
    assert create_agent(http, admin_client)["hosted"] is False
    assert_problem(http.get("/v1/agents"), 401)


def test_malformed_and_unknown_ids(http: TestClient, admin: dict[str, str]) -> None:
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "", None),
        ("DELETE", "", None),
        ("PATCH", "", {"name": "renamed"}),
        ("GET", "/allowlist", None),
        ("PUT", "/allowlist", {"projects": {}}),
        ("PATCH", "/allowlist", {"projects": {UNKNOWN_ID: {}}}),
        ("GET", "/credentials", None),
        ("POST", "/credentials", {"action": "SECRET_REFRESH"}),
    ]
    for method, suffix, body in calls:
        bad = http.request(method, f"/v1/agents/not-a-uuid{suffix}", json=body, headers=admin)
        assert_problem(bad, 400, "agentId")
        unknown = http.request(method, f"/v1/agents/{UNKNOWN_ID}{suffix}", json=body, headers=admin)
        assert_problem(unknown, 404)


def test_allow_list(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    agent_id = create_agent(http, admin, restrictedAccess=True)["agentId"]
    url = f"/v1/agents/{agent_id}/allowlist"
    assert http.get(url, headers=admin).json() == {"projects": {}}
    p1, p2 = _project(http, admin), _project(http, admin, "growth")
    body = {"projects": {p1.upper(): {"environments": ["dev", "prod", "PROD", "dev"]}, p2: {}}}
    resp = http.put(url, json=body, headers=admin)
    assert resp.status_code == 200, resp.text
    expected = {"projects": {p1: {"environments": ["dev", "prod"]}, p2: {"environments": []}}}
    assert resp.json() == expected
    assert http.get(url, headers=admin).json() == expected

    cases = [
        ({"projects": {UNKNOWN_ID: {}}}, f"projects.{UNKNOWN_ID}"),
        ({"projects": {"not-a-uuid": {}}}, "projects.not-a-uuid"),
        ({"projects": {p1: {"environments": [" dev"]}}}, f"projects.{p1}.environments[0]"),
        ({"projects": {p1: {"environment": []}}}, f"projects.{p1}.environment"),
        ({"projects": {p1: {"environments": "dev"}}}, f"projects.{p1}.environments"),
        ({"project": {}}, "project"),
        ({}, "projects"),
    ]
    for bad, field in cases:
        assert_problem(http.put(url, json=bad, headers=admin), 400, field)
    both = assert_problem(
        http.put(url, json={"projects": {p1: {}, UNKNOWN_ID: {}, "x": {}}}, headers=admin), 400
    )
    assert sorted(v.split(":")[0] for v in both["violations"]) == [
        f"projects.{UNKNOWN_ID}",
        "projects.x",
    ]
    assert http.get(url, headers=admin).json() == expected  # nothing changed

    # replacing, not merging; a deleted project leaves the list
    assert http.put(
        url, json={"projects": {p2: {"environments": ["qa"]}}}, headers=admin
    ).json() == {"projects": {p2: {"environments": ["qa"]}}}
    assert http.delete(f"/v1/projects/{p2}", headers=admin).status_code == 204
    assert http.get(url, headers=admin).json() == {"projects": {}}
    assert _actions(session_factory) == [
        "agent.created",
        "agent.allowlist_updated",
        "agent.allowlist_updated",
    ]


def _agent_row(factory: sessionmaker[Session], agent_id: str) -> Agent:
    with factory() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        return agent


def test_credentials_are_readable_sealed_and_audited(
    http: TestClient,
    admin: dict[str, str],
    settings: Settings,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    created = create_agent(http, admin)
    agent_id = created["agentId"]
    url = f"/v1/agents/{agent_id}/credentials"
    # credentials exist from the agent's creation: no refresh needed before the first read
    resp = http.get(url, headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    creds = resp.json()
    assert set(creds) == {"clientId", "clientSecret"}
    client_id, canary = creds["clientId"], creds["clientSecret"]
    assert client_id == created["clientId"] and len(canary) >= 32
    assert http.get(f"/dpc/v1/agents/{agent_id}/credentials", headers=admin).json() == creds

    for text in (
        http.get(f"/v1/agents/{agent_id}", headers=admin).text,
        http.get("/v1/agents", headers=admin).text,
        http.get(f"/v1/agents/{agent_id}/allowlist", headers=admin).text,
        http.get("/v1/audit-events", headers=admin).text,
    ):
        assert canary not in text
    agent = _agent_row(session_factory, agent_id)
    stored = [getattr(agent, c.key) for c in Agent.__table__.columns]
    assert agent.secret_ciphertext is not None and agent.secret_key_id is not None
    assert all(
        canary.encode() not in value if isinstance(value, bytes) else canary not in str(value)
        for value in stored
    )
    with session_factory() as session:
        assert all(canary not in str(e.details) for e in session.scalars(select(AuditEvent)))
    assert canary not in caplog.text

    # a refresh keeps the client id; the new secret is what a read shows from then on
    again = http.post(url, json={"action": "secret_refresh"}, headers=admin)
    assert again.status_code == 200 and again.headers["cache-control"] == "no-store"
    assert again.json()["clientId"] == client_id and again.json()["clientSecret"] != canary
    assert http.get(url, headers=admin).json() == again.json()

    # a master key rotation re-wraps the agent's data key; the secret reads the same
    rotation = rotate_master_key(settings, session_factory)
    assert rotation.rewrapped >= 1
    assert _agent_row(session_factory, agent_id).secret_key_id == rotation.key_id
    assert http.get(url, headers=admin).json() == again.json()
    assert _actions(session_factory) == [
        "agent.created",
        "agent.credentials_read",
        "agent.credentials_read",
        "agent.credentials_refreshed",
        "agent.credentials_read",
        "agent.credentials_read",
    ]


def test_credentials_bound_to_their_agent_and_issued_when_missing(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    first, second = create_agent(http, admin)["agentId"], create_agent(http, admin)["agentId"]
    # a sealed secret copied onto another agent's row fails authentication: 503, nothing shown
    source = _agent_row(session_factory, first)
    with session_scope(session_factory, write=True) as session:
        target = session.get(Agent, second)
        assert target is not None
        target.secret_key_id = source.secret_key_id
        target.secret_wrapped_key = source.secret_wrapped_key
        target.secret_nonce = source.secret_nonce
        target.secret_ciphertext = source.secret_ciphertext
    assert_problem(http.get(f"/v1/agents/{second}/credentials", headers=admin), 503)

    # an agent without a sealed secret (made before secrets were sealed) is issued one
    with session_scope(session_factory, write=True) as session:
        target = session.get(Agent, second)
        assert target is not None
        target.secret_key_id = target.secret_wrapped_key = None
        target.secret_nonce = target.secret_ciphertext = None
    before = len(_actions(session_factory))
    issued = http.get(f"/v1/agents/{second}/credentials", headers=admin)
    assert issued.status_code == 200 and issued.json()["clientSecret"]
    assert http.get(f"/v1/agents/{second}/credentials", headers=admin).json() == issued.json()
    assert _actions(session_factory)[before:] == [
        "agent.credentials_refreshed",
        "agent.credentials_read",
        "agent.credentials_read",
    ]
    hosted = hosted_agent_id(session_factory)
    assert_problem(http.get(f"/v1/agents/{hosted}/credentials", headers=admin), 409)


def test_credentials_refresh_rejects_bad_bodies(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    agent_id = create_agent(http, admin)["agentId"]
    url = f"/v1/agents/{agent_id}/credentials"
    for bad in ({"action": "ROTATE"}, {}, {"action": "SECRET_REFRESH", "force": True}):
        field = next(iter(bad.keys() - {"action"}), "action")
        assert_problem(http.post(url, json=bad, headers=admin), 400, field)
    hosted = hosted_agent_id(session_factory)
    assert_problem(
        http.post(
            f"/v1/agents/{hosted}/credentials", json={"action": "SECRET_REFRESH"}, headers=admin
        ),
        409,
    )
    assert _actions(session_factory) == ["agent.created"]


def test_delete_while_used(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    assert_problem(
        http.delete(f"/v1/agents/{hosted_agent_id(session_factory)}", headers=admin), 409
    )
    project_id = _project(http, admin)
    env_agent = create_agent(http, admin, restrictedAccess=True)["agentId"]
    http.put(
        f"/v1/agents/{env_agent}/allowlist", json={"projects": {project_id: {}}}, headers=admin
    )
    _environment(session_factory, project_id, env_agent)
    assert_problem(http.delete(f"/v1/agents/{env_agent}", headers=admin), 409)

    ref_agent = create_agent(http, admin)["agentId"]
    created = http.post(
        f"/v1/projects/{project_id}/secret-references/finance-prod-redshift",
        json=example("04-create-secret-reference-aws", agentId=ref_agent, projectId=project_id),
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert_problem(http.delete(f"/v1/agents/{ref_agent}", headers=admin), 409)
    assert _count(session_factory) == 3
    assert _count(session_factory, AgentAllowedProject) == 1

    assert (
        http.delete(
            f"/v1/projects/{project_id}/secret-references/finance-prod-redshift", headers=admin
        ).status_code
        == 204
    )
    assert http.delete(f"/v1/agents/{ref_agent}", headers=admin).status_code == 202
    assert http.delete(f"/v1/projects/{project_id}", headers=admin).status_code == 204
    assert http.delete(f"/v1/agents/{env_agent}", headers=admin).status_code == 202
    assert _count(session_factory) == 1
    assert _count(session_factory, AgentAllowedProject) == 0


def test_pagination(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    ids = [hosted_agent_id(session_factory)]
    ids += [create_agent(http, admin)["agentId"] for _ in range(6)]
    seen = []
    for page in range(3):
        body = http.get("/v1/agents", params={"page": page, "size": 3}, headers=admin).json()
        assert body["total"] == 7 and body["page"] == page and body["size"] == 3
        seen += [a["agentId"] for a in body["results"]]
    assert seen == ids
    assert (
        http.get("/v1/agents", params={"page": 3, "size": 3}, headers=admin).json()["results"] == []
    )
    for params, field in [({"size": 0}, "size"), ({"size": 101}, "size"), ({"page": -1}, "page")]:
        assert_problem(http.get("/v1/agents", params=params, headers=admin), 400, field)


def test_check_usable(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    hybrid_id = _project(http, admin)
    saas_id = _project(http, admin, "saas", "FULL_SAAS")
    customer = create_agent(http, admin)["agentId"]
    restricted = create_agent(http, admin, restrictedAccess=True)["agentId"]
    hosted = hosted_agent_id(session_factory)
    with session_factory() as session:
        account_id = session.scalars(select(Project.account_id)).first()
        assert account_id is not None
        hybrid, saas = session.get(Project, hybrid_id), session.get(Project, saas_id)
        assert hybrid is not None and saas is not None
        assert hybrid.agent_deployment_type == "HYBRID"
        assert saas.agent_deployment_type == "FULL_SAAS"

        def check(agent_id: str, project: Project) -> str:
            return service.check_usable(
                session, account_id=account_id, agent_id=agent_id, project=project
            ).id

        assert check(customer.upper(), hybrid) == customer
        assert check(hosted, saas) == hosted
        for agent_id, project, message in [
            (UNKNOWN_ID, hybrid, "no agent"),
            ("not-a-uuid", hybrid, "no agent"),
            (hosted, hybrid, "HYBRID"),
            (customer, saas, "FULL_SAAS"),
            (restricted, hybrid, "restricted"),
        ]:
            with pytest.raises(BadRequest) as raised:
                check(agent_id, project)
            assert len(raised.value.violations) == 1
            assert raised.value.violations[0].startswith("defaultAgentId: ")
            assert message in raised.value.violations[0]
        with pytest.raises(BadRequest):
            service.check_usable(session, account_id=UNKNOWN_ID, agent_id=customer, project=hybrid)
    http.put(
        f"/v1/agents/{restricted}/allowlist", json={"projects": {hybrid_id: {}}}, headers=admin
    )
    with session_factory() as session:
        assert (
            service.check_usable(
                session, account_id=account_id, agent_id=restricted, project=hybrid
            ).id
            == restricted
        )


def test_deployment_enum_matches_the_deployment_table() -> None:
    from typing import get_args

    from stead.agents.schemas import DEPLOYMENTS, Deployment

    assert set(get_args(get_args(Deployment)[0])) == set(DEPLOYMENTS)


def test_update_answers_202_and_reads_back_what_was_sent(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    agent = create_agent(http, admin)
    url = f"/v1/agents/{agent['agentId']}"
    body = {
        "name": "renamed agent",
        "description": "moved to eu-central-1",
        "trackName": "stable",
        "enableAutoUpdates": False,
        "restrictedAccess": True,
    }
    resp = http.patch(url, json=body, headers=admin)
    assert resp.status_code == 202, resp.text
    read = http.get(url, headers=admin).json()
    assert resp.json() == read
    assert {k: read[k] for k in body} == body
    assert read["versionDetails"]["trackName"] == "stable"
    assert read["clientId"] == agent["clientId"] and read["createdAt"] == agent["createdAt"]
    # a field left out keeps its value; null clears the description
    assert http.patch(url, json={"description": None}, headers=admin).status_code == 202
    after = http.get(url, headers=admin).json()
    assert after["description"] is None and after["name"] == "renamed agent"
    assert http.patch(f"/dpc{url}", json={}, headers=admin).status_code == 202
    cleared = http.patch(url, json={"trackName": None}, headers=admin).json()
    assert cleared["trackName"] is None and cleared["versionDetails"]["trackName"] is None
    after = http.patch(url, json={"trackName": "stable"}, headers=admin).json()

    other = create_agent(http, admin)
    taken = assert_problem(
        http.patch(url, json={"name": other["name"].upper()}, headers=admin), 409
    )
    assert taken["existingId"] == other["agentId"]
    for bad, field in [
        ({"name": None}, "name"),
        ({"name": " padded"}, "name"),
        ({"enableAutoUpdates": None}, "enableAutoUpdates"),
        ({"restrictedAccess": "maybe"}, "restrictedAccess"),
        ({"restrictedAccess": 0}, "restrictedAccess"),
        ({"enableAutoUpdates": "false"}, "enableAutoUpdates"),
        ({"trackName": ""}, "trackName"),
        ({"agentType": "streaming"}, "agentType"),
        ({"deployment": "eks"}, "deployment"),
    ]:
        assert_problem(http.patch(url, json=bad, headers=admin), 400, field)
    streaming = create_agent(http, admin, agentType="streaming", enableAutoUpdates=False)
    assert_problem(
        http.patch(
            f"/v1/agents/{streaming['agentId']}", json={"enableAutoUpdates": True}, headers=admin
        ),
        400,
        "enableAutoUpdates",
    )
    snowflake = create_agent(
        http, admin, cloudProvider="snowflake", deployment="native app", trackName=None
    )
    snowflake_url = f"/v1/agents/{snowflake['agentId']}"
    for field, value in (("enableAutoUpdates", False), ("trackName", "stable")):
        assert_problem(http.patch(snowflake_url, json={field: value}, headers=admin), 400, field)
    assert http.patch(snowflake_url, json={"name": "snow"}, headers=admin).status_code == 202
    hosted = hosted_agent_id(session_factory)
    assert_problem(http.patch(f"/v1/agents/{hosted}", json={"name": "x"}, headers=admin), 409)
    assert http.get(url, headers=admin).json() == after
    assert _actions(session_factory).count("agent.updated") == 6


def test_allow_list_patch_adds(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    agent_id = create_agent(http, admin, restrictedAccess=True)["agentId"]
    url = f"/v1/agents/{agent_id}/allowlist"
    p1, p2, p3 = (_project(http, admin, name) for name in ("finance", "growth", "ops"))
    http.put(url, json={"projects": {p1: {"environments": ["dev"]}, p2: {}}}, headers=admin)
    resp = http.patch(
        url,
        json={"projects": {p1: {"environments": ["DEV", "prod"]}, p2: {"environments": ["qa"]}}},
        headers=admin,
    )
    assert resp.status_code == 200, resp.text
    expected = {
        "projects": {
            p1: {"environments": ["dev", "prod"]},
            p2: {"environments": []},  # already all of its environments
        }
    }
    assert resp.json() == expected
    added = http.patch(url, json={"projects": {p3.upper(): {}, p1: {}}}, headers=admin).json()
    assert added == {
        "projects": {p1: {"environments": []}, p2: {"environments": []}, p3: {"environments": []}}
    }
    assert http.get(url, headers=admin).json() == added
    for bad, field in [
        ({"projects": {}}, "projects"),
        ({"projects": {UNKNOWN_ID: {}}}, f"projects.{UNKNOWN_ID}"),
        ({"projects": {"not-a-uuid": {}}}, "projects.not-a-uuid"),
    ]:
        assert_problem(http.patch(url, json=bad, headers=admin), 400, field)
    assert http.get(url, headers=admin).json() == added
    assert _actions(session_factory).count("agent.allowlist_updated") == 3
