"""``POST /v1/provisioning``: the documented flow in one request and one transaction, on SQLite
and PostgreSQL; a git repository on a bare repository served over real HTTP. A failure at any
step leaves no row behind in any table, and the secrets given never reach the database in clear,
a log line or a response."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from tests.support.factories import assert_problem, auth, create_agent
from tests.support.git_server import GitServer, git_server_session  # noqa: F401 - fixture
from tests.support.keys import pkcs8, rsa_key
from tests.support.postgres import free_port
from tests.support.rows import all_text, row_counts

TOKEN = "Git-Provider-Access-Token"
CANARY_PASSWORD = "canary-pw-7f3a1c9e5b"
CANARY_TOKEN = "canary-token-2d8e4b6a0c"


@pytest.fixture
def git_server(git_server_session: GitServer) -> GitServer:  # noqa: F811 - fixture use
    """The git HTTP server, its tokens forgotten for this test."""
    git_server_session.reset()
    return git_server_session


@pytest.fixture
def logs(http: TestClient, caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record at DEBUG and above (the app's logging setup replaces the root
    handlers, so caplog's handler is put back once the app exists)."""
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    yield caplog


def redshift_body(agent_id: str, name: str) -> dict[str, Any]:
    """A Redshift project whose password is a hosted JSON secret (the README's step 4)."""
    return {
        "project": {"name": name, "warehouse": "redshift", "agentDeploymentType": "HYBRID"},
        "connection": {"name": "finance-dwh-prod"},
        "secret": {
            "name": "finance-prod-redshift",
            "type": "JSON",
            "value": f'{{"password": "{CANARY_PASSWORD}"}}',
        },
        "environment": {
            "name": "prod",
            "displayName": "Production",
            "defaultAgentId": agent_id,
            "defaultUserAccessLevel": "runner",
            "connectionProperties": {
                "url": {"value": "finance.abc123.eu-west-1.redshift.amazonaws.com"},
                "port": {"value": "5439"},
                "username": {"value": "svc_finance"},
                "password": {"secretName": "finance-prod-redshift", "secretKey": "password"},
                "defaultDatabase": {"value": "finance"},
            },
        },
    }


def snowflake_body(agent_id: str, name: str) -> dict[str, Any]:
    """A Snowflake project whose private key lives in AWS Secrets Manager, in the project's
    default scope (``stead/{projectId}/``)."""
    return {
        "project": {"name": name, "warehouse": "SNOWFLAKE", "agentDeploymentType": "HYBRID"},
        "connection": {"name": "growth-dwh-prod"},
        "secretReference": {
            "name": "growth-prod-private-key",
            "agentType": "AWS",
            "secretName": "stead/{projectId}/growth/snowflake-key",
        },
        "environment": {
            "name": "prod",
            "defaultAgentId": agent_id,
            "defaultUserAccessLevel": "default",
            "connectionProperties": {
                "account": {"value": "https://acmeorg-growth.snowflakecomputing.com"},
                "username": {"value": "SVC_GROWTH"},
                "privateKey": {"secretName": "growth-prod-private-key"},
                "defaultWarehouse": {"value": "TRANSFORM_WH"},
            },
        },
    }


