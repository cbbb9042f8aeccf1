"""Secret scopes: a member of one project cannot reach another project's secrets through the
shared store credentials (docs/decisions.md, "Secret scopes"). The stores are real (moto's
Secrets Manager, OpenBao) or fakes at their REST boundary (Azure, GCP)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from stead.audit.models import AuditEvent
from tests.secrets.resolvers.conftest import EXTERNAL, World, next_number
from tests.support.factories import assert_problem, auth, example, member_auth, user_auth

OUT_OF_SCOPE = "https://stead.dev/problems/secret-out-of-scope"


def _new_project(world: World) -> str:
    body = {**example("01-create-project-redshift"), "name": f"other-{next_number()}"}
    resp = world.http.post("/v1/projects", json=body, headers=world.admin)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


def _body(world: World, store: str, secret_name: str) -> dict[str, Any]:
    return {
        "agentId": world.agent_id,
        "agentType": store,
        "secretReferenceType": "PASSWORD",
        "secretName": secret_name,
    }


def _scopes(world: World, project_id: str) -> str:
    return f"/v1/projects/{project_id}/secret-scopes"


def _out_of_scope(resp: Any, secret_name: str) -> None:
    body = assert_problem(resp, 403, "secretName")
    assert body["type"] == OUT_OF_SCOPE, body
    assert secret_name in body["violations"][0]


@pytest.mark.parametrize("store", EXTERNAL)
def test_a_contributor_cannot_reference_another_projects_secret(
    world: World, store: str, canary: str
) -> None:
    """A CONTRIBUTOR of P names Q's secret in the shared store; before scopes the
    reference was created and ``/check`` resolved it with Stead's credentials."""
    victim = world.project_id
    theirs = world.put(store, canary)  # inside the victim project's default scope
    attacker_project = _new_project(world)
    contributor = user_auth(world.http, world.factory, attacker_project, "CONTRIBUTOR")
    refs = f"/v1/projects/{attacker_project}/secret-references"
    resp = world.http.post(f"{refs}/stolen", json=_body(world, store, theirs), headers=contributor)
    _out_of_scope(resp, theirs)
    assert victim in theirs  # the name is the victim project's
    assert world.http.get(refs, headers=contributor).json()["total"] == 0
    # the victim project itself resolves it
    assert world.check(world.reference(store, theirs)).status_code == 200
    # and the refusal is audited, without the value
    with world.factory() as session:
        denied = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "access.denied", AuditEvent.project_id == attacker_project
            )
        ).all()
    assert denied and all(canary not in str(e.details) for e in denied)


