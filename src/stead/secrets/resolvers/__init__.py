"""Resolution: the value behind a secret name of a project, from whichever store holds it.

One resolver per store (``hosted``, ``aws``, ``vault``, ``azure``, ``gcp``), each behind the
:class:`~stead.secrets.resolvers.base.Resolver` protocol. :func:`resolve` is the one entry point:
it finds the project's secret reference (or else hosted secret) of that name and asks the
reference's store. The SDK of each external store is an extra (``stead[aws]`` ...) imported only
when a reference needs it.
"""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from stead import audit
from stead.db import utcnow
from stead.identity.actor import Actor
from stead.logs import remember_secret
from stead.pipeline.metrics import SECRET_STORE_CALLS, SECRET_STORE_SECONDS
from stead.projects.models import Project
from stead.secrets import scopes, service
from stead.secrets import store as hosted_store
from stead.secrets.resolvers.aws import AwsResolver
from stead.secrets.resolvers.azure import AzureResolver
from stead.secrets.resolvers.base import Resolver, SecretNotFound
from stead.secrets.resolvers.gcp import GcpResolver
from stead.secrets.resolvers.hosted import HostedResolver
from stead.secrets.resolvers.vault import VaultResolver
from stead.secrets.schemas import HOSTED_STORE, SecretReferenceCheck
from stead.settings import Settings

__all__ = ["Resolver", "check_reference", "resolve", "resolve_in", "resolver_for"]


def resolver_for(store: str, *, session: Session, settings: Settings, project_id: str) -> Resolver:
    """The resolver of ``store``, a canonical ``agentType`` (docs/api.md, Secrets)."""
    external: dict[str, type[AwsResolver | VaultResolver | AzureResolver | GcpResolver]] = {
        "AWS": AwsResolver,
        "Vault": VaultResolver,
        "Azure": AzureResolver,
        "GCP": GcpResolver,
    }
    if store == HOSTED_STORE:
        return HostedResolver(session, project_id=project_id)
    return external[store](settings)


def resolve_in(
    session: Session,
    *,
    settings: Settings,
    project_id: str,
    store: str,
    secret_name: str,
    secret_key: str | None,
) -> str:
    """Read ``secret_name`` (its member ``secret_key``) from ``store`` for the project.

    The name must lie inside the project's scope for the store (``stead.secrets.scopes``): a
    reference made before its scope narrowed stops resolving. The value is remembered for log
    redaction (``stead.logs.remember_secret``) before it is returned. Errors as in
    :mod:`stead.secrets.resolvers.base`, and SecretOutOfScope (403).
    """
    scopes.require(session, project_id=project_id, store=store, secret_name=secret_name)
    resolver = resolver_for(store, session=session, settings=settings, project_id=project_id)
    start = time.monotonic()
    try:
        value = resolver.resolve(secret_name, key=secret_key)
    except Exception as exc:
        SECRET_STORE_CALLS.labels(store, type(exc).__name__).inc()
        raise
    finally:
        SECRET_STORE_SECONDS.labels(store).observe(time.monotonic() - start)
    SECRET_STORE_CALLS.labels(store, "ok").inc()
    remember_secret(value)
    return value


def resolve(
    session: Session,
    *,
    settings: Settings,
    project_id: str,
    secret_name: str,
    secret_key: str | None,
) -> str:
    """The value a project's property ``{"secretName", "secretKey"}`` stands for.

    ``secret_name`` names a secret reference of the project or, failing that, a hosted secret
    (compared case-insensitively, docs/api.md, Environments). For a reference, ``secret_key`` (when
    given) overrides the reference's own ``secretKey``; for a hosted secret it picks a member of
    its JSON value.

    Raises:
        SecretNotFound: neither exists, or the store has no such secret or key (400).
        SecretAccessDenied: the store refused Stead's credentials (403).
        SecretOutOfScope: the reference names a secret outside the project's scope (403).
        StoreNotConfigured: this installation is not set up for the store (503).
        UpstreamError: the store could not be reached or failed (502).
        UpstreamTimeout: the store did not answer in time (504).
    """
    reference = service.find_reference(session, project_id=project_id, name=secret_name)
    if reference is not None:
        where, name = reference.agent_type, reference.secret_name
        key = secret_key if secret_key is not None else reference.secret_key
    elif hosted_store.find(session, project_id=project_id, name=secret_name) is not None:
        where, name, key = HOSTED_STORE, secret_name, secret_key
    else:
        raise SecretNotFound(
            f"The project has no secret reference or hosted secret named {secret_name!r}",
            violations=[f"secretName: no secret reference or hosted secret {secret_name!r}"],
        )
    return resolve_in(
        session,
        settings=settings,
        project_id=project_id,
        store=where,
        secret_name=name,
        secret_key=key,
    )


def check_reference(
    session: Session, *, actor: Actor, settings: Settings, project: Project, name: str
) -> SecretReferenceCheck:
    """Resolve the project's secret reference ``name``, forget the value, and say which store
    answered when.

    Records ``secret_reference.checked`` (details: the store; never the value).

    Raises:
        NotFound: the project has no such reference (404).
        and every error of :func:`resolve`.
    """
    reference = service.get(session, project=project, name=name)
    resolve_in(
        session,
        settings=settings,
        project_id=project.id,
        store=reference.agent_type,
        secret_name=reference.secret_name,
        secret_key=reference.secret_key,
    )
    audit.record(
        session,
        actor=actor,
        action="secret_reference.checked",
        target_type="secret_reference",
        target_id=reference.name,
        project_id=project.id,
        details={"agentType": reference.agent_type},
    )
    return SecretReferenceCheck(store=reference.agent_type, resolved_at=utcnow())
