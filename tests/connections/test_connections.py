"""Data-platform connections through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.connections.models import Connection
from tests.support.factories import assert_problem, auth, example, member_auth


def _project(http: TestClient, headers: dict[str, str], warehouse: str) -> str:
    resp = http.post(
        "/v1/projects", json=example(f"01-create-project-{warehouse}"), headers=headers
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Connection)) or 0


@pytest.mark.parametrize(
    ("warehouse", "name", "provider", "auth_type"),
    [
        ("redshift", "finance-dwh-prod", "REDSHIFT", "PASSWORD"),
        ("snowflake", "growth-dwh-prod", "SNOWFLAKE", "KEY_PAIR"),
    ],
)
def test_create_read_list_delete(
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    warehouse: str,
    name: str,
    provider: str,
    auth_type: str,
) -> None:
    pid = _project(http, admin, warehouse)
    base = f"/v1/projects/{pid}/data-platform-connections"
    resp = http.post(base, json=example(f"03-create-connection-{warehouse}"), headers=admin)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created == {
        "name": name,
        "platformConnectionType": "DWH",
        "authProvider": provider,
        "authType": auth_type,
        "createdAt": created["createdAt"],
    }
    assert created["createdAt"].endswith("Z") and len(created["createdAt"]) == 24
    assert resp.headers["location"] == f"{base}/{name}"

    assert http.get(f"{base}/{name}", headers=admin).json() == created
    assert http.get(f"{base}/{name.upper()}", headers=admin).json() == created  # case-insensitive
    listed = http.get(base, headers=admin).json()
    assert listed == {"page": 0, "size": 25, "total": 1, "results": [created]}

    assert http.delete(f"{base}/{name}", headers=admin).status_code == 204
    assert_problem(http.get(f"{base}/{name}", headers=admin), 404)
    assert_problem(http.delete(f"{base}/{name}", headers=admin), 404)
    for missing in ["nope%00", "%20nope"]:
        assert_problem(http.get(f"{base}/{missing}", headers=admin), 404)
        assert_problem(http.delete(f"{base}/{missing}", headers=admin), 404)
    with session_factory() as session:
        events = list(
            session.execute(
                select(AuditEvent.action, AuditEvent.target_id)
                .where(AuditEvent.target_type == "connection")
                .order_by(AuditEvent.id)
            )
        )
    assert [tuple(e) for e in events] == [
        ("connection.created", name),
        ("connection.deleted", name),
    ]


def test_unicode_name_round_trips_through_urls(http: TestClient, admin: dict[str, str]) -> None:
    pid = _project(http, admin, "redshift")
    base = f"/v1/projects/{pid}/data-platform-connections"
    name = "Entrepôt ✓ 倉庫 #1?"
    body = {**example("03-create-connection-redshift"), "name": name}
    resp = http.post(base, json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"{base}/{quote(name, safe='')}"
    got = http.get(resp.headers["location"], headers=admin)
    assert got.status_code == 200 and got.json()["name"] == name
    assert http.delete(f"{base}/{quote(name, safe='')}", headers=admin).status_code == 204


def test_duplicate_name_is_case_insensitive(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    pid = _project(http, admin, "redshift")
    base = f"/v1/projects/{pid}/data-platform-connections"
    body = {**example("03-create-connection-redshift"), "name": "Straße"}
    assert http.post(base, json=body, headers=admin).status_code == 201
    dup = http.post(base, json={**body, "name": "STRASSE"}, headers=admin)
    assert assert_problem(dup, 409, "name")["type"].endswith("/problems/conflict")
    assert _count(session_factory) == 1
    # the same name in another project is fine
    other = _project(http, admin, "snowflake")
    resp = http.post(
        f"/v1/projects/{other}/data-platform-connections",
        json={**example("03-create-connection-snowflake"), "name": "Straße"},
        headers=admin,
    )
    assert resp.status_code == 201, resp.text


def test_validation_rules(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    redshift = _project(http, admin, "redshift")
    snowflake = _project(http, admin, "snowflake")
    rs = example("03-create-connection-redshift")
    sf = example("03-create-connection-snowflake")
    cases = [
        (redshift, {**rs, "name": ""}, "name"),
        (redshift, {**rs, "name": " padded"}, "name"),
        (redshift, {**rs, "name": "a/b"}, "name"),
        (redshift, {**rs, "name": "nul\x00"}, "name"),
        (redshift, {**rs, "name": "x" * 256}, "name"),
        (redshift, {**rs, "platformConnectionType": "ETL"}, "platformConnectionType"),
        (redshift, {**rs, "authProvider": "BIGQUERY"}, "authProvider"),
        (redshift, {**rs, "authType": "OAUTH"}, "authType"),
        (redshift, {**rs, "authTyp": "PASSWORD"}, "authTyp"),
        (redshift, {k: v for k, v in rs.items() if k != "authType"}, "authType"),
        # the provider must be the project's warehouse
        (redshift, sf, "authProvider"),
        (snowflake, rs, "authProvider"),
        # and each warehouse takes one auth type
        (redshift, {**rs, "authType": "KEY_PAIR"}, "authType"),
        (snowflake, {**sf, "authType": "password"}, "authType"),
    ]
    for pid, body, field in cases:
        resp = http.post(f"/v1/projects/{pid}/data-platform-connections", json=body, headers=admin)
        assert_problem(resp, 400, field)
    assert _count(session_factory) == 0


def test_enums_are_case_insensitive(http: TestClient, admin: dict[str, str]) -> None:
    pid = _project(http, admin, "snowflake")
    body = {
        "name": "c",
        "platformConnectionType": "Dwh",
        "authProvider": "SnowFlake",
        "authType": "Key_Pair",
    }
    resp = http.post(f"/dpc/v1/projects/{pid}/data-platform-connections", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    assert (
        resp.json()["platformConnectionType"],
        resp.json()["authProvider"],
        resp.json()["authType"],
    ) == ("DWH", "SNOWFLAKE", "KEY_PAIR")


def test_permissions_and_unknown_project(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    pid = _project(http, admin, "redshift")
    base = f"/v1/projects/{pid}/data-platform-connections"
    assert (
        http.post(base, json=example("03-create-connection-redshift"), headers=admin).status_code
        == 201
    )
    member = auth(http, session_factory, "MEMBER")
    assert_problem(http.get(base, headers=member), 404)
    assert_problem(
        http.post(base, json=example("03-create-connection-redshift"), headers=member), 404
    )
    assert_problem(http.delete(f"{base}/finance-dwh-prod", headers=member), 404)
    assert_problem(
        http.get(
            "/v1/projects/6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f/data-platform-connections",
            headers=admin,
        ),
        404,
    )
    assert_problem(
        http.get("/v1/projects/nope/data-platform-connections", headers=admin), 400, "projectId"
    )
    assert_problem(http.get(base, headers={}), 401)
    viewer = member_auth(http, session_factory, pid, "VIEWER")
    assert http.get(f"{base}/finance-dwh-prod", headers=viewer).status_code == 200
    assert_problem(
        http.post(
            base, json={**example("03-create-connection-redshift"), "name": "v"}, headers=viewer
        ),
        403,
    )
    assert_problem(http.delete(f"{base}/finance-dwh-prod", headers=viewer), 403)
    assert _count(session_factory) == 1
    contributor = member_auth(http, session_factory, pid, "CONTRIBUTOR")
    assert (
        http.post(
            base,
            json={**example("03-create-connection-redshift"), "name": "c"},
            headers=contributor,
        ).status_code
        == 201
    )
    assert http.delete(f"{base}/c", headers=contributor).status_code == 204


def test_pagination(http: TestClient, admin: dict[str, str]) -> None:
    pid = _project(http, admin, "redshift")
    base = f"/v1/projects/{pid}/data-platform-connections"
    names = [f"c{i}" for i in range(5)]
    for name in names:
        body = {**example("03-create-connection-redshift"), "name": name}
        assert http.post(base, json=body, headers=admin).status_code == 201
    seen = []
    for page in range(3):
        body = http.get(base, params={"page": page, "size": 2}, headers=admin).json()
        assert body["total"] == 5 and body["page"] == page and body["size"] == 2
        seen += [c["name"] for c in body["results"]]
    assert seen == names
    assert_problem(http.get(base, params={"size": 101}, headers=admin), 400, "size")
