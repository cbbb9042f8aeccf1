"""``/console/projects/new``: the provisioning wizard. One form, the whole documented flow
(project, warehouse connection, environment, credential, optional repository), sent to the
provisioning service (:func:`stead.projects.provisioning.provision`) as one transaction: on
any error nothing is written and the form comes back with the messages at their fields.

The connection properties are generated from the warehouse's property spec
(:mod:`stead.warehouses`). Without JavaScript the warehouse is chosen with ``?warehouse=`` or
the form's "Show the fields" button (a POST that only re-renders, so no typed secret travels in
a URL); with JavaScript, htmx swaps the property fields when the warehouse changes. The fields
of the credential kinds and repository providers are in a fieldset per choice whose legend says
when it applies; ``static/choices.js`` shows (and sends) only the chosen one's. Secret inputs
are password inputs and are never filled in again when the form comes back.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Form, Request, Response
from pydantic import BaseModel, ConfigDict, SecretStr

from stead.agents import service as agents_service
from stead.audit import service as audit_service
from stead.console import web, wording
from stead.errors import AppError
from stead.identity.permissions import PermissionDenied
from stead.pipeline.transaction import SessionDep, make_router
from stead.projects import provisioning
from stead.projects.schemas import ProvisionRequest
from stead.repositories.provider import TOKEN_HEADER, read_token
from stead.warehouses import WarehouseSpec, spec_for

router = make_router(prefix="/projects")

Creator = Annotated[web.Console, Depends(web.require("project.create"))]

WAREHOUSES = [("REDSHIFT", "Amazon Redshift"), ("SNOWFLAKE", "Snowflake")]
DEPLOYMENTS = [("HYBRID", "Hybrid (your own agent)"), ("FULL_SAAS", "Full SaaS (hosted agent)")]
#: External stores a new project's secret reference can name (a reference into the hosted
#: store needs a hosted secret of the project, which a new project does not have).
STORES = [
    ("AWS", "AWS Secrets Manager"),
    ("Azure", "Azure Key Vault"),
    ("GCP", "GCP Secret Manager"),
    ("Vault", "HashiCorp Vault / OpenBao"),
]
PROVIDERS = [
    ("", "None"),
    ("git", "git (any remote by URL)"),
    ("github", "GitHub"),
    ("gitlab", "GitLab"),
]
#: ``providerParameters`` key of the owner field, per provider.
OWNER_PARAMETER = {"github": "ownerName", "gitlab": "namespace"}

LABELS = {
    "url": "Host",
    "port": "Port",
    "username": "User name",
    "defaultDatabase": "Default database",
    "defaultSchema": "Default schema",
    "useSsl": "Use SSL",
    "defaultStorageLocation": "Default storage location (S3 bucket)",
    "account": "Account",
    "passphrase": "Private key passphrase",
    "defaultRole": "Default role",
    "defaultWarehouse": "Default warehouse",
}

LABELS = {
    "name": "Project name",
    "description": "Description",
    "warehouse": "Warehouse",
    "deployment": "Deployment type",
    "connection_name": "Connection name",
    "environment_name": "Environment name",
    "agent": "Agent",
    "access_level": "Default access level",
    "credential": "Credential",
    "secret_value": "Secret value",
    "reference_store": "Store",
    "reference_secret_name": "Secret name in the store",
    "reference_secret_key": "Key in the secret",
    "repository_provider": "Provider",
    "repository_name": "Repository name",
    "repository_url": "Repository URL",
    "repository_owner": "Owner or namespace",
    "repository_token": "Access token",
}


class WizardForm(BaseModel):
    """The wizard's fields as the browser sends them (all text; blank = not given). The
    connection properties arrive as ``prop_<key>`` (kept in ``model_extra``)."""

    model_config = ConfigDict(extra="allow")

    name: str = ""
    description: str = ""
    warehouse: str = "REDSHIFT"
    deployment: str = "HYBRID"
    connection_name: str = ""
    environment_name: str = ""
    agent: str = ""
    access_level: str = "default"
    credential: str = "value"
    secret_value: SecretStr = SecretStr("")
    reference_store: str = "AWS"
    reference_secret_name: str = ""
    reference_secret_key: str = ""
    repository_provider: str = ""
    repository_name: str = ""
    repository_url: str = ""
    repository_owner: str = ""
    repository_token: SecretStr = SecretStr("")
    refresh: str = ""

    def prop(self, key: str) -> str:
        """The value typed for connection property ``key`` ("" when none)."""
        value = (self.model_extra or {}).get(f"prop_{key}", "")
        return value if isinstance(value, str) else ""


def _spec(warehouse: str) -> WarehouseSpec:
    return spec_for(warehouse if warehouse in dict(WAREHOUSES) else "REDSHIFT")


def credential_key(spec: WarehouseSpec) -> str:
    """The property the "Credential" fieldset fills: the warehouse's required sensitive one
    (Redshift ``password``, Snowflake ``privateKey``)."""
    return next(key for key in spec.required if key in spec.sensitive)


def property_fields(spec: WarehouseSpec) -> list[dict[str, Any]]:
    """The inputs of the warehouse's connection properties but the credential: name, label,
    required, input type, hint (:func:`stead.console.wording.property_hint`) and select options."""
    fields = []
    for key in spec.keys:
        if key == credential_key(spec):
            continue
        fields.append(
            {
                "key": key,
                "name": f"prop_{key}",
                "label": wording.property_label(key),
                "required": key in spec.required,
                "type": "password" if key in spec.sensitive else "text",
                "help": wording.property_hint(spec, key),
            }
        )
    return fields


_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def restore_pem(text: str) -> str:
    """A PEM block pasted into a password input, which drops line breaks (HTML's value
    sanitization of ``type=password``), with its lines restored: the base64 body wrapped at 64
    characters (RFC 7468 section 2). Text that is not such a one-line block is returned as it is
    (a PEM with ``Proc-Type`` headers cannot be restored and fails the key check)."""
    stripped = text.strip()
    match = _PEM.fullmatch(stripped)
    if match is None or "\n" in stripped or ":" in match.group(2):
        return text
    body = "".join(match.group(2).split())
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    label = match.group(1)
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


def secret_name_for(environment: str, key: str) -> str:
    """The name of the hosted secret or secret reference the wizard creates for the
    environment's credential: ``<environment>-<property>`` (``prod-password``,
    ``prod-privateKey``), other characters than a secret reference's name allows replaced by
    ``-``."""
    base = re.sub(r"[^A-Za-z0-9_()-]", "-", environment)[:100] or "environment"
    return f"{base}-{key}"


def _repository_name(form: WizardForm) -> str:
    if form.repository_name.strip() or form.repository_provider != "git":
        return form.repository_name.strip()
    path = urlsplit(form.repository_url.strip()).path or form.repository_url.strip()
    return path.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")


def request_body(form: WizardForm) -> dict[str, Any]:
    """The ``POST /v1/provisioning`` body (wire names) the form stands for."""
    spec = _spec(form.warehouse)
    key = credential_key(spec)
    environment = form.environment_name
    properties: dict[str, Any] = {}
    for field in property_fields(spec):
        value = form.prop(field["key"])
        if value.strip():
            properties[field["key"]] = {"value": value}
    secret_name = secret_name_for(environment, key)
    properties[key] = {"secretName": secret_name}
    body: dict[str, Any] = {
        "project": {
            "name": form.name,
            "warehouse": spec.name,
            "agentDeploymentType": form.deployment,
        },
        "connection": {"name": form.connection_name},
        "environment": {
            "name": environment,
            "defaultAgentId": form.agent,
            "defaultUserAccessLevel": form.access_level,
            "connectionProperties": properties,
        },
    }
    if form.description.strip():
        body["project"]["description"] = form.description
    if form.credential == "reference":
        reference: dict[str, Any] = {
            "name": secret_name,
            "agentType": form.reference_store,
            "secretName": form.reference_secret_name,
        }
        if form.reference_secret_key.strip():
            reference["secretKey"] = form.reference_secret_key
        body["secretReference"] = reference
    else:
        value = form.secret_value.get_secret_value()
        body["secret"] = {
            "name": secret_name,
            "type": "PRIVATE_KEY" if key == "privateKey" else "PASSWORD",
            "value": restore_pem(value) if key == "privateKey" else value,
        }
    if form.repository_provider:
        if form.repository_provider == "git":
            parameters = {"url": form.repository_url}
        else:
            parameters = {
                OWNER_PARAMETER.get(form.repository_provider, "ownerName"): form.repository_owner
            }
        body["repository"] = {
            "provider": form.repository_provider,
            "repositoryName": _repository_name(form),
            "providerParameters": parameters,
        }
    return body


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def field_for(path: str, form: WizardForm) -> str | None:
    """The form field a violation's path (``environment.connectionProperties.port.value``)
    belongs to, or None (the summary only)."""
    spec = _spec(form.warehouse)
    reference = form.credential == "reference"
    secret_field = "reference_secret_name" if reference else "secret_value"
    properties = "environment.connectionProperties"
    if _under(path, properties) and path != properties:
        key = re.split(r"[.\[]", path[len(properties) + 1 :], maxsplit=1)[0]
        if key == credential_key(spec):
            return secret_field
        return f"prop_{key}" if key in spec.keys else None
    owner = "repository_url" if form.repository_provider == "git" else "repository_owner"
    rules = [
        ("project.name", "name"),
        ("project.description", "description"),
        ("project.warehouse", "warehouse"),
        ("project.agentDeploymentType", "deployment"),
        ("project", "name"),
        ("connection", "connection_name"),
        ("secretReference.agentType", "reference_store"),
        ("secretReference.secretKey", "reference_secret_key"),
        ("secretReference", "reference_secret_name"),
        ("secret", "secret_value"),
        ("environment.name", "environment_name"),
        ("environment.defaultAgentId", "agent"),
        ("environment.defaultUserAccessLevel", "access_level"),
        ("environment", "environment_name"),
        ("repository.repositoryName", "repository_name"),
        ("repository.provider", "repository_provider"),
        ("repository", owner),
        (TOKEN_HEADER, "repository_token"),
    ]
    return next((name for prefix, name in rules if _under(path, prefix)), None)


def _labels(spec: WarehouseSpec) -> dict[str, str]:
    labels = dict(LABELS)
    labels.update({f["name"]: f["label"] for f in property_fields(spec)})
    return labels


def form_errors(exc: AppError, form: WizardForm) -> web.FormErrors:
    """The error's violations at the wizard's fields (:func:`field_for`); the summary names
    each field by its label."""
    labels = _labels(_spec(form.warehouse))
    return web.form_errors(exc, aliases=lambda path: field_for(path, form), labels=labels)


def _page(
    request: Request,
    db: Any,
    console: web.Console,
    form: WizardForm,
    *,
    errors: web.FormErrors | None = None,
    status: int = 200,
) -> Response:
    spec = _spec(form.warehouse)
    # the agents that fit the chosen deployment type first, so the first option is usable
    hosted_first = form.deployment == "FULL_SAAS"
    agents = sorted(
        agents_service.usable_by_new_project(db, actor=console.actor),
        key=lambda a: a.is_hosted != hosted_first,
    )
    return web.render(
        request,
        "wizard/new.html",
        {
            "form": form,
            "errors": errors,
            "spec": spec,
            "credential_key": credential_key(spec),
            "properties": property_fields(spec),
            "agents": [
                (a.id, f"{a.name} ({'hosted, Full SaaS' if a.is_hosted else 'Hybrid'})")
                for a in agents
            ],
            "warehouses": WAREHOUSES,
            "deployments": DEPLOYMENTS,
            "access_levels": wording.ACCESS_LEVELS,
            "stores": STORES,
            "providers": PROVIDERS,
        },
        status=status,
    )


@router.get("/new")
def new_project(
    request: Request, console: Creator, db: SessionDep, warehouse: str = "REDSHIFT"
) -> Response:
    """The empty wizard; ``?warehouse=SNOWFLAKE`` shows Snowflake's connection properties."""
    return _page(request, db, console, WizardForm(warehouse=warehouse.upper()))


