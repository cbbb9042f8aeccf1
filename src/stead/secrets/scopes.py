"""Secret scopes: which part of each external store a project's secret references may name
(docs/decisions.md, "Secret scopes").

Stead reads every external store (AWS Secrets Manager, Vault KV v2, Azure Key Vault, GCP Secret
Manager) with its own credentials, shared by all projects; the scope is what keeps project P
from naming project Q's secrets. A scope is a list of prefixes per store, set by an account
admin; a reference's ``secretName`` must start with one of them, compared as text (Azure Key
Vault names case-insensitively, as Azure compares them). It is checked when a reference is
created and again at every resolution, so narrowing a scope stops the references outside it.

Without a scope set by an admin, a project's scope is its own prefix (:func:`default_prefix`):
``stead/<projectId>/`` in AWS and Vault (paths under the KV mount), ``stead-<projectId>-`` in
Azure (whose names allow no ``/``) and GCP (bare secret ids, read from the configured GCP
project). The hosted store needs no scope: its secrets belong to one project already.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.errors import BadRequest
from stead.identity.actor import Actor
from stead.identity.permissions import PermissionDenied
from stead.projects.models import Project
from stead.secrets.models import SecretReference, SecretScope
from stead.secrets.resolvers.azure import check_name as azure_name
from stead.secrets.resolvers.base import SecretNotFound
from stead.secrets.resolvers.gcp import check_name as gcp_name
from stead.secrets.resolvers.vault import check_path
from stead.secrets.schemas import (
    SCOPED_STORES,
    SecretScopeEntry,
    SecretScopesRead,
    SecretScopesUpdate,
)

#: The permission an out-of-scope reference lacks (audited on a refused change).
PERMISSION = "secret_scope"

#: What each store accepts as a prefix (a prefix of a valid name; "" is the whole store).
_PREFIX_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "AWS": (
        re.compile(r"[A-Za-z0-9/_+=.@:-]{0,2048}"),
        "letters, digits and / _ + = . @ : - (a secret name or ARN prefix)",
    ),
    "Vault": (
        re.compile(r"[^\x00-\x20\x7f?#%\\]{0,1024}"),
        "a KV path prefix: '/'-separated segments, no spaces, '?', '#', '%' or '\\'",
    ),
    "Azure": (re.compile(r"[0-9A-Za-z-]{0,127}"), "letters, digits and dashes (Key Vault names)"),
    "GCP": (
        re.compile(r"(?:projects/[a-z0-9.:-]{1,100}/secrets/)?[A-Za-z0-9_-]{0,255}"),
        "a secret id prefix, or projects/PROJECT/secrets/ followed by one",
    ),
}


#: The name check of each store whose names have a fixed form (AWS accepts any name or ARN).
_NAME_CHECKS = {"Vault": check_path, "Azure": azure_name, "GCP": gcp_name}


class SecretOutOfScope(PermissionDenied):
    """403: a secret reference names a secret outside its project's scope for that store."""

    kind, title = "secret-out-of-scope", "Secret outside the project's scope"


def default_prefix(store: str, project_id: str) -> str:
    """The prefix a project may use in ``store`` until an admin sets its scope: ``stead/<id>/``
    for AWS and Vault, ``stead-<id>-`` for Azure and GCP (module docstring)."""
    return f"stead/{project_id}/" if store in ("AWS", "Vault") else f"stead-{project_id}-"


def _stored(session: Session, *, project_id: str) -> dict[str, SecretScope]:
    rows = session.scalars(select(SecretScope).where(SecretScope.project_id == project_id))
    return {row.store: row for row in rows}


def prefixes(session: Session, *, project_id: str, store: str) -> list[str]:
    """The prefixes the project may name in ``store`` (its admin-set scope, else the default)."""
    row = session.scalar(
        select(SecretScope).where(SecretScope.project_id == project_id, SecretScope.store == store)
    )
    return list(row.prefixes) if row is not None else [default_prefix(store, project_id)]


def inside(store: str, name: str, allowed: list[str]) -> bool:
    """True if ``name`` starts with one of ``allowed`` (case-insensitively for Azure, whose
    secret names are case-insensitive: "About Azure Key Vault secrets")."""
    if store == "Azure":
        name, allowed = name.casefold(), [p.casefold() for p in allowed]
    return any(name.startswith(prefix) for prefix in allowed)


