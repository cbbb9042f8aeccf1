"""The audit trail: every mutating route writes its event (with request id and source IP),
refused changes are recorded, and ``GET /v1/audit-events`` / ``stead audit`` read it back with
filters, paging and per-caller visibility (docs/api.md, Audit)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from stead.audit.models import AuditEvent
from stead.cli.main import app as cli
from stead.demo import create_bare_repository
from stead.settings import Settings
from tests.support.factories import (
    USER_PASSWORD,
    assert_problem,
    auth,
    create_agent,
    example,
    login,
    member_auth,
    new_user,
    user_auth,
)
from tests.support.postgres import free_port
from tests.support.provision import Provisioned, environment_body, provision
from tests.support.routes import MUTATING, api_routes
from tests.support.served import serve_here

_numbers = itertools.count(1)


@dataclass
class Call:
    """The request a recipe measures, and the audit actions it must write (in order)."""

    method: str
    url: str
    actions: tuple[str, ...]
    json: Any = None
    headers: dict[str, str] | None = None
    auth: bool = True


@dataclass
class Ctx:
    http: TestClient
    factory: sessionmaker[Session]
    admin: dict[str, str]
    world: Provisioned
    tmp: Path

    def ok(self, method: str, url: str, **kwargs: Any) -> Any:
        kwargs["headers"] = {**self.admin, **kwargs.get("headers", {})}
        resp = self.http.request(method, url, **kwargs)
        assert resp.status_code < 300, resp.text
        return resp.json() if resp.content else None

    def project(self) -> str:
        body = {**example("01-create-project-redshift"), "name": f"audit-{next(_numbers)}"}
        return str(self.ok("POST", "/v1/projects", json=body)["projectId"])

    def repository(self, project_id: str) -> tuple[str, dict[str, Any]]:
        name = f"repo{next(_numbers)}"
        remote = create_bare_repository(self.tmp / f"{name}.git")
        body = {
            "provider": "git",
            "repositoryName": name,
            "providerParameters": {"url": remote.resolve().as_uri()},
        }
        return f"/v1/projects/{project_id}/repositories", body

    def member(self, role: str = "VIEWER") -> str:
        user_id, _ = new_user(self.factory, project_id=self.world.project_id, project_role=role)
        return user_id

    def invitation(self) -> dict[str, Any]:
        body = {
            "email": f"invitee{next(_numbers)}@example.com",
            "projectRole": "VIEWER",
            "returnAcceptUrl": True,
        }
        return dict(self.ok("POST", f"{self.world.base}/invitations", json=body))

    def client(self) -> str:
        body = {"name": f"client {next(_numbers)}", "role": "MEMBER"}
        return str(self.ok("POST", "/v1/api-clients", json=body)["clientId"])


GIT_TOKEN = {"Git-Provider-Access-Token": "any-token-for-a-file-remote"}
ENV = "/v1/projects/{}/environments"


def _r_project_create(c: Ctx) -> Call:
    body = {**example("01-create-project-redshift"), "name": "audit-new"}
    return Call("POST", "/v1/projects", ("project.created",), json=body)


def _r_provision(c: Ctx) -> Call:
    environment = example("05-create-environment-redshift", agentId=c.world.agent_id)
    override = environment.pop("connectionOverrides")[0]
    del environment["defaultConnections"]
    environment["connectionProperties"] = override["connectionProperties"]
    body = {
        "project": {**example("01-create-project-redshift"), "name": "audit-provisioned"},
        "connection": {"name": override["connectionName"]},
        "secret": {
            "name": override["connectionProperties"]["password"]["secretName"],
            "type": "JSON",
            "value": '{"password": "pw"}',
        },
        "environment": environment,
    }
    actions = ("project.created", "connection.created", "secret.created", "environment.created")
    return Call("POST", "/v1/provisioning", actions, json=body)


def _r_project_delete(c: Ctx) -> Call:
    return Call("DELETE", f"/v1/projects/{c.project()}", ("project.deleted",))


def _r_agent_delete(c: Ctx) -> Call:
    agent_id = create_agent(c.http, c.admin)["agentId"]
    return Call("DELETE", f"/v1/agents/{agent_id}", ("agent.deleted",))


def _r_connection_create(c: Ctx) -> Call:
    url = f"/v1/projects/{c.project()}/data-platform-connections"
    return Call("POST", url, ("connection.created",), json=example("03-create-connection-redshift"))


def _r_connection_delete(c: Ctx) -> Call:
    url = f"/v1/projects/{c.project()}/data-platform-connections"
    name = c.ok("POST", url, json=example("03-create-connection-redshift"))["name"]
    return Call("DELETE", f"{url}/{name}", ("connection.deleted",))


def _r_environment_delete(c: Ctx) -> Call:
    c.ok(
        "POST",
        ENV.format(c.world.project_id),
        json=environment_body(c.world.agent_id, "gone", "default"),
    )
    return Call("DELETE", f"{ENV.format(c.world.project_id)}/gone", ("environment.deleted",))


def _reference(c: Ctx, name: str, **body: Any) -> str:
    url = f"{c.world.base}/secret-references/{name}"
    c.ok(
        "POST",
        url,
        json={
            **example(
                "04-create-secret-reference-aws",
                agentId=c.world.agent_id,
                projectId=c.world.project_id,
            ),
            **body,
        },
    )
    return url


def _r_reference_check(c: Ctx) -> Call:
    c.ok(
        "POST",
        f"{c.world.base}/secrets",
        json={"name": "hosted-pw", "type": "PASSWORD", "value": "s3cret-value"},
    )
    url = _reference(c, "checked-ref", agentType="Hosted", secretName="hosted-pw", secretKey=None)
    return Call("POST", f"{url}/check", ("secret_reference.checked",))


def _r_connection_test(c: Ctx) -> Call:
    password = _secret(c, "tested-pw").rsplit("/", 1)[1]
    body = environment_body(c.world.agent_id, "tested", "default")
    properties = body["connectionOverrides"][0]["connectionProperties"]
    properties["url"] = {"value": "127.0.0.1"}
    properties["port"] = {"value": str(free_port())}  # nothing listens: answered at once
    properties["password"] = {"secretName": password}
    c.ok("POST", ENV.format(c.world.project_id), json=body)
    url = f"{ENV.format(c.world.project_id)}/tested/connection-test"
    return Call("POST", url, ("environment.connection_tested",))


def _secret(c: Ctx, name: str) -> str:
    c.ok(
        "POST",
        f"{c.world.base}/secrets",
        json={"name": name, "type": "PASSWORD", "value": "v1-value"},
    )
    return f"{c.world.base}/secrets/{name}"


def _r_repository_token(c: Ctx) -> Call:
    url, body = c.repository(c.project())
    c.ok("POST", url, json=body, headers=GIT_TOKEN)
    return Call("POST", f"{url}/token", ("repository.token_checked",), headers=GIT_TOKEN)


def _r_repository_remove(c: Ctx) -> Call:
    url, body = c.repository(c.project())
    c.ok("POST", url, json=body, headers=GIT_TOKEN)
    return Call("DELETE", url, ("repository.removed",))


def _r_repository_associate(c: Ctx) -> Call:
    url, body = c.repository(c.project())
    return Call("POST", url, ("repository.associated",), json=body, headers=GIT_TOKEN)


def _r_accept(c: Ctx) -> Call:
    token = c.invitation()["acceptUrl"].rsplit("/", 1)[1]
    return Call(
        "POST",
        "/v1/invitations/accept",
        ("user.created", "invitation.accepted"),
        json={"token": token, "password": "a long enough password"},
        auth=False,
    )


def _r_password_reset(c: Ctx) -> Call:
    url = c.ok("POST", f"/v1/users/{c.member()}/password-reset")["resetUrl"]
    body = {"token": url.rsplit("/", 1)[1], "password": "a long enough password"}
    return Call("POST", "/v1/auth/password-reset", ("user.password_reset",), json=body, auth=False)


def _r_password_change(c: Ctx) -> Call:
    _, email = new_user(c.factory)
    body = {"currentPassword": USER_PASSWORD, "newPassword": "a brand new password"}
    url = "/v1/users/me/password"
    return Call(
        "POST", url, ("user.password_changed",), json=body, headers=login(c.http, email), auth=False
    )


def _r_grant_revoke(c: Ctx) -> Call:
    _, email = new_user(c.factory)
    form = {
        "grant_type": "password",
        "client_id": "stead-cli",
        "username": email,
        "password": USER_PASSWORD,
        "device_name": "laptop",
    }
    token = c.http.post("/oauth/dpc/token", data=form).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    (grant,) = c.http.get("/v1/users/me/grants", headers=headers).json()["results"]
    url = f"/v1/users/me/grants/{grant['id']}"
    return Call("DELETE", url, ("cli_grant.revoked",), headers=headers, auth=False)


def _r_login(c: Ctx) -> Call:
    _, email = new_user(c.factory)
    body = {"email": email, "password": "correct horse battery staple"}
    return Call("POST", "/v1/auth/login", ("user.logged_in",), json=body, auth=False)


def _r_access_delete(c: Ctx) -> Call:
    user_id = c.member()
    url = f"{c.world.base}/environments/prod/access/{user_id}"
    c.ok("PUT", url, json={"accessLevel": "runner"})
    return Call("DELETE", url, ("environment_access.removed",))


P = "/v1/projects/{projectId}"
RECIPES: dict[str, Callable[[Ctx], Call]] = {
    "POST /v1/projects": _r_project_create,
    "POST /v1/provisioning": _r_provision,
    f"PATCH {P}": lambda c: Call(
        "PATCH", c.world.base, ("project.updated",), json={"description": "new"}
    ),
    f"DELETE {P}": _r_project_delete,
    "POST /v1/agents": lambda c: Call(
        "POST",
        "/v1/agents",
        ("agent.created",),
        json={**example("02-create-agent"), "name": "audited agent"},
    ),
    "PATCH /v1/agents/{agentId}": lambda c: Call(
        "PATCH",
        f"/v1/agents/{c.world.agent_id}",
        ("agent.updated",),
        json={"description": "audited"},
    ),
    "DELETE /v1/agents/{agentId}": _r_agent_delete,
    "PATCH /v1/agents/{agentId}/allowlist": lambda c: Call(
        "PATCH",
        f"/v1/agents/{c.world.agent_id}/allowlist",
        ("agent.allowlist_updated",),
        json={"projects": {c.world.project_id: {}}},
    ),
    "PUT /v1/agents/{agentId}/allowlist": lambda c: Call(
        "PUT",
        f"/v1/agents/{c.world.agent_id}/allowlist",
        ("agent.allowlist_updated",),
        json={"projects": {}},
    ),
    "POST /v1/agents/{agentId}/credentials": lambda c: Call(
        "POST",
        f"/v1/agents/{c.world.agent_id}/credentials",
        ("agent.credentials_refreshed",),
        json={"action": "SECRET_REFRESH"},
    ),
    f"POST {P}/data-platform-connections": _r_connection_create,
    f"DELETE {P}/data-platform-connections/{{connectionName}}": _r_connection_delete,
    f"POST {P}/environments": lambda c: Call(
        "POST",
        ENV.format(c.world.project_id),
        ("environment.created",),
        json=environment_body(c.world.agent_id, "dev", "runner"),
    ),
    f"PATCH {P}/environments/{{environmentName}}": lambda c: Call(
        "PATCH",
        f"{ENV.format(c.world.project_id)}/prod",
        ("environment.updated",),
        json={"description": "x"},
    ),
    f"DELETE {P}/environments/{{environmentName}}": _r_environment_delete,
    f"POST {P}/environments/{{environmentName}}/connection-test": _r_connection_test,
    f"POST {P}/secret-references/{{secretReferenceName}}": lambda c: Call(
        "POST",
        f"{c.world.base}/secret-references/another-ref",
        ("secret_reference.created",),
        json=example(
            "04-create-secret-reference-aws",
            agentId=c.world.agent_id,
            projectId=c.world.project_id,
        ),
    ),
    f"DELETE {P}/secret-references/{{secretReferenceName}}": lambda c: Call(
        "DELETE", _reference(c, "doomed-ref"), ("secret_reference.deleted",)
    ),
    f"POST {P}/secret-references/{{secretReferenceName}}/check": _r_reference_check,
    f"PUT {P}/secret-scopes": lambda c: Call(
        "PUT",
        f"{c.world.base}/secret-scopes",
        ("secret_scope.updated",),
        json={"scopes": [{"store": "Vault", "prefixes": ["teams/finance/"]}]},
    ),
    f"POST {P}/secrets": lambda c: Call(
        "POST",
        f"{c.world.base}/secrets",
        ("secret.created",),
        json={"name": "new-secret", "type": "PASSWORD", "value": "v1-value"},
    ),
    f"PUT {P}/secrets/{{secretName}}": lambda c: Call(
        "PUT", _secret(c, "rotating"), ("secret.updated",), json={"value": "v2-value"}
    ),
    f"DELETE {P}/secrets/{{secretName}}": lambda c: Call(
        "DELETE", _secret(c, "doomed"), ("secret.deleted",)
    ),
    f"POST {P}/repositories": _r_repository_associate,
    f"POST {P}/repositories/token": _r_repository_token,
    f"DELETE {P}/repositories": _r_repository_remove,
    "POST /v1/api-clients": lambda c: Call(
        "POST",
        "/v1/api-clients",
        ("api_client.created",),
        json={"name": "audited", "role": "ADMIN"},
    ),
    "POST /v1/api-clients/{clientId}/secret": lambda c: Call(
        "POST", f"/v1/api-clients/{c.client()}/secret", ("api_client.secret_rotated",)
    ),
    "DELETE /v1/api-clients/{clientId}": lambda c: Call(
        "DELETE", f"/v1/api-clients/{c.client()}", ("api_client.revoked",)
    ),
    "POST /v1/scim-tokens": lambda c: Call(
        "POST", "/v1/scim-tokens", ("scim_token.created",), json={"name": "audited"}
    ),
    "DELETE /v1/scim-tokens/{tokenId}": lambda c: Call(
        "DELETE",
        f"/v1/scim-tokens/{c.ok('POST', '/v1/scim-tokens', json={'name': 'revoked'})['id']}",
        ("scim_token.revoked",),
    ),
    f"PATCH {P}/members/{{memberId}}": lambda c: Call(
        "PATCH",
        f"{c.world.base}/members/{c.member()}",
        ("member.role_changed",),
        json={"projectRole": "OWNER"},
    ),
    f"DELETE {P}/members/{{memberId}}": lambda c: Call(
        "DELETE", f"{c.world.base}/members/{c.member()}", ("member.removed",)
    ),
    f"POST {P}/invitations": lambda c: Call(
        "POST",
        f"{c.world.base}/invitations",
        ("invitation.created",),
        json={"email": "audited@example.com", "projectRole": "OWNER", "returnAcceptUrl": True},
    ),
    f"DELETE {P}/invitations/{{invitationId}}": lambda c: Call(
        "DELETE", f"{c.world.base}/invitations/{c.invitation()['id']}", ("invitation.revoked",)
    ),
    "POST /v1/invitations/accept": _r_accept,
    "PATCH /v1/users/{userId}": lambda c: Call(
        "PATCH", f"/v1/users/{c.member()}", ("user.disabled",), json={"disabled": True}
    ),
    "POST /v1/users/{userId}/revoke-tokens": lambda c: Call(
        "POST", f"/v1/users/{c.member()}/revoke-tokens", ("user.tokens_revoked",)
    ),
    "POST /v1/users/{userId}/unlock": lambda c: Call(
        "POST", f"/v1/users/{c.member()}/unlock", ("user.unlocked",)
    ),
    "POST /v1/users/{userId}/password-reset": lambda c: Call(
        "POST", f"/v1/users/{c.member()}/password-reset", ("user.password_reset_started",)
    ),
    "POST /v1/auth/password-reset": _r_password_reset,
    "POST /v1/users/me/password": _r_password_change,
    "DELETE /v1/users/me/grants/{grantId}": _r_grant_revoke,
    f"PUT {P}/environments/{{environmentName}}/access/{{userId}}": lambda c: Call(
        "PUT",
        f"{c.world.base}/environments/prod/access/{c.member()}",
        ("environment_access.set",),
        json={"accessLevel": "noAccess"},
    ),
    f"DELETE {P}/environments/{{environmentName}}/access/{{userId}}": _r_access_delete,
    "POST /v1/auth/login": _r_login,
}


def test_every_mutating_route_writes_its_audit_event(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str], tmp_path: Path
) -> None:
    mutating = {r.key for r in api_routes(http.app) if r.method in MUTATING}  # type: ignore[arg-type]
    assert set(RECIPES) == mutating
    ctx = Ctx(http, session_factory, admin, provision(http, admin, "audited"), tmp_path)
    for key, recipe in RECIPES.items():
        call = recipe(ctx)
        request_id = f"walk-{uuid.uuid4().hex[:12]}"
        headers = {
            **(admin if call.auth else {}),
            **(call.headers or {}),
            "X-Request-ID": request_id,
        }
        resp = http.request(call.method, call.url, json=call.json, headers=headers)
        assert resp.status_code < 300, (key, resp.text)
        with session_factory() as session:
            events = list(
                session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.request_id == request_id)
                    .order_by(AuditEvent.id)
                )
            )
        assert tuple(e.action for e in events) == call.actions, key
        for event in events:
            assert event.source_ip == "testclient" and event.actor_id and event.actor_name, key
            assert event.actor_type == ("api_client" if call.auth else "user"), key


@pytest.fixture
def trail(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> dict[str, Any]:
    """Two projects with some history, an owner of the first, and a viewer of it."""
    first = provision(http, admin, "first")
    second = provision(http, admin, "second")
    _, owner_email = new_user(session_factory, project_id=first.project_id, project_role="OWNER")
    owner = login(http, owner_email)
    resp = http.patch(first.base, json={"description": "by the owner"}, headers=owner)
    assert resp.status_code == 200
    return {
        "first": first,
        "second": second,
        "owner": owner,
        "owner_email": owner_email,
        "viewer": user_auth(http, session_factory, first.project_id, "VIEWER"),
    }


def _list(http: TestClient, headers: dict[str, str], **params: Any) -> Any:
    resp = http.get("/v1/audit-events", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_reading_the_trail(http: TestClient, admin: dict[str, str], trail: dict[str, Any]) -> None:
    first, second = trail["first"], trail["second"]
    everything = _list(http, admin, size=100)
    assert everything["total"] == len(everything["results"]) >= 10
    created = [e["createdAt"] for e in everything["results"]]
    assert created == sorted(created)
    event = next(e for e in everything["results"] if e["action"] == "project.updated")
    assert event["actor"] == {
        "type": "user",
        "id": event["actor"]["id"],
        "name": trail["owner_email"],
    }
    assert event["target"] == {"type": "project", "id": first.project_id}
    assert event["projectId"] == first.project_id and event["details"] == {
        "fields": ["description"]
    }
    assert event["requestId"] and event["sourceIp"] == "testclient"

    only_second = _list(http, admin, projectId=second.project_id, size=100)
    assert {e["projectId"] for e in only_second["results"]} == {second.project_id}
    by_action = _list(http, admin, action="environment.created")
    assert {e["projectId"] for e in by_action["results"]} == {first.project_id, second.project_id}
    by_actor = _list(http, admin, actor=trail["owner_email"].upper())
    assert [e["action"] for e in by_actor["results"]] == ["user.logged_in", "project.updated"]
    assert _list(http, admin, actor=event["actor"]["id"])["total"] == 2

    middle = everything["results"][len(created) // 2]["createdAt"]
    before = _list(http, admin, to=middle, size=100)["total"]
    after = _list(http, admin, **{"from": middle}, size=100)["total"]
    assert before + after == everything["total"] and before > 0 and after > 0
    page = _list(http, admin, page=1, size=3)
    assert page["page"] == 1 and page["size"] == 3 and page["total"] == everything["total"]
    assert page["results"] == everything["results"][3:6]


def test_who_reads_what(
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    trail: dict[str, Any],
) -> None:
    first, second = trail["first"], trail["second"]
    total = _list(http, admin)["total"]
    assert _list(http, auth(http, session_factory, "ADMIN"))["total"] == total
    owned = _list(http, trail["owner"], size=100)
    assert owned["total"] > 0 and {e["projectId"] for e in owned["results"]} == {first.project_id}
    assert _list(http, trail["owner"], projectId=first.project_id)["total"] == owned["total"]
    assert_problem(
        http.get(
            "/v1/audit-events", params={"projectId": second.project_id}, headers=trail["owner"]
        ),
        404,
    )
    viewer = trail["viewer"]
    assert _list(http, viewer)["total"] == 0
    assert_problem(
        http.get("/v1/audit-events", params={"projectId": first.project_id}, headers=viewer), 403
    )
    member_client = member_auth(http, session_factory, first.project_id, "OWNER")
    assert _list(http, member_client, projectId=first.project_id)["total"] == owned["total"]
    assert_problem(http.get("/v1/audit-events"), 401)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "3"}, "from"),
        ({"from": "2026-01-15"}, "from"),
        ({"to": "2026-01-15T10:30:00"}, "to"),
        ({"from": "0001-01-01T00:00:00+01:00"}, "from"),  # before year 1 in UTC
        ({"to": "9999-12-31T23:59:59-01:00"}, "to"),  # after year 9999 in UTC
        ({"projectId": "nope"}, "projectId"),
        ({"size": 101}, "size"),
        ({"page": -1}, "page"),
        ({"action": "x" * 65}, "action"),
        ({"actor": "a\x00b"}, "actor"),
    ],
)
def test_bad_filters(
    http: TestClient, admin: dict[str, str], params: dict[str, Any], field: str
) -> None:
    assert_problem(http.get("/v1/audit-events", params=params, headers=admin), 400, field)


def test_refused_changes_are_recorded(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    world = provision(http, admin, "refusals", access="noAccess")
    viewer = member_auth(http, session_factory, world.project_id, "VIEWER")
    user = user_auth(http, session_factory, world.project_id, "CONTRIBUTOR")
    url = f"{world.base}/environments/prod"
    resp = http.delete(url, headers={**viewer, "X-Request-ID": "refused-1"})
    assert_problem(resp, 403)
    assert_problem(http.get(url, headers=user), 403)  # a refused read is not a change
    assert_problem(
        http.patch(url, json={"description": "x"}, headers={**user, "X-Request-ID": "refused-2"}),
        403,
    )
    assert http.get(url, headers=admin).json()["description"] != "x"
    with session_factory() as session:
        denied = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "access.denied")
                .order_by(AuditEvent.id)
            )
        )
    assert [(e.request_id, e.actor_type, e.project_id) for e in denied] == [
        ("refused-1", "api_client", world.project_id),
        ("refused-2", "user", world.project_id),
    ]
    assert denied[0].target_id == f"DELETE {url}"
    assert denied[0].details["permission"] == "environment.write"
    assert denied[1].details["permission"] == "environment.write"


def test_stead_audit_command(settings: Settings) -> None:
    with serve_here(settings) as served:
        url, client_id, secret = served.url, served.client_id, served.client_secret
        runner = CliRunner()
        env = {"STEAD_URL": url, "STEAD_CLIENT_ID": client_id, "STEAD_CLIENT_SECRET": secret}
        headers = served.headers()
        for name in ("cli-one", "cli-two"):
            body = {**example("01-create-project-redshift"), "name": name}
            assert httpx.post(f"{url}/v1/projects", json=body, headers=headers).status_code == 201

        result = runner.invoke(cli, ["audit", "--action", "project.created", "--json"], env=env)
        assert result.exit_code == 0, result.output
        events = [json.loads(line) for line in result.output.splitlines()]
        assert [e["details"]["name"] for e in events] == ["cli-one", "cli-two"]
        assert all(e["actor"]["name"] == "demo super admin" for e in events)

        project_id = events[0]["projectId"]
        flags = ["--url", url, "--client-id", client_id, "--client-secret", secret]
        text = runner.invoke(cli, ["audit", "--project-id", project_id, *flags], env={})
        assert text.exit_code == 0, text.output
        (line,) = text.output.splitlines()
        assert "project.created" in line and f"project={project_id}" in line

        bad = runner.invoke(cli, ["audit", "--from", "yesterday"], env=env)
        assert bad.exit_code == 1 and "from:" in bad.output
        wrong = runner.invoke(cli, ["audit"], env={**env, "STEAD_CLIENT_SECRET": "wrong"})
        assert wrong.exit_code == 1


def test_a_refusal_that_cannot_be_recorded_is_still_a_403(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    project_id = http.post(
        "/v1/projects", json={**example("01-create-project-redshift")}, headers=admin
    ).json()["projectId"]
    viewer = member_auth(http, session_factory, project_id, "VIEWER")
    with session_factory() as session:
        session.execute(text("DROP TABLE audit_events"))
        session.commit()
    resp = http.patch(f"/v1/projects/{project_id}", json={"description": "x"}, headers=viewer)
    assert_problem(resp, 403)
