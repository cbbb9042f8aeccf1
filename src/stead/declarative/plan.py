"""The difference between the file and the server, as a list of changes in dependency order.

Objects are matched by name (case-insensitively, as the server compares names). What the API
cannot change in place (a project's warehouse or deployment type, an agent, a connection, a
secret reference) is reported as an error rather than planned; a repository is replaced (its
association deleted and made again). Deletions are planned only with ``prune``, and only inside
the projects the file lists: projects and agents are never deleted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from stead.agents.schemas import AgentRead
from stead.connections.schemas import ConnectionCreate
from stead.declarative.spec import (
    PROJECT_ID,
    AgentSpec,
    EnvironmentSpec,
    HostedSecretSpec,
    ProjectSpec,
    SecretReferenceSpec,
    StateFile,
)
from stead.document import ProjectState, State
from stead.environments.schemas import ConnectionOverrideRead, EnvironmentRead
from stead.projects.schemas import LIST_ITEMS
from stead.sdk import Client
from stead.secrets.keys import UNKNOWN_PASSPHRASE, Passphrase, check_key_pair, check_private_key
from stead.warehouses import WarehouseSpec, check_properties, spec_for
from stead.wire import name_key

CREATE, UPDATE, REPLACE, DELETE, NO_CHANGE = "create", "update", "replace", "delete", "no change"

# Execution phases: what a later phase needs exists after the earlier ones.
_AGENTS, _PROJECTS, _ALLOW_LISTS, _CONNECTIONS, _REFERENCES, _ENVIRONMENTS = range(6)
_REPOSITORY, _MEMBERS, _ACCESS = range(6, 9)
_PRUNE_ACCESS, _PRUNE_MEMBERS, _PRUNE_ENVIRONMENTS, _PRUNE_REFERENCES = range(9, 13)
_PRUNE_CONNECTIONS = 13
#: JSON path of an environment's properties, as the server names them in violations.
_PROPERTIES = "connectionOverrides[0].connectionProperties"


@dataclass
class Context:
    """What running changes needs: the client, and ids learnt so far (by name key)."""

    client: Client
    agent_ids: dict[str, str]
    project_ids: dict[str, str]

    def agent_id(self, name: str) -> str:
        """The id of the agent ``name`` (created earlier in this run, or existing)."""
        return self.agent_ids[name_key(name)]


#: A secret value in a plan's ``before``/``after``: values are never shown.
MASK = "(sensitive)"

_COLLECTIONS = {
    "connection": "connections",
    "secret reference": "secretReferences",
    "secret": "secrets",
    "environment": "environments",
    "member": "members",
}


def _quote(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def _read(model: BaseModel | None) -> dict[str, Any] | None:
    """An object as the server shows it, for a plan's ``before`` (timestamps left out)."""
    if model is None:
        return None
    return model.model_dump(mode="json", by_alias=True, exclude={"created_at", "updated_at"})


@dataclass
class Change:
    """One object's planned change.

    Attributes:
        kind: ``agent``, ``allow list`` (an agent's), ``project``, ``connection``, ``secret
            reference``, ``secret``, ``environment``, ``repository``, ``member`` (named by
            email) or ``environment access`` (named by email, in ``environment``).
        name: the object's name (the repository's is its repository name).
        project: the name of the project it belongs to (None for agents and projects).
        action: ``create``, ``update``, ``replace``, ``delete`` or ``no change``.
        details: one line per changed field; secret-bearing fields say only ``changed``.
        phase: execution order (lower first).
        run: the API calls that make the change (None for ``no change``, and for a change
            another one's ``run`` makes: see ``includes``).
        body: for a create inside a project, its request body (wire form), built when the
            change runs (it may need ids learnt earlier in the run).
        includes: the changes this one's ``run`` makes as well: a new project's creates, sent
            with it in one ``POST /v1/provisioning`` (:func:`make_plan`).
    """

    kind: str
    name: str
    project: str | None
    action: str
    details: list[str] = field(default_factory=list)
    phase: int = 0
    run: Callable[[Context], None] | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    #: The environment an ``environment access`` change belongs to.
    environment: str | None = None
    body: Callable[[Context], dict[str, Any]] | None = None
    includes: list[Change] = field(default_factory=list)

    @property
    def address(self) -> str:
        """Where the object is in the file, stable across runs: ``agents["a"]``,
        ``projects["p"]``, ``projects["p"].environments["prod"]``, ``projects["p"].repository``
        (names as JSON strings)."""
        if self.kind in ("agent", "project"):
            return f"{self.kind}s[{_quote(self.name)}]"
        if self.kind == "allow list":
            return f"agents[{_quote(self.name)}].allowList"
        assert self.project is not None
        if self.kind == "environment access":
            return (
                f"projects[{_quote(self.project)}].environments[{_quote(str(self.environment))}]"
                f".access[{_quote(self.name)}]"
            )
        own = (
            "repository"
            if self.kind == "repository"
            else f"{_COLLECTIONS[self.kind]}[{_quote(self.name)}]"
        )
        return f"projects[{_quote(self.project)}].{own}"

    @property
    def label(self) -> str:
        """``kind "name"``, inside its project when it has one."""
        own = f'{self.kind} "{self.name}"'
        if self.environment is not None:
            own = f'environment "{self.environment}" / {own}'
        return f'project "{self.project}" / {own}' if self.project else own


