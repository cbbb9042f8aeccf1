"""Provisioning in one request (docs/api.md, Provisioning): the documented flow — project,
default warehouse connection, hosted secret or secret reference, environment, repository — or a
whole project given as lists of the single endpoints' bodies, made by the services of each step,
in the caller's one transaction.

Nothing here commits. Every step only adds rows to the session, so when a step fails the caller
rolls back and nothing of the earlier steps is left: no project, no secret, no audit event. The
repository step comes last and asks its provider inside that transaction (the services' inline
``Outside``): the provider's answer decides whether anything is kept. Its violations, like every
step's, are moved under the request's own field paths (``environment.connectionProperties.
password``), so a form can show each one at its field.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr
from sqlalchemy.orm import Session

from stead.connections import service as connections_service
from stead.connections.schemas import ConnectionCreate
from stead.environments import service as environments_service
from stead.environments.credentials import OVERRIDE, PROPERTIES
from stead.environments.schemas import ConnectionOverride, EnvironmentCreate
from stead.errors import AppError, BadRequest
from stead.identity.actor import Actor
from stead.projects import service as projects_service
from stead.projects.models import Project
from stead.projects.schemas import ProvisionRequest, ProvisionResult, ProvisionSecretReference
from stead.repositories import service as repositories_service
from stead.repositories.provider import TOKEN_HEADER
from stead.repositories.schemas import RepositoryRead
from stead.secrets import service as secrets_service
from stead.secrets.schemas import SecretReferenceCreate
from stead.settings import Settings
from stead.warehouses import spec_for

PROJECT_ID_PLACEHOLDER = "{projectId}"
#: The secret reference's name is a path parameter of its single endpoint, a member here.
_REFERENCE_RENAMES = {"secretReferenceName": "name"}
"""Stands for the new project's id in ``secretReference.secretName``, as in the files of ``stead
apply`` (docs/decisions.md, "Secret scopes")."""


def _moved(violation: str, prefix: str, renames: dict[str, str]) -> str:
    """``violation`` (``"<path>: <message>"``) with its path put under ``prefix``; a path that
    starts with a key of ``renames`` has that start replaced first. The token header keeps its
    name: it is not a field of the body."""
    if violation.startswith(f"{TOKEN_HEADER}:"):
        return violation
    for old, new in renames.items():
        if violation.startswith(old):
            violation = new + violation[len(old) :]
            break
    return f"{prefix}.{violation}"


@contextmanager
def _step(prefix: str, renames: dict[str, str] | None = None) -> Iterator[None]:
    """Run one step; an :class:`AppError` it raises leaves with its violations under ``prefix``
    (or, when it named no field, one violation on ``prefix`` carrying its detail)."""
    try:
        yield
    except AppError as exc:
        exc.violations = [_moved(v, prefix, renames or {}) for v in exc.violations] or [
            f"{prefix}: {exc.detail}"
        ]
        raise


def provision(
    session: Session,
    *,
    actor: Actor,
    data: ProvisionRequest,
    token: SecretStr | None,
    settings: Settings,
) -> ProvisionResult:
    """Create the project of ``data`` with its connection, secret, environment and repository
    (the flow form), or with its lists of connections, secret references, hosted secrets and
    environments (the list form) and repository (docs/api.md, Provisioning), each through its
    own service, audited as each service audits;
    ``actor`` needs ``project.create`` (it then owns the project, as after ``POST /v1/projects``).
    ``token`` is the repository provider's access token, used for the check and never stored.

    Nothing is committed: the caller commits on success and rolls back on any error.

    Raises:
        BadRequest: a violation under the request's field path (``project.name``,
            ``environment.connectionProperties.password``, ``environments[1].name``,
            ``repository.providerParameters.url``,
            ``Git-Provider-Access-Token`` when a repository is given without it ...).
        Conflict, Forbidden, NotFound, UpstreamError, UpstreamUnavailable, UpstreamTimeout: as
            the step's service raises them, with violations under the step's field path.
    """
    if data.repository is not None and token is None:
        raise BadRequest(
            f"The {TOKEN_HEADER} header is required with a repository",
            violations=[f"{TOKEN_HEADER}: required with a repository"],
        )
    with _step("project"):
        project = projects_service.create(session, actor=actor, data=data.project)
    names = None
    if data.listed:
        _lists(session, actor=actor, project=project, data=data)
    else:
        names = _flow(session, actor=actor, project=project, data=data)
    repository = None
    if data.repository is not None:
        assert token is not None
        with _step("repository"):
            repository = repositories_service.associate(
                session,
                actor=actor,
                project=project,
                data=data.repository,
                token=token,
                settings=settings,
            )
    return ProvisionResult(
        project_id=project.id,
        connection_name=names[0] if names else None,
        secret_name=names[1] if names else None,
        environment_name=names[2] if names else None,
        repository=None if repository is None else RepositoryRead.model_validate(repository),
    )


def _reference(
    session: Session, *, actor: Actor, project: Project, data: ProvisionSecretReference
) -> str:
    """Create the secret reference ``data`` (``{projectId}`` in its ``secretName`` replaced by
    the project's id); return its name."""
    body = data.model_dump(include=set(SecretReferenceCreate.model_fields))
    body["secret_name"] = data.secret_name.replace(PROJECT_ID_PLACEHOLDER, project.id)
    return secrets_service.create(
        session,
        actor=actor,
        project=project,
        name=data.name,
        data=SecretReferenceCreate(**body),
    ).name


def _flow(
    session: Session, *, actor: Actor, project: Project, data: ProvisionRequest
) -> tuple[str, str | None, str]:
    """The flow form's steps: the connection, the secret or secret reference, the environment
    on that connection. Returns their names ``(connection, secret or None, environment)``."""
    assert data.connection is not None and data.environment is not None
    with _step("connection"):
        connection = connections_service.create(
            session,
            actor=actor,
            project=project,
            data=ConnectionCreate(
                name=data.connection.name,
                platform_connection_type="DWH",
                auth_provider=project.warehouse,
                auth_type=spec_for(project.warehouse).auth_type,
            ),
        )
    secret_name = None
    if data.secret is not None:
        with _step("secret"):
            secret_name = secrets_service.create_hosted(
                session, actor=actor, project=project, data=data.secret
            ).name
    if data.secret_reference is not None:
        with _step("secretReference", _REFERENCE_RENAMES):
            secret_name = _reference(
                session, actor=actor, project=project, data=data.secret_reference
            )
    wanted = data.environment
    with _step("environment", {PROPERTIES: "connectionProperties", OVERRIDE: "connection"}):
        environment = environments_service.create(
            session,
            actor=actor,
            project=project,
            data=EnvironmentCreate(
                name=wanted.name,
                display_name=wanted.display_name,
                description=wanted.description,
                default_agent_id=wanted.default_agent_id,
                default_user_access_level=wanted.default_user_access_level,
                default_connections={"DWH": {project.warehouse.lower(): connection.name}},
                connection_overrides=[
                    ConnectionOverride(
                        connection_name=connection.name,
                        connection_properties=wanted.connection_properties,
                    )
                ],
            ),
        )
    return connection.name, secret_name, environment.name


def _lists(session: Session, *, actor: Actor, project: Project, data: ProvisionRequest) -> None:
    """The list form's items, each through its single endpoint's service, in the order the
    later ones need the earlier: connections, secret references, hosted secrets,
    environments. A violation is put under the item's path (``environments[1].
    connectionOverrides[0].connectionProperties.port.value``).

    The environments made are kept here until the last is made: the session holds unchanged
    rows only weakly, and so each environment's agent stays in it for the next one's check
    instead of being read again."""
    made: list[object] = []
    for i, connection in enumerate(data.connections):
        with _step(f"connections[{i}]"):
            connections_service.create(session, actor=actor, project=project, data=connection)
    for i, reference in enumerate(data.secret_references):
        with _step(f"secretReferences[{i}]", _REFERENCE_RENAMES):
            _reference(session, actor=actor, project=project, data=reference)
    for i, secret in enumerate(data.secrets):
        with _step(f"secrets[{i}]"):
            secrets_service.create_hosted(session, actor=actor, project=project, data=secret)
    for i, environment in enumerate(data.environments):
        with _step(f"environments[{i}]"):
            made.append(
                environments_service.create(session, actor=actor, project=project, data=environment)
            )
