"""Fixtures for resolution tests: the real stores (moto_server, an OpenBao dev server, the Azure
Key Vault and GCP Secret Manager fakes, a port that never answers), app settings pointing at
them, a project with an agent, a fresh canary value, and captured logs."""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from stead.secrets import resolvers
from stead.settings import Settings
from tests.support.azure_keyvault_fake import (  # noqa: F401 - fixture
    AzureKeyVaultFake,
    azure_keyvault_session,
)
from tests.support.factories import create_agent, example, hosted_agent_id
from tests.support.gcp_secret_manager_fake import (  # noqa: F401 - fixture
    PROJECT,
    GcpSecretManagerFake,
    gcp_secret_manager_session,
)
from tests.support.moto_server import (  # noqa: F401 - fixture
    REGION,
    ROOT_KEYS,
    MotoServer,
    moto_server_session,
)
from tests.support.openbao import OpenBao, openbao_session  # noqa: F401 - fixture
from tests.support.outbound import LOCAL
from tests.support.silent_server import silent_url  # noqa: F401 - fixture

TIMEOUT = 1.0
#: Stead's Vault policy in the tests: read what lies under secret/stead/, nothing else.
VAULT_PREFIX = "stead/"


@pytest.fixture
def moto(moto_server_session: MotoServer) -> MotoServer:  # noqa: F811 - fixture use
    """moto_server, emptied for this test."""
    moto_server_session.reset()
    return moto_server_session


@pytest.fixture(scope="session")
def vault_token(openbao_session: OpenBao) -> str:  # noqa: F811 - fixture use
    """A token whose only policy reads KV v2 secrets under ``secret/stead/``."""
    root: Any = openbao_session.client()
    root.sys.create_or_update_policy(
        "stead-reader", f'path "secret/data/{VAULT_PREFIX}*" {{ capabilities = ["read"] }}'
    )
    return str(root.auth.token.create(policies=["stead-reader"], ttl="2h")["auth"]["client_token"])


@pytest.fixture
def vault(openbao_session: OpenBao) -> OpenBao:  # noqa: F811 - fixture use
    """The OpenBao dev server (shared: tests use unique paths)."""
    return openbao_session


@pytest.fixture
def azure(azure_keyvault_session: AzureKeyVaultFake) -> AzureKeyVaultFake:  # noqa: F811
    """The Key Vault fake, emptied for this test (with a new client secret)."""
    azure_keyvault_session.reset()
    return azure_keyvault_session


@pytest.fixture
def gcp(gcp_secret_manager_session: GcpSecretManagerFake) -> GcpSecretManagerFake:  # noqa: F811
    """The Secret Manager fake, emptied for this test."""
    gcp_secret_manager_session.reset()
    return gcp_secret_manager_session


