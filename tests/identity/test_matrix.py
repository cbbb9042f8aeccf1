"""The authorisation matrix: every ``/v1`` route x every role x own and foreign project, each
cell checked against the permission table (``stead.identity.permissions``), which is also the
table in docs/permissions.md.

A cell the table forbids answers 404 when the caller cannot see the project and 403 when it can;
a cell the table allows passes the permission check (the probe body is invalid, so an allowed
``POST``/``PUT``/``PATCH`` answers 400 without changing anything).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.db import session_scope
from stead.identity.models import ApiClient, ProjectMember
from stead.identity.permissions import (
    ACCOUNT_PERMISSIONS,
    ENVIRONMENT_PERMISSIONS,
    PROJECT_PERMISSIONS,
    account_allows,
    environment_allows,
    environment_level,
    project_allows,
)
from tests.support.factories import login, new_client, new_user, token_for
from tests.support.provision import CONNECTION, SECRET_REFERENCE, environment_body, provision
from tests.support.routes import MUTATING, ApiRoute, api_routes

DOCS = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
UNKNOWN_UUID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
PUBLIC = {"POST /v1/auth/login", "POST /v1/auth/password-reset", "POST /v1/invitations/accept"}
PROBE = {"matrixProbe": True}


@dataclass
class Principal:
    """A caller of the matrix: its account role, its role (and environment level) in the own
    project, and its headers."""

    name: str
    type: str
    account_role: str
    own_role: str | None
    own_level: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    id: str = ""


@dataclass
class World:
    http: TestClient
    factory: sessionmaker[Session]
    admin: dict[str, str]
    owner_client: dict[str, str]
    principals: list[Principal]
    projects: dict[str, str] = field(default_factory=dict)
    agent_id: str = ""
    victim_client: str = ""

    def build(self, which: str) -> None:
        """(Re)create the own or foreign project and the principals' places in it."""
        creator = self.owner_client if which == "own" else self.admin
        world = provision(self.http, creator, f"matrix-{which}-{len(self.projects)}")
        self.projects[which] = world.project_id
        self.agent_id = self.agent_id or world.agent_id
        if which == "own":
            self._join(world.project_id)

    def _join(self, project_id: str) -> None:
        with session_scope(self.factory, write=True) as session:
            for p in self.principals:
                if p.own_role is None or p.name in ("SUPER_ADMIN client", "ADMIN client"):
                    continue
                session.add(
                    ProjectMember(
                        project_id=project_id,
                        principal_type=p.type,
                        principal_id=p.id,
                        role=p.own_role,
                    )
                )
        for p in self.principals:
            if p.own_level is not None:
                url = f"/v1/projects/{project_id}/environments/prod/access/{p.id}"
                resp = self.http.put(url, json={"accessLevel": p.own_level}, headers=self.admin)
                assert resp.status_code == 200, resp.text

    def repair(self) -> None:
        """Put back what an allowed DELETE removed (the project, or its environment)."""
        for which, project_id in list(self.projects.items()):
            base = f"/v1/projects/{project_id}"
            if self.http.get(base, headers=self.admin).status_code == 404:
                self.build(which)
            elif self.http.get(f"{base}/environments/prod", headers=self.admin).status_code == 404:
                creator = self.owner_client if which == "own" else self.admin
                body = environment_body(self.agent_id, "prod", "default")
                assert (
                    self.http.post(f"{base}/environments", json=body, headers=creator).status_code
                    == 201
                )
                if which == "own":
                    for p in self.principals:
                        if p.own_level is not None:
                            url = f"{base}/environments/prod/access/{p.id}"
                            self.http.put(
                                url, json={"accessLevel": p.own_level}, headers=self.admin
                            )


def _client_principal(
    http: TestClient, factory: sessionmaker[Session], role: str, own: str | None
) -> Principal:
    client_id, secret = new_client(factory, role, name=f"{role} client")
    with factory() as session:
        pk = session.scalars(select(ApiClient.id).where(ApiClient.client_id == client_id)).one()
    headers = {"Authorization": f"Bearer {token_for(http, client_id, secret)}"}
    return Principal(f"{role} client", "api_client", role, own, headers=headers, id=pk)


def _user_principal(
    http: TestClient,
    factory: sessionmaker[Session],
    name: str,
    own: str | None,
    level: str | None = None,
) -> Principal:
    user_id, email = new_user(factory)
    return Principal(name, "user", "MEMBER", own, level, headers=login(http, email), id=user_id)


