"""An environment's secret-held properties: secret references checked against the project's
secrets, a private key checked with its passphrase, sensitive inline values stored as hosted
secrets the environment owns, and those released when it stops using them.

A sensitive property given inline (``{"value": ...}``) is stored as a hosted secret named after
the environment and the property, which the environment owns: the stored property becomes
``{"secretName": "<generated>", "set": true}`` (plus ``fingerprint`` for a private key). A new
inline value becomes a new version of the owned secret; an owned secret the environment stops
referring to is deleted unless another environment refers to it (docs/warehouses.md).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from stead.identity.actor import Actor
from stead.projects.models import Project
from stead.secrets import service as secrets_service
from stead.secrets import store
from stead.secrets.keys import UNKNOWN_PASSPHRASE, Passphrase, check_key_pair
from stead.secrets.models import HostedSecret
from stead.secrets.service import find_reference
from stead.warehouses import StoredValue, spec_for
from stead.wire import name_key

OVERRIDE = "connectionOverrides[0]"
PROPERTIES = f"{OVERRIDE}.connectionProperties"


def _same_reference(previous: StoredValue | None, value: StoredValue) -> bool:
    return (
        previous is not None
        and "secretName" in previous
        and name_key(previous["secretName"]) == name_key(value["secretName"])
        and previous.get("secretKey") == value.get("secretKey")
    )


def _json_item(text: str, key: str) -> str | None:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    item = parsed.get(key) if isinstance(parsed, dict) else None
    return item if isinstance(item, str) else None


def reference_entry(
    session: Session,
    *,
    project: Project,
    key: str,
    value: StoredValue,
    previous: StoredValue | None,
    violations: list[str],
) -> StoredValue:
    """The stored form of a ``secretName`` property: the stored entry itself when it names the
    same secret (so sending back what GET returned changes nothing), else the hosted secret's or
    secret reference's own spelling of the name."""
    if _same_reference(previous, value):
        assert previous is not None
        return previous
    where = f"{PROPERTIES}.{key}"
    secret_key = value.get("secretKey")
    hosted = store.find(session, project_id=project.id, name=value["secretName"])
    if hosted is not None:
        if hosted.type == "JSON" and secret_key is None:
            violations.append(f"{where}.secretKey: required: {hosted.name!r} is a JSON secret")
        elif hosted.type != "JSON" and secret_key is not None:
            violations.append(
                f"{where}.secretKey: only a JSON secret has keys; "
                f"{hosted.name!r} is a {hosted.type} secret"
            )
        elif secret_key is not None and (
            _json_item(store.decrypt(session, secret=hosted), secret_key) is None
        ):
            violations.append(
                f"{where}.secretKey: the JSON secret {hosted.name!r} holds no text under this key"
            )
        return {"secretName": hosted.name, "secretKey": secret_key}
    reference = find_reference(session, project_id=project.id, name=value["secretName"])
    if reference is None:
        violations.append(
            f"{where}.secretName: no secret reference or hosted secret of that name in this project"
        )
        return value
    return {"secretName": reference.name, "secretKey": secret_key}


def _known_text(session: Session, *, project: Project, value: StoredValue) -> str | None:
    """The text of a property when Stead holds it (inline, or a hosted secret); None when it
    lives in an external store."""
    if "value" in value:
        return str(value["value"])
    hosted = store.find(session, project_id=project.id, name=value["secretName"])
    if hosted is None:
        return None
    text = store.decrypt(session, secret=hosted)
    secret_key = value.get("secretKey")
    return text if secret_key is None else _json_item(text, secret_key)


def check_private_key(
    session: Session, *, project: Project, properties: dict[str, StoredValue], violations: list[str]
) -> None:
    """Check ``privateKey`` with its ``passphrase`` (docs/warehouses.md) as far as their
    values are at hand; an inline key is replaced by its normalised text and carries its fingerprint
    (``{"value": pem, "fingerprint": fp}``) until :func:`store_inline` stores it."""
    key_value = properties.get("privateKey")
    text = None if key_value is None else _known_text(session, project=project, value=key_value)
    if key_value is None or text is None:
        return
    key_field = f"{PROPERTIES}.privateKey." + ("value" if "value" in key_value else "secretName")
    phrase_field = f"{PROPERTIES}.passphrase"
    passphrase: Passphrase = None
    phrase_value = properties.get("passphrase")
    if phrase_value is not None:
        phrase_text = _known_text(session, project=project, value=phrase_value)
        passphrase = UNKNOWN_PASSPHRASE if phrase_text is None else phrase_text
        phrase_field += ".value" if "value" in phrase_value else ".secretName"
    checked = check_key_pair(text, passphrase, key_field=key_field, phrase_field=phrase_field)
    if isinstance(checked, str):
        violations.append(checked)
        return
    if "value" in key_value:
        properties["privateKey"] = {"value": checked.pem, "fingerprint": checked.fingerprint}


def owned_secret(
    session: Session, *, project: Project, entry: StoredValue | None
) -> HostedSecret | None:
    """The hosted secret an environment's stored entry owns (``"set": true``), or None."""
    if entry is None or not entry.get("set"):
        return None
    return store.find(session, project_id=project.id, name=entry["secretName"])


def store_inline(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    environment_name: str,
    properties: dict[str, StoredValue],
    previous: dict[str, StoredValue],
) -> None:
    """Store each sensitive inline value as a hosted secret the environment owns (a new version
    of the one it already owns for that property, else a new secret named
    ``<environment>-<property>``) and put ``{"secretName", "set": true[, "fingerprint"]}`` in
    its place."""
    spec = spec_for(project.warehouse)
    for key, value in properties.items():
        if key not in spec.sensitive or "value" not in value:
            continue
        secret_type = "PRIVATE_KEY" if key == "privateKey" else "PASSWORD"
        details: dict[str, Any] = {"environment": environment_name, "property": key}
        secret = owned_secret(session, project=project, entry=previous.get(key))
        if secret is not None:
            secrets_service.replace_value(
                session,
                actor=actor,
                secret=secret,
                secret_type=secret_type,
                value=value["value"],
                details=details,
            )
        else:
            secret = secrets_service.add_hosted(
                session,
                actor=actor,
                project=project,
                name=secrets_service.free_name(
                    session, project_id=project.id, prefix=environment_name, suffix=f"-{key}"
                ),
                secret_type=secret_type,
                value=value["value"],
                details=details,
            )
        entry: StoredValue = {"secretName": secret.name, "set": True}
        if value.get("fingerprint"):
            entry["fingerprint"] = value["fingerprint"]
        properties[key] = entry


def release_owned(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    environment_id: int,
    before: dict[str, StoredValue],
    after: dict[str, StoredValue],
) -> None:
    """Delete the hosted secrets the environment owned in ``before`` and no longer refers to in
    ``after``, unless another environment or a hosted-store secret reference refers to them."""
    still = {name_key(v["secretName"]) for v in after.values() if "secretName" in v}
    for entry in before.values():
        secret = owned_secret(session, project=project, entry=entry)
        if secret is None or secret.name_key in still:
            continue
        other = secrets_service.referring_environment(
            session, project_id=project.id, name=secret.name, ignore=environment_id
        ) or secrets_service.referring_reference(session, project_id=project.id, name=secret.name)
        if other is None:
            secrets_service.remove_hosted(session, actor=actor, secret=secret)