def require(
    session: Session, *, project_id: str, store: str, secret_name: str, field: str = "secretName"
) -> None:
    """Check that ``secret_name`` lies inside the project's scope for ``store``; the hosted store
    always passes. The name must first be one the store accepts (a Vault path must be a plain KV
    path, with no ``..`` that could leave the prefix).

    Raises:
        SecretNotFound: not a valid name in the store (400).
        SecretOutOfScope: outside the scope (403; the violation names ``field`` and the scope).
    """
    if store not in SCOPED_STORES:
        return
    _NAME_CHECKS.get(store, str)(secret_name)
    allowed = prefixes(session, project_id=project_id, store=store)
    if inside(store, secret_name, allowed):
        return
    shown = ", ".join(repr(p) for p in allowed) or "nothing"
    raise SecretOutOfScope(
        f"{secret_name!r} is outside this project's {store} scope (names starting with {shown}); "
        "an account admin sets the scope with PUT /v1/projects/{projectId}/secret-scopes",
        permission=PERMISSION,
        project_id=project_id,
        violations=[f"{field}: {secret_name!r} is outside the project's {store} scope ({shown})"],
    )


def read(session: Session, *, project: Project) -> SecretScopesRead:
    """The project's scope in every external store, and the references now outside it."""
    stored = _stored(session, project_id=project.id)
    entries = [
        SecretScopeEntry(
            store=store,
            prefixes=list(stored[store].prefixes)
            if store in stored
            else [default_prefix(store, project.id)],
            default=store not in stored,
        )
        for store in SCOPED_STORES
    ]
    allowed = {e.store: e.prefixes for e in entries}
    outside = [
        name
        for name, store, secret_name in session.execute(
            select(SecretReference.name, SecretReference.agent_type, SecretReference.secret_name)
            .where(SecretReference.project_id == project.id)
            .order_by(SecretReference.created_at, SecretReference.id)
        )
        if store in allowed and not inside(store, secret_name, allowed[store])
    ]
    return SecretScopesRead(scopes=entries, out_of_scope=outside)


def _check(data: SecretScopesUpdate) -> dict[str, list[str]]:
    """The prefixes per store that ``data`` sets (later duplicates dropped).

    Raises:
        BadRequest: one violation per bad store entry or prefix.
    """
    violations: list[str] = []
    wanted: dict[str, list[str]] = {}
    for i, entry in enumerate(data.scopes):
        if entry.store in wanted:
            violations.append(f"scopes[{i}].store: {entry.store} is listed twice")
            continue
        pattern, rule = _PREFIX_RULES[entry.store]
        for j, prefix in enumerate(entry.prefixes):
            bad = not pattern.fullmatch(prefix)
            if not bad and entry.store == "Vault" and prefix:
                try:
                    check_path(prefix.removesuffix("/"))
                except SecretNotFound:
                    bad = True
            if bad:
                violations.append(
                    f"scopes[{i}].prefixes[{j}]: not a valid {entry.store} prefix ({rule})"
                )
        wanted[entry.store] = list(dict.fromkeys(entry.prefixes))
    if violations:
        raise BadRequest("The secret scopes have invalid entries", violations=violations)
    return wanted


def replace(
    session: Session, *, actor: Actor, project: Project, data: SecretScopesUpdate
) -> SecretScopesRead:
    """Set the project's scopes: each store listed in ``data`` gets exactly its prefixes (``[]``
    allows nothing, ``[""]`` the whole store); a store left out goes back to its default.
    Audited as ``secret_scope.updated`` with the prefixes per store.

    Raises:
        BadRequest: a store listed twice, or a prefix the store's names cannot start with.
    """
    wanted = _check(data)
    stored = _stored(session, project_id=project.id)
    for store in SCOPED_STORES:
        row = stored.get(store)
        if store not in wanted:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(SecretScope(project_id=project.id, store=store, prefixes=wanted[store]))
        elif list(row.prefixes) != wanted[store]:
            row.prefixes = wanted[store]
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="secret_scope.updated",
        target_type="project",
        target_id=project.id,
        project_id=project.id,
        details={"scopes": wanted},
    )
    return read(session, project=project)
