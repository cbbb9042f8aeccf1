"""Plain-function factories for tests: API clients with tokens, and request helpers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.agents.models import Agent
from stead.db import session_scope
from stead.identity.models import ApiClient, ProjectMember
from stead.identity.service import create_api_client, create_user

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "stead" / "demo_examples"


def example(name: str, **substitutions: str) -> dict[str, Any]:
    """Load ``src/stead/demo_examples/<name>.json`` with ``{{key}}`` placeholders filled in."""
    text = (EXAMPLES / f"{name}.json").read_text()
    for key, value in substitutions.items():
        text = text.replace("{{" + key + "}}", value)
    return json.loads(text)  # type: ignore[no-any-return]


def new_client(
    factory: sessionmaker[Session], role: str = "SUPER_ADMIN", name: str = "test client"
) -> tuple[str, str]:
    """Create an API client directly in the database; return ``(client_id, client_secret)``."""
    for session in session_scope(factory, write=True):
        client, secret = create_api_client(session, name=name, role=role)
        client_id = client.client_id
    return client_id, secret


def token_for(http: TestClient, client_id: str, client_secret: str) -> str:
    """Obtain a bearer token from the token endpoint."""
    resp = http.post(
        "/oauth/dpc/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def auth(
    http: TestClient, factory: sessionmaker[Session], role: str = "SUPER_ADMIN"
) -> dict[str, str]:
    """Headers for a fresh API client of ``role``."""
    return {"Authorization": f"Bearer {token_for(http, *new_client(factory, role))}"}


def member_auth(
    http: TestClient, factory: sessionmaker[Session], project_id: str, role: str
) -> dict[str, str]:
    """Headers for a fresh ``MEMBER`` API client holding project role ``role`` in ``project_id``."""
    client_id, secret = new_client(factory, "MEMBER")
    for session in session_scope(factory, write=True):
        client = session.scalars(select(ApiClient).where(ApiClient.client_id == client_id)).one()
        session.add(
            ProjectMember(
                project_id=project_id,
                principal_type="api_client",
                principal_id=client.id,
                role=role,
            )
        )
    return {"Authorization": f"Bearer {token_for(http, client_id, secret)}"}


def assert_problem(resp: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """Check a problem+json answer; when ``field`` is given, a violation must name it."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance", "violations"} <= body.keys()
    if field is not None:
        assert any(v.startswith(f"{field}:") for v in body["violations"]), body["violations"]
    return body


_agent_numbers = itertools.count(1)


def create_agent(http: TestClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """POST the ``02-create-agent`` example (its name made unique per call unless ``name`` is
    given; ``overrides`` are wire field names) and return the created agent."""
    body = example("02-create-agent")
    body["name"] = f"{body['name']} {next(_agent_numbers)}"
    body.update(overrides)
    resp = http.post("/v1/agents", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def hosted_agent_id(session_factory: sessionmaker[Session]) -> str:
    """The id of the account's hosted agent (seeded by the first migration)."""
    with session_factory() as session:
        return session.scalars(select(Agent.id).where(Agent.is_hosted)).one()


USER_PASSWORD = "correct horse battery staple"
_user_numbers = itertools.count(1)


def new_user(
    factory: sessionmaker[Session],
    role: str = "MEMBER",
    email: str | None = None,
    password: str = USER_PASSWORD,
    project_id: str | None = None,
    project_role: str | None = None,
) -> tuple[str, str]:
    """Create a user directly in the database (with a project membership when ``project_id``
    and ``project_role`` are given); return ``(user_id, email)``."""
    email = email or f"user{next(_user_numbers)}@example.com"
    for session in session_scope(factory, write=True):
        user = create_user(session, email=email, password=password, display_name=None, role=role)
        if project_id and project_role:
            session.add(
                ProjectMember(
                    project_id=project_id,
                    principal_type="user",
                    principal_id=user.id,
                    role=project_role,
                )
            )
        user_id = user.id
    return user_id, email


def login(http: TestClient, email: str, password: str = USER_PASSWORD) -> dict[str, str]:
    """Headers for a user, from ``POST /v1/auth/login``."""
    resp = http.post("/v1/auth/login", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def user_auth(
    http: TestClient,
    factory: sessionmaker[Session],
    project_id: str | None = None,
    project_role: str | None = None,
    role: str = "MEMBER",
) -> dict[str, str]:
    """Headers for a fresh user of account role ``role``, a member of ``project_id`` with
    ``project_role`` when given."""
    _, email = new_user(factory, role=role, project_id=project_id, project_role=project_role)
    return login(http, email)