def test_defaults_per_store_and_whats_outside(world: World) -> None:
    pid = world.project_id
    resp = world.http.get(_scopes(world, pid), headers=world.admin)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "scopes": [
            {"store": "AWS", "prefixes": [f"stead/{pid}/"], "default": True},
            {"store": "Vault", "prefixes": [f"stead/{pid}/"], "default": True},
            {"store": "Azure", "prefixes": [f"stead-{pid}-"], "default": True},
            {"store": "GCP", "prefixes": [f"stead-{pid}-"], "default": True},
        ],
        "outOfScope": [],
    }
    refs = f"/v1/projects/{pid}/secret-references"
    for store, name in [
        ("AWS", f"stead/{pid}x/db"),  # a longer id is not this project's prefix
        ("AWS", f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:stead/{pid}/db"),
        ("Vault", f"stead/{pid}-other/db"),
        ("Azure", "finance-db"),
        ("GCP", f"projects/elsewhere/secrets/stead-{pid}-db"),
    ]:
        _out_of_scope(
            world.http.post(f"{refs}/r", json=_body(world, store, name), headers=world.admin), name
        )
    # Vault paths cannot climb out of the prefix; Azure compares names case-insensitively
    resp = world.http.post(
        f"{refs}/r", json=_body(world, "Vault", f"stead/{pid}/../x"), headers=world.admin
    )
    assert_problem(resp, 400, "secretName")
    upper = f"STEAD-{pid.upper()}-db"
    resp = world.http.post(f"{refs}/r", json=_body(world, "Azure", upper), headers=world.admin)
    assert resp.status_code == 201, resp.text


def test_narrowing_a_scope_stops_existing_references(world: World, canary: str) -> None:
    pid = world.project_id
    name = world.put("AWS", canary)
    reference = world.reference("AWS", name)
    assert world.check(reference).status_code == 200
    vault_name = world.put("Vault", canary)
    vault_ref = world.reference("Vault", vault_name)

    resp = world.http.put(
        _scopes(world, pid),
        json={"scopes": [{"store": "AWS", "prefixes": [f"stead/{pid}/team-a/"]}]},
        headers=world.admin,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["outOfScope"] == [reference]
    assert resp.json()["scopes"][0] == {
        "store": "AWS",
        "prefixes": [f"stead/{pid}/team-a/"],
        "default": False,
    }
    _out_of_scope(world.check(reference), name)
    assert world.check(vault_ref).status_code == 200  # other stores keep their default
    # the resolver behind every connection test refuses it too
    from stead.secrets.scopes import SecretOutOfScope

    with pytest.raises(SecretOutOfScope):
        world.resolve(reference)

    # an empty list allows nothing; [""] the whole store; leaving a store out resets it
    put = world.http.put(
        _scopes(world, pid),
        json={"scopes": [{"store": "aws", "prefixes": [""]}, {"store": "Vault", "prefixes": []}]},
        headers=world.admin,
    )
    assert put.json()["outOfScope"] == [vault_ref]
    assert world.check(reference).status_code == 200
    _out_of_scope(world.check(vault_ref), vault_name)
    world.http.put(_scopes(world, pid), json={"scopes": []}, headers=world.admin)
    assert world.check(vault_ref).status_code == 200
    assert world.check(reference).status_code == 200  # back inside stead/<projectId>/

    with world.factory() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "secret_scope.updated")
        ).all()
    assert [e.details["scopes"] for e in events] == [
        {"AWS": [f"stead/{pid}/team-a/"]},
        {"AWS": [""], "Vault": []},
        {},
    ]


def test_only_account_admins_read_and_set_scopes(world: World) -> None:
    pid = world.project_id
    url = _scopes(world, pid)
    body = {"scopes": [{"store": "AWS", "prefixes": [""]}]}
    owner = member_auth(world.http, world.factory, pid, "OWNER")
    for headers in (owner, user_auth(world.http, world.factory, pid, "OWNER")):
        assert_problem(world.http.get(url, headers=headers), 403)
        assert_problem(world.http.put(url, json=body, headers=headers), 403)
    account_admin = auth(world.http, world.factory, "ADMIN")  # not a member of the project
    assert world.http.get(url, headers=account_admin).status_code == 200
    assert world.http.put(url, json=body, headers=account_admin).status_code == 200
    assert_problem(
        world.http.get(
            _scopes(world, "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"), headers=account_admin
        ),
        404,
    )


def test_bad_scopes_are_refused_and_change_nothing(world: World) -> None:
    url = _scopes(world, world.project_id)
    for scopes, field in [
        ([{"store": "Azure", "prefixes": ["team/a"]}], "scopes[0].prefixes[0]"),
        ([{"store": "Vault", "prefixes": ["a/../b/"]}], "scopes[0].prefixes[0]"),
        ([{"store": "GCP", "prefixes": ["projects/x/secret"]}], "scopes[0].prefixes[0]"),
        ([{"store": "AWS", "prefixes": []}, {"store": "AWS", "prefixes": []}], "scopes[1].store"),
        ([{"store": "Hosted", "prefixes": []}], "scopes[0].store"),
    ]:
        resp = world.http.put(url, json={"scopes": scopes}, headers=world.admin)
        assert_problem(resp, 400, field)
    assert all(s["default"] for s in world.http.get(url, headers=world.admin).json()["scopes"])