def test_redshift_with_a_hosted_secret_and_a_git_repository(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    session_factory: sessionmaker[Session],
    logs: pytest.LogCaptureFixture,
) -> None:
    agent_id = create_agent(http, admin)["agentId"]
    repo = f"finance-{uuid.uuid4().hex[:8]}"
    git_server.create_repo(repo, head="main", branches=["main"])
    git_server.add_token(CANARY_TOKEN, read=[repo])
    body = redshift_body(agent_id, "Finance")
    remote = f"{git_server.url}/{repo}.git"
    body["repository"] = {
        "provider": "git",
        "repositoryName": "finance-pipelines",
        "providerParameters": {"url": remote},
    }
    resp = http.post("/v1/provisioning", json=body, headers={**admin, TOKEN: CANARY_TOKEN})
    assert resp.status_code == 201, resp.text
    result = resp.json()
    project_id = result["projectId"]
    assert resp.headers["Location"] == f"/v1/projects/{project_id}"
    assert result["connectionName"] == "finance-dwh-prod"
    assert result["secretName"] == "finance-prod-redshift"
    assert result["environmentName"] == "prod"
    assert result["repository"]["defaultBranch"] == "main"

    base = f"/v1/projects/{project_id}"
    project = http.get(base, headers=admin).json()
    assert (project["name"], project["warehouse"], project["agentDeploymentType"]) == (
        "Finance",
        "REDSHIFT",
        "HYBRID",
    )
    connection = http.get(f"{base}/data-platform-connections/finance-dwh-prod", headers=admin)
    assert connection.json()["authType"] == "PASSWORD"
    secrets = http.get(f"{base}/secrets", headers=admin).json()["results"]
    assert [(s["name"], s["type"]) for s in secrets] == [("finance-prod-redshift", "JSON")]
    env = http.get(f"{base}/environments/prod", headers=admin).json()
    assert env["defaultConnections"] == {"DWH": {"redshift": "finance-dwh-prod"}}
    assert env["defaultAgentId"] == agent_id
    assert env["displayName"] == "Production"
    properties = env["connectionOverrides"][0]["connectionProperties"]
    assert properties["password"] == {
        "secretName": "finance-prod-redshift",
        "secretKey": "password",
    }
    assert properties["defaultSchema"] == {"value": "public"}
    repository = http.get(f"{base}/repositories", headers=admin).json()
    assert repository == result["repository"]
    assert repository["cloneUrl"] == remote

    with session_factory() as session:
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.project_id == project_id)
            .order_by(AuditEvent.id)
        ).all()
    assert actions == [
        "project.created",
        "connection.created",
        "secret.created",
        "environment.created",
        "repository.associated",
    ]
    stored = all_text(session_factory)
    logged = "\n".join(r.getMessage() for r in logs.records)
    for canary in (CANARY_PASSWORD, CANARY_TOKEN):
        assert canary not in stored
        assert canary not in logged
        assert canary not in resp.text


