"""Azure Key Vault through azure-keyvault-secrets and azure-identity (extra ``stead[azure]``).

Vendor rules (Azure Key Vault REST API, "Get Secret"; "About Azure Key Vault secrets"): a secret
is read with ``GET {vaultUrl}/secrets/{name}/?api-version=...``; names are 1-127 letters, digits
and dashes; the first request carries no token and is answered 401 with a ``WWW-Authenticate:
Bearer authorization=..., resource=...`` challenge, after which the SDK asks Microsoft Entra for
a token; 404 ``SecretNotFound`` (no such secret, or deleted), 403 ``Forbidden`` (the principal
lacks the "get" secret permission), 401 with a token (rejected).
"""

from __future__ import annotations

import re
from typing import Any

from stead.secrets.resolvers.base import (
    access_denied,
    bad_name,
    checked_policy,
    not_configured,
    not_found,
    pick,
    timed_out,
    unreachable,
)
from stead.settings import Settings

STORE = "Azure Key Vault"
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
NAME_RULE = "1-127 letters, digits and dashes"


def check_name(name: str) -> str:
    """``name`` if it is a valid Key Vault secret name, else raise SecretNotFound (400)."""
    if not _NAME.fullmatch(name):
        raise bad_name(STORE, name, NAME_RULE)
    return name


class AzureResolver:
    """Reads secrets from ``azure_vault_url`` as the ``azure_*`` service principal (or
    ``DefaultAzureCredential`` when no client secret is set)."""

    store = STORE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _transport_options(self) -> dict[str, Any]:
        s = self.settings
        return {
            "connection_timeout": s.secret_store_timeout_seconds,
            "read_timeout": s.secret_store_timeout_seconds,
            "retry_total": 0,
            "connection_verify": s.secret_store_ca_bundle or True,
        }

    def resolve(self, name: str, *, key: str | None) -> str:
        """The value of Key Vault secret ``name`` (latest version), or its JSON member ``key``;
        errors as in :mod:`stead.secrets.resolvers.base`."""
        try:
            from azure.core.exceptions import (
                ClientAuthenticationError,
                HttpResponseError,
                ResourceNotFoundError,
                ServiceRequestError,
                ServiceRequestTimeoutError,
                ServiceResponseError,
                ServiceResponseTimeoutError,
            )
            from azure.identity import (
                AzureAuthorityHosts,
                ClientSecretCredential,
                CredentialUnavailableError,
                DefaultAzureCredential,
            )
            from azure.keyvault.secrets import SecretClient
        except ImportError:
            raise not_configured(STORE, "install Stead with the azure extra") from None
        s = self.settings
        if not s.azure_vault_url:
            raise not_configured(STORE, "no vault URL (STEAD_AZURE_VAULT_URL)")
        check_name(name)
        secret = s.azure_client_secret.get_secret_value()
        checked_policy(s, s.azure_vault_url, *([s.azure_authority_host] if secret else []))
        options = self._transport_options()
        known = {_host(h) for h in vars(AzureAuthorityHosts).values() if isinstance(h, str)}
        credential: Any
        if secret:
            credential = ClientSecretCredential(
                s.azure_tenant_id,
                s.azure_client_id,
                secret,
                authority=s.azure_authority_host,
                # Microsoft's metadata endpoint knows only the public and sovereign clouds'
                # authorities; another (Azure Stack, a private cloud) cannot be looked up there.
                disable_instance_discovery=_host(s.azure_authority_host) not in known,
                **options,
            )
        else:
            credential = DefaultAzureCredential(**options)
        timeouts = (ServiceRequestTimeoutError, ServiceResponseTimeoutError)
        try:
            with SecretClient(
                s.azure_vault_url,
                credential,
                verify_challenge_resource=s.azure_verify_challenge_resource,
                # Key Vault answers without redirects; following one could leave the policy.
                permit_redirects=False,
                **options,
            ) as client:
                value = client.get_secret(name).value
        except ResourceNotFoundError:
            raise not_found(STORE, name) from None
        except CredentialUnavailableError:
            raise not_configured(STORE, "no Azure credential available") from None
        except ClientAuthenticationError as exc:
            # azure-identity reports a token endpoint it could not reach as an authentication
            # failure; the cause tells the two apart.
            if isinstance(exc.__cause__, timeouts) or isinstance(exc.__context__, timeouts):
                raise timed_out(STORE, s.secret_store_timeout_seconds) from None
            if isinstance(exc.__cause__, ServiceRequestError | ServiceResponseError):
                raise unreachable(STORE, "the sign-in endpoint could not be reached") from None
            raise access_denied(STORE, name) from None
        except timeouts:
            raise timed_out(STORE, s.secret_store_timeout_seconds) from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unreachable(STORE, f"connection failed ({type(exc).__name__})") from None
        except HttpResponseError as exc:
            if exc.status_code in (401, 403):
                raise access_denied(STORE, name) from None
            raise unreachable(STORE, f"it answered HTTP {exc.status_code}") from None
        finally:
            credential.close()
        if value is None:
            raise not_found(STORE, name)
        return pick(STORE, name, value, key)


def _host(authority: str) -> str:
    """``login.microsoftonline.com`` for ``https://login.microsoftonline.com/`` or the bare host."""
    return authority.removeprefix("https://").strip("/").lower()