@pytest.fixture(scope="session")
def gcp_key_file(
    gcp_secret_manager_session: GcpSecretManagerFake,  # noqa: F811 - fixture use
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A service-account key file the Secret Manager fake trusts."""
    return gcp_secret_manager_session.service_account_file(tmp_path_factory.mktemp("gcp"))


@pytest.fixture
def settings(
    db_url: str,
    tmp_path: Path,
    gcp_key_file: Path,
    moto: MotoServer,
    vault: OpenBao,
    vault_token: str,
    azure: AzureKeyVaultFake,
    gcp: GcpSecretManagerFake,
) -> Settings:
    """Settings whose four external stores are the test servers, with a 1 s timeout."""
    state = azure.state
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        github_api_url="http://127.0.0.1:9/unused",
        secret_store_timeout_seconds=TIMEOUT,
        aws_region=REGION,
        aws_endpoint_url=moto.url,
        **ROOT_KEYS,
        vault_addr=vault.url,
        vault_token=vault_token,
        azure_vault_url=azure.url,
        azure_tenant_id=state.tenant_id,
        azure_client_id=state.client_id,
        azure_client_secret=state.client_secret,
        azure_authority_host=azure.url,
        azure_verify_challenge_resource=False,
        secret_store_ca_bundle=str(azure.certificate.cert),
        gcp_project=PROJECT,
        gcp_endpoint=gcp.url,
        gcp_credentials_file=str(gcp_key_file),
        **LOCAL,
    )


@pytest.fixture
def canary() -> str:
    """A secret value that must never leave the resolver: not in a response, log or row."""
    return f"canary-{uuid.uuid4().hex}"


@pytest.fixture
def project_id(http: TestClient, admin: dict[str, str]) -> str:
    """A fresh Redshift project's id."""
    resp = http.post("/v1/projects", json=example("01-create-project-redshift"), headers=admin)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


@pytest.fixture
def agent_id(http: TestClient, admin: dict[str, str]) -> str:
    """A customer-hosted agent's id."""
    return str(create_agent(http, admin)["agentId"])


@pytest.fixture
def logs(http: TestClient, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at DEBUG and above (caplog's handler put back after the app replaced
    the root handlers)."""
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    return caplog


def put_vault(vault: OpenBao, path: str, value: str) -> None:
    """Store ``value`` at KV v2 ``secret/<path>``: a JSON object as its keys, other text as the
    single key ``value``."""
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    client: Any = vault.client()
    client.secrets.kv.v2.create_or_update_secret(
        path=path, secret=data if isinstance(data, dict) else {"value": value}, mount_point="secret"
    )


HOSTED = "Matillion hosted"
EXTERNAL = ["AWS", "Vault", "Azure", "GCP"]
STORES = [*EXTERNAL, HOSTED]
_numbers = itertools.count(1)


def next_number() -> int:
    """A number unused so far in this session (secret and reference names)."""
    return next(_numbers)


@dataclass
class World:
    """The app, a project in it, and the four external stores; puts secrets and references."""

    http: TestClient
    admin: dict[str, str]
    project_id: str
    agent_id: str
    hosted_agent_id: str
    factory: sessionmaker[Session]
    moto: MotoServer
    vault: OpenBao
    azure: AzureKeyVaultFake
    gcp: GcpSecretManagerFake

    def put(self, store: str, value: str) -> str:
        """Create a secret holding ``value`` in ``store``; return its name there."""
        number = next_number()
        if store == "AWS":
            name = f"stead/{self.project_id}/finance/db-{number}"
            client: Any = self.moto.client("secretsmanager")
            client.create_secret(Name=name, SecretString=value)
        elif store == "Vault":
            name = f"{VAULT_PREFIX}{self.project_id}/finance/db-{number}-{time.monotonic_ns()}"
            put_vault(self.vault, name, value)
        elif store == "Azure":
            name = f"stead-{self.project_id}-finance-db-{number}"
            self.azure.state.secrets[name] = value
        elif store == "GCP":
            name = f"stead-{self.project_id}-finance-db-{number}"
            self.gcp.add_secret(name, value.encode())
        else:
            name = f"finance-db-{number}"
            kind = "JSON" if value.startswith("{") else "PASSWORD"
            resp = self.http.post(
                f"/v1/projects/{self.project_id}/secrets",
                json={"name": name, "type": kind, "value": value},
                headers=self.admin,
            )
            assert resp.status_code == 201, resp.text
        return name

    def reference(self, store: str, secret_name: str, key: str | None = None) -> str:
        """Create a secret reference to ``secret_name`` in ``store``; return its name."""
        name = f"ref-{next_number()}"
        body: dict[str, Any] = {
            "agentId": self.hosted_agent_id if store == HOSTED else self.agent_id,
            "agentType": store,
            "secretReferenceType": "PASSWORD",
            "secretName": secret_name,
        }
        if key is not None:
            body["secretKey"] = key
        resp = self.http.post(self._refs(name), json=body, headers=self.admin)
        assert resp.status_code == 201, resp.text
        return name

    def _refs(self, name: str) -> str:
        return f"/v1/projects/{self.project_id}/secret-references/{name}"

    def check(self, reference: str, headers: dict[str, str] | None = None) -> Any:
        """``POST .../secret-references/{reference}/check``."""
        return self.http.post(f"{self._refs(reference)}/check", headers=headers or self.admin)

    def resolve(self, secret_name: str, secret_key: str | None = None) -> str:
        """:func:`stead.secrets.resolvers.resolve` in a session of the app."""
        with self.factory() as session:
            return resolvers.resolve(
                session,
                settings=self.http.app.state.settings,  # type: ignore[attr-defined]
                project_id=self.project_id,
                secret_name=secret_name,
                secret_key=secret_key,
            )

    def reconfigure(self, **changes: Any) -> None:
        """Serve the next requests with these settings changed."""
        app: Any = self.http.app
        app.state.settings = Settings.model_validate({**app.state.settings.model_dump(), **changes})


@pytest.fixture
def world(
    http: TestClient,
    admin: dict[str, str],
    project_id: str,
    agent_id: str,
    session_factory: sessionmaker[Session],
    moto: MotoServer,
    vault: OpenBao,
    azure: AzureKeyVaultFake,
    gcp: GcpSecretManagerFake,
) -> World:
    """A project, an agent, and the stores."""
    return World(
        http,
        admin,
        project_id,
        agent_id,
        hosted_agent_id(session_factory),
        session_factory,
        moto,
        vault,
        azure,
        gcp,
    )