def _world(http: TestClient, factory: sessionmaker[Session], admin: dict[str, str]) -> World:
    owner_client = _client_principal(http, factory, "ADMIN", "OWNER")
    principals = [
        Principal("SUPER_ADMIN client", "api_client", "SUPER_ADMIN", "OWNER", headers=admin),
        owner_client,
        _client_principal(http, factory, "MEMBER", "VIEWER"),
        _user_principal(http, factory, "OWNER user", "OWNER"),
        _user_principal(http, factory, "CONTRIBUTOR user", "CONTRIBUTOR"),
        _user_principal(http, factory, "VIEWER user", "VIEWER"),
        _user_principal(http, factory, "VIEWER user with runner", "VIEWER", "runner"),
        _user_principal(http, factory, "CONTRIBUTOR user with noAccess", "CONTRIBUTOR", "noAccess"),
        _user_principal(http, factory, "outsider user", None),
    ]
    world = World(http, factory, admin, owner_client.headers, principals)
    world.build("own")
    world.build("foreign")
    victim, _ = new_client(factory, "ADMIN", name="victim")
    world.victim_client = victim
    return world


def _expected(route: ApiRoute, p: Principal, which: str | None) -> str:
    """``allowed``, ``403`` or ``404`` for one cell, from the permission table alone."""
    assert route.permission is not None or route.scope is None
    if route.scope in (None, "audit"):
        return "allowed"
    if route.scope == "account":
        return "allowed" if account_allows(p.account_role, route.permission or "") else "403"
    role = "OWNER" if p.account_role == "SUPER_ADMIN" else (p.own_role if which == "own" else None)
    if not project_allows(role, "project.read"):
        return "404"
    if route.scope == "project":
        return "allowed" if project_allows(role, route.permission or "") else "403"
    level = environment_level(
        project_role=role,
        is_user=p.type == "user",
        user_level=p.own_level if which == "own" else None,
        default_level="default",
    )
    return "allowed" if environment_allows(level, route.permission or "") else "403"


def _url(route: ApiRoute, world: World, which: str | None) -> str:
    values = {
        "projectId": world.projects[which] if which else "",
        "environmentName": "prod",
        "connectionName": CONNECTION,
        "secretReferenceName": SECRET_REFERENCE,
        "secretName": "no-such-secret",
        "agentId": world.agent_id,
        "clientId": world.victim_client,
        "memberId": UNKNOWN_UUID,
        "invitationId": UNKNOWN_UUID,
        "userId": UNKNOWN_UUID,
        "tokenId": UNKNOWN_UUID,
        "grantId": UNKNOWN_UUID,
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path)


def _outcome(resp: Any, project_id: str | None) -> str:
    if resp.status_code == 403:
        return "403"
    if (
        resp.status_code == 404
        and project_id
        and resp.json()["detail"] == f"Project {project_id} not found"
    ):
        return "404"
    assert resp.status_code not in (401, 500), resp.text
    return "allowed"


def _denied_count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "access.denied")
            )
            or 0
        )


#: Cells stated by hand from docs/permissions.md, independent of the table.
SPOT_CHECKS = {
    ("POST /v1/projects/{projectId}/invitations", "OWNER user", "own"): "allowed",
    ("POST /v1/projects/{projectId}/invitations", "SUPER_ADMIN client", "foreign"): "allowed",
    ("POST /v1/projects/{projectId}/invitations", "CONTRIBUTOR user", "own"): "403",
    ("POST /v1/projects/{projectId}/invitations", "VIEWER user", "own"): "403",
    ("POST /v1/projects/{projectId}/invitations", "OWNER user", "foreign"): "404",
    ("POST /v1/projects/{projectId}/environments", "CONTRIBUTOR user", "own"): "allowed",
    ("POST /v1/projects/{projectId}/environments", "VIEWER user", "own"): "403",
    (
        "GET /v1/projects/{projectId}/environments/{environmentName}",
        "VIEWER user",
        "own",
    ): "allowed",
    (
        "GET /v1/projects/{projectId}/environments/{environmentName}",
        "CONTRIBUTOR user with noAccess",
        "own",
    ): "403",
    (
        "GET /v1/projects/{projectId}/environments",
        "CONTRIBUTOR user with noAccess",
        "own",
    ): "allowed",
    (
        "PATCH /v1/projects/{projectId}/environments/{environmentName}",
        "VIEWER user with runner",
        "own",
    ): "403",
    ("DELETE /v1/projects/{projectId}/environments/{environmentName}", "VIEWER user", "own"): "403",
    (
        "PATCH /v1/projects/{projectId}/environments/{environmentName}",
        "CONTRIBUTOR user with noAccess",
        "own",
    ): "403",
    (
        "PATCH /v1/projects/{projectId}/environments/{environmentName}",
        "CONTRIBUTOR user",
        "own",
    ): "allowed",
    ("DELETE /v1/projects/{projectId}", "CONTRIBUTOR user", "own"): "403",
    ("DELETE /v1/projects/{projectId}", "ADMIN client", "foreign"): "404",
    ("GET /v1/projects/{projectId}", "outsider user", "own"): "404",
    ("GET /v1/projects/{projectId}", "SUPER_ADMIN client", "foreign"): "allowed",
    ("POST /v1/api-clients", "ADMIN client", None): "allowed",
    ("POST /v1/api-clients", "OWNER user", None): "403",
    ("POST /v1/agents", "MEMBER client", None): "403",
    ("POST /v1/projects", "MEMBER client", None): "403",
}