@dataclass
class Plan:
    """The changes (display order), the errors that forbid applying, and how many objects
    ``--prune`` would delete that this plan leaves alone."""

    changes: list[Change]
    errors: list[str]
    unpruned: int = 0
    #: What the plan leaves for later and why (access for someone still invited).
    notes: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[Change]:
        """The changes to make, in execution order."""
        todo = [c for c in self.changes if c.action != NO_CHANGE]
        return sorted(todo, key=lambda c: c.phase)

    def counts(self) -> dict[str, int]:
        """How many changes of each action."""
        out = dict.fromkeys((CREATE, UPDATE, REPLACE, DELETE, NO_CHANGE), 0)
        for change in self.changes:
            out[change.action] += 1
        return out


def _show(value: Any) -> str:
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def _field(name: str, old: Any, new: Any) -> str:
    return f"{name}: {_show(old)} -> {_show(new)}"


def _agent_changes(desired: AgentSpec, actual: AgentRead | None, errors: list[str]) -> Change:
    if actual is None:
        body = desired.model_dump(by_alias=True, exclude_unset=True, exclude={"allow_list"})

        def create(ctx: Context) -> None:
            created = ctx.client.agents.create(body)
            ctx.agent_ids[name_key(created.name)] = created.agent_id

        return Change(
            "agent", desired.name, None, CREATE, phase=_AGENTS, run=create, after=_json(body)
        )
    auto_updates = desired.enable_auto_updates
    if auto_updates is None:
        auto_updates = desired.agent_type == "data_productivity_cloud"
    wanted = {
        "description": desired.description,
        "agentType": desired.agent_type,
        "cloudProvider": desired.cloud_provider,
        "deployment": desired.deployment,
        "enableAutoUpdates": auto_updates,
        "restrictedAccess": desired.restricted_access,
        "trackName": desired.track_name,
    }
    have = actual.model_dump(by_alias=True)
    diff = [_field(k, have[k], v) for k, v in wanted.items() if have[k] != v]
    if diff:
        errors.append(
            f'agent "{desired.name}": agents cannot be changed through the API '
            f"({'; '.join(diff)}); change the file, or delete the agent and apply again"
        )
    return Change("agent", desired.name, None, NO_CHANGE)


def _given(body: dict[str, Any]) -> Callable[[Context], dict[str, Any]]:
    """A :attr:`Change.body` that needs nothing learnt in the run."""
    return lambda ctx: body


def _project_change(desired: ProjectSpec, actual: ProjectState | None, errors: list[str]) -> Change:
    key = name_key(desired.name)
    if actual is None:
        body = desired.model_dump(
            by_alias=True,
            include={"name", "description", "warehouse", "agent_deployment_type"},
            exclude_none=True,
        )

        def create(ctx: Context) -> None:
            ctx.project_ids[key] = ctx.client.projects.create(body).project_id

        change = Change(
            "project", desired.name, None, CREATE, phase=_PROJECTS, run=create, after=_json(body)
        )
        change.body = _given(body)
        return change
    project = actual.project
    for label, want, have in (
        ("warehouse", desired.warehouse, project.warehouse),
        ("agentDeploymentType", desired.agent_deployment_type, project.agent_deployment_type),
    ):
        if want != have:
            errors.append(
                f'project "{desired.name}": {label} cannot change ({have} -> {want}); '
                "create a project under another name instead"
            )
    patch: dict[str, Any] = {}
    details = []
    if desired.name != project.name:
        patch["name"] = desired.name
        details.append(_field("name", project.name, desired.name))
    if desired.description != project.description:
        patch["description"] = desired.description
        details.append(_field("description", project.description, desired.description))
    if not patch:
        return Change("project", desired.name, None, NO_CHANGE)

    def update(ctx: Context) -> None:
        ctx.client.projects.update(ctx.project_ids[key], patch)

    before = {"name": project.name, "description": project.description}
    after = {"name": desired.name, "description": desired.description}
    return Change("project", desired.name, None, UPDATE, details, _PROJECTS, update, before, after)


def _connection_changes(
    desired: ProjectSpec, actual: ProjectState | None, prune: bool, errors: list[str]
) -> tuple[list[Change], int]:
    key = name_key(desired.name)
    have = {name_key(c.name): c for c in actual.connections} if actual else {}
    changes = []
    for connection in desired.connections:
        existing = have.pop(name_key(connection.name), None)
        if existing is None:
            body = connection.model_dump(by_alias=True)

            def create(ctx: Context, body: dict[str, Any] = body) -> None:
                ctx.client.connections.create(ctx.project_ids[key], body)

            changes.append(
                Change(
                    "connection",
                    connection.name,
                    desired.name,
                    CREATE,
                    [],
                    _CONNECTIONS,
                    create,
                    after=_json(body),
                    body=_given(body),
                )
            )
            continue
        wanted = connection.model_dump(by_alias=True, exclude={"name"})
        current = existing.model_dump(by_alias=True, include=set(ConnectionCreate.model_fields))
        diff = [_field(k, current[k], v) for k, v in wanted.items() if current[k] != v]
        if diff:
            errors.append(
                f'project "{desired.name}" / connection "{connection.name}": connections '
                f"cannot be changed ({'; '.join(diff)}); add one under another name"
            )
        changes.append(Change("connection", connection.name, desired.name, NO_CHANGE))
    return changes + _deletions(
        "connection",
        desired.name,
        list(have.values()),
        prune,
        _PRUNE_CONNECTIONS,
        lambda ctx, pid, c: ctx.client.connections.delete(pid, c.name),
    ), (0 if prune else len(have))


def _deletions(
    kind: str,
    project: str,
    leftovers: list[Any],
    prune: bool,
    phase: int,
    delete: Callable[[Context, str, Any], None],
) -> list[Change]:
    if not prune:
        return []
    key = name_key(project)
    changes = []
    for obj in leftovers:

        def run(ctx: Context, obj: Any = obj) -> None:
            delete(ctx, ctx.project_ids[key], obj)

        changes.append(Change(kind, obj.name, project, DELETE, [], phase, run, before=_read(obj)))
    return changes


