"""Stead's configuration: one pydantic-settings class, read from ``STEAD_*`` environment variables.

Read it through :func:`get_settings` only; nothing else in the code reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server settings.

    Attributes:
        data_dir: where the SQLite database and the signing-key file live (default: the user's
            data directory, e.g. ``~/.local/share/stead``).
        database_url: SQLAlchemy URL; empty means ``sqlite:///<data_dir>/stead.db``. PostgreSQL:
            ``postgresql+psycopg://user:pass@host:port/db``.
        signing_key: HMAC key for access tokens (HS256); empty means a 0600 file
            ``<data_dir>/signing.key`` generated on first start.
        master_key: the master key of the hosted secret store, base64 of 32 random bytes
            (``openssl rand -base64 32``); empty means a 0600 file ``<data_dir>/master.key``
            generated on first start. It never enters the database.
        previous_master_keys: comma-separated base64 master keys that still decrypt but no
            longer encrypt: set the old key here while rotating ``master_key``.
        token_ttl_seconds: lifetime of an access token (docs/api.md: 1800 s).
        login_max_failures: consecutive failed logins for one email from one address after
            which that pair is locked (OWASP Authentication Cheat Sheet).
        login_backoff_seconds: the first lock's length; each further failure doubles it.
        login_lock_seconds: the longest lock.
        invitation_ttl_seconds: how long an invitation can be accepted (default 7 days).
        public_url: the base URL people reach this server at; invitation links start with it.
            When it is ``https://...`` the console's cookies are ``Secure`` and ``__Host-``
            prefixed; a console POST must come from this origin or the one it reached.
        smtp_host: SMTP server for invitation mail; empty means no mail is sent and the accept
            URL is returned to the inviter instead.
        smtp_security: ``starttls`` (default: the session must be upgraded with STARTTLS before
            login and message, RFC 3207; a server that does not offer it is an error),
            ``tls`` (implicit TLS from the first byte, RFC 8314 section 3.3) or ``none`` (plain
            text; only for a relay on the same host or network). The certificate is verified
            against ``smtp_ca_bundle`` or the system's trust store.
        smtp_port: 0 means the usual port for ``smtp_security``: 587, 465 or 25.
        smtp_username / smtp_password: login (only when a user name is set).
        smtp_ca_bundle: PEM file of CA certificates trusted for the mail server (an internal
            CA); empty means the system's trust store.
        smtp_from: the sender address of invitation mail.
        github_api_url: GitHub REST base URL (GitHub Enterprise Server: ``https://HOST/api/v3``).
        github_enterprise_api_url: REST base URL of the GitHub Enterprise Server behind the
            ``github-enterprise`` provider (``https://HOST/api/v3``); empty means that provider
            is not configured.
        gitlab_api_url: GitLab REST base URL (self-managed: ``https://HOST/api/v4``).
        azure_devops_url: Azure DevOps base URL, organization names are appended to it (Azure
            DevOps Server: ``https://HOST/tfs``, the organization being the collection).
        upstream_timeout_seconds: timeout for calls to git providers.
        rate_limit_per_minute: requests per API client per minute (docs/api.md).
        actor_cache_seconds: how long a token's principal, once read, is trusted without reading
            it again; a client revoked through another server process is refused within this
            many seconds (through this process: at once). 0 reads it on every request.
        max_body_bytes: the largest request body accepted, in bytes; larger ones get 413 before
            they are read.
        body_timeout_seconds: how long a request body may take to arrive, whole; a slower one
            gets 408 and its connection is closed.
        idle_timeout_seconds: how long a connection may stay silent, or take to send a request's
            line and headers, before the server closes it.
        sign_in_failures_per_minute: failed sign-ins (token endpoint, ``/v1/auth/login``, the
            console's login form) a client id or user may have per minute before it is
            answered 429; 0 disables.
        sign_in_failures_per_minute_per_address: the same per source address; 0 disables.
        trusted_proxies: comma-separated addresses or networks (``10.0.0.0/8``) of reverse
            proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed; empty (the
            default): none, the peer address is the client's.
        environment: ``development`` or ``production``; production refuses a missing signing key
            or master key.
        secret_store_timeout_seconds: connect and read timeout (each) for calls to external
            secret stores (AWS, Vault, Azure, GCP); a store that does not answer in time is 504.
        secret_store_ca_bundle: PEM file of CA certificates trusted for TLS to AWS, Vault and
            Azure (an internal CA); empty means the system's trust store.
        aws_region / aws_endpoint_url / aws_access_key_id / aws_secret_access_key: AWS Secrets
            Manager; empty values fall back to boto3's own chain (``AWS_*`` variables, config
            files, instance role). ``aws_endpoint_url`` is for VPC endpoints and emulators.
        vault_addr: HashiCorp Vault / OpenBao address (``https://vault.example.com:8200``); empty
            means the Vault store is not configured.
        vault_token: token auth; when empty, AppRole auth with ``vault_role_id`` and
            ``vault_secret_id`` at the auth mount ``vault_approle_mount``.
        vault_mount: mount point of the KV version 2 engine holding the secrets.
        vault_namespace: Vault Enterprise / OpenBao namespace (``X-Vault-Namespace``).
        azure_vault_url: Key Vault URL (``https://NAME.vault.azure.net``); empty means the Azure
            store is not configured.
        azure_tenant_id / azure_client_id / azure_client_secret: a service principal; with no
            client secret, ``DefaultAzureCredential`` (managed identity, environment, CLI).
        azure_authority_host: Microsoft Entra authority (sovereign clouds differ).
        azure_verify_challenge_resource: check that the vault's authentication challenge names
            a resource whose domain the vault URL belongs to (Azure SDK default); turn off only
            for vaults reached under another host name.
        gcp_project: project id for secret names that are not full resource names.
        gcp_endpoint: Secret Manager REST endpoint (``https://secretmanager.googleapis.com``,
            a regional or private endpoint).
        gcp_credentials_file: service-account key file; empty means Application Default
            Credentials.
        warehouse_connect_timeout_seconds: how long a connection test may take to reach the
            warehouse and log in.
        warehouse_query_timeout_seconds: how long the test's query may then run. A test still
            running after both (plus one second) is answered as a timeout.
        warehouse_max_tests: connection tests running at once, per server process; one more is
            answered 503 with ``Retry-After``.
        snowflake_host / snowflake_port / snowflake_protocol: where Snowflake is reached; an
            empty host means ``<account>.snowflakecomputing.com`` (set it for a private
            endpoint such as ``<account>.privatelink.snowflakecomputing.com``).
        outbound_allowed_networks: comma-separated networks (``127.0.0.0/8, ::1, 10.0.0.0/8``)
            whose addresses Stead may connect to on a caller's behalf although they are loopback,
            private, link-local or otherwise not public; empty (the default) refuses them all
            (docs/decisions.md, "Outbound policy").
        outbound_warehouse_hosts / outbound_git_hosts: comma-separated host patterns (``host``,
            ``*.domain``, ``*``) allowed for warehouses / git providers and remotes besides the
            vendors' domains and the hosts configured in other settings.
        outbound_git_allow_http / outbound_git_allow_ssh / outbound_git_allow_file: accept git
            remotes over plain ``http://`` (the token travels in clear text), ``ssh://`` (the
            server's own SSH key) and ``file://`` (a repository on the server's disk).
        redshift_sslmode: how a Redshift connection with ``useSsl`` true checks the server's
            certificate: ``verify-full`` (chain and host name) or ``verify-ca`` (chain only).
    """

    model_config = SettingsConfigDict(env_prefix="STEAD_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("stead")))
    database_url: str = ""
    signing_key: SecretStr = SecretStr("")
    master_key: SecretStr = SecretStr("")
    previous_master_keys: SecretStr = SecretStr("")
    token_ttl_seconds: int = 1800
    github_api_url: str = "https://api.github.com"
    github_enterprise_api_url: str = ""
    gitlab_api_url: str = "https://gitlab.com/api/v4"
    azure_devops_url: str = "https://dev.azure.com"
    upstream_timeout_seconds: float = 10.0
    rate_limit_per_minute: int = 1000
    actor_cache_seconds: float = Field(default=2.0, ge=0)
    max_body_bytes: int = 1024 * 1024
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    idle_timeout_seconds: int = Field(default=5, gt=0)
    sign_in_failures_per_minute: int = Field(default=10, ge=0)
    sign_in_failures_per_minute_per_address: int = Field(default=30, ge=0)
    trusted_proxies: str = ""
    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"
    login_max_failures: int = 5
    login_backoff_seconds: int = 60
    login_lock_seconds: int = 900
    invitation_ttl_seconds: int = 7 * 24 * 3600
    public_url: str = "http://127.0.0.1:8080"
    smtp_host: str = ""
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_port: int = 0
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_ca_bundle: str = ""
    smtp_from: str = "stead@localhost"
    secret_store_timeout_seconds: float = 10.0
    secret_store_ca_bundle: str = ""
    aws_region: str = ""
    aws_endpoint_url: str = ""
    aws_access_key_id: str = ""
    aws_secret_access_key: SecretStr = SecretStr("")
    vault_addr: str = ""
    vault_token: SecretStr = SecretStr("")
    vault_role_id: str = ""
    vault_secret_id: SecretStr = SecretStr("")
    vault_approle_mount: str = "approle"
    vault_mount: str = "secret"
    vault_namespace: str = ""
    azure_vault_url: str = ""
    azure_tenant_id: str = ""
    azure_client_id: str = ""
    azure_client_secret: SecretStr = SecretStr("")
    azure_authority_host: str = "https://login.microsoftonline.com"
    azure_verify_challenge_resource: bool = True
    gcp_project: str = ""
    gcp_endpoint: str = "https://secretmanager.googleapis.com"
    gcp_credentials_file: str = ""
    warehouse_connect_timeout_seconds: float = 10.0
    warehouse_query_timeout_seconds: float = 30.0
    warehouse_max_tests: int = 16
    snowflake_host: str = ""
    snowflake_port: int = 443
    snowflake_protocol: Literal["https", "http"] = "https"
    redshift_sslmode: Literal["verify-full", "verify-ca"] = "verify-full"
    outbound_allowed_networks: str = ""
    outbound_warehouse_hosts: str = ""
    outbound_git_hosts: str = ""
    outbound_git_allow_http: bool = False
    outbound_git_allow_ssh: bool = False
    outbound_git_allow_file: bool = False

    @field_validator("outbound_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        """Refuse at startup a network that does not parse (``ipaddress.ip_network``)."""
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for entry in _entries(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {entry!r}") from None
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        """:attr:`trusted_proxies` as a list (empty when none)."""
        return _entries(self.trusted_proxies)

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: ``database_url`` or the SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'stead.db'}"


def _entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