def test_authorisation_matrix(
    http: TestClient, session_factory: sessionmaker[Session], admin: dict[str, str]
) -> None:
    routes = [r for r in api_routes(http.app) if r.key not in PUBLIC]  # type: ignore[arg-type]
    assert {r.key for r in api_routes(http.app) if not r.authenticated} == PUBLIC  # type: ignore[arg-type]
    assert all(r.scope is not None for r in routes if r.path.startswith("/v1/projects/{"))
    world = _world(http, session_factory, admin)
    results: dict[tuple[str, str, str | None], str] = {}
    forbidden_changes = 0
    denied_before = _denied_count(session_factory)
    # DELETE of the project last: its allowed cells rebuild the world.
    ordered = sorted(routes, key=lambda r: r.key == "DELETE /v1/projects/{projectId}")
    for route in ordered:
        places: list[str | None] = ["own", "foreign"] if "{projectId}" in route.path else [None]
        for which in places:
            for p in world.principals:
                project_id = world.projects[which] if which else None
                kwargs: dict[str, Any] = {"headers": p.headers}
                if route.method in ("POST", "PUT", "PATCH"):
                    kwargs["json"] = PROBE
                resp = http.request(route.method, _url(route, world, which), **kwargs)
                outcome = _outcome(resp, project_id)
                expected = _expected(route, p, which)
                assert outcome == expected, (route.key, p.name, which, resp.status_code, resp.text)
                results[(route.key, p.name, which)] = outcome
                if outcome == "403" and route.method in MUTATING:
                    forbidden_changes += 1
                if route.method == "DELETE" and resp.status_code in (202, 204):
                    world.repair()
    for cell, expected in SPOT_CHECKS.items():
        assert results[cell] == expected, cell
    # Every refused attempt to change something was audited.
    assert _denied_count(session_factory) - denied_before == forbidden_changes > 0
    # The DPC mount serves the same routes behind the same checks.
    for route in routes:
        if "{projectId}" not in route.path or route.method == "DELETE":
            continue
        for p in world.principals:
            if p.name in ("OWNER user", "VIEWER user", "outsider user"):
                url = "/dpc" + _url(route, world, "own")
                kwargs = {"json": PROBE} if route.method in ("POST", "PUT", "PATCH") else {}
                resp = http.request(route.method, url, headers=p.headers, **kwargs)
                dpc = _outcome(resp, world.projects["own"])
                assert dpc == results[(route.key, p.name, "own")], (url, p.name)


def _docs_table(heading: str) -> dict[str, set[str]]:
    """``permission -> roles with a tick`` from the docs table under ``heading``."""
    text = DOCS.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not cells[0].startswith("`"):
            continue
        table[cells[0].strip("`")] = {header[i] for i, c in enumerate(cells) if c == "✓"}
    return table


def _code_table(permissions: dict[str, frozenset[str]]) -> dict[str, set[str]]:
    table: dict[str, set[str]] = {}
    for role, granted in permissions.items():
        for permission in granted:
            table.setdefault(permission, set()).add(role)
    return table


def test_docs_show_the_same_table(http: TestClient) -> None:
    assert _docs_table("Account roles") == _code_table(ACCOUNT_PERMISSIONS)
    assert _docs_table("Project roles") == _code_table(PROJECT_PERMISSIONS)
    env = _code_table(ENVIRONMENT_PERMISSIONS)
    assert _docs_table("Environment access") == env
    section = DOCS.read_text().split("## Routes\n", 1)[1]
    documented = dict(re.findall(r"^\| `(\w+ /v1/\S*)` \| (.+?) \|$", section, flags=re.M))
    served = {
        r.key: f"`{r.permission}`"
        if r.permission
        else ("public" if not r.authenticated else "any authenticated caller")
        for r in api_routes(http.app)  # type: ignore[arg-type]
    }
    assert documented == served
