"""What every secret-store resolver offers, and the answers they share (issue: resolution).

A resolver reads one secret from one store and returns its value as text. Failures are the
errors below, one kind each, so a caller (and an API user) can tell them apart:

- :class:`SecretNotFound` (400): the store has no such secret, or no such key in it;
- :class:`SecretAccessDenied` (403): the store refused Stead's credentials for it;
- :class:`StoreNotConfigured` (503): this installation has no address or credentials for it;
- ``UpstreamError`` (502): the store could not be reached or answered with an error;
- ``UpstreamTimeout`` (504): the store did not answer within the configured timeout.

Every message is Stead's own: a store's raw answer (which may echo a value) is never included.
"""

from __future__ import annotations

import json
from typing import Protocol

from stead.errors import AppError, BadRequest, Forbidden, UpstreamError, UpstreamTimeout
from stead.outbound import Policy
from stead.settings import Settings

FIELD = "secretName"
"""The field a refused store address is reported on: the reference that made Stead call it."""


class SecretNotFound(BadRequest):
    """400: the referenced secret (or the key inside it) does not exist in its store.

    Not a 404: the request's own resource exists; what it points at is missing, and the
    violation names which reference field to correct.
    """

    kind, title = "secret-not-found", "Secret not found"


class SecretAccessDenied(Forbidden):
    """403: the store refused Stead's credentials for this secret."""

    kind, title = "secret-access-denied", "Secret access denied"


class StoreNotConfigured(AppError):
    """503: this installation has no settings (or no SDK) for the store a reference names."""

    status, kind, title = 503, "secret-store-not-configured", "Secret store not configured"


class Resolver(Protocol):
    """One secret store. ``resolve`` returns the value of secret ``name`` as text; with ``key``,
    the member ``key`` of the secret, which must then be a JSON object (a Vault KV secret always
    is one). Raises the errors of the module docstring."""

    store: str

    def resolve(self, name: str, *, key: str | None) -> str:
        """The value of secret ``name`` (or of its member ``key``)."""
        ...


def not_found(store: str, name: str) -> SecretNotFound:
    """400: ``store`` has no secret ``name`` (or it is deleted, disabled or has no value)."""
    return SecretNotFound(
        f"{store} has no secret {name!r}",
        violations=[f"secretName: no secret {name!r} in {store}"],
    )


def key_missing(store: str, name: str, key: str) -> SecretNotFound:
    """400: secret ``name`` exists but has no text member ``key``."""
    return SecretNotFound(
        f"The {store} secret {name!r} has no key {key!r} holding text",
        violations=[f"secretKey: no key {key!r} holding text in the secret"],
    )


def bad_name(store: str, name: str, rule: str) -> SecretNotFound:
    """400: ``name`` cannot name a secret in ``store``; ``rule`` says what the store allows."""
    return SecretNotFound(
        f"{name!r} is not a valid {store} secret name: {rule}",
        violations=[f"secretName: not a valid {store} secret name ({rule})"],
    )


def not_text(store: str, name: str) -> SecretNotFound:
    """400: secret ``name`` holds binary data that is not UTF-8 text."""
    return SecretNotFound(
        f"The {store} secret {name!r} holds binary data, not text",
        violations=[f"secretName: the secret {name!r} in {store} holds no text value"],
    )


def access_denied(store: str, name: str) -> SecretAccessDenied:
    """403: ``store`` refused Stead's credentials (rejected, expired, or lacking permission)."""
    return SecretAccessDenied(
        f"{store} refused access to the secret {name!r}: check Stead's credentials for "
        f"{store} and their permission to read it",
        violations=[f"secretName: access to {name!r} denied by {store}"],
    )


def not_configured(store: str, missing: str) -> StoreNotConfigured:
    """503: the installation lacks ``missing`` (a setting or an extra) for ``store``."""
    return StoreNotConfigured(f"The {store} secret store is not configured: {missing}")


def unreachable(store: str, reason: str) -> UpstreamError:
    """502: ``store`` could not be reached or failed; ``reason`` is Stead's own words."""
    return UpstreamError(f"{store} could not be read: {reason}")


def timed_out(store: str, seconds: float) -> UpstreamTimeout:
    """504: ``store`` did not answer within ``seconds``."""
    return UpstreamTimeout(f"{store} did not answer within {seconds:g} s")


def checked_policy(settings: Settings, *urls: str) -> Policy:
    """The outbound policy of ``settings``, once it allows each of ``urls`` (a store's
    endpoints; a bare host name counts as ``https://``) for a secret store.

    Raises:
        DestinationRefused: an endpoint's scheme, host or address is refused (400 naming
            ``secretName``).
    """
    policy = Policy.from_settings(settings)
    for url in urls:
        policy.check_url("secret_store", url if "://" in url else f"https://{url}", field=FIELD)
    return policy


def text_of(value: object) -> str | None:
    """A secret member as text: strings as they are; numbers and booleans as JSON writes them
    (``5439``, ``true``: property values are strings, docs/warehouses.md); anything else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def pick(store: str, name: str, value: str, key: str | None) -> str:
    """``value`` itself without ``key``; with ``key``, member ``key`` of the JSON object
    ``value`` (AWS's "JSON secret + secretKey" rule, applied to every text store).

    Raises:
        SecretNotFound: ``value`` is not a JSON object or has no text member ``key``.
    """
    if key is None:
        return value
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        data = None
    member = text_of(data.get(key)) if isinstance(data, dict) else None
    if member is None:
        raise key_missing(store, name, key)
    return member