def _reference_changes(
    desired: ProjectSpec,
    actual: ProjectState | None,
    state: State,
    prune: bool,
    errors: list[str],
) -> tuple[list[Change], int]:
    key = name_key(desired.name)
    have = {name_key(r.name): r for r in actual.secret_references} if actual else {}
    changes = []
    for reference in desired.secret_references:
        existing = have.pop(name_key(reference.name), None)
        if existing is None:
            changes.append(_create_reference(key, desired.name, reference))
            continue
        assert actual is not None
        wanted: dict[str, Any] = {
            "agentName": name_key(reference.agent_name) if reference.agent_name else None,
            "agentType": reference.agent_type,
            "secretReferenceType": reference.secret_reference_type,
            "secretName": with_project_id(reference.secret_name, actual.project.id),
            "secretKey": reference.secret_key,
            "description": reference.description,
        }
        current = {
            **existing.model_dump(by_alias=True),
            "agentName": name_key(name) if (name := state.agent_name(existing.agent_id)) else None,
        }
        diff = [_field(k, current[k], v) for k, v in wanted.items() if current[k] != v]
        if diff:
            errors.append(
                f'project "{desired.name}" / secret reference "{reference.name}": secret '
                f"references cannot be changed ({'; '.join(diff)}); add one under another name "
                "and point the environments at it"
            )
        changes.append(Change("secret reference", reference.name, desired.name, NO_CHANGE))
    return changes + _deletions(
        "secret reference",
        desired.name,
        list(have.values()),
        prune,
        _PRUNE_REFERENCES,
        lambda ctx, pid, r: ctx.client.secret_references.delete(pid, r.name),
    ), (0 if prune else len(have))


def with_project_id(secret_name: str, project_id: str) -> str:
    """``secret_name`` with :data:`~stead.declarative.spec.PROJECT_ID` replaced by the
    project's id: a file can name secrets under the project's default scope
    (``stead/{projectId}/...``) before the project exists."""
    return secret_name.replace(PROJECT_ID, project_id)


def _create_reference(key: str, project: str, reference: SecretReferenceSpec) -> Change:
    body = reference.model_dump(by_alias=True, exclude={"name", "agent_name"}, exclude_none=True)

    def wire(ctx: Context) -> dict[str, Any]:
        """The body with the reference's ``name`` (the provisioning request's form) and
        ``{projectId}`` left for the server to replace."""
        sent = {"name": reference.name, **body}
        if reference.agent_name is not None:
            sent["agentId"] = ctx.agent_id(reference.agent_name)
        return sent

    def create(ctx: Context) -> None:
        pid = ctx.project_ids[key]
        sent = wire(ctx)
        del sent["name"]
        sent["secretName"] = with_project_id(reference.secret_name, pid)
        ctx.client.secret_references.create(pid, reference.name, sent)

    return Change(
        "secret reference",
        reference.name,
        project,
        CREATE,
        [],
        _REFERENCES,
        create,
        after=_json({"name": reference.name, "agentName": reference.agent_name, **body}),
        body=wire,
    )


def _secret_changes(
    desired: ProjectSpec,
    actual: ProjectState | None,
    prune: bool,
    write_secrets: bool,
    errors: list[str],
) -> tuple[list[Change], int]:
    """Hosted secrets: created with their value; their value is never read back, so it is
    written again only with ``write_secrets``. Secrets environments own are not the file's."""
    key = name_key(desired.name)
    owned = actual.owned_secrets() if actual else set()
    have = {
        name_key(h.name): h
        for h in (actual.secrets if actual else [])
        if name_key(h.name) not in owned
    }
    changes = []
    for secret in desired.secrets:
        existing = have.pop(name_key(secret.name), None)
        where = f'project "{desired.name}" / secret "{secret.name}"'
        value = secret.value
        details = []
        if existing is not None and existing.type != secret.type:
            details.append(_field("type", existing.type, secret.type))
        if existing is not None and write_secrets and value is not None:
            details.append("value: rewritten (secret)")
        if existing is not None and not details:
            changes.append(Change("secret", secret.name, desired.name, NO_CHANGE))
            continue
        if value is None:
            needed = "create it" if existing is None else "change its type"
            errors.append(f"{where}: a value is needed to {needed}: set value (e.g. ${{VAR}})")
        action = CREATE if existing is None else UPDATE
        run = _write_secret(key, secret, exists=existing is not None)
        after = {"name": secret.name, "type": secret.type, "value": MASK}
        changes.append(
            Change(
                "secret",
                secret.name,
                desired.name,
                action,
                details,
                _REFERENCES,
                run,
                _read(existing),
                after,
                body=partial(_secret_body, secret),
            )
        )
    return changes + _deletions(
        "secret",
        desired.name,
        list(have.values()),
        prune,
        _PRUNE_REFERENCES,
        lambda ctx, pid, h: ctx.client.secrets.delete(pid, h.name),
    ), (0 if prune else len(have))


def _secret_body(secret: HostedSecretSpec, ctx: Context) -> dict[str, Any]:
    """The body that creates ``secret`` (its value revealed only now, as it is sent)."""
    assert secret.value is not None
    return {"name": secret.name, "type": secret.type, "value": secret.value.get_secret_value()}


def _write_secret(
    project_key: str, secret: HostedSecretSpec, *, exists: bool
) -> Callable[[Context], None]:
    """The call that creates ``secret``, or stores a new version of it."""

    def write(ctx: Context) -> None:
        body = _secret_body(secret, ctx)
        if exists:
            del body["name"]
            ctx.client.secrets.update(ctx.project_ids[project_key], secret.name, body)
        else:
            ctx.client.secrets.create(ctx.project_ids[project_key], body)

    return write


