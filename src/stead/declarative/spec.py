"""The declarative file: one or many projects, as YAML, validated by pydantic models.

    version: 1
    agents:                                  # optional: agents to create when missing
      - name: eu-west-1 fargate agent
        agentType: data_productivity_cloud
        cloudProvider: aws
        deployment: fargate
    projects:
      - name: finance-analytics
        warehouse: REDSHIFT
        agentDeploymentType: HYBRID
        connections:
          - {name: finance-dwh-prod, platformConnectionType: DWH,
             authProvider: REDSHIFT, authType: PASSWORD}
        secretReferences:
          - {name: finance-prod-redshift, agentName: eu-west-1 fargate agent, agentType: AWS,
             secretName: "stead/{projectId}/prod/finance/redshift", secretKey: password}
        environments:
          - name: prod
            defaultAgentName: eu-west-1 fargate agent
            defaultUserAccessLevel: readOnly
            defaultConnections: {DWH: {redshift: finance-dwh-prod}}
            connectionOverrides:
              - connectionName: finance-dwh-prod
                connectionProperties:
                  url: {value: examplecluster.abc123.eu-west-1.redshift.amazonaws.com}
                  port: {value: "5439"}
                  username: {value: ${REDSHIFT_USER}}
                  password: {secretName: finance-prod-redshift, secretKey: password}
                  defaultDatabase: {value: finance}
        repository:
          provider: github
          repositoryName: finance-pipelines
          providerParameters: {ownerName: acme-data}
          token: ${GITHUB_TOKEN}

Field names and values are the API's (docs/api.md), except that agents are named,
never given by id (``defaultAgentName``, ``agentName``). A project entry is complete: what it
leaves out is absent (``--prune`` deletes it). ``${NAME}`` in a string is replaced by a variable
the operator gives (:func:`file_variables`: ``--var NAME``, or ``STEAD_VAR_NAME`` in the
environment); any other name is an error, whatever the environment holds. ``$$`` stands for
``$``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, StringConstraints, model_validator
from pydantic import ValidationError as PydanticValidationError

from stead.agents.schemas import AgentCreate
from stead.connections.schemas import ConnectionCreate
from stead.environments.schemas import (
    AccessLevel,
    ConnectionOverride,
    DefaultConnections,
    DisplayName,
)
from stead.identity.schemas import AccessLevelIn, Email, ProjectRoleIn
from stead.repositories.schemas import Provider
from stead.secrets.schemas import (
    SECRET_REFERENCE_NAME,
    SecretReferenceType,
    SecretStore,
    SecretType,
)
from stead.wire import (
    AgentDeploymentType,
    Description,
    Name,
    Text,
    Warehouse,
    WireModel,
    name_key,
)


class SpecError(ValueError):
    """The file cannot be read, interpolated or validated; ``problems`` are
    ``"<file>: <path>: <message>"`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


#: Replaced by the project's id in a secret reference's ``secretName`` when it is applied, so
#: a file can name secrets inside the project's default scope before the project exists
#: (docs/decisions.md, "Secret scopes").
PROJECT_ID = "{projectId}"


class SecretReferenceSpec(WireModel):
    """A secret reference (docs/api.md, Secrets) whose agent, if it names one, is given by name;
    ``{projectId}`` in ``secretName`` stands for the project's id (:data:`PROJECT_ID`)."""

    name: Annotated[str, StringConstraints(pattern=SECRET_REFERENCE_NAME)]
    agent_name: Name | None = None
    agent_type: SecretStore
    secret_reference_type: SecretReferenceType = "PASSWORD"
    secret_name: Text = Field(min_length=1, max_length=1024)
    secret_key: Text | None = Field(default=None, min_length=1, max_length=255)
    description: Description | None = None


class HostedSecretSpec(WireModel):
    """A hosted secret (docs/api.md, Secrets). Its ``value`` (usually ``${VAR}``) is write-only:
    it is needed to create the secret, and written again only by ``apply --write-secrets``."""

    name: Name
    type: SecretType
    value: SecretStr | None = None


class MemberSpec(WireModel):
    """A person in the project (docs/api.md, People): a user member, or someone invited (an
    invitation is sent to an email that is not yet a member)."""

    email: Email
    project_role: ProjectRoleIn


class AccessSpec(WireModel):
    """A user's own access level to an environment (docs/permissions.md); the user is a
    member of the project (or invited: it is set once they accept)."""

    email: Email
    access_level: AccessLevelIn


class AllowedProjectSpec(WireModel):
    """One project of an agent's allow-list, by name: the environments the agent may serve
    there (an empty list: all of them)."""

    project_name: Name
    environments: list[Name] = Field(default_factory=list)


class AgentSpec(AgentCreate):
    """An agent (docs/api.md, Agents), created when missing. ``allowList`` (when given) is
    its allow-list's entries for the projects of the file; entries for other projects are
    kept as they are."""

    allow_list: list[AllowedProjectSpec] | None = None


class EnvironmentSpec(WireModel):
    """An environment (docs/api.md, Environments) whose default agent is given by name.
    ``access`` (when given) is every user's own access level to it: levels set on the server
    for users it does not list are removed by ``--prune``."""

    name: Name
    display_name: DisplayName | None = None
    description: Description | None = None
    default_agent_name: Name
    default_user_access_level: AccessLevel
    default_connections: DefaultConnections
    connection_overrides: list[ConnectionOverride] = Field(min_length=1, max_length=1)
    access: list[AccessSpec] | None = None


class RepositorySpec(WireModel):
    """The project's repository (docs/api.md, Repository). ``token`` (usually
    ``${GITHUB_TOKEN}``) is needed only to associate it; it is sent once and never compared or
    stored."""

    provider: Provider
    repository_name: Text = Field(min_length=1, max_length=255)
    provider_parameters: dict[str, Any]
    token: SecretStr | None = None


class ProjectSpec(WireModel):
    """A project and everything in it (docs/api.md)."""

    name: Name
    description: Description | None = None
    warehouse: Warehouse
    agent_deployment_type: AgentDeploymentType
    connections: list[ConnectionCreate] = Field(default_factory=list)
    secret_references: list[SecretReferenceSpec] = Field(default_factory=list)
    secrets: list[HostedSecretSpec] = Field(default_factory=list)
    environments: list[EnvironmentSpec] = Field(default_factory=list)
    repository: RepositorySpec | None = None
    #: The project's people when given (None: not managed by the file).
    members: list[MemberSpec] | None = None

    @model_validator(mode="after")
    def _names_resolve(self) -> ProjectSpec:
        problems = []
        for kind, items in (
            ("connections", self.connections),
            ("secretReferences", self.secret_references),
            ("secrets", self.secrets),
            ("environments", self.environments),
        ):
            problems += _duplicates(kind, [item.name for item in items])
        problems += _duplicates("members", [m.email for m in self.members or []], "email")
        for i, env in enumerate(self.environments):
            emails = [a.email for a in env.access or []]
            problems += _duplicates(f"environments[{i}].access", emails, "email")
        connections = {name_key(c.name) for c in self.connections}
        references = {name_key(r.name) for r in self.secret_references}
        hosted = {name_key(h.name) for h in self.secrets}
        problems += [
            f"secrets[{i}].name: {h.name!r} is also a secret reference (they share one namespace)"
            for i, h in enumerate(self.secrets)
            if name_key(h.name) in references
        ]
        for i, env in enumerate(self.environments):
            where = f"environments[{i}]"
            for kind, entries in env.default_connections.items():
                problems += [
                    f"{where}.defaultConnections.{kind}.{provider}: no connection {name!r} "
                    "in this project"
                    for provider, name in entries.items()
                    if name_key(name) not in connections
                ]
            for override in env.connection_overrides:
                for key, value in override.connection_properties.items():
                    # "set": true marks a secret the environment owns (an inline value stored)
                    if (
                        value.secret_name is not None
                        and not value.is_set
                        and name_key(value.secret_name) not in references | hosted
                    ):
                        problems.append(
                            f"{where}.connectionOverrides[0].connectionProperties.{key}."
                            f"secretName: no secret reference or secret {value.secret_name!r} "
                            "in this project"
                        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class StateFile(WireModel):
    """The whole file: the agents it needs and the projects it describes."""

    version: Literal[1] = 1
    agents: list[AgentSpec] = Field(default_factory=list)
    projects: list[ProjectSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> StateFile:
        problems = _duplicates("agents", [a.name for a in self.agents])
        problems += _duplicates("projects", [p.name for p in self.projects])
        listed = {name_key(p.name) for p in self.projects}
        for i, agent in enumerate(self.agents):
            problems += [
                f"agents[{i}].allowList[{j}].projectName: no project {entry.project_name!r} "
                "in the file"
                for j, entry in enumerate(agent.allow_list or [])
                if name_key(entry.project_name) not in listed
            ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _duplicates(kind: str, names: list[str], field: str = "name") -> list[str]:
    seen: dict[str, int] = {}
    problems = []
    for i, name in enumerate(names):
        key = name_key(name)
        if key in seen:
            problems.append(f"{kind}[{i}].{field}: {name!r} is already {kind}[{seen[key]}]")
        seen.setdefault(key, i)
    return problems


#: PyYAML's safe loader, in C (libyaml) when PyYAML was built with it: the same documents,
#: about four times faster on a file of a thousand projects.
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: ``STEAD_VAR_NAME`` in the environment gives the file's ``${NAME}`` (as ``TF_VAR_name`` gives a
#: Terraform variable).
VAR_PREFIX = "STEAD_VAR_"
#: Variables of Stead's own configuration and credentials (``STEAD_CLIENT_SECRET``,
#: ``STEAD_SIGNING_KEY`` ...): never given to a file.
OWN_PREFIX = "STEAD_"

_VARIABLE = re.compile(r"\$\$|\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def file_variables(environ: Mapping[str, str], given: Iterable[str]) -> dict[str, str]:
    """The variables a declarative file may use, and nothing else of ``environ``.

    Each ``STEAD_VAR_NAME`` of ``environ`` is ``NAME``; each entry of ``given`` (the ``--var``
    options) is ``NAME`` (its value from ``environ``) or ``NAME=VALUE``. A file from a data
    team's repository thereby reads only what the operator hands it, never the operator's
    credentials.

    Raises:
        SpecError: a given name that is not a variable name, that is one of Stead's own
            (``STEAD_*``), or that is not set in ``environ``.
    """
    variables = {
        name.removeprefix(VAR_PREFIX): value
        for name, value in environ.items()
        if name.startswith(VAR_PREFIX) and len(name) > len(VAR_PREFIX)
    }
    problems = []
    for entry in given:
        name, sep, value = entry.partition("=")
        if not _VARIABLE_NAME.fullmatch(name):
            problems.append(f"--var {name}: not a variable name")
        elif name.upper().startswith(OWN_PREFIX):
            problems.append(
                f"--var {name}: Stead's own settings and credentials are never given to a file"
            )
        elif sep:
            variables[name] = value
        elif name in environ:
            variables[name] = environ[name]
        else:
            problems.append(f"--var {name}: environment variable {name} is not set")
    if problems:
        raise SpecError(problems)
    return variables


def interpolate(value: Any, env: Mapping[str, str], *, path: str = "") -> Any:
    """Replace ``${NAME}`` in every string of ``value`` by ``env[NAME]``; ``$$`` becomes ``$``.

    ``env`` holds the variables the file may use (:func:`file_variables`), not the process's
    environment.

    Raises:
        SpecError: a variable not in ``env`` or a malformed ``${...}``, with the path of the string.
    """
    if isinstance(value, dict):
        problems: list[str] = []
        out = {}
        for key, item in value.items():
            try:
                out[key] = interpolate(item, env, path=f"{path}.{key}" if path else str(key))
            except SpecError as exc:
                problems += exc.problems
        if problems:
            raise SpecError(problems)
        return out
    if isinstance(value, list):
        problems = []
        items = []
        for i, item in enumerate(value):
            try:
                items.append(interpolate(item, env, path=f"{path}[{i}]"))
            except SpecError as exc:
                problems += exc.problems
        if problems:
            raise SpecError(problems)
        return items
    if not isinstance(value, str):
        return value
    problems = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        if not _VARIABLE_NAME.fullmatch(name):
            problems.append(f"{path}: ${{{name}}} is not a variable name")
            return ""
        if name not in env:
            problems.append(
                f"{path}: variable {name} is not given: pass --var {name}, "
                f"or set {VAR_PREFIX}{name}"
            )
            return ""
        return env[name]

    result = _VARIABLE.sub(substitute, value)
    if problems:
        raise SpecError(problems)
    return result


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def parse(document: Any, env: Mapping[str, str], *, source: str = "<file>") -> StateFile:
    """Validate one parsed YAML document (after interpolation).

    Raises:
        SpecError: one problem per bad field, as ``"<source>: <path>: <message>"``.
    """
    if document is None:
        document = {}
    try:
        expanded = interpolate(document, env)
    except SpecError as exc:
        raise SpecError([f"{source}: {p}" for p in exc.problems]) from None
    try:
        return StateFile.model_validate(expanded)
    except PydanticValidationError as exc:
        problems = []
        for err in exc.errors():
            message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                message = "unknown field"
            where = _location(tuple(err.get("loc", ())))
            problems.append(f"{source}: {where}: {message}" if where else f"{source}: {message}")
        raise SpecError(problems) from None


def load(paths: Iterable[Path], env: Mapping[str, str]) -> StateFile:
    """Read, interpolate and validate one or more files, merged into one: their agents and
    projects concatenated (an agent declared alike in several files counts once; any other name
    given twice is an error).

    Raises:
        SpecError: unreadable YAML, an unset variable, or invalid content.
    """
    agents: list[AgentSpec] = []
    projects: list[ProjectSpec] = []
    problems: list[str] = []
    for path in paths:
        try:
            document = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        try:
            spec = parse(document, env, source=str(path))
        except SpecError as exc:
            problems += exc.problems
            continue
        agents += [a for a in spec.agents if a not in agents]
        projects += spec.projects
    if problems:
        raise SpecError(problems)
    try:
        return StateFile(agents=agents, projects=projects)
    except PydanticValidationError as exc:
        messages = [str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors()]
        raise SpecError(messages) from None


def _any_case(schema: Any) -> Any:
    """Widen every string enum (and string ``const``) to its lower- and upper-case spellings
    too: the API takes enums in any case (docs/api.md), and the DPC examples write
    ``dwh``, ``redshift``, ``password``."""
    if isinstance(schema, list):
        return [_any_case(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _any_case(value) for key, value in schema.items()}
    values = out.pop("enum", None)
    if values is None and isinstance(out.get("const"), str):
        values = [out.pop("const")]
    if values is not None:
        if all(isinstance(v, str) for v in values):
            values = list(dict.fromkeys([*values, *(v.lower() for v in values)]))
            values = list(dict.fromkeys([*values, *(v.upper() for v in values)]))
        out["enum"] = values
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the file, for editors (``stead schema``)."""
    schema = _any_case(StateFile.model_json_schema(by_alias=True))
    return {
        **schema,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Stead declarative file",
    }


def schema_text() -> str:
    """:func:`json_schema` as indented JSON."""
    return json.dumps(json_schema(), indent=2)
