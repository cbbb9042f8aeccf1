"""The Python SDK against a real ``stead serve`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.repo import Repo

import stead.sdk
from stead.agents.schemas import AgentUpdate
from stead.db import make_engine, make_sessionmaker
from stead.demo import create_bare_repository, example
from stead.projects.schemas import ProjectCreate, ProjectUpdate
from stead.sdk import (
    Client,
    Conflict,
    Forbidden,
    NotFound,
    ServerError,
    Unauthorized,
    ValidationError,
)
from stead.settings import Settings
from tests.support.factories import new_client
from tests.support.flaky_proxy import Fault, flaky_proxy
from tests.support.served import Served, serve_here

REDSHIFT = {"name": "finance", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}


def test_public_names_are_pinned() -> None:
    assert stead.sdk.__all__ == [
        "ApiError",
        "Client",
        "Conflict",
        "Forbidden",
        "NotFound",
        "RateLimited",
        "ServerError",
        "SteadError",
        "TransportError",
        "Unauthorized",
        "ValidationError",
    ]
    for name in stead.sdk.__all__:
        assert getattr(stead.sdk, name).__doc__


def test_importing_the_sdk_loads_no_server_code() -> None:
    probe = (
        "import re, sys, stead.sdk\n"
        "server = {'sqlalchemy', 'fastapi', 'starlette', 'alembic', 'uvicorn', 'psycopg',\n"
        "          'structlog', 'dulwich', 'argon2', 'jwt', 'cryptography', 'typer'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & server))\n"
        "ok = re.compile(r'stead(\\.sdk(\\..+)?|\\.wire|\\.tls|\\.\\w+(\\.schemas)?)?')\n"
        "print(sorted(m for m in sys.modules if m.startswith('stead') and not ok.fullmatch(m)))\n"
        "print(sorted(m for m in sys.modules if re.fullmatch(r'stead\\.\\w+', m)\n"
        "             and m not in ('stead.sdk', 'stead.wire', 'stead.tls')\n"
        "             and m + '.schemas' not in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == ["[]", "[]", "[]"], out


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    with serve_here(settings) as running:
        yield running


def _client(served: Served, url: str | None = None, **kwargs: float) -> Client:
    return Client(url or served.url, served.client_id, served.client_secret, **kwargs)


def test_every_resource_round_trips(served: Served, tmp_path: Path) -> None:
    with _client(served) as stead:
        created = stead.projects.create(ProjectCreate.model_validate(REDSHIFT))
        pid = created.project_id
        agent = stead.agents.create({**example("02-create-agent"), "name": "eu agent"})
        assert stead.agents.get(agent.agent_id).name == "eu agent"
        assert {a.name for a in stead.agents.list()} == {"Hosted agent", "eu agent"}
        connection = stead.connections.create(pid, example("03-create-connection-redshift"))
        assert stead.connections.get(pid, connection.name).auth_type == "PASSWORD"
        reference = stead.secret_references.create(
            pid,
            "finance-prod-redshift",
            example("04-create-secret-reference-aws", agentId=agent.agent_id, projectId=pid),
        )
        assert [r.name for r in stead.secret_references.list(pid)] == [reference.name]
        environment = stead.environments.create(
            pid, example("05-create-environment-redshift", agentId=agent.agent_id)
        )
        assert environment.default_agent_name == "eu agent"
        updated = stead.environments.update(pid, "prod", {"description": "changed"})
        assert updated.description == "changed"
        assert [e.name for e in stead.environments.list(pid)] == ["prod"]
        remote = create_bare_repository(tmp_path / "git" / "pipelines.git")
        repository = stead.repositories.associate(
            pid,
            {
                "provider": "git",
                "repositoryName": "pipelines",
                "providerParameters": {"url": remote.as_uri()},
            },
            token="anything",
        )
        assert repository.default_branch == "main"
        stead.repositories.check_token(pid, token="anything")
        assert stead.repositories.get(pid).repository_name == "pipelines"
        credentials = stead.agents.refresh_credentials(agent.agent_id)
        assert credentials.client_secret and stead.agents.get(agent.agent_id).client_id
        assert stead.agents.get_credentials(agent.agent_id) == credentials
        updated = stead.agents.update(agent.agent_id, AgentUpdate(track_name="stable"))
        assert updated.track_name == "stable" and updated.name == "eu agent"
        allow = stead.agents.set_allow_list(
            agent.agent_id, {"projects": {pid: {"environments": ["prod"]}}}
        )
        assert stead.agents.get_allow_list(agent.agent_id) == allow
        assert stead.agents.add_to_allow_list(
            agent.agent_id, {"projects": {pid: {"environments": ["dev"]}}}
        ).projects[pid].environments == ["prod", "dev"]
        assert stead.projects.update(pid, ProjectUpdate(description="d")).description == "d"

        secret = stead.secrets.create(
            pid, {"name": "extra", "type": "PASSWORD", "value": "CANARY-hosted-value-1"}
        )
        assert secret.version == 1 and "CANARY" not in secret.model_dump_json()
        assert stead.secrets.update(pid, "extra", {"value": "CANARY-2"}).version == 2
        assert [x.name for x in stead.secrets.list(pid)] == ["extra"]
        assert stead.secrets.get(pid, "EXTRA").type == "PASSWORD"
        stead.secrets.delete(pid, "extra")
        with Client(served.url, served.client_id, served.client_secret, max_retries=0) as once:
            with pytest.raises(ServerError) as unconfigured:  # no AWS store configured here
                once.secret_references.check(pid, reference.name)
            assert unconfigured.value.status == 503

        stead.repositories.delete(pid)
        empty = Repo.init_bare(str(tmp_path / "git" / "empty.git"), mkdir=True)
        initialized = stead.repositories.associate(
            pid,
            {
                "provider": "git",
                "repositoryName": "empty",
                "providerParameters": {"url": Path(empty.path).as_uri()},
            },
            token="anything",
            initialize=True,
        )
        # the first commit goes to the branch the empty repository's HEAD names
        assert initialized.default_branch == "master" and b"refs/heads/master" in empty.refs
        stead.repositories.delete(pid, token="anything")
        stead.environments.delete(pid, "prod")
        stead.secret_references.delete(pid, reference.name)
        stead.connections.delete(pid, connection.name)
        stead.agents.delete(agent.agent_id)
        stead.projects.delete(pid)
        with pytest.raises(NotFound):
            stead.projects.get(pid)


def test_provisioning_in_one_call(served: Served, tmp_path: Path) -> None:
    with _client(served) as stead:
        agent = stead.agents.create({**example("02-create-agent"), "name": "eu agent"})
        environment = example("05-create-environment-redshift", agentId=agent.agent_id)
        override = environment.pop("connectionOverrides")[0]
        del environment["defaultConnections"]
        remote = create_bare_repository(tmp_path / "git" / "pipelines.git")
        body = {
            "project": REDSHIFT,
            "connection": {"name": override["connectionName"]},
            "secretReference": {
                **example("04-create-secret-reference-aws", agentId=agent.agent_id),
                "name": "finance-prod-redshift",
                "secretName": "stead/{projectId}/prod/finance/redshift",
            },
            "environment": {
                **environment,
                "connectionProperties": override["connectionProperties"],
            },
            "repository": {
                "provider": "git",
                "repositoryName": "pipelines",
                "providerParameters": {"url": remote.as_uri()},
            },
        }
        with pytest.raises(ValidationError) as refused:
            stead.projects.provision(body)
        assert refused.value.violations == ["Git-Provider-Access-Token: required with a repository"]
        result = stead.projects.provision(body, token="unused")
        pid = result.project_id
        assert stead.projects.get(pid).name == "finance"
        assert stead.environments.get(pid, "prod").default_agent_name == "eu agent"
        reference = stead.secret_references.get(pid, "finance-prod-redshift")
        assert reference.secret_name == f"stead/{pid}/prod/finance/redshift"
        assert stead.repositories.get(pid) == result.repository


def test_lists_iterate_over_every_page(served: Served) -> None:
    with _client(served) as stead:
        ids = [stead.projects.create({**REDSHIFT, "name": f"p{i}"}).project_id for i in range(7)]
        sent = stead.requests_sent
        assert [p.id for p in stead.projects.list(page_size=3)] == ids
        assert stead.requests_sent - sent == 3
        assert list(stead.connections.list(ids[0], page_size=3)) == []


def test_problems_become_exceptions(served: Served) -> None:
    with _client(served) as stead:
        first = stead.projects.create(REDSHIFT)
        with pytest.raises(Conflict) as conflict:
            stead.projects.create({**REDSHIFT, "name": "FINANCE"})
        assert conflict.value.existing_id == first.project_id
        assert conflict.value.status == 409 and conflict.value.request_id
        with pytest.raises(ValidationError) as invalid:
            stead.projects.create({**REDSHIFT, "name": "x", "warehouse": "BIGQUERY"})
        assert any(v.startswith("warehouse:") for v in invalid.value.violations)
        with pytest.raises(NotFound):
            stead.environments.get(first.project_id, "missing")
    with pytest.raises(Unauthorized), Client(served.url, served.client_id, "wrong") as bad:
        bad.projects.get(first.project_id)
    with Client(served.url, token="not-a-jwt") as anonymous, pytest.raises(Unauthorized):
        anonymous.projects.get(first.project_id)


def test_forbidden(served: Served, db_url: str) -> None:
    engine = make_engine(db_url)
    member_id, member_secret = new_client(make_sessionmaker(engine), "MEMBER")
    engine.dispose()
    with Client(served.url, member_id, member_secret) as member, pytest.raises(Forbidden):
        member.projects.create(REDSHIFT)


def test_survives_503_with_retry_after_twice(served: Served) -> None:
    with flaky_proxy(served.url) as proxy, _client(served, proxy.url) as stead:
        proxy.faults.append(Fault("POST", "/v1/projects", retry_after="1", times=2))
        started = time.monotonic()
        created = stead.projects.create(REDSHIFT)
        elapsed = time.monotonic() - started
        posts = [s for s in proxy.seen if s.method == "POST" and s.path == "/v1/projects"]
        assert [s.status for s in posts] == [503, 503, 201]
        assert len({s.headers["Idempotency-Key"] for s in posts}) == 1
        assert elapsed >= 2.0
        assert [p.id for p in stead.projects.list()] == [created.project_id]


def test_a_lost_answer_is_retried_without_a_duplicate(served: Served) -> None:
    with flaky_proxy(served.url) as proxy, _client(served, proxy.url, backoff=0.05) as stead:
        # the server creates the project, but its answer never reaches the client
        proxy.faults.append(
            Fault("POST", "/v1/projects", status=502, retry_after=None, forward=True)
        )
        created = stead.projects.create(REDSHIFT)
        assert [p.id for p in stead.projects.list()] == [created.project_id]
        posts = [s for s in proxy.seen if s.method == "POST" and s.path == "/v1/projects"]
        assert [s.status for s in posts] == [502, 201]


def test_gives_up_on_a_long_retry_after_and_after_max_retries(served: Served) -> None:
    with flaky_proxy(served.url) as proxy, _client(served, proxy.url, backoff=0.01) as stead:
        proxy.faults.append(Fault("GET", "/v1/projects", retry_after="3600"))
        started = time.monotonic()
        with pytest.raises(ServerError) as error:
            list(stead.projects.list())
        assert error.value.status == 503 and time.monotonic() - started < 5
        proxy.faults.append(Fault("GET", "/v1/projects", status=504, retry_after=None, times=9))
        with pytest.raises(ServerError) as error:
            list(stead.projects.list())
        assert error.value.status == 504
        assert sum(s.status == 504 for s in proxy.seen) == 1 + stead.max_retries


def test_token_is_cached_and_renewed_before_it_expires(settings: Settings) -> None:
    with (
        serve_here(settings.model_copy(update={"token_ttl_seconds": 3})) as served,
        flaky_proxy(served.url) as proxy,
        _client(served, proxy.url) as stead,
    ):
        for _ in range(5):
            list(stead.projects.list())
        time.sleep(3)
        list(stead.projects.list())
        tokens = [s for s in proxy.seen if s.path == "/oauth/dpc/token"]
        assert len(tokens) == 2
        assert all(s.status == 200 for s in proxy.seen)  # never a 401 from an expired token


def test_people_and_audit_round_trip(served: Served) -> None:
    with _client(served) as stead:
        pid = stead.projects.create(REDSHIFT).project_id
        created = stead.api_clients.create({"name": "ci", "role": "ADMIN"})
        assert created.client_secret
        rotated = stead.api_clients.rotate_secret(created.client_id)
        assert rotated.client_secret != created.client_secret
        assert created.client_id in {c.client_id for c in stead.api_clients.list()}
        assert stead.api_clients.get(created.client_id).name == "ci"
        stead.api_clients.delete(created.client_id)
        assert stead.api_clients.get(created.client_id).revoked_at is not None

        invitation = stead.invitations.create(
            pid, {"email": "ada@example.com", "projectRole": "VIEWER", "returnAcceptUrl": True}
        )
        assert invitation.accept_url and [i.email for i in stead.invitations.list(pid)] == [
            "ada@example.com"
        ]
        token = invitation.accept_url.rsplit("/", 1)[1]
        accepted = stead.invitations.accept(token, {"password": "correct horse battery"})
        assert accepted.user_created and accepted.project_id == pid
        login = stead.auth.login({"email": "ada@example.com", "password": "correct horse battery"})
        with Client(served.url, token=login.access_token) as ada:
            assert ada.projects.get(pid).name == "finance"
            with pytest.raises(Forbidden):
                ada.projects.update(pid, {"description": "nope"})
            assert ada.users.me().email == "ada@example.com"
            stead.users.revoke_tokens(accepted.user_id)
            with pytest.raises(Unauthorized):
                ada.users.me()
        assert stead.users.get(accepted.user_id).disabled is False
        assert "ada@example.com" in {u.email for u in stead.users.list()}
        assert [u.email for u in stead.users.list(q="ADA@")] == ["ada@example.com"]
        assert stead.users.update(accepted.user_id, {"disabled": True}).disabled is True
        assert stead.users.update(accepted.user_id, {"disabled": False}).disabled is False
        assert stead.users.unlock(accepted.user_id).locked is False
        reset = stead.users.start_password_reset(accepted.user_id)
        assert reset.email == "ada@example.com" and reset.mail_sent is False
        stead.auth.reset_password(reset.reset_url.rsplit("/", 1)[1], "a brand new password")
        stead.auth.login({"email": "ada@example.com", "password": "a brand new password"})
        member = next(m for m in stead.members.list(pid) if m.principal_id == accepted.user_id)
        changed = stead.members.update(pid, member.principal_id, {"projectRole": "CONTRIBUTOR"})
        assert changed.project_role == "CONTRIBUTOR"

        agent = stead.agents.create({**example("02-create-agent"), "name": "agent"})
        stead.connections.create(pid, example("03-create-connection-redshift"))
        stead.secret_references.create(
            pid,
            "finance-prod-redshift",
            example("04-create-secret-reference-aws", agentId=agent.agent_id, projectId=pid),
        )
        stead.environments.create(
            pid, example("05-create-environment-redshift", agentId=agent.agent_id)
        )
        access = stead.environment_access.set(
            pid, "prod", accepted.user_id, {"accessLevel": "runner"}
        )
        assert access.access_level == "runner"
        assert [a.user_id for a in stead.environment_access.list(pid, "prod")] == [accepted.user_id]
        stead.environment_access.delete(pid, "prod", accepted.user_id)
        stead.members.delete(pid, member.principal_id)
        assert [m.principal_id for m in stead.members.list(pid)] == []
        actions = [e.action for e in stead.audit_events.list(project_id=pid)]
        assert actions[0] == "project.created" and "environment.created" in actions
        assert list(stead.audit_events.list(action="no.such")) == []
        exported = stead.audit_events.export(project_id=pid, export_format="json")
        assert [e["action"] for e in json.loads(exported)] == actions
        assert stead.audit_events.export(project_id=pid).splitlines()[0].startswith("id,createdAt")


def test_a_lasting_503_is_answered_at_once_and_a_passing_one_retried(served: Served) -> None:
    with flaky_proxy(served.url) as proxy, _client(served, proxy.url) as stead:
        pid = stead.projects.create(REDSHIFT).project_id
        agent = stead.agents.create(example("02-create-agent"))
        stead.secret_references.create(
            pid,
            "pw",
            example("04-create-secret-reference-aws", agentId=agent.agent_id, projectId=pid),
        )
        # this server has no AWS store configured: a cause that waiting does not remove. With a
        # 10 s backoff, any wait before giving up would show even on a loaded machine (where a
        # request and a token may take more than a second).
        with _client(served, proxy.url, backoff=10) as patient:
            started = time.monotonic()
            with pytest.raises(ServerError) as unconfigured:
                patient.secret_references.check(pid, "pw")
            assert time.monotonic() - started < 6.0
        assert unconfigured.value.status == 503
        assert unconfigured.value.problem["type"].endswith("/secret-store-not-configured")
        checks = [s for s in proxy.seen if s.path.endswith("/check")]
        assert [s.status for s in checks] == [503]

        # a 503 that is not Stead's problem document (a load balancer's page) is retried
        proxy.faults.append(Fault("GET", "/v1/projects", retry_after=None, problem=False))
        assert [p.id for p in stead.projects.list()] == [pid]
        lists = [s.status for s in proxy.seen if s.method == "GET" and s.path == "/v1/projects"]
        assert lists == [503, 200]