def _fingerprint(properties: dict[str, dict[str, Any]]) -> str | None:
    """The public-key fingerprint of an inline ``privateKey`` (opened with an inline
    ``passphrase`` if there is one), or None when it cannot be computed here."""
    key = properties.get("privateKey", {}).get("value")
    if key is None:
        return None
    try:
        return check_private_key(
            str(key), properties.get("passphrase", {}).get("value")
        ).fingerprint
    except ValueError:
        return None


def _key_problems(properties: dict[str, dict[str, Any]], *, path: str) -> list[str]:
    """What the server would refuse in an inline ``privateKey`` (with its passphrase, inline or
    held in a secret): ``["<json.path>: <message>"]``, empty when the key is fine or is itself
    held in a secret."""
    key = properties.get("privateKey", {}).get("value")
    if key is None:
        return []
    phrase = properties.get("passphrase")
    passphrase: Passphrase = None
    phrase_field = f"{path}.passphrase"
    if phrase is not None:
        inline = phrase.get("value")
        passphrase = UNKNOWN_PASSPHRASE if inline is None else str(inline)
        phrase_field += ".value" if inline is not None else ".secretName"
    checked = check_key_pair(
        str(key), passphrase, key_field=f"{path}.privateKey.value", phrase_field=phrase_field
    )
    return [checked] if isinstance(checked, str) else []


def _inline_status(
    prop: str,
    have: dict[str, Any] | None,
    desired: dict[str, dict[str, Any]],
    write_secrets: bool,
) -> str | None:
    """Compare a sensitive property given inline with what is stored: ``changed``,
    ``rewritten`` (``write_secrets``: the value cannot be read back, so it is sent again), or
    None (unchanged). A stored inline value is ``{"secretName", "set": true}``; a private key
    also carries its public-key fingerprint, so it is compared exactly."""
    if have is None or not have.get("set"):
        return "changed"
    if prop == "privateKey":
        fingerprint = _fingerprint(desired)
        if fingerprint is not None:
            return None if fingerprint == have.get("fingerprint") else "changed"
    return "rewritten" if write_secrets else None


def _stored(env: EnvironmentSpec) -> dict[str, dict[str, Any]]:
    return {k: v.stored() for k, v in env.connection_overrides[0].connection_properties.items()}


def _comparable(value: dict[str, Any] | None) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if "secretName" in value:
        return ("secret", name_key(str(value["secretName"])), value.get("secretKey"))
    return ("value", value.get("value"))


