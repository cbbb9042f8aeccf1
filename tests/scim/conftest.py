"""SCIM fixtures: a SCIM token made through ``/v1/scim-tokens`` and a scim2-client on the app."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from scim2_client import BaseSyncSCIMClient

from stead.scim import PREFIX


class InProcessScimClient(BaseSyncSCIMClient):
    """A scim2-client engine over the app's in-process test client (an ``httpx.Client``):
    requests go to ``/scim/v2`` with the SCIM bearer token."""

    __test__ = False

    def __init__(self, http: TestClient, token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.http = http
        self.token = token

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        if not url.startswith(("http://", "https://")):
            url = PREFIX + url
        return self.http.request(method, url, headers=headers, **kwargs)


def scim_headers(token: str) -> dict[str, str]:
    """The headers of a SCIM request with ``token``."""
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}


@pytest.fixture
def scim_token(http: TestClient, admin: dict[str, str]) -> str:
    """A fresh SCIM token's value, made by a Super Admin client."""
    made = http.post("/v1/scim-tokens", json={"name": "okta"}, headers=admin)
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


@pytest.fixture
def scim(http: TestClient, scim_token: str) -> dict[str, str]:
    """Headers of a SCIM request with a live token."""
    return scim_headers(scim_token)