def test_snowflake_with_a_secret_reference(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    agent_id = create_agent(http, admin)["agentId"]
    resp = http.post("/v1/provisioning", json=snowflake_body(agent_id, "Growth"), headers=admin)
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["projectId"]
    assert resp.json()["repository"] is None
    base = f"/v1/projects/{project_id}"
    reference = http.get(f"{base}/secret-references/growth-prod-private-key", headers=admin)
    assert reference.status_code == 200, reference.text
    assert reference.json()["secretName"] == f"stead/{project_id}/growth/snowflake-key"
    assert reference.json()["secretReferenceType"] == "PASSWORD"
    env = http.get(f"{base}/environments/prod", headers=admin).json()
    properties = env["connectionOverrides"][0]["connectionProperties"]
    assert properties["account"] == {"value": "acmeorg-growth"}
    assert properties["privateKey"] == {"secretName": "growth-prod-private-key", "secretKey": None}
    connection = http.get(f"{base}/data-platform-connections/growth-dwh-prod", headers=admin)
    assert connection.json()["authType"] == "KEY_PAIR"


def test_an_inline_private_key_is_stored_as_a_hosted_secret(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    agent_id = create_agent(http, admin)["agentId"]
    body = snowflake_body(agent_id, "Growth")
    del body["secretReference"]
    pem = pkcs8(rsa_key())
    body["secret"] = {"name": "growth-key", "type": "PRIVATE_KEY", "value": pem}
    body["environment"]["connectionProperties"]["privateKey"] = {"secretName": "growth-key"}
    resp = http.post("/v1/provisioning", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    body_line = pem.splitlines()[5]
    assert body_line not in all_text(session_factory)
    assert body_line not in resp.text


def _existing_project(http: TestClient, admin: dict[str, str], body: dict[str, Any]) -> None:
    existing = {**body["project"], "name": "Taken"}
    assert http.post("/v1/projects", json=existing, headers=admin).status_code == 201
    body["project"]["name"] = "taken"


def _bad_private_key(http: TestClient, admin: dict[str, str], body: dict[str, Any]) -> None:
    body["secret"] = {"name": "finance-prod-redshift", "type": "PRIVATE_KEY", "value": "nope"}


def _out_of_scope(http: TestClient, admin: dict[str, str], body: dict[str, Any]) -> None:
    del body["secret"]
    body["secretReference"] = {
        "name": "finance-prod-redshift",
        "agentType": "AWS",
        "secretName": "someone-else/redshift",
    }


def _unknown_agent(http: TestClient, admin: dict[str, str], body: dict[str, Any]) -> None:
    body["environment"]["defaultAgentId"] = str(uuid.uuid4())


def _bad_port(http: TestClient, admin: dict[str, str], body: dict[str, Any]) -> None:
    body["environment"]["connectionProperties"]["port"] = {"value": "70000"}


def _unknown_secret(http: TestClient, admin: dict[str, str], body: dict[str, Any]) -> None:
    body["environment"]["connectionProperties"]["password"] = {"secretName": "absent"}


def _unreachable_repository(http: TestClient, admin: dict[str, str], body: dict[str, Any]) -> None:
    body["repository"] = {
        "provider": "git",
        "repositoryName": "finance-pipelines",
        "providerParameters": {"url": f"http://127.0.0.1:{free_port()}/nothing.git"},
    }


def _no_token(http: TestClient, admin: dict[str, str], body: dict[str, Any]) -> None:
    _unreachable_repository(http, admin, body)
    body["noToken"] = True


FAILURES = {
    "project name taken": (_existing_project, 409, "project.name"),
    "hosted secret invalid": (_bad_private_key, 400, "secret.value"),
    "secret outside the scope": (_out_of_scope, 403, "secretReference.secretName"),
    "unknown agent": (_unknown_agent, 400, "environment.defaultAgentId"),
    "bad property": (_bad_port, 400, "environment.connectionProperties.port.value"),
    "unknown secret": (
        _unknown_secret,
        400,
        "environment.connectionProperties.password.secretName",
    ),
    "repository unreachable": (
        _unreachable_repository,
        502,
        "repository",
    ),
    "token missing": (_no_token, 400, TOKEN),
}


@pytest.mark.parametrize("case", list(FAILURES), ids=list(FAILURES))
def test_a_failing_step_leaves_nothing(
    case: str,
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    logs: pytest.LogCaptureFixture,
) -> None:
    arrange, status, field = FAILURES[case]
    agent_id = create_agent(http, admin)["agentId"]
    body = redshift_body(agent_id, "Finance")
    arrange(http, admin, body)
    headers = dict(admin) if body.pop("noToken", False) else {**admin, TOKEN: CANARY_TOKEN}
    before = row_counts(session_factory)
    resp = http.post("/v1/provisioning", json=body, headers=headers)
    problem = assert_problem(resp, status)
    assert any(v.split(":", 1)[0].startswith(field) for v in problem["violations"]), problem
    after = row_counts(session_factory)
    if status == 403:
        # a refused change is audited in a transaction of its own (docs/permissions.md)
        assert after.pop("audit_events") == before.pop("audit_events") + 1
        with session_factory() as session:
            last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert last is not None and last.action == "access.denied"
    assert after == before
    assert http.get("/v1/projects", headers=admin).json()["total"] == (
        1 if case == "project name taken" else 0
    )
    logged = "\n".join(r.getMessage() for r in logs.records)
    for canary in (CANARY_PASSWORD, CANARY_TOKEN):
        assert canary not in resp.text
        assert canary not in logged
        assert canary not in all_text(session_factory)


def test_bad_input_names_the_field_and_writes_nothing(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    body = redshift_body(str(uuid.uuid4()), "Finance")
    body["environment"]["connectionProperties"]["password"] = {"pasword": CANARY_PASSWORD}
    before = row_counts(session_factory)
    resp = http.post("/v1/provisioning", json=body, headers=admin)
    assert_problem(resp, 400, "environment.connectionProperties.password.pasword")
    assert CANARY_PASSWORD not in resp.text

    body = redshift_body(str(uuid.uuid4()), "Finance")
    body["secretReference"] = {"name": "x", "agentType": "AWS", "secretName": "a"}
    resp = http.post("/v1/provisioning", json=body, headers=admin)
    problem = assert_problem(resp, 400)
    assert any("not both" in v for v in problem["violations"]), problem
    assert row_counts(session_factory) == before


def test_an_admin_owns_what_it_provisions_and_a_member_may_not(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    agent_id = create_agent(http, admin)["agentId"]
    before = row_counts(session_factory)
    member = auth(http, session_factory, "MEMBER")
    resp = http.post("/v1/provisioning", json=redshift_body(agent_id, "Finance"), headers=member)
    assert_problem(resp, 403)
    after = row_counts(session_factory)
    assert after.pop("audit_events") == before.pop("audit_events") + 1  # access.denied
    assert after.pop("api_clients") == before.pop("api_clients") + 1  # the member itself
    assert after == before

    account_admin = auth(http, session_factory, "ADMIN")
    resp = http.post(
        "/v1/provisioning", json=redshift_body(agent_id, "Finance"), headers=account_admin
    )
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["projectId"]
    members = http.get(f"/v1/projects/{project_id}/members", headers=account_admin)
    assert members.status_code == 200, members.text
    assert [m["projectRole"] for m in members.json()["results"]] == ["OWNER"]


def listed_body(agent_id: str, name: str) -> dict[str, Any]:
    """A whole Redshift project in the list form: a connection, a secret reference in the
    project's default scope, a hosted secret and two environments, each item the body of its
    single endpoint (as ``stead apply`` sends a new project)."""

    def environment(env: str, password: dict[str, str]) -> dict[str, Any]:
        return {
            "name": env,
            "defaultAgentId": agent_id,
            "defaultUserAccessLevel": "readOnly",
            "defaultConnections": {"DWH": {"redshift": "finance-dwh-prod"}},
            "connectionOverrides": [
                {
                    "connectionName": "finance-dwh-prod",
                    "connectionProperties": {
                        "url": {"value": "finance.abc123.eu-west-1.redshift.amazonaws.com"},
                        "port": {"value": "5439"},
                        "username": {"value": f"svc_{env}"},
                        "password": password,
                        "defaultDatabase": {"value": "finance"},
                    },
                }
            ],
        }

    return {
        "project": {"name": name, "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
        "connections": [
            {
                "name": "finance-dwh-prod",
                "platformConnectionType": "DWH",
                "authProvider": "REDSHIFT",
                "authType": "PASSWORD",
            }
        ],
        "secretReferences": [
            {
                "name": "finance-prod-redshift",
                "agentId": agent_id,
                "agentType": "AWS",
                "secretReferenceType": "PASSWORD",
                "secretName": "stead/{projectId}/prod/finance",
                "secretKey": "password",
            }
        ],
        "secrets": [{"name": "api-key", "type": "PASSWORD", "value": CANARY_PASSWORD}],
        "environments": [
            environment("prod", {"secretName": "finance-prod-redshift", "secretKey": "password"}),
            environment("dev", {"value": CANARY_PASSWORD}),
        ],
    }


STAMPS = {"createdAt", "updatedAt"}


def test_the_list_form_makes_the_same_project_as_the_single_endpoints(
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    logs: pytest.LogCaptureFixture,
) -> None:
    agent_id = create_agent(http, admin)["agentId"]
    body = listed_body(agent_id, "Listed")
    resp = http.post("/v1/provisioning", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    listed = resp.json()["projectId"]
    assert resp.json() == {
        "projectId": listed,
        "connectionName": None,
        "secretName": None,
        "environmentName": None,
        "repository": None,
    }

    # the same project, one call per object
    single = http.post("/v1/projects", json={**body["project"], "name": "Single"}, headers=admin)
    one = single.json()["projectId"]
    base = f"/v1/projects/{one}"
    calls = [(f"{base}/data-platform-connections", body["connections"][0])]
    reference = dict(body["secretReferences"][0])
    name = reference.pop("name")
    reference["secretName"] = f"stead/{one}/prod/finance"
    calls.append((f"{base}/secret-references/{name}", reference))
    calls.append((f"{base}/secrets", body["secrets"][0]))
    calls += [(f"{base}/environments", env) for env in body["environments"]]
    for path, sent in calls:
        assert http.post(path, json=sent, headers=admin).status_code == 201

    def read(project_id: str) -> dict[str, Any]:
        state = http.get(
            "/v1/projects/state", params={"projectId": project_id}, headers=admin
        ).json()
        (project,) = state["results"]
        del project["project"]["name"]

        def timeless(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: timeless(v) for k, v in value.items() if k not in STAMPS}
            if isinstance(value, list):
                return [timeless(v) for v in value]
            return value

        return timeless(json.loads(json.dumps(project).replace(project_id, "<id>")))

    assert read(listed) == read(one)
    with session_factory() as session:

        def actions(project_id: str) -> list[str]:
            return sorted(
                session.scalars(
                    select(AuditEvent.action).where(AuditEvent.project_id == project_id)
                )
            )

        assert actions(listed) == actions(one)
        assert actions(listed).count("environment.created") == 2
    logged = "\n".join(r.getMessage() for r in logs.records)
    for text in (all_text(session_factory), logged, resp.text):
        assert CANARY_PASSWORD not in text


LIST_FAILURES = {
    "second environment's unknown secret": (
        lambda b: b["environments"][1]["connectionOverrides"][0]["connectionProperties"].update(
            password={"secretName": "absent"}
        ),
        400,
        "environments[1].connectionOverrides[0].connectionProperties.password.secretName",
    ),
    "reference outside the scope": (
        lambda b: b["secretReferences"][0].update(secretName="someone-else/redshift"),
        403,
        "secretReferences[0].secretName",
    ),
    "connection of another warehouse": (
        lambda b: b["connections"][0].update(authProvider="SNOWFLAKE", authType="KEY_PAIR"),
        400,
        "connections[0].",
    ),
    "two environments with one name": (
        lambda b: b["environments"][1].update(name="PROD"),
        409,
        "environments[1].name",
    ),
}


@pytest.mark.parametrize("case", list(LIST_FAILURES), ids=list(LIST_FAILURES))
def test_a_failing_item_of_the_list_form_leaves_nothing(
    case: str, http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    arrange, status, field = LIST_FAILURES[case]
    agent_id = create_agent(http, admin)["agentId"]
    body = listed_body(agent_id, "Listed")
    arrange(body)
    before = row_counts(session_factory)
    resp = http.post("/v1/provisioning", json=body, headers=admin)
    problem = assert_problem(resp, status)
    assert any(v.startswith(field) for v in problem["violations"]), problem
    after = row_counts(session_factory)
    if status == 403:  # the refusal is audited in a transaction of its own
        assert after.pop("audit_events") == before.pop("audit_events") + 1
    assert after == before
    assert CANARY_PASSWORD not in resp.text


def test_the_two_forms_do_not_mix(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    agent_id = str(uuid.uuid4())
    before = row_counts(session_factory)
    mixed = {**listed_body(agent_id, "Mixed"), "connection": {"name": "dwh"}}
    problem = assert_problem(http.post("/v1/provisioning", json=mixed, headers=admin), 400)
    assert any("not both" in v for v in problem["violations"]), problem
    flow = redshift_body(agent_id, "Flow")
    del flow["connection"]
    problem = assert_problem(http.post("/v1/provisioning", json=flow, headers=admin), 400)
    assert any("connection required" in v for v in problem["violations"]), problem
    too_many = listed_body(agent_id, "Many")
    too_many["secrets"] = [{"name": f"s{i}", "type": "PASSWORD", "value": "v"} for i in range(101)]
    assert_problem(http.post("/v1/provisioning", json=too_many, headers=admin), 400, "secrets")
    assert row_counts(session_factory) == before


def test_the_list_form_reads_the_agent_and_each_secret_once_for_its_environments(
    http: TestClient, admin: dict[str, str]
) -> None:
    """The second environment's checks find the agent the first one read still in the
    session, and its secret-use check looks the secret both environments use up once."""
    agent_id = create_agent(http, admin)["agentId"]
    selects: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(" ".join(statement.split()))

    body = listed_body(agent_id, "Counted")
    dev = body["environments"][1]["connectionOverrides"][0]["connectionProperties"]
    dev["password"] = {"secretName": "finance-prod-redshift", "secretKey": "password"}
    engine = http.app.state.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", seen)
    try:
        resp = http.post("/v1/provisioning", json=body, headers=admin)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert resp.status_code == 201, resp.text
    from_agents = [s for s in selects if "FROM agents" in s]
    from_references = [s for s in selects if "FROM secret_references" in s]
    # One read for the secret reference's agentId, one for the environments.
    assert len(from_agents) == 2, from_agents
    # The name checks of the reference and of the hosted secret (2); per environment, the
    # password's reference and its identity (4). Reading prod's stored reference again in
    # dev's secret-use check would make it 7.
    assert len(from_references) == 6, from_references
