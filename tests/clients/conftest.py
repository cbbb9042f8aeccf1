"""A real ``stead serve`` on 127.0.0.1 for the replayed third-party DPC clients, on SQLite and
PostgreSQL, and an HTTP client for arranging what they read."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from stead.settings import Settings
from tests.support.served import Served, serve_here

#: The audience every DPC client sends with its token request (DPC "Authentication").
AUDIENCE = "https://api.matillion.com"


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    """Stead over HTTP with a SUPER_ADMIN API client (the credentials a user gives the client)."""
    with serve_here(settings) as running:
        yield running


@pytest.fixture
def arrange(served: Served) -> Iterator[httpx.Client]:
    """A plain HTTP client, bearer token set, for arranging state the replayed client reads."""
    with httpx.Client(base_url=served.url, timeout=30) as client:
        resp = client.post(
            "/oauth/dpc/token",
            data={
                "grant_type": "client_credentials",
                "client_id": served.client_id,
                "client_secret": served.client_secret,
            },
        )
        assert resp.status_code == 200, resp.text
        client.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        yield client
