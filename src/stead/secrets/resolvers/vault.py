"""HashiCorp Vault (and OpenBao, which serves the same HTTP API) KV version 2, through hvac
(extra ``stead[vault]``).

Vendor rules (Vault API docs, "KV secrets engine - version 2 (API)", "AppRole auth method
(API)"): a secret is read with ``GET /v1/<mount>/data/<path>`` and its ``data.data`` is always a
key/value object; 404 means no such secret (or its latest version is deleted or destroyed);
403 ``permission denied`` means the token is invalid or its policies do not allow ``read``;
AppRole logs in with ``POST /v1/auth/<mount>/login`` ``{role_id, secret_id}`` and answers 400
``invalid role or secret ID`` when they are wrong. Namespaces (Vault Enterprise, OpenBao) travel
in ``X-Vault-Namespace``.

Without ``secretKey`` a secret holding exactly one key resolves to that key's value; a secret
holding several needs ``secretKey``. Each AppRole resolution logs in anew; the token it gets
lives as long as the role's ``token_ttl`` says.
"""

from __future__ import annotations

import re
from typing import Any

from stead.secrets.resolvers.base import (
    FIELD,
    SecretNotFound,
    access_denied,
    bad_name,
    checked_policy,
    key_missing,
    not_configured,
    not_found,
    text_of,
    timed_out,
    unreachable,
)
from stead.settings import Settings

STORE = "Vault"
_SEGMENT = re.compile(r"[^\x00-\x20\x7f/?#%\\]+")
PATH_RULE = "'/'-separated segments, none empty, '.' or '..'; no spaces, '?', '#', '%' or '\\'"


def check_path(name: str) -> str:
    """``name`` if it is a plain KV path (``prod/finance/redshift``) that cannot reach outside
    the mount or add a query, else raise SecretNotFound."""
    segments = name.split("/")
    if not all(_SEGMENT.fullmatch(part) and part not in (".", "..") for part in segments):
        raise bad_name(STORE, name, PATH_RULE)
    return name


class VaultResolver:
    """Reads KV v2 secrets from the ``vault_*`` settings' server, with token or AppRole auth."""

    store = STORE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def resolve(self, name: str, *, key: str | None) -> str:
        """The member ``key`` of KV v2 secret ``name`` (a path under ``vault_mount``), or its only
        member when ``key`` is None; errors as in :mod:`stead.secrets.resolvers.base`."""
        try:
            import hvac
            import hvac.exceptions as hv
            import requests
        except ImportError:
            raise not_configured(STORE, "install Stead with the vault extra") from None
        check_path(name)
        s = self.settings
        if not s.vault_addr:
            raise not_configured(STORE, "no address (STEAD_VAULT_ADDR)")
        token = s.vault_token.get_secret_value()
        if not token and not s.vault_role_id:
            raise not_configured(STORE, "no token nor AppRole role id (STEAD_VAULT_TOKEN)")
        policy = checked_policy(s, s.vault_addr)
        # A standby node redirects to the active one: each redirect is checked before it is
        # followed.
        session = requests.Session()
        session.hooks["response"].append(policy.requests_hook("secret_store", field=FIELD))
        client = hvac.Client(
            url=s.vault_addr,
            token=token or None,
            verify=s.secret_store_ca_bundle or True,
            timeout=s.secret_store_timeout_seconds,
            namespace=s.vault_namespace or None,
            session=session,
        )
        try:
            if not token:
                try:
                    client.auth.approle.login(
                        role_id=s.vault_role_id,
                        secret_id=s.vault_secret_id.get_secret_value() or None,
                        mount_point=s.vault_approle_mount,
                    )
                except (hv.InvalidRequest, hv.InvalidPath):
                    raise access_denied(STORE, name) from None
            answer = client.secrets.kv.v2.read_secret_version(
                path=name, mount_point=s.vault_mount, raise_on_deleted_version=True
            )
        except hv.InvalidPath:
            raise not_found(STORE, name) from None
        except (hv.Forbidden, hv.Unauthorized):
            raise access_denied(STORE, name) from None
        except requests.Timeout:
            raise timed_out(STORE, s.secret_store_timeout_seconds) from None
        except hv.VaultError as exc:
            raise unreachable(STORE, f"it answered {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise unreachable(STORE, f"connection failed ({type(exc).__name__})") from None
        return _member(name, _data(answer), key)


def _data(answer: Any) -> dict[str, Any]:
    data = answer.get("data", {}).get("data") if isinstance(answer, dict) else None
    return data if isinstance(data, dict) else {}


def _member(name: str, data: dict[str, Any], key: str | None) -> str:
    if key is None:
        if len(data) != 1:
            raise SecretNotFound(
                f"The Vault secret {name!r} holds {len(data)} keys: name one with secretKey",
                violations=[f"secretKey: required, the secret holds {len(data)} keys"],
            )
        (value,) = data.values()
        key = next(iter(data))
    else:
        value = data.get(key)
    text = text_of(value)
    if text is None:
        raise key_missing(STORE, name, key)
    return text
