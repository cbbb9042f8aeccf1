"""Resolution against real stores, on SQLite and PostgreSQL: moto_server (AWS Secrets Manager),
an OpenBao dev server (Vault KV v2), the Azure Key Vault and GCP Secret Manager fakes driven by
their real SDKs, and the hosted store. Each failure has its own answer."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hvac.exceptions import InvalidRequest

from stead.secrets.resolvers.base import SecretNotFound
from tests.secrets.resolvers.conftest import (
    EXTERNAL,
    HOSTED,
    STORES,
    TIMEOUT,
    VAULT_PREFIX,
    World,
    next_number,
    put_vault,
)
from tests.support.factories import assert_problem, member_auth
from tests.support.postgres import free_port

#: The setting holding each external store's address, and its scheme.
ADDRESS = {
    "AWS": ("aws_endpoint_url", "http"),
    "Vault": ("vault_addr", "http"),
    "Azure": ("azure_vault_url", "https"),
    "GCP": ("gcp_endpoint", "http"),
}


def _kind(resp: Any, status: int, kind: str, field: str | None = None) -> dict[str, Any]:
    body = assert_problem(resp, status, field)
    assert body["type"] == f"https://stead.dev/problems/{kind}", body
    return body


@pytest.fixture(autouse=True)
def _whole_stores(world: World) -> None:
    """These tests name secrets anywhere in the stores: the project's scope is each whole store
    (tests/secrets/resolvers/test_scopes.py covers scopes)."""
    scopes = [{"store": store, "prefixes": [""]} for store in EXTERNAL]
    resp = world.http.put(
        f"/v1/projects/{world.project_id}/secret-scopes",
        json={"scopes": scopes},
        headers=world.admin,
    )
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("store", STORES)
def test_round_trip_plain_and_json_key(world: World, store: str, canary: str) -> None:
    plain = world.put(store, canary)
    reference = world.reference(store, plain)
    resp = world.check(reference)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body == {"ok": True, "store": store, "resolvedAt": body["resolvedAt"]}
    assert body["resolvedAt"].endswith("Z")
    assert world.resolve(reference) == canary
    assert world.resolve(reference.upper()) == canary  # names are case-insensitive

    document = json.dumps({"username": "etl", "password": canary, "port": 5439, "ssl": True})
    structured = world.put(store, document)
    keyed = world.reference(store, structured, key="password")
    resp = world.check(keyed)
    assert resp.status_code == 200, resp.text
    assert canary not in resp.text
    assert world.resolve(keyed) == canary
    # the property's own secretKey wins over the reference's; numbers and booleans as text
    assert world.resolve(keyed, "username") == "etl"
    assert world.resolve(keyed, "port") == "5439"
    assert world.resolve(keyed, "ssl") == "true"


@pytest.mark.parametrize("store", STORES)
def test_missing_secret_or_key(world: World, store: str, canary: str) -> None:
    missing = world.reference(store, f"{VAULT_PREFIX}absent" if store == "Vault" else "absent")
    body = _kind(world.check(missing), 400, "secret-not-found", "secretName")
    assert "absent" in body["detail"]

    document = world.put(store, json.dumps({"password": canary, "nested": {"a": 1}}))
    for key in ("user", "nested"):
        resp = world.check(world.reference(store, document, key=key))
        body = _kind(resp, 400, "secret-not-found", "secretKey")
        assert key in body["violations"][0]
        assert canary not in resp.text
    if store != "Vault":  # a Vault secret is always an object; elsewhere text must be one
        resp = world.check(world.reference(store, world.put(store, canary), key="password"))
        _kind(resp, 400, "secret-not-found", "secretKey")
        assert canary not in resp.text


@pytest.mark.parametrize("store", EXTERNAL)
def test_unreachable_store_is_502(world: World, store: str, canary: str) -> None:
    reference = world.reference(store, world.put(store, canary))
    field, scheme = ADDRESS[store]
    world.reconfigure(**{field: f"{scheme}://127.0.0.1:{free_port()}"})
    body = _kind(world.check(reference), 502, "upstream-error")
    assert body["violations"] == []


@pytest.mark.parametrize("store", EXTERNAL)
def test_silent_store_times_out_as_504(
    world: World, store: str, canary: str, silent_url: str
) -> None:
    reference = world.reference(store, world.put(store, canary))
    field, scheme = ADDRESS[store]
    world.reconfigure(**{field: silent_url.replace("http", scheme, 1)})
    started = time.monotonic()
    body = _kind(world.check(reference), 504, "upstream-timeout")
    assert f"{TIMEOUT:g} s" in body["detail"]
    assert time.monotonic() - started < 10 * TIMEOUT


@pytest.mark.parametrize(
    ("store", "changes"),
    [
        ("Vault", {"vault_addr": ""}),
        ("Vault", {"vault_token": "", "vault_role_id": ""}),
        ("Azure", {"azure_vault_url": ""}),
        ("GCP", {"gcp_project": ""}),
        ("GCP", {"gcp_credentials_file": "/nonexistent/key.json"}),
    ],
)
def test_store_not_configured_is_503(
    world: World, store: str, changes: dict[str, Any], canary: str
) -> None:
    reference = world.reference(store, world.put(store, canary))
    world.reconfigure(**changes)
    _kind(world.check(reference), 503, "secret-store-not-configured")


def test_aws_access_denied_and_rejected_keys(world: World, canary: str) -> None:
    reference = world.reference("AWS", world.put("AWS", canary))
    iam: Any = world.moto.client("iam")
    iam.create_user(UserName="stead-reader")
    iam.put_user_policy(
        UserName="stead-reader",
        PolicyName="read",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
                ],
            }
        ),
    )
    reader = iam.create_access_key(UserName="stead-reader")["AccessKey"]
    iam.create_user(UserName="stead-nobody")
    nobody = iam.create_access_key(UserName="stead-nobody")["AccessKey"]
    with world.moto.iam_checks():
        world.reconfigure(
            aws_access_key_id=reader["AccessKeyId"],
            aws_secret_access_key=reader["SecretAccessKey"],
        )
        assert world.check(reference).status_code == 200
        world.reconfigure(
            aws_access_key_id=nobody["AccessKeyId"],
            aws_secret_access_key=nobody["SecretAccessKey"],
        )
        _kind(world.check(reference), 403, "secret-access-denied", "secretName")
        world.reconfigure(
            aws_access_key_id=reader["AccessKeyId"], aws_secret_access_key="not-the-secret"
        )
        _kind(world.check(reference), 403, "secret-access-denied", "secretName")


def test_vault_policy_and_token(world: World, canary: str) -> None:
    outside = f"elsewhere/db-{time.monotonic_ns()}"
    put_vault(world.vault, outside, canary)
    _kind(world.check(world.reference("Vault", outside)), 403, "secret-access-denied")
    inside = world.reference("Vault", world.put("Vault", canary))
    world.reconfigure(vault_token="not-a-token")
    _kind(world.check(inside), 403, "secret-access-denied")


def test_vault_approle_namespace_and_several_keys(world: World, canary: str) -> None:
    root: Any = world.vault.client()
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    role = f"stead-{next_number()}"
    root.auth.approle.create_or_update_approle(role, token_policies=["stead-reader"])
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    reference = world.reference("Vault", world.put("Vault", canary))
    world.reconfigure(vault_token="", vault_role_id=role_id, vault_secret_id=secret_id)
    assert world.check(reference).status_code == 200
    assert world.resolve(reference) == canary
    world.reconfigure(vault_secret_id="wrong")
    _kind(world.check(reference), 403, "secret-access-denied")

    namespace = f"team-{next_number()}-{time.monotonic_ns()}"
    root.adapter.post(f"/v1/sys/namespaces/{namespace}")
    inner: Any = world.vault.client(namespace=namespace)
    inner.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    # A new KV version 2 mount upgrades itself in the background and refuses writes ("Upgrading
    # from non-versioned to versioned data") for a moment: wait for it, as a client would.
    deadline = time.monotonic() + 30
    while True:
        try:
            inner.secrets.kv.v2.create_or_update_secret(
                path="warehouse", secret={"password": canary, "user": "etl"}, mount_point="kv"
            )
            break
        except InvalidRequest as error:
            if "Upgrading" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    world.reconfigure(
        vault_token=world.vault.root_token, vault_namespace=namespace, vault_mount="kv"
    )
    keyed = world.reference("Vault", "warehouse", key="password")
    assert world.check(keyed).status_code == 200
    assert world.resolve(keyed) == canary
    body = _kind(world.check(world.reference("Vault", "warehouse")), 400, "secret-not-found")
    assert body["violations"] == ["secretKey: required, the secret holds 2 keys"]


def _create(world: World, store: str, secret_name: str) -> Any:
    """``POST`` a reference to ``secret_name`` in ``store`` (a malformed name is refused here)."""
    body = {
        "agentId": world.agent_id,
        "agentType": store,
        "secretReferenceType": "PASSWORD",
        "secretName": secret_name,
    }
    return world.http.post(world._refs(f"ref-{next_number()}"), json=body, headers=world.admin)


def test_vault_paths_cannot_leave_the_mount(world: World) -> None:
    for name in ["../sys/policy", "a//b", "a/./b", "/a", "a?list=true", "a b", "a#b", "a%2Fb"]:
        body = _kind(_create(world, "Vault", name), 400, "secret-not-found", "secretName")
        assert "not a valid Vault secret name" in body["detail"], name


def test_azure_forbidden_rejected_secret_and_bad_name(world: World, canary: str) -> None:
    name = world.put("Azure", canary)
    world.azure.state.forbidden.add(name)
    _kind(world.check(world.reference("Azure", name)), 403, "secret-access-denied")
    allowed = world.reference("Azure", world.put("Azure", canary))
    world.reconfigure(azure_client_secret="not-the-secret")
    _kind(world.check(allowed), 403, "secret-access-denied")
    requests_before = len(world.azure.state.requests)
    _kind(_create(world, "Azure", "prod/db"), 400, "secret-not-found", "secretName")
    assert len(world.azure.state.requests) == requests_before  # refused before any request


def test_gcp_versions_denied_disabled_and_untrusted_key(
    world: World, canary: str, tmp_path: Any
) -> None:
    world.gcp.add_secret("rotated", canary.encode(), b"newer")
    assert world.resolve(world.reference("GCP", "rotated/versions/1")) == canary
    assert world.resolve(world.reference("GCP", "projects/stead-test/secrets/rotated")) == "newer"
    _kind(world.check(world.reference("GCP", "rotated/versions/3")), 400, "secret-not-found")
    world.gcp.add_secret("disabled", None)
    _kind(world.check(world.reference("GCP", "disabled")), 400, "secret-not-found")
    world.gcp.add_secret("locked", canary.encode(), denied=True)
    _kind(world.check(world.reference("GCP", "locked")), 403, "secret-access-denied")
    world.gcp.add_secret("binary", b"\xff\xfe")
    body = _kind(world.check(world.reference("GCP", "binary")), 400, "secret-not-found")
    assert body["violations"][0].startswith("secretName:")
    _kind(_create(world, "GCP", "bad name!"), 400, "secret-not-found")
    reference = world.reference("GCP", "rotated")
    untrusted = world.gcp.service_account_file(tmp_path, trusted=False)
    world.reconfigure(gcp_credentials_file=str(untrusted))
    _kind(world.check(reference), 403, "secret-access-denied")


def test_resolve_hosted_secret_directly_and_unknown_names(world: World, canary: str) -> None:
    name = world.put(HOSTED, json.dumps({"password": canary}))
    assert world.resolve(name.upper(), "password") == canary
    with pytest.raises(SecretNotFound) as err:
        world.resolve("nothing-here")
    assert err.value.violations == [
        "secretName: no secret reference or hosted secret 'nothing-here'"
    ]
    with pytest.raises(SecretNotFound) as err:
        world.resolve(name, "user")
    assert err.value.violations[0].startswith("secretKey:")


def test_check_route_rules(world: World, canary: str) -> None:
    reference = world.reference("AWS", world.put("AWS", canary))
    assert_problem(world.check("no-such-reference"), 404)
    assert_problem(world.check("bad name"), 400)
    assert_problem(
        world.http.post(f"/v1/projects/{world.project_id}/secret-references/{reference}/check"),
        401,
    )
    viewer = member_auth(world.http, world.factory, world.project_id, "VIEWER")
    assert_problem(world.check(reference, viewer), 403)
    contributor = member_auth(world.http, world.factory, world.project_id, "CONTRIBUTOR")
    assert world.check(reference, contributor).status_code == 200
    dpc = world.http.post(
        f"/dpc/v1/projects/{world.project_id}/secret-references/{reference}/check",
        headers=world.admin,
    )
    assert dpc.status_code == 200, dpc.text


def test_aws_binary_secrets(world: World, canary: str) -> None:
    client: Any = world.moto.client("secretsmanager")
    client.create_secret(Name="binary/text", SecretBinary=json.dumps({"pw": canary}).encode())
    client.create_secret(Name="binary/raw", SecretBinary=b"\xff\xfe\x00")
    assert world.resolve(world.reference("AWS", "binary/text", key="pw")) == canary
    body = _kind(world.check(world.reference("AWS", "binary/raw")), 400, "secret-not-found")
    assert body["violations"] == [
        "secretName: the secret 'binary/raw' in AWS Secrets Manager holds no text value"
    ]
