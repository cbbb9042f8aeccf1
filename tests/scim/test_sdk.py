"""The SDK's ``client.scim_tokens`` against a real server: create (value shown once), list,
revoke."""

from __future__ import annotations

import httpx

from stead.sdk import Client
from stead.settings import Settings
from tests.support.served import serve_here


def test_sdk_makes_lists_and_revokes_scim_tokens(settings: Settings) -> None:
    with (
        serve_here(settings) as served,
        Client(served.url, served.client_id, served.client_secret) as stead,
    ):
        made = stead.scim_tokens.create({"name": "okta"})
        bearer = {"Authorization": f"Bearer {made.token}"}
        assert httpx.get(f"{served.url}/scim/v2/Users", headers=bearer).status_code == 200
        [listed] = stead.scim_tokens.list()
        assert (listed.id, listed.name, listed.revoked_at) == (made.id, "okta", None)
        assert listed.last_used_at is not None
        assert not hasattr(listed, "token")
        stead.scim_tokens.delete(made.id)
        assert httpx.get(f"{served.url}/scim/v2/Users", headers=bearer).status_code == 401
        assert [t.revoked_at is not None for t in stead.scim_tokens.list()] == [True]
