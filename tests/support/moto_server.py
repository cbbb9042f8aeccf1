"""``moto_server``: AWS Secrets Manager (and IAM, for access-denied cases) on 127.0.0.1.
State is wiped with ``POST /moto-api/reset``; IAM checks are off
until ``POST /moto-api/reset-auth`` sets the number of unchecked requests to 0."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stead.secrets.resolvers.aws import aws_client
from stead.tls import client_context
from tests.support.postgres import free_port
from tests.support.processes import server_process

REGION = "us-east-1"
#: moto accepts any credentials while IAM checks are off.
ROOT_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class MotoServer:
    """A running ``moto_server``: ``url`` is its endpoint."""

    url: str

    def reset(self) -> None:
        """Forget every secret, user and key; turn IAM checks off."""
        self._post("/moto-api/reset-auth", b"inf")
        self._post("/moto-api/reset")

    def client(self, service: str, **keys: str) -> object:
        """A boto3 client of ``service`` on this server (root keys unless given)."""
        return aws_client(service, region_name=REGION, endpoint_url=self.url, **(keys or ROOT_KEYS))

    @contextmanager
    def iam_checks(self) -> Iterator[None]:
        """Check every request against IAM (signature and policies) inside the block."""
        self._post("/moto-api/reset-auth", b"0")
        try:
            yield
        finally:
            self._post("/moto-api/reset-auth", b"inf")

    def _post(self, path: str, content: bytes = b"") -> None:
        """POST to moto's own API (``/moto-api/...``); raises on an error status."""
        url = f"{self.url}{path}"
        httpx.post(url, content=content, verify=client_context()).raise_for_status()


@pytest.fixture(scope="session")
def moto_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """The session's ``moto_server`` (reset it before use)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    binary = Path(sys.executable).parent / "moto_server"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with server_process(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        ready_url=f"{url}/moto-api/",
        log=log,
    ):
        yield MotoServer(url)
