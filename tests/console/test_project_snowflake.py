"""Test connection on the environment page against the Snowflake test server: success, and
Snowflake's own code and Stead's hint when the key is not the user's."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from stead.settings import Settings
from tests.console.project_world import TIMEOUT, api_client, make_project, press_test_connection
from tests.support.console import SQLITE_ONLY, Live, Pages
from tests.support.keys import pkcs8, rsa_key
from tests.support.outbound import LOCAL
from tests.support.snowflake_server import (  # noqa: F401 - fixture
    SnowflakeServer,
    snowflake_server_session,
)
from tests.warehouses.test_connection_test import ACCOUNT, SF_USER, public_pem


@pytest.fixture
def snowflake(snowflake_server_session: SnowflakeServer) -> SnowflakeServer:  # noqa: F811
    """The Snowflake test server with ``SVC_GROWTH`` holding test key 1's public key."""
    snowflake_server_session.reset()
    snowflake_server_session.add_user(
        ACCOUNT, SF_USER, public_keys=(public_pem(1),), roles=("TRANSFORMER",)
    )
    return snowflake_server_session


@pytest.fixture
def settings(db_url: str, tmp_path: Path, snowflake: SnowflakeServer) -> Settings:
    """The console's settings: the Snowflake test server, loopback warehouses allowed."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        github_api_url="http://127.0.0.1:9/unused",
        snowflake_host=snowflake.host,
        snowflake_port=snowflake.port,
        snowflake_protocol="http",
        warehouse_connect_timeout_seconds=TIMEOUT,
        warehouse_query_timeout_seconds=TIMEOUT,
        **LOCAL,
    )


@SQLITE_ONLY
def test_snowflake_test_connection_success_and_the_drivers_reason(
    live: Live, pages: Pages, snowflake: SnowflakeServer
) -> None:
    world = make_project(live, api_client(live), "snowflake")
    world.hosted("key-1", pkcs8(rsa_key(number=1)), "PRIVATE_KEY")
    world.hosted("key-2", pkcs8(rsa_key(number=2)), "PRIVATE_KEY")
    world.environment("prod", privateKey={"secretName": "key-1"})
    world.environment("stale", privateKey={"secretName": "key-2"})
    _, owner = live.user(project_id=world.project_id, project_role="OWNER")
    page = pages.as_user(owner)

    page.goto(world.environment_page("prod"))
    expect(page.locator("#current-privateKey")).to_contain_text("hosted secret key-1")
    text = press_test_connection(page, "prod", js=True)
    assert "Connection succeeded" in text and "10.0.0" in text
    assert len(snowflake.logins()) == 1

    page.goto(world.environment_page("stale"))
    text = press_test_connection(page, "stale", js=True)
    assert "Connection failed" in text and "390144" in text
    assert "public key" in text  # Stead's hint for the code, with the key's fingerprint
