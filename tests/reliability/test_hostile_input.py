"""Hostile input: oversized and malformed bodies, injection strings in every string field of every
create route, path tricks. Each answer is a clear 4xx (or, for text that is merely unusual, a
201 that stores it verbatim); never a 5xx, and a refused request writes nothing."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.db import make_engine, make_sessionmaker
from stead.demo import create_bare_repository
from stead.settings import Settings
from tests.reliability.servers import provision, serve
from tests.support.factories import assert_problem, create_agent, example
from tests.support.served import serve_here

#: Strings that have broken other systems: SQL and JSON injection, path tricks, NUL, lone
#: surrogates, bidi overrides, template and log4j lookups, markup, and a very long value.
HOSTILE = [
    "'; DROP TABLE projects; --",
    '"}, "warehouse": "SNOWFLAKE", "x": {"',
    "a\x00b",
    "..",
    "../../etc/passwd",
    "a%2Fb",
    "\ud800",
    "\u202egnp.exe",
    "${jndi:ldap://127.0.0.1/a}{{7*7}}<script>",
    "x" * 100_000,
]

TABLES = (
    "projects",
    "agents",
    "connections",
    "secret_references",
    "environments",
    "repositories",
    "audit_events",
)

_unique = itertools.count()


_COUNTS = text("select " + ", ".join(f"(select count(*) from {t})" for t in TABLES))


def counts(factory: sessionmaker[Session]) -> dict[str, int]:
    """Row count of every table a create route writes to."""
    with factory() as session:
        return dict(zip(TABLES, session.execute(_COUNTS).one(), strict=True))


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value: keys and leaves."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def string_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every string leaf of a JSON value; a dict key is addressed as ``(..., ("key",
    name))``."""
    if isinstance(value, str):
        yield prefix
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, ("key", key))
            yield from string_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_paths(item, (*prefix, index))


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A deep copy of ``value`` with the string at ``path`` replaced by ``new``."""
    value = json.loads(json.dumps(value))
    *parents, last = path
    target = value
    for step in parents:
        target = target[step]
    if isinstance(last, tuple):
        target[new] = target.pop(last[1])
    else:
        target[last] = new
    return value


@dataclass
class World:
    """A project with an agent, a DWH connection and a secret reference to build on."""

    http: TestClient
    headers: dict[str, str]
    factory: sessionmaker[Session]
    project_id: str
    agent_id: str
    git_dir: Path

    def new_project(self) -> str:
        body = example("01-create-project-redshift")
        body["name"] = f"p{next(_unique)}"
        resp = self.http.post("/v1/projects", json=body, headers=self.headers)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["projectId"])


@pytest.fixture
def world(
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> World:
    w = World(http, admin, session_factory, "", "", tmp_path / "git")
    w.project_id = w.new_project()
    w.agent_id = create_agent(http, admin)["agentId"]
    base = f"/v1/projects/{w.project_id}"
    resp = http.post(
        f"{base}/data-platform-connections",
        json=example("03-create-connection-redshift"),
        headers=admin,
    )
    assert resp.status_code == 201, resp.text
    resp = http.post(
        f"{base}/secret-references/finance-prod-redshift",
        json=example("04-create-secret-reference-aws", agentId=w.agent_id, projectId=w.project_id),
        headers=admin,
    )
    assert resp.status_code == 201, resp.text
    resp = http.post(
        f"{base}/environments",
        json=example("05-create-environment-redshift", agentId=w.agent_id),
        headers=admin,
    )
    assert resp.status_code == 201, resp.text
    return w


@dataclass
class Route:
    """A create (or change) route: how to build a valid request, and where to read it back.

    ``build(world)`` returns ``(method, path, body, fixed)``; ``fixed`` are the body paths whose
    value must stay as built (e.g. a fresh unique name that other cases rely on). ``read(world,
    path, body, response)`` returns the GET path of what a successful request wrote.
    """

    name: str
    build: Callable[[World], tuple[str, str, dict[str, Any]]]
    read: Callable[[World, str, dict[str, Any], Any], str]


def _name() -> str:
    return f"n{next(_unique)}"


def _project(w: World) -> tuple[str, str, dict[str, Any]]:
    return "POST", "/v1/projects", {**example("01-create-project-redshift"), "name": _name()}


def _project_patch(w: World) -> tuple[str, str, dict[str, Any]]:
    return "PATCH", f"/v1/projects/{w.project_id}", {"name": _name(), "description": "d"}


def _agent(w: World) -> tuple[str, str, dict[str, Any]]:
    return "POST", "/v1/agents", {**example("02-create-agent"), "name": _name()}


def _allow_list(w: World) -> tuple[str, str, dict[str, Any]]:
    body = {"projects": {w.project_id: {"environments": ["prod"]}}}
    return "PUT", f"/v1/agents/{w.agent_id}/allowlist", body


def _credentials(w: World) -> tuple[str, str, dict[str, Any]]:
    return "POST", f"/v1/agents/{w.agent_id}/credentials", {"action": "SECRET_REFRESH"}


def _connection(w: World) -> tuple[str, str, dict[str, Any]]:
    body = {**example("03-create-connection-redshift"), "name": _name()}
    return "POST", f"/v1/projects/{w.project_id}/data-platform-connections", body


def _secret_reference(w: World) -> tuple[str, str, dict[str, Any]]:
    # any name in the store, so that a hostile secretName is stored (not refused as out of scope)
    scopes = {"scopes": [{"store": "AWS", "prefixes": [""]}]}
    resp = w.http.put(f"/v1/projects/{w.project_id}/secret-scopes", json=scopes, headers=w.headers)
    assert resp.status_code == 200, resp.text
    body = example("04-create-secret-reference-aws", agentId=w.agent_id, projectId=w.project_id)
    return "POST", f"/v1/projects/{w.project_id}/secret-references/{_name()}", body


def _environment(w: World) -> tuple[str, str, dict[str, Any]]:
    body = {**example("05-create-environment-redshift", agentId=w.agent_id), "name": _name()}
    return "POST", f"/v1/projects/{w.project_id}/environments", body


def _environment_patch(w: World) -> tuple[str, str, dict[str, Any]]:
    body = example("05-create-environment-redshift", agentId=w.agent_id)
    del body["name"]
    return "PATCH", f"/v1/projects/{w.project_id}/environments/prod", body


def _repository(w: World) -> tuple[str, str, dict[str, Any]]:
    name = _name()
    remote = create_bare_repository(w.git_dir / f"{name}.git")
    body = {
        "provider": "git",
        "repositoryName": name,
        "providerParameters": {"url": remote.resolve().as_uri()},
    }
    return "POST", f"/v1/projects/{w.new_project()}/repositories", body


def in_path(name: str) -> str:
    """``name`` as a path segment for the TestClient, which percent-decodes paths twice (httpx
    once, Starlette's test transport again); a real server decodes once (see
    :func:`test_names_with_percent_signs_round_trip`)."""
    return quote(quote(name, safe=""), safe="")


def _by_name(collection: str, field: str = "name") -> Callable[[World, str, Any, Any], str]:
    def read(w: World, path: str, body: Any, created: Any) -> str:
        return f"/v1/projects/{w.project_id}/{collection}/{in_path(body[field])}"

    return read


ROUTES = [
    Route("project", _project, lambda w, p, b, c: f"/v1/projects/{c['projectId']}"),
    Route("project patch", _project_patch, lambda w, p, b, c: p),
    Route("agent", _agent, lambda w, p, b, c: f"/v1/agents/{c['agentId']}"),
    Route("allow list", _allow_list, lambda w, p, b, c: p),
    Route("credentials", _credentials, lambda w, p, b, c: p.removesuffix("/credentials")),
    Route("connection", _connection, _by_name("data-platform-connections")),
    Route("secret reference", _secret_reference, lambda w, p, b, c: p),
    Route("environment", _environment, _by_name("environments")),
    Route("environment patch", _environment_patch, lambda w, p, b, c: p),
    Route("repository", _repository, lambda w, p, b, c: p),
]


def send(w: World, method: str, path: str, body: Any) -> Any:
    """Send ``body`` as ASCII JSON (lone surrogates travel as ``\\ud800`` escapes)."""
    headers = {**w.headers, "Content-Type": "application/json"}
    content = None if body is None else json.dumps(body)
    return w.http.request(method, path, content=content, headers=headers)


def _check(
    w: World, route: Route, method: str, path: str, body: Any, hostile: Any, label: str
) -> None:
    before = counts(w.factory)
    resp = send(w, method, path, body)
    assert resp.status_code < 500, f"{label}: {resp.status_code} {resp.text[:500]}"
    if resp.status_code >= 400:
        assert_problem(resp, resp.status_code)
        assert counts(w.factory) == before, f"{label}: refused but wrote"
        return
    after = counts(w.factory)
    assert after["audit_events"] == before["audit_events"] + 1, label
    read = w.http.get(route.read(w, path, body, resp.json()), headers=w.headers)
    assert read.status_code == 200, f"{label}: {read.text[:300]}"
    if isinstance(hostile, str) and method != "PUT" and "credentials" not in path:
        assert hostile in set(strings(read.json())), f"{label}: not stored verbatim"


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_hostile_strings_in_every_field(world: World, route: Route) -> None:
    method, path, body = route.build(world)
    for field_path in list(string_paths(body)):
        for hostile in [*HOSTILE, {"$ne": None}, 12345]:
            if isinstance(field_path[-1], tuple) and not isinstance(hostile, str):
                continue
            method, path, body = route.build(world)
            label = f"{route.name} {field_path} = {str(hostile)[:40]!r}"
            _check(world, route, method, path, replaced(body, field_path, hostile), hostile, label)


SEGMENT_ROUTES = [
    ("POST", "/v1/projects/{p}/secret-references/{x}", "secret reference"),
    ("GET", "/v1/projects/{p}/secret-references/{x}", None),
    ("DELETE", "/v1/projects/{p}/secret-references/{x}", None),
    ("GET", "/v1/projects/{p}/environments/{x}", None),
    ("PATCH", "/v1/projects/{p}/environments/{x}", "environment patch"),
    ("DELETE", "/v1/projects/{p}/environments/{x}", None),
    ("GET", "/v1/projects/{p}/data-platform-connections/{x}", None),
    ("DELETE", "/v1/projects/{p}/data-platform-connections/{x}", None),
    ("GET", "/v1/projects/{x}", None),
    ("DELETE", "/v1/projects/{x}", None),
    ("GET", "/v1/agents/{x}", None),
    ("DELETE", "/v1/agents/{x}", None),
]
PATH_TRICKS = [
    "%2e%2e",
    "..%2F..%2Fagents",
    "prod%2F..%2Fprod",
    "%2F",
    "%00",
    "prod%00",
    "%252F",
    "prod%5C..",
    "%ff%fe",
    "%C0%AE%C0%AE",
    "prod;DROP",
    "*",
    "%20prod",
    "x" * 5000,
]


def test_path_tricks_in_names(settings: Settings) -> None:
    # Over a real server: the TestClient would percent-decode the path a second time.
    with (
        serve_here(settings) as srv,
        httpx.Client(base_url=srv.url, headers=srv.headers(), timeout=30) as client,
    ):
        made = provision(client)
        project_id = made["project_id"]
        factory = make_sessionmaker(make_engine(settings.database_url))
        bodies = {
            "secret reference": example(
                "04-create-secret-reference-aws", agentId=made["agent_id"], projectId=project_id
            ),
            "environment patch": {"displayName": "x"},
        }
        for (method, template, body_route), trick in itertools.product(SEGMENT_ROUTES, PATH_TRICKS):
            path = template.replace("{p}", project_id).replace("{x}", trick)
            body = bodies.get(body_route or "")
            before = counts(factory)
            resp = client.request(method, path, json=body)
            label = f"{method} {path[:120]}"
            assert 400 <= resp.status_code < 500, f"{label}: {resp.status_code} {resp.text[:300]}"
            if resp.status_code != 405:
                assert_problem(resp, resp.status_code)
            assert counts(factory) == before, f"{label}: wrote"
        assert client.get(f"/v1/projects/{project_id}/environments/prod").status_code == 200
        factory.kw["bind"].dispose()


def test_names_that_are_only_dots_are_refused(world: World) -> None:
    # A client normalises "." and ".." path segments away (RFC 3986 section 5.2.4), so such a
    # name could never be addressed again.
    for name in (".", ".."):
        for _, (method, path, body) in [
            ("project", _project(world)),
            ("connection", _connection(world)),
            ("environment", _environment(world)),
            ("agent", _agent(world)),
        ]:
            before = counts(world.factory)
            resp = world.http.request(
                method, path, json={**body, "name": name}, headers=world.headers
            )
            assert_problem(resp, 400, "name")
            assert counts(world.factory) == before


def test_names_with_percent_signs_round_trip(settings: Settings) -> None:
    with (
        serve_here(settings) as srv,
        httpx.Client(base_url=srv.url, headers=srv.headers(), timeout=30) as client,
    ):
        resp = client.post("/v1/projects", json=example("01-create-project-redshift"))
        base = f"/v1/projects/{resp.json()['projectId']}/data-platform-connections"
        names = ("a%2Fb", "%00", "100%", "a..b", "%2e%2e", "..a", "sp ace", "ünï/?#"[:3])
        for name in names:
            body = {**example("03-create-connection-redshift"), "name": name}
            assert client.post(base, json=body).status_code == 201, name
        for name in names:
            got = client.get(f"{base}/{quote(name, safe='')}")
            assert got.status_code == 200 and got.json()["name"] == name, name
        assert client.get(f"{base}/a%2Fb").status_code == 404  # that is "a/b", no such name


def test_body_over_the_limit_is_413(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    limit = Settings().max_body_bytes
    assert limit == 1024 * 1024
    body = json.dumps({**example("01-create-project-redshift"), "description": "x" * limit})
    before = counts(session_factory)
    resp = http.post(
        "/v1/projects", content=body, headers={**admin, "Content-Type": "application/json"}
    )
    problem = assert_problem(resp, 413, "body")
    assert problem["type"].endswith("/content-too-large")

    def chunks() -> Iterator[bytes]:
        data = body.encode()
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    resp = http.post(
        "/v1/projects", content=chunks(), headers={**admin, "Content-Type": "application/json"}
    )
    assert_problem(resp, 413, "body")
    assert counts(session_factory) == before
    # under the limit: read and judged on its content (description too long), not its size
    body = json.dumps({**example("01-create-project-redshift"), "description": "x" * 3000})
    resp = http.post(
        "/v1/projects", content=body, headers={**admin, "Content-Type": "application/json"}
    )
    assert_problem(resp, 400, "description")


@pytest.mark.process
def test_oversized_declared_length_is_refused_before_the_body_is_read(
    db_url: str, tmp_path: Path
) -> None:
    with serve(db_url, tmp_path / "srv") as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000000000\r\n\r\n{"name":'
            )
            started = time.monotonic()
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            assert time.monotonic() - started < 2
        answer = answer.decode()
        head, _, payload = answer.partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 413"), answer
        assert "application/problem+json" in head
        assert json.loads(payload)["status"] == 413


def test_malformed_bodies(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    headers = {**admin, "Content-Type": "application/json"}
    bodies = [
        b'{"name": "\xff\xfe", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}',
        b'\xef\xbb\xbf{"name": "bom"}',
        b'{"name": "a\x00b", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}',
        b'{"name": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        b'{"name": {"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
        b"[" * 500_000,
        b'{"name": "x", "name": "y", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"',
        b'{"name": 1e999, "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}',
        b'{"name": NaN, "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}',
        b'{"description": "' + b"9" * 900_000 + b'"}',
        b"null",
        b'"just a string"',
        b"",
        b"{}" * 1000,
    ]
    before = counts(session_factory)
    for body in bodies:
        resp = http.post("/v1/projects", content=body, headers=headers)
        assert 400 <= resp.status_code < 500, (body[:60], resp.status_code, resp.text[:300])
        assert_problem(resp, resp.status_code)
        resp = http.post(
            "/v1/projects", content=body, headers={**headers, "Idempotency-Key": f"k{len(body)}"}
        )
        assert 400 <= resp.status_code < 500, (body[:60], resp.status_code, resp.text[:300])
    assert counts(session_factory) == before


def test_hostile_token_requests(http: TestClient) -> None:
    for value in HOSTILE[:3]:
        for field in ("client_id", "client_secret", "grant_type", "audience"):
            form = {"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"}
            form[field] = value
            resp = http.post("/oauth/dpc/token", data=form)
            assert resp.status_code in (400, 401), (field, value[:30], resp.text[:300])
    resp = http.post(
        "/oauth/dpc/token",
        content=b"grant_type=client_credentials&client_id=%ff%fe&client_secret=%00",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code in (400, 401), resp.text


def test_a_small_limit_applies_to_every_route(tmp_path: Path, db_url: str) -> None:
    app = create_app(Settings(data_dir=tmp_path / "d", database_url=db_url, max_body_bytes=100))
    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.post("/oauth/dpc/token", data={"client_id": "c" * 200})
        assert_problem(resp, 413, "body")
        resp = client.post("/v1/agents", json={"name": "a" * 200})
        assert_problem(resp, 413, "body")
        resp = client.post("/v1/agents", json={"name": "a"})
        assert_problem(resp, 401)