def _connections_key(value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """``defaultConnections`` in the form two equal ones share (kind, provider, name case)."""
    return {
        kind.upper(): {p.lower(): name_key(n) for p, n in entries.items()}
        for kind, entries in value.items()
    }


def _environment_fields(
    desired: EnvironmentSpec, actual: EnvironmentRead
) -> tuple[dict[str, Any], list[str]]:
    """The PATCH members and plan lines for an environment's fields other than its
    properties; ``defaultAgentName`` stands for the id, looked up when the change runs."""
    display_name = desired.display_name or desired.name
    pairs: list[tuple[str, Any, Any, bool]] = [
        ("displayName", actual.display_name, display_name, display_name != actual.display_name),
        (
            "description",
            actual.description,
            desired.description,
            desired.description != actual.description,
        ),
        (
            "defaultAgentName",
            actual.default_agent_name,
            desired.default_agent_name,
            name_key(desired.default_agent_name) != name_key(actual.default_agent_name),
        ),
        (
            "defaultUserAccessLevel",
            actual.default_user_access_level,
            desired.default_user_access_level,
            desired.default_user_access_level != actual.default_user_access_level,
        ),
        (
            "defaultConnections",
            actual.default_connections,
            desired.default_connections,
            _connections_key(desired.default_connections)
            != _connections_key(actual.default_connections),
        ),
    ]
    patch = {name: new for name, _, new, changed in pairs if changed}
    details = [_field(name, old, new) for name, old, new, changed in pairs if changed]
    return patch, details


def _properties_patch(
    desired: EnvironmentSpec,
    current: ConnectionOverrideRead,
    normalised: dict[str, dict[str, Any]],
    *,
    spec: WarehouseSpec,
    write_secrets: bool,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The ``connectionOverrides`` item of a PATCH (None when nothing changed) and its plan
    lines. Sensitive properties that did not change are left out of the PATCH (the server keeps
    them); properties the file dropped are sent as ``null``."""
    override = desired.connection_overrides[0]
    changed = name_key(override.connection_name) != name_key(current.connection_name)
    details = []
    if changed:
        details.append(_field("connectionName", current.connection_name, override.connection_name))
    # a PATCH keeps what it leaves out (RFC 7396 merge): a property the file does not name is
    # sent as null, which removes it or returns it to its default
    removed = sorted(set(current.connection_properties) - set(override.connection_properties))
    kept: set[str] = set()  # unchanged secrets are left out of the PATCH and keep their value
    for prop in sorted(set(normalised) | set(current.connection_properties)):
        want = normalised.get(prop)
        have = current.connection_properties.get(prop)
        if prop in spec.sensitive and want is not None and "value" in want:
            status = _inline_status(prop, have, normalised, write_secrets)
        else:
            status = None if _comparable(want) == _comparable(have) else "changed"
        if status is None:
            if prop in spec.sensitive:
                kept.add(prop)
            continue
        changed = True
        if prop in spec.sensitive:
            details.append(f"{_PROPERTIES}.{prop}: {status} (secret)")
        else:
            details.append(
                f"{_PROPERTIES}.{prop}: {_show_property(have)} -> {_show_property(want)}"
            )
    if not changed:
        return None, details
    wire = _wire_override(desired)
    properties = {k: v for k, v in wire["connectionProperties"].items() if k not in kept}
    return {**wire, "connectionProperties": {**properties, **dict.fromkeys(removed)}}, details


def _masked_override(desired: EnvironmentSpec, spec: WarehouseSpec) -> dict[str, Any]:
    """The file's ``connectionOverrides`` item for a plan's ``after``: sensitive values given
    inline are :data:`MASK`."""
    wire = _wire_override(desired)
    wire["connectionProperties"] = {
        k: {**v, "value": MASK} if k in spec.sensitive and "value" in v else v
        for k, v in wire["connectionProperties"].items()
    }
    return wire


def _json(value: Any) -> dict[str, Any]:
    """``value`` (wire form, possibly holding models) as plain JSON values."""
    out: dict[str, Any] = to_jsonable_python(value, by_alias=True)
    return out


def _wire_override(desired: EnvironmentSpec) -> dict[str, Any]:
    """The file's ``connectionOverrides`` item in wire form."""
    override = desired.connection_overrides[0]
    return {
        "connectionName": override.connection_name,
        "connectionProperties": {
            k: v.model_dump(by_alias=True, exclude_none=True)
            for k, v in override.connection_properties.items()
        },
    }


def _environment_change(
    desired: EnvironmentSpec,
    actual: EnvironmentRead | None,
    project: ProjectSpec,
    write_secrets: bool,
    errors: list[str],
) -> Change:
    """The change that makes the project's environment ``actual`` (None: missing) match
    ``desired``; property problems go to ``errors``."""
    key = name_key(project.name)
    where = f'project "{project.name}" / environment "{desired.name}"'
    spec = spec_for(project.warehouse)
    normalised, problems = check_properties(spec, _stored(desired), path=_PROPERTIES)
    errors += [f"{where}: {p}" for p in problems]
    errors += [f"{where}: {p}" for p in _key_problems(_stored(desired), path=_PROPERTIES)]
    if actual is None:
        body: dict[str, Any] = {
            "name": desired.name,
            "displayName": desired.display_name or desired.name,
            "description": desired.description,
            "defaultUserAccessLevel": desired.default_user_access_level,
            "defaultConnections": desired.default_connections,
            "connectionOverrides": [_wire_override(desired)],
        }

        def wire(ctx: Context) -> dict[str, Any]:
            return {**body, "defaultAgentId": ctx.agent_id(desired.default_agent_name)}

        def create(ctx: Context) -> None:
            ctx.client.environments.create(ctx.project_ids[key], wire(ctx))

        after = {**body, "defaultAgentName": desired.default_agent_name}
        after["connectionOverrides"] = [_masked_override(desired, spec)]
        return Change(
            "environment",
            desired.name,
            project.name,
            CREATE,
            [],
            _ENVIRONMENTS,
            create,
            after=_json(after),
            body=wire,
        )

    patch, details = _environment_fields(desired, actual)
    override, property_details = _properties_patch(
        desired,
        actual.connection_overrides[0],
        normalised,
        spec=spec,
        write_secrets=write_secrets,
    )
    details += property_details
    if override is not None:
        patch["connectionOverrides"] = [override]
    if not patch:
        return Change("environment", desired.name, project.name, NO_CHANGE)

    def update(ctx: Context) -> None:
        body = dict(patch)
        agent = body.pop("defaultAgentName", None)
        if agent is not None:
            body["defaultAgentId"] = ctx.agent_id(agent)
        ctx.client.environments.update(ctx.project_ids[key], desired.name, body)

    wanted = {
        "name": desired.name,
        "displayName": desired.display_name or desired.name,
        "description": desired.description,
        "defaultAgentName": desired.default_agent_name,
        "defaultUserAccessLevel": desired.default_user_access_level,
        "defaultConnections": desired.default_connections,
        "connectionOverrides": [_masked_override(desired, spec)],
    }
    before = _read(actual)
    return Change(
        "environment",
        desired.name,
        project.name,
        UPDATE,
        details,
        _ENVIRONMENTS,
        update,
        before,
        _json(wanted),
    )


def _show_property(value: dict[str, Any] | None) -> str:
    if value is None:
        return "(none)"
    if "secretName" in value:
        key = value.get("secretKey")
        return f"secret {value['secretName']!r}" + (f" key {key!r}" if key else "")
    return repr(value.get("value"))


def _environment_changes(
    desired: ProjectSpec,
    actual: ProjectState | None,
    prune: bool,
    write_secrets: bool,
    errors: list[str],
) -> tuple[list[Change], int]:
    have = {name_key(e.name): e for e in actual.environments} if actual else {}
    changes = [
        _environment_change(env, have.pop(name_key(env.name), None), desired, write_secrets, errors)
        for env in desired.environments
    ]
    return changes + _deletions(
        "environment",
        desired.name,
        list(have.values()),
        prune,
        _PRUNE_ENVIRONMENTS,
        lambda ctx, pid, e: ctx.client.environments.delete(pid, e.name),
    ), (0 if prune else len(have))


def _repository_change(
    desired: ProjectSpec, actual: ProjectState | None, prune: bool, errors: list[str]
) -> tuple[list[Change], int]:
    key = name_key(desired.name)
    current = actual.repository if actual else None
    wanted = desired.repository
    if wanted is None:
        if current is None:
            return [], 0
        if not prune:
            return [], 1

        def remove(ctx: Context) -> None:
            ctx.client.repositories.delete(ctx.project_ids[key])

        name = current.repository_name
        change = Change("repository", name, desired.name, DELETE, [], _REPOSITORY, remove)
        change.before = _read(current)
        return [change], 0
    body = wanted.model_dump(by_alias=True, exclude={"token"})
    details = []
    if current is not None:
        have = current.model_dump(
            by_alias=True, include={"provider", "repository_name", "provider_parameters"}
        )
        details = [_field(k, have[k], v) for k, v in body.items() if have[k] != v]
        if not details:
            return [Change("repository", wanted.repository_name, desired.name, NO_CHANGE)], 0
    token = wanted.token
    if token is None:
        errors.append(
            f'project "{desired.name}" / repository "{wanted.repository_name}": a token is '
            "needed to associate it: set repository.token (e.g. ${GITHUB_TOKEN})"
        )
    replacing = current is not None

    def associate(ctx: Context) -> None:
        assert token is not None
        pid = ctx.project_ids[key]
        if replacing:
            ctx.client.repositories.delete(pid)
        ctx.client.repositories.associate(pid, body, token=token.get_secret_value())

    action = REPLACE if replacing else CREATE
    change = Change("repository", wanted.repository_name, desired.name, action, details)
    change.phase, change.run = _REPOSITORY, associate
    change.before, change.after = _read(current), _json(body)
    return [change], 0


def make_plan(
    spec: StateFile, state: State, *, prune: bool = False, write_secrets: bool = False
) -> Plan:
    """Compare the file with the server's state (read with :func:`state.read_state`).

    Secret values are write-only: a hosted secret or an inline sensitive property that exists
    is written again only with ``write_secrets`` (an inline private key is compared by its
    public-key fingerprint). Deletions are planned only with ``prune``.

    Returns a :class:`Plan`; its ``errors`` name what the file asks that the API cannot do, or
    agents it names that neither the file nor the server has.
    """
    errors: list[str] = []
    notes: list[str] = []
    changes: list[Change] = []
    unpruned = 0
    known_agents = set(state.agents) | {name_key(a.name) for a in spec.agents}
    for agent in spec.agents:
        changes.append(_agent_changes(agent, state.agents.get(name_key(agent.name)), errors))
    for project in spec.projects:
        for label, agent_name in [
            (f'secret reference "{r.name}"', r.agent_name)
            for r in project.secret_references
            if r.agent_name is not None
        ] + [(f'environment "{e.name}"', e.default_agent_name) for e in project.environments]:
            if name_key(agent_name) not in known_agents:
                errors.append(
                    f'project "{project.name}" / {label}: no agent named "{agent_name}"; '
                    "declare it under agents: or create it first"
                )
        actual = state.projects.get(name_key(project.name))
        changes.append(_project_change(project, actual, errors))
        for part in (
            _connection_changes(project, actual, prune, errors),
            _reference_changes(project, actual, state, prune, errors),
            _secret_changes(project, actual, prune, write_secrets, errors),
            _environment_changes(project, actual, prune, write_secrets, errors),
            _repository_change(project, actual, prune, errors),
            _member_changes(project, actual, prune),
            _access_changes(project, actual, prune, notes),
        ):
            changes += part[0]
            unpruned += part[1]
    changes += _allow_list_changes(spec, state)
    allowed = {name_key(e.project_name) for a in spec.agents for e in a.allow_list or []}
    for project in spec.projects:
        key = name_key(project.name)
        if key not in state.projects and key not in allowed:
            _provision_together(key, [c for c in changes if _of(c, project.name)])
    return Plan(changes=changes, errors=errors, unpruned=unpruned, notes=notes)


def _of(change: Change, project: str) -> bool:
    """True for the project ``project`` itself and the changes inside it."""
    own = change.name if change.kind == "project" else change.project
    return own == project


#: What a new project's ``POST /v1/provisioning`` (list form, docs/api.md) carries, by kind.
_PROVISIONED = {
    "connection": "connections",
    "secret reference": "secretReferences",
    "secret": "secrets",
    "environment": "environments",
}


def _provision_together(key: str, changes: list[Change]) -> None:
    """Have a new project's create (among ``changes``, the project's) make its connections,
    secret references, hosted secrets and environments too, in one ``POST /v1/provisioning``:
    one request and one transaction instead of one per object, and all of them or none. Its
    repository, members and access stay calls of their own (a repository's provider is asked
    outside any transaction; an invitation sends mail). A project an agent's allow-list names
    is left to the calls one by one: the allow-list must name the project before its
    environments are made. So is a project with more than
    :data:`~stead.projects.schemas.LIST_ITEMS` objects of one kind."""
    (project,) = [c for c in changes if c.kind == "project"]
    included = [c for c in changes if c.kind in _PROVISIONED and c.action == CREATE]
    if not included or any(
        sum(c.kind == kind for c in included) > LIST_ITEMS for kind in _PROVISIONED
    ):
        return  # nothing to send with it, or more than one request may carry
    make, parts = project.body, [(_PROVISIONED[c.kind], c.body) for c in included]
    assert make is not None and all(body is not None for _, body in parts)

    def provision(ctx: Context) -> None:
        assert make is not None
        sent: dict[str, Any] = {"project": make(ctx)}
        for member, body in parts:
            assert body is not None
            sent.setdefault(member, []).append(body(ctx))
        ctx.project_ids[key] = ctx.client.projects.provision(sent).project_id

    project.run, project.includes = provision, included
    for change in included:
        change.run = None


def context_for(client: Client, state: State) -> Context:
    """The starting :class:`Context` for applying a plan made from ``state``."""
    return Context(
        client=client,
        agent_ids={k: a.agent_id for k, a in state.agents.items()},
        project_ids={k: p.project.id for k, p in state.projects.items()},
    )


def render(plan: Plan) -> list[str]:
    """The plan as text lines: every change with its details, objects without change folded
    into one line per unchanged project, and a summary."""
    lines: list[str] = []
    by_project: dict[str | None, list[Change]] = {}
    for change in plan.changes:
        owner = change.name if change.kind == "project" else change.project
        by_project.setdefault(owner, []).append(change)
    marks = {CREATE: "+", UPDATE: "~", REPLACE: "-/+", DELETE: "-", NO_CHANGE: " "}
    for owner, changes in by_project.items():
        if owner is not None and all(c.action == NO_CHANGE for c in changes):
            lines.append(f'  project "{owner}": no change')
            continue
        for change in changes:
            if owner is None or change.action != NO_CHANGE or change.kind == "project":
                lines.append(f"{marks[change.action]:>3} {change.label}: {change.action}")
                lines += [f"        {d}" for d in change.details]
    counts = plan.counts()
    lines.append(
        f"Plan: {counts[CREATE]} to create, {counts[UPDATE]} to update, "
        f"{counts[REPLACE]} to replace, {counts[DELETE]} to delete, "
        f"{counts[NO_CHANGE]} unchanged."
    )
    lines += [f"Note: {note}" for note in plan.notes]
    if plan.unpruned:
        lines.append(
            f"{plan.unpruned} object(s) on the server are not in the file; --prune deletes them."
        )
    return lines


#: Version of the ``stead plan --json`` document (docs/declarative.md); a change that breaks
#: readers gets a new number.
PLAN_FORMAT = 1


def state_digest(state: State) -> str:
    """``sha256:<hex>`` of what a plan was made from: the agents and the listed projects as
    the server showed them (timestamps included, so any change made since, even one put
    back, gives another digest)."""
    document: dict[str, list[Any]] = {
        "agents": sorted(
            (a.model_dump(mode="json", by_alias=True) for a in state.agents.values()),
            key=lambda a: str(a["agentId"]),
        ),
        "projects": sorted(
            (
                {
                    "project": p.project.model_dump(mode="json", by_alias=True),
                    "connections": [_read(c) for c in p.connections],
                    "secretReferences": [_read(r) for r in p.secret_references],
                    "secrets": [s.model_dump(mode="json", by_alias=True) for s in p.secrets],
                    "environments": [
                        e.model_dump(mode="json", by_alias=True) for e in p.environments
                    ],
                    "hiddenEnvironments": p.hidden_environments,
                    "repository": _read(p.repository),
                }
                for p in state.projects.values()
            ),
            key=lambda p: str(p["project"]["id"]),
        ),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def change_document(change: Change) -> dict[str, Any]:
    """One change in the ``stead plan --json`` format (docs/declarative.md): ``address``,
    ``kind``, ``project``, ``name``, ``action``, ``details`` (the plan's lines), ``before``
    (the object as the server shows it, null when it does not exist) and ``after`` (as the file
    asks, null for a deletion); secret values are never in it (:data:`MASK`)."""
    return {
        "address": change.address,
        "kind": change.kind,
        "project": change.project,
        "name": change.name,
        "action": change.action,
        "details": change.details,
        "before": change.before,
        "after": change.after,
    }


def plan_document(plan: Plan, *, digest: str) -> dict[str, Any]:
    """The plan in the ``stead plan --json`` format (docs/declarative.md): ``formatVersion``,
    ``stateDigest`` (:func:`state_digest` of the state it was made from), ``changes`` (the
    changes to make, in display order, each as :func:`change_document`), ``errors``,
    ``summary`` (counts per action) and ``unpruned``."""
    counts = plan.counts()
    return {
        "formatVersion": PLAN_FORMAT,
        "stateDigest": digest,
        "changes": [change_document(c) for c in plan.changes if c.action != NO_CHANGE],
        "errors": plan.errors,
        "summary": {
            "create": counts[CREATE],
            "update": counts[UPDATE],
            "replace": counts[REPLACE],
            "delete": counts[DELETE],
            "unchanged": counts[NO_CHANGE],
        },
        "unpruned": plan.unpruned,
    }


def _member_changes(
    desired: ProjectSpec, actual: ProjectState | None, prune: bool
) -> tuple[list[Change], int]:
    """The project's people (when the file lists them): a user member's role is changed, an
    email that is neither a member nor invited is invited (the server mails the invitation),
    and a pending invitation with another role is sent again. Members and invitations the
    file does not list are removed only with ``prune``; API client members are not the
    file's."""
    if desired.members is None:
        return [], 0
    key = name_key(desired.name)
    users = (
        {name_key(m.name): m for m in actual.members if m.principal_type == "user"}
        if actual
        else {}
    )
    invited = {name_key(i.email): i for i in (actual.invitations or [])} if actual else {}
    changes = []
    for member in desired.members:
        email, role = member.email, member.project_role
        after = {"email": email, "projectRole": role}
        user = users.pop(name_key(email), None)
        invitation = invited.pop(name_key(email), None)
        have = user.project_role if user else invitation.project_role if invitation else None
        before = None if have is None else {"email": email, "projectRole": have}
        if have == role:
            changes.append(Change("member", email, desired.name, NO_CHANGE, before=before))
            continue
        details = [] if have is None else [_field("projectRole", have, role)]
        run: Callable[[Context], None]
        if user is not None:
            uid = user.principal_id

            def update(ctx: Context, uid: str = uid, role: str = role) -> None:
                ctx.client.members.update(ctx.project_ids[key], uid, {"projectRole": role})

            action, run = UPDATE, partial(update)
        else:
            old = invitation.id if invitation else None

            def invite(ctx: Context, old: str | None = old, body: dict[str, str] = after) -> None:
                pid = ctx.project_ids[key]
                if old is not None:
                    ctx.client.invitations.delete(pid, old)
                ctx.client.invitations.create(pid, body)

            action, run = (CREATE if invitation is None else REPLACE), partial(invite)
        changes.append(
            Change("member", email, desired.name, action, details, _MEMBERS, run, before, after)
        )
    if not prune:
        return changes, len(users) + len(invited)
    for user in users.values():

        def remove(ctx: Context, uid: str = user.principal_id) -> None:
            ctx.client.members.delete(ctx.project_ids[key], uid)

        before = {"email": user.name, "projectRole": user.project_role}
        changes.append(
            Change("member", user.name, desired.name, DELETE, [], _PRUNE_MEMBERS, remove, before)
        )
    for invitation in invited.values():

        def revoke(ctx: Context, iid: str = invitation.id) -> None:
            ctx.client.invitations.delete(ctx.project_ids[key], iid)

        before = {"email": invitation.email, "projectRole": invitation.project_role}
        changes.append(
            Change(
                "member", invitation.email, desired.name, DELETE, [], _PRUNE_MEMBERS, revoke, before
            )
        )
    return changes, 0


def _access_changes(
    desired: ProjectSpec, actual: ProjectState | None, prune: bool, notes: list[str]
) -> tuple[list[Change], int]:
    """Users' own access levels to the environments that list ``access``. A user is named by
    email and must be a member: for someone still invited the level is left for a later
    apply (a note says so). Levels the file does not list are removed only with ``prune``."""
    key = name_key(desired.name)
    user_ids = (
        {name_key(m.name): m.principal_id for m in actual.members if m.principal_type == "user"}
        if actual
        else {}
    )
    set_on = (
        {name_key(env): levels for env, levels in actual.environment_access.items()}
        if actual
        else {}
    )
    changes: list[Change] = []
    unpruned = 0
    for env in desired.environments:
        if env.access is None:
            continue
        have = {name_key(a.email): a for a in set_on.get(name_key(env.name), [])}
        for access in env.access:
            current = have.pop(name_key(access.email), None)
            level = access.access_level
            after = {"email": access.email, "accessLevel": level}
            before = (
                None
                if current is None
                else {"email": access.email, "accessLevel": current.access_level}
            )
            if current is not None and current.access_level == level:
                change = Change("environment access", access.email, desired.name, NO_CHANGE)
                change.environment, change.before = env.name, before
                changes.append(change)
                continue
            uid = current.user_id if current else user_ids.get(name_key(access.email))
            if uid is None:
                notes.append(
                    f'project "{desired.name}" / environment "{env.name}": access for '
                    f"{access.email} is set once they are a member (accept the invitation), "
                    "by applying again"
                )
                continue

            def grant(
                ctx: Context, env_name: str = env.name, uid: str = uid, level: str = level
            ) -> None:
                ctx.client.environment_access.set(
                    ctx.project_ids[key], env_name, uid, {"accessLevel": level}
                )

            details = (
                [] if current is None else [_field("accessLevel", current.access_level, level)]
            )
            action = CREATE if current is None else UPDATE
            change = Change(
                "environment access",
                access.email,
                desired.name,
                action,
                details,
                _ACCESS,
                grant,
                before,
                after,
            )
            change.environment = env.name
            changes.append(change)
        if not prune:
            unpruned += len(have)
            continue
        for left in have.values():

            def revoke(ctx: Context, env_name: str = env.name, uid: str = left.user_id) -> None:
                ctx.client.environment_access.delete(ctx.project_ids[key], env_name, uid)

            before = {"email": left.email, "accessLevel": left.access_level}
            change = Change(
                "environment access",
                left.email,
                desired.name,
                DELETE,
                [],
                _PRUNE_ACCESS,
                revoke,
                before,
            )
            change.environment = env.name
            changes.append(change)
    return changes, unpruned


def _allow_list_changes(spec: StateFile, state: State) -> list[Change]:
    """Agents' allow-lists (when the file gives them): the entries for the file's projects
    are made to match, entries for other projects are kept. Run after the projects exist and
    before environments are made (a restricted agent must allow an environment's project)."""
    listed = {name_key(p.name) for p in spec.projects}
    changes = []
    for agent in spec.agents:
        if agent.allow_list is None:
            continue
        current = state.allow_lists.get(name_key(agent.name))
        kept: dict[str, Any] = {}
        have: dict[str, list[str]] = {}
        for pid, entry in (current.projects if current else {}).items():
            name = state.project_name(pid)
            if name is not None and name_key(name) in listed:
                have[name] = list(entry.environments)
            else:
                kept[pid] = entry.model_dump(by_alias=True)
        want = {e.project_name: list(e.environments) for e in agent.allow_list}

        def comparable(entries: dict[str, list[str]]) -> dict[str, list[str]]:
            return {name_key(p): sorted(name_key(e) for e in envs) for p, envs in entries.items()}

        if comparable(have) == comparable(want):
            changes.append(Change("allow list", agent.name, None, NO_CHANGE))
            continue
        details = [
            f"{name}: {_show(have.get(name))} -> {_show(want.get(name))}"
            for name in sorted({*have, *want}, key=name_key)
            if comparable({name: have.get(name, [])}) != comparable({name: want.get(name, [])})
            or (name in have) != (name in want)
        ]

        def put(
            ctx: Context,
            agent_name: str = agent.name,
            want: dict[str, list[str]] = want,
            kept: dict[str, Any] = kept,
        ) -> None:
            projects = dict(kept)
            for project, environments in want.items():
                projects[ctx.project_ids[name_key(project)]] = {"environments": environments}
            ctx.client.agents.set_allow_list(ctx.agent_id(agent_name), {"projects": projects})

        action = CREATE if current is None else UPDATE
        changes.append(
            Change(
                "allow list",
                agent.name,
                None,
                action,
                details,
                _ALLOW_LISTS,
                put,
                None if current is None else {"projects": have},
                {"projects": want},
            )
        )
    return changes
