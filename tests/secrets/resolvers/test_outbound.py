"""The outbound policy in front of the four external secret stores: a store on an address the
policy refuses is not called (400 naming ``secretName``) until an admin allows it, and a
redirect to a refused address is not followed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.secrets.resolvers.conftest import EXTERNAL, VAULT_PREFIX, World
from tests.support.factories import assert_problem
from tests.support.outbound import Redirector, redirector  # noqa: F401 - fixture

REFUSED = "https://stead.dev/problems/destination-refused"


def _refused(resp: Any, reason: str) -> dict[str, Any]:
    body = assert_problem(resp, 400, "secretName")
    assert body["type"] == REFUSED, body
    assert reason in body["detail"]
    return body


@pytest.mark.parametrize("store", EXTERNAL)
def test_a_store_on_loopback_is_refused_until_allowed(
    world: World, store: str, canary: str
) -> None:
    reference = world.reference(store, world.put(store, canary))
    world.reconfigure(outbound_allowed_networks="10.0.0.0/8")
    resp = world.check(reference)
    assert "STEAD_OUTBOUND_ALLOWED_NETWORKS" in _refused(resp, "loopback")["detail"]
    assert canary not in resp.text
    world.reconfigure(outbound_allowed_networks="127.0.0.1/32")
    assert world.check(reference).status_code == 200


@pytest.mark.parametrize("address", ["169.254.169.254", "[::ffff:127.0.0.1]", "[fd00:ec2::254]"])
def test_metadata_and_mapped_addresses_are_refused(world: World, address: str) -> None:
    # named inside the project's default scope, so that only the outbound policy can refuse it
    reference = world.reference("Vault", f"{VAULT_PREFIX}{world.project_id}/anything")
    world.reconfigure(vault_addr=f"http://{address}:8200", outbound_allowed_networks="")
    _refused(world.check(reference), "address")


@pytest.mark.parametrize(("store", "setting"), [("Vault", "vault_addr"), ("GCP", "gcp_endpoint")])
def test_a_redirect_to_a_refused_address_is_not_followed(
    world: World,
    store: str,
    setting: str,
    canary: str,
    redirector: Redirector,  # noqa: F811
) -> None:
    reference = world.reference(store, world.put(store, canary))
    world.reconfigure(**{setting: redirector.url})
    # Refused by its host (no store is configured there) before its address is even looked at.
    _refused(world.check(reference), "'169.254.169.254'")
