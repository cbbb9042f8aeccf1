"""CI scripts that call the DPC token endpoint (artifact publishing in GitHub Actions, a
dbt-orchestrator's Matillion step, audit-event exporters), replayed against Stead over HTTP.

Public scripts request the token in three ways, all form bodies, and this module repeats each:
``requests.post(url, data={...}, headers={"Content-Type": "application/x-www-form-urlencoded"})``
with and without ``audience``, and a body built by hand as a string
(``"grant_type=client_credentials&client_id=...&client_secret=...&audience=https%3A%2F%2F..."``,
values not encoded: it works because Stead's client ids and secrets are URL-safe). A script
checks ``status_code != 200``, reads ``access_token``, then sends ``Authorization: Bearer``.
"""

from __future__ import annotations

import string

import httpx
import pytest
import requests

from tests.clients.conftest import AUDIENCE
from tests.support.served import Served

URL_SAFE = set(string.ascii_letters + string.digits + "-_")


def _token_with_data(served: Served, *, audience: bool) -> str:
    data = {
        "grant_type": "client_credentials",
        "client_id": served.client_id,
        "client_secret": served.client_secret,
    }
    if audience:
        data["audience"] = AUDIENCE
    token_res = requests.post(
        f"{served.url}/oauth/dpc/token",
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    if token_res.status_code != 200:
        raise AssertionError(f"Token Error ({token_res.status_code}): {token_res.text}")
    return str(token_res.json().get("access_token"))


def _token_from_hand_built_body(served: Served) -> str:
    payload = (
        "grant_type=client_credentials"
        f"&client_id={served.client_id}"
        f"&client_secret={served.client_secret}"
        "&audience=https%3A%2F%2Fapi.matillion.com"
    )
    response = requests.post(
        f"{served.url}/oauth/dpc/token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        data=payload,
    )
    response.raise_for_status()
    return str(response.json().get("access_token"))


@pytest.mark.parametrize("style", ["data with audience", "data without audience", "hand-built"])
def test_token_then_bearer_call(served: Served, arrange: httpx.Client, style: str) -> None:
    body = {"name": "ci", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}
    project_id = arrange.post("/v1/projects", json=body).json()["projectId"]
    if style == "hand-built":
        assert set(served.client_id) <= URL_SAFE and set(served.client_secret) <= URL_SAFE
        token = _token_from_hand_built_body(served)
    else:
        token = _token_with_data(served, audience=style == "data with audience")
    resp = requests.get(
        f"{served.url}/dpc/v1/projects/{project_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert resp.status_code == 200 and resp.json()["name"] == "ci"


def test_a_wrong_secret_is_a_clear_token_error(served: Served) -> None:
    token_res = requests.post(
        f"{served.url}/oauth/dpc/token",
        data={
            "grant_type": "client_credentials",
            "client_id": served.client_id,
            "client_secret": "not-the-secret",
        },
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert token_res.status_code == 401
    assert token_res.json()["error"] == "invalid_client"
    assert served.client_secret not in token_res.text