@router.post("/new")
def create_project(
    request: Request,
    console: Creator,
    db: SessionDep,
    form: Annotated[WizardForm, Form()],
) -> Response:
    """Provision everything the form holds in one transaction, then 303 to the project's
    page; on any error, the form again (4xx) with the messages at their fields and nothing
    written. ``refresh`` (the no-JavaScript "Show the fields" button) only re-renders."""
    form.warehouse = _spec(form.warehouse.upper()).name
    if form.refresh:
        return _page(request, db, console, form)
    token = form.repository_token.get_secret_value()
    try:
        data = web.validated(ProvisionRequest, request_body(form))
        result = provisioning.provision(
            db,
            actor=console.actor,
            data=data,
            token=read_token(token) if token else None,
            settings=request.app.state.settings,
        )
    except AppError as exc:
        db.rollback()
        if isinstance(exc, PermissionDenied):  # audited as /v1 audits a refused change
            audit_service.record_refusal(
                db, actor=console.actor, exc=exc, target=f"POST {request.url.path}"
            )
        errors = form_errors(exc, form)
        return _page(request, db, console, form, errors=errors, status=exc.status)
    web.flash(db, console, f"Project {data.project.name} created.")
    return web.redirect(f"{web.PREFIX}/projects/{result.project_id}")
