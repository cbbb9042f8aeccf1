"""Sensitive properties given inline (docs/warehouses.md): stored as hosted secrets the
environment owns, read back as a reference with ``set`` (and a private key's fingerprint),
kept, replaced, cleared and released; private keys and passphrases checked at submit time."""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.secrets import keys
from stead.secrets.models import HostedSecret
from stead.secrets.store import read_value
from tests.environments.test_environments import PROPS, Arranged, arrange
from tests.support.factories import assert_problem, example
from tests.support.keys import (
    openssl_fingerprint,
    pkcs1,
    pkcs8,
    pkcs8_encrypted,
    public_pem,
    rsa_key,
)

PASSWORD = "inline-Pa55word-4b1d"
PASSPHRASE = "Schlüssel-Passphrase-✓"


def _props(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``body`` with connection properties changed (``...`` leaves one out)."""
    out = copy.deepcopy(body)
    props = out["connectionOverrides"][0]["connectionProperties"]
    for key, value in changes.items():
        if value is ...:
            props.pop(key, None)
        else:
            props[key] = value
    return out


def _stored(resp: Any) -> dict[str, Any]:
    assert resp.status_code in (200, 201), resp.text
    props: dict[str, Any] = resp.json()["connectionOverrides"][0]["connectionProperties"]
    return props


def _value(factory: sessionmaker[Session], project_id: str, name: str) -> str:
    with factory() as session:
        return read_value(session, project_id=project_id, name=name)


def _hosted(factory: sessionmaker[Session]) -> dict[str, tuple[str, int]]:
    with factory() as session:
        return {s.name: (s.type, s.version) for s in session.scalars(select(HostedSecret))}


def _secret_events(factory: sessionmaker[Session]) -> list[tuple[str, str, dict[str, Any]]]:
    with factory() as session:
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.target_id, AuditEvent.details)
            .where(AuditEvent.target_type == "secret")
            .order_by(AuditEvent.id)
        )
        return [(a, t, d) for a, t, d in rows]


def _patch_props(http: TestClient, env: Arranged, headers: dict[str, str], **changes: Any) -> Any:
    override = _props(env.body, **changes)["connectionOverrides"][0]
    return http.patch(f"{env.base}/prod", json={"connectionOverrides": [override]}, headers=headers)


def test_inline_password_lifecycle(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "redshift")
    resp = http.post(env.base, json=_props(env.body, password={"value": PASSWORD}), headers=admin)
    assert _stored(resp)["password"] == {"secretName": "prod-password", "set": True}
    assert _hosted(session_factory) == {"prod-password": ("PASSWORD", 1)}
    assert _value(session_factory, env.project_id, "prod-password") == PASSWORD
    secrets_url = f"/v1/projects/{env.project_id}/secrets"
    listed = http.get(secrets_url, headers=admin).json()["results"]
    assert [(s["name"], s["type"], s["version"]) for s in listed] == [
        ("prod-password", "PASSWORD", 1)
    ]

    # sending back exactly what GET returned changes nothing
    before = http.get(f"{env.base}/prod", headers=admin).json()
    writable = ("displayName", "description", "defaultAgentId", "defaultUserAccessLevel")
    echo = {k: before[k] for k in (*writable, "defaultConnections", "connectionOverrides")}
    resp = http.patch(f"{env.base}/prod", json=echo, headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json() == before
    assert _hosted(session_factory) == {"prod-password": ("PASSWORD", 1)}

    # leaving the password out keeps it; it goes only to the host it was given for
    resp = _patch_props(http, env, admin, password=..., defaultDatabase={"value": "dw"})
    assert _stored(resp)["password"] == {"secretName": "prod-password", "set": True}
    resp = _patch_props(http, env, admin, password=..., port={"value": "5440"})
    assert_problem(resp, 403, "connectionOverrides[0].connectionProperties.password.secretName")

    # a new inline value is a new version of the same secret
    resp = _patch_props(http, env, admin, password={"value": PASSWORD + "-2"})
    assert _stored(resp)["password"] == {"secretName": "prod-password", "set": True}
    assert _hosted(session_factory) == {"prod-password": ("PASSWORD", 2)}
    assert _value(session_factory, env.project_id, "prod-password") == PASSWORD + "-2"

    # the owned secret cannot be deleted while in use
    assert_problem(http.delete(f"{secrets_url}/prod-password", headers=admin), 409)

    # pointing the password elsewhere releases the owned secret
    resp = _patch_props(http, env, admin, password={"secretName": "finance-prod-redshift"})
    assert _stored(resp)["password"] == {"secretName": "finance-prod-redshift", "secretKey": None}
    assert _hosted(session_factory) == {}
    assert [(a, t, d) for a, t, d in _secret_events(session_factory)] == [
        (
            "secret.created",
            "prod-password",
            {"type": "PASSWORD", "version": 1, "environment": "prod", "property": "password"},
        ),
        (
            "secret.updated",
            "prod-password",
            {"type": "PASSWORD", "version": 2, "environment": "prod", "property": "password"},
        ),
        ("secret.deleted", "prod-password", {}),
    ]


def test_generated_names_avoid_taken_ones_and_owned_secrets_are_released(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "redshift")
    reference = example(
        "04-create-secret-reference-aws", agentId=env.agent_id, projectId=env.project_id
    )
    refs = f"/v1/projects/{env.project_id}/secret-references"
    assert http.post(f"{refs}/PROD-password", json=reference, headers=admin).status_code == 201
    resp = http.post(env.base, json=_props(env.body, password={"value": PASSWORD}), headers=admin)
    assert _stored(resp)["password"] == {"secretName": "prod-password-2", "set": True}

    # another environment may refer to the generated secret; it is then not released
    other = _props({**env.body, "name": "other"}, password={"secretName": "prod-password-2"})
    assert http.post(env.base, json=other, headers=admin).status_code == 201
    assert http.delete(f"{env.base}/prod", headers=admin).status_code == 204
    assert _hosted(session_factory) == {"prod-password-2": ("PASSWORD", 1)}
    assert http.delete(f"{env.base}/other", headers=admin).status_code == 204
    assert _hosted(session_factory) == {"prod-password-2": ("PASSWORD", 1)}
    # nor while a secret reference of the hosted store names it
    hosted_ref = {**reference, "agentType": "Hosted", "secretName": "prod-password-3"}
    assert http.post(f"{refs}/to-hosted", json=hosted_ref, headers=admin).status_code == 201
    body = _props({**env.body, "name": "prod"}, password={"value": PASSWORD})
    assert _stored(http.post(env.base, json=body, headers=admin))["password"] == {
        "secretName": "prod-password-3",
        "set": True,
    }
    assert http.delete(f"{env.base}/prod", headers=admin).status_code == 204
    assert set(_hosted(session_factory)) == {"prod-password-2", "prod-password-3"}

    # deleting the owning environment releases its secret
    long_name = "e" * 250 + " x"
    body = _props({**env.body, "name": long_name}, password={"value": PASSWORD})
    stored = _stored(http.post(env.base, json=body, headers=admin))["password"]
    assert stored["secretName"] == "e" * 246 + "-password"  # 255 characters, no trailing space
    assert http.delete(f"{env.base}/{long_name}", headers=admin).status_code == 204
    assert set(_hosted(session_factory)) == {"prod-password-2", "prod-password-3"}


def test_clearing_an_optional_inline_value(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "snowflake")
    key = pkcs8_encrypted(rsa_key(), PASSPHRASE)
    body = _props(env.body, privateKey={"value": key}, passphrase={"value": PASSPHRASE})
    props = _stored(http.post(env.base, json=body, headers=admin))
    assert props["privateKey"] == {
        "secretName": "prod-privateKey",
        "set": True,
        "fingerprint": openssl_fingerprint(pkcs8(rsa_key())),
    }
    assert props["passphrase"] == {"secretName": "prod-passphrase", "set": True}
    assert _hosted(session_factory) == {
        "prod-privateKey": ("PRIVATE_KEY", 1),
        "prod-passphrase": ("PASSWORD", 1),
    }
    assert _value(session_factory, env.project_id, "prod-passphrase") == PASSPHRASE
    assert _value(session_factory, env.project_id, "prod-privateKey") == key

    # the key is encrypted: its passphrase cannot simply go
    resp = _patch_props(http, env, admin, privateKey=..., passphrase=None)
    problem = assert_problem(resp, 400)
    assert problem["violations"] == [f"{PROPS}.passphrase: {keys.PASSPHRASE_MISSING}"]
    assert _hosted(session_factory)["prod-passphrase"] == ("PASSWORD", 1)
    # with an unencrypted key it can (null clears it); the old key's secret gets a new version
    props = _stored(
        _patch_props(http, env, admin, privateKey={"value": pkcs1(rsa_key())}, passphrase=None)
    )
    assert "passphrase" not in props
    assert props["privateKey"]["fingerprint"] == openssl_fingerprint(pkcs8(rsa_key()))
    assert _hosted(session_factory) == {"prod-privateKey": ("PRIVATE_KEY", 2)}


def test_private_key_checks_name_the_field(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "snowflake")
    encrypted = pkcs8_encrypted(rsa_key(), PASSPHRASE)
    plain = pkcs8(rsa_key())
    secrets_url = f"/v1/projects/{env.project_id}/secrets"
    for name, secret_type, value in [
        ("hosted-key", "PRIVATE_KEY", encrypted),
        ("hosted-plain-key", "PRIVATE_KEY", plain),
        ("hosted-phrase", "PASSWORD", PASSPHRASE),
        ("hosted-wrong-phrase", "PASSWORD", "not it"),
    ]:
        body = {"name": name, "type": secret_type, "value": value}
        assert http.post(secrets_url, json=body, headers=admin).status_code == 201
    reference = example(
        "04-create-secret-reference-aws", agentId=env.agent_id, projectId=env.project_id
    )
    refs = f"/v1/projects/{env.project_id}/secret-references"
    assert http.post(f"{refs}/aws-phrase", json=reference, headers=admin).status_code == 201

    key_value = f"{PROPS}.privateKey.value"
    cases = [
        ({"privateKey": {"value": public_pem(rsa_key())}}, key_value, keys.PUBLIC_KEY),
        (
            {"privateKey": {"value": pkcs8(rsa_key(1024))}},
            key_value,
            keys.TOO_SMALL.format(bits=1024),
        ),
        ({"privateKey": {"value": encrypted}}, f"{PROPS}.passphrase", keys.PASSPHRASE_MISSING),
        (
            {"privateKey": {"value": encrypted}, "passphrase": {"value": "wrong"}},
            f"{PROPS}.passphrase.value",
            keys.WRONG_PASSPHRASE,
        ),
        (
            {"privateKey": {"value": plain}, "passphrase": {"value": PASSPHRASE}},
            f"{PROPS}.passphrase.value",
            keys.PASSPHRASE_NOT_NEEDED,
        ),
        (
            {"privateKey": {"secretName": "hosted-key"}},
            f"{PROPS}.passphrase",
            keys.PASSPHRASE_MISSING,
        ),
        (
            {
                "privateKey": {"secretName": "hosted-key"},
                "passphrase": {"secretName": "hosted-wrong-phrase"},
            },
            f"{PROPS}.passphrase.secretName",
            keys.WRONG_PASSPHRASE,
        ),
        (
            {"privateKey": {"value": plain}, "passphrase": {"secretName": "aws-phrase"}},
            f"{PROPS}.passphrase.secretName",
            keys.PASSPHRASE_NOT_NEEDED,
        ),
        (
            {"privateKey": {"secretName": "hosted-phrase"}},
            f"{PROPS}.privateKey.secretName",
            keys.NOT_PEM,
        ),
    ]
    for changes, field, message in cases:
        resp = http.post(env.base, json=_props(env.body, **changes), headers=admin)
        problem = assert_problem(resp, 400, field)
        assert problem["violations"] == [f"{field}: {message}"]
        assert PASSPHRASE not in resp.text and "not it" not in resp.text
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(HostedSecret)) == 4

    # what passes: an encrypted hosted key with a hosted passphrase (checked, no fingerprint
    # since nothing is inline), and an encrypted inline key with a passphrase in AWS (not
    # opened: no fingerprint)
    body = _props(
        env.body,
        privateKey={"secretName": "hosted-key"},
        passphrase={"secretName": "hosted-phrase"},
    )
    props = _stored(http.post(env.base, json=body, headers=admin))
    assert props["privateKey"] == {"secretName": "hosted-key", "secretKey": None}
    body = _props(
        {**env.body, "name": "aws"},
        privateKey={"value": encrypted},
        passphrase={"secretName": "aws-phrase"},
    )
    props = _stored(http.post(env.base, json=body, headers=admin))
    assert props["privateKey"] == {"secretName": "aws-privateKey", "set": True}


def test_pasted_key_is_normalised(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = arrange(http, admin, "snowflake")
    pasted = pkcs8(rsa_key()).replace("\n", "\\r\\n")
    props = _stored(
        http.post(env.base, json=_props(env.body, privateKey={"value": pasted}), headers=admin)
    )
    assert props["privateKey"]["fingerprint"] == openssl_fingerprint(pkcs8(rsa_key()))
    assert _value(session_factory, env.project_id, "prod-privateKey") == pkcs8(rsa_key())


def test_read_only_fields_are_checked(http: TestClient, admin: dict[str, str]) -> None:
    env = arrange(http, admin, "redshift")
    for password, field in [
        ({"value": PASSWORD, "fingerprint": "SHA256:x"}, f"{PROPS}.password"),
        ({"secretName": "finance-prod-redshift", "set": "yes"}, f"{PROPS}.password.set"),
    ]:
        resp = http.post(env.base, json=_props(env.body, password=password), headers=admin)
        assert_problem(resp, 400, field)
        assert PASSWORD not in resp.text
    # set/fingerprint sent with a reference to an existing secret are ignored
    password = {"secretName": "finance-prod-redshift", "set": True, "fingerprint": "SHA256:x"}
    props = _stored(http.post(env.base, json=_props(env.body, password=password), headers=admin))
    assert props["password"] == {"secretName": "finance-prod-redshift", "secretKey": None}
