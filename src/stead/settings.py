"""Stead's configuration: one pydantic-settings class, read from ``STEAD_*`` environment variables
or from files named after them (:func:`secrets_dirs`).

Read it through :func:`get_settings` only; nothing else in the code reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from stead.identity.group_mapping import GroupRoles, parse_group_roles

#: Settings that may also be given as a file: ``STEAD_<NAME>_FILE`` names a file whose content
#: (surrounding whitespace removed) is the value, the way containers pass secrets (Docker and
#: Kubernetes mount them as files). Every secret setting, and the database URL (it may carry a
#: password).
FILE_SETTINGS = (
    "database_url",
    "signing_key",
    "master_key",
    "previous_master_keys",
    "smtp_password",
    "aws_secret_access_key",
    "vault_token",
    "vault_secret_id",
    "azure_client_secret",
    "oidc_client_secret",
)


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
        password_reset_ttl_seconds: how long an admin's password reset link works (default
            24 hours).
        public_url: the base URL people reach this server at; invitation and password reset
            links start with it. When it is ``https://...`` the console's cookies are
            ``Secure`` and ``__Host-`` prefixed; a console POST must come from this origin or
            the one it reached.
        smtp_host: SMTP server for invitation and password reset mail; empty means no mail is
            sent and the link is returned to the inviting or resetting admin instead.
        smtp_security: ``starttls`` (default: the session must be upgraded with STARTTLS before
            login and message, RFC 3207; a server that does not offer it is an error),
            ``tls`` (implicit TLS from the first byte, RFC 8314 section 3.3) or ``none`` (plain
            text; only for a relay on the same host or network). The certificate is verified
            against ``smtp_ca_bundle`` or the system's trust store.
        smtp_port: 0 means the usual port for ``smtp_security``: 587, 465 or 25.
        smtp_username / smtp_password: login (only when a user name is set).
        smtp_ca_bundle: PEM file of CA certificates trusted for the mail server (an internal
            CA); empty means the system's trust store.
        smtp_from: the sender address of Stead's mail.
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
            or master key, and a weak one (docs/operations.md, "Keys").
        shutdown_timeout_seconds: on SIGTERM, how long requests already accepted may take to
            finish before the server exits anyway.
        prometheus_multiproc_dir: ``PROMETHEUS_MULTIPROC_DIR`` (no ``STEAD_`` prefix, the name
            prometheus_client reads): the directory where the worker processes of ``stead
            serve`` keep their metrics; ``stead serve`` sets it.
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
        oidc_issuer / oidc_client_id / oidc_client_secret: single sign-on to the console with an
            OpenID Connect provider (docs/sso.md); on when all three are set, and then the
            issuer must be ``https://`` outside development. The provider redirects back to
            ``<public URL>/console/sso/callback``.
        oidc_allowed_domains: comma-separated email domains whose people may sign in by SSO;
            a new user is created at first sign-in only for these domains. Empty: any domain
            for existing users and pending invitations, and no user is created.
        oidc_display_name: the provider's name on the login page's button ("Sign in with ...").
        oidc_scopes: the scopes asked for (space-separated); ``openid`` and ``email`` are needed.
        oidc_groups_claim: the ID token claim listing the person's groups (``groups``); empty:
            roles are not taken from groups.
        oidc_group_roles: JSON, group name -> account role, or -> {project name -> project
            role} (:mod:`stead.identity.group_mapping`); checked at startup.
        password_login: ``all`` (default) or ``super-admins``: then only Super Admins may sign
            in with a password (console and the token endpoint), everyone else by SSO, which
            must be configured.
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
    shutdown_timeout_seconds: float = Field(default=25.0, gt=0)
    prometheus_multiproc_dir: str = Field(default="", validation_alias="PROMETHEUS_MULTIPROC_DIR")
    log_level: str = "INFO"
    login_max_failures: int = 5
    login_backoff_seconds: int = 60
    login_lock_seconds: int = 900
    invitation_ttl_seconds: int = 7 * 24 * 3600
    password_reset_ttl_seconds: int = Field(default=24 * 3600, gt=0)
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
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_allowed_domains: str = ""
    oidc_display_name: str = "SSO"
    oidc_scopes: str = "openid email profile"
    oidc_groups_claim: str = ""
    oidc_group_roles: str = ""
    password_login: Literal["all", "super-admins"] = "all"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, with ``STEAD_<NAME>_FILE`` (:data:`FILE_SETTINGS`) after the
        environment's own variables (which it may not accompany: see :class:`FileSettings`)."""
        return (
            init_settings,
            env_settings,
            FileSettings(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

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

    @field_validator("oidc_group_roles")
    @classmethod
    def _group_roles(cls, value: str) -> str:
        """Refuse at startup a mapping that :func:`parse_group_roles` refuses."""
        parse_group_roles(value)
        return value

    @field_validator("oidc_allowed_domains")
    @classmethod
    def _domains(cls, value: str) -> str:
        for entry in _entries(value):
            if entry.startswith("@") or "." not in entry or any(c.isspace() for c in entry):
                raise ValueError(
                    f"STEAD_OIDC_ALLOWED_DOMAINS: {entry!r} is not a domain (example.com)"
                )
        return value

    @model_validator(mode="after")
    def _sso(self) -> Settings:
        """Single sign-on is all or nothing; its issuer is ``https://`` outside development;
        ``password_login=super-admins`` needs it (nobody else could sign in)."""
        parts = {
            "STEAD_OIDC_ISSUER": self.oidc_issuer,
            "STEAD_OIDC_CLIENT_ID": self.oidc_client_id,
            "STEAD_OIDC_CLIENT_SECRET": self.oidc_client_secret.get_secret_value(),
        }
        missing = [name for name, value in parts.items() if not value]
        if missing and len(missing) < len(parts):
            raise ValueError(f"single sign-on needs {', '.join(missing)} as well")
        if self.password_login == "super-admins" and missing:
            raise ValueError(
                "STEAD_PASSWORD_LOGIN=super-admins needs single sign-on (STEAD_OIDC_ISSUER, "
                "STEAD_OIDC_CLIENT_ID, STEAD_OIDC_CLIENT_SECRET): nobody else could sign in"
            )
        if missing:
            return self
        issuer = urlsplit(self.oidc_issuer)
        if issuer.scheme not in ("https", "http") or not issuer.hostname:
            raise ValueError(f"STEAD_OIDC_ISSUER: not a URL: {self.oidc_issuer!r}")
        if issuer.query or issuer.fragment:
            raise ValueError("STEAD_OIDC_ISSUER: an issuer has no query or fragment (RFC 8414)")
        if issuer.scheme != "https" and self.environment != "development":
            raise ValueError(
                "STEAD_OIDC_ISSUER: must be https:// outside STEAD_ENVIRONMENT=development"
            )
        if "openid" not in self.oidc_scopes.split() or "email" not in self.oidc_scopes.split():
            raise ValueError("STEAD_OIDC_SCOPES: must include openid and email")
        return self

    @property
    def sso_enabled(self) -> bool:
        """True when single sign-on is configured (issuer, client id and secret)."""
        return bool(
            self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret.get_secret_value()
        )

    @property
    def oidc_allowed_domain_list(self) -> list[str]:
        """:attr:`oidc_allowed_domains`, lower-cased, as a list (empty when none)."""
        return [entry.lower() for entry in _entries(self.oidc_allowed_domains)]

    @property
    def group_roles(self) -> GroupRoles:
        """:attr:`oidc_group_roles`, parsed
        (:func:`stead.identity.group_mapping.parse_group_roles`)."""
        return parse_group_roles(self.oidc_group_roles)

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


class FileSettings(PydanticBaseSettingsSource):
    """``STEAD_<NAME>_FILE`` for each of :data:`FILE_SETTINGS`: the file's content, stripped.

    Raises ``SettingsError`` (at ``Settings()``) when both ``STEAD_<NAME>`` and
    ``STEAD_<NAME>_FILE`` are set, or the file cannot be read; the message names the variable
    and the file, never the content.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` reads every file setting at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in FILE_SETTINGS:
            variable = f"STEAD_{name.upper()}"
            path = os.environ.get(f"{variable}_FILE")
            if not path:
                continue
            if os.environ.get(variable):
                raise SettingsError(f"{variable} and {variable}_FILE are both set; set one")
            try:
                values[name] = Path(path).read_text().strip()
            except OSError as exc:
                raise SettingsError(
                    f"{variable}_FILE: cannot read {path} ({exc.strerror or exc})"
                ) from None
        return values


def _entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


#: Where container runtimes mount secrets (podman, Docker and Compose ``secrets``).
CONTAINER_SECRETS_DIR = Path("/run/secrets")


def secrets_dirs() -> list[Path]:
    """The existing folders whose files are settings, one file per setting named like its
    variable in any case (``stead_master_key`` holds ``STEAD_MASTER_KEY``; surrounding white
    space is dropped): systemd's ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``, systemd.exec(5))
    and :data:`CONTAINER_SECRETS_DIR`. An environment variable wins over a file."""
    found = (
        [Path(os.environ["CREDENTIALS_DIRECTORY"])] if "CREDENTIALS_DIRECTORY" in os.environ else []
    )
    found.append(CONTAINER_SECRETS_DIR)
    return [path for path in found if path.is_dir()]


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment and the files of
    :func:`secrets_dirs`."""
    return Settings(_secrets_dir=secrets_dirs() or None)
