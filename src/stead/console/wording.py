"""What the console calls the API's fields: the words a person sees for a wire name or a
violation's path (``environment.connectionProperties.port.value`` -> "Port"), the labels and
hints of the warehouses' connection properties, and violation messages with the wire names in
them replaced by those words. :func:`stead.console.web.form_errors` uses it for every form's
messages; ``/v1`` keeps the API's own wording (docs/console.md, "Messages").
"""

from __future__ import annotations

import re

from stead.warehouses import WarehouseSpec

#: Labels of the warehouses' connection properties (docs/warehouses.md names them).
PROPERTY_LABELS = {
    "url": "Host",
    "port": "Port",
    "username": "User name",
    "password": "Password",
    "defaultDatabase": "Default database",
    "defaultSchema": "Default schema",
    "useSsl": "Use SSL",
    "defaultStorageLocation": "Default storage location (S3 bucket)",
    "account": "Account",
    "privateKey": "Private key",
    "passphrase": "Private key passphrase",
    "defaultRole": "Default role",
    "defaultWarehouse": "Default warehouse",
}

#: Hints under the connection properties' inputs, in a form's words (the property specs'
#: formats describe the JSON values of ``/v1``). A property not here gets its spec's format.
PROPERTY_HINTS = {
    "url": "The cluster's host name, without scheme, port or path.",
    "port": "A number from 1 to 65535; Redshift listens on 5439 unless set otherwise.",
    "useSsl": "Whether to connect with TLS (SSL).",
    "defaultSchema": "Left blank: public.",
    "defaultStorageLocation": "An S3 bucket name, without s3:// or a path.",
    "account": (
        "The account identifier, e.g. myorg-myaccount, or a locator such as xy12345.eu-west-1; "
        "the address https://….snowflakecomputing.com or the Snowsight address is taken too."
    ),
    "privateKey": (
        "An RSA private key of at least 2048 bits in PEM: PKCS#8, encrypted PKCS#8 or PKCS#1."
    ),
    "passphrase": "Needed only when the private key is encrypted.",
}

#: An environment's access levels (docs/permissions.md, with the names DPC's console gives
#: them in brackets): wire value -> what a person reads.
ACCESS_LEVELS = [
    ("default", "Default (the project role decides)"),
    ("admin", "Admin (Owner)"),
    ("runner", "Runner (Operator)"),
    ("readOnly", "Read only (Viewer)"),
    ("noAccess", "No access"),
]

#: Words for the API's field names, by whole path first, then by the path's last name.
FIELD_LABELS = {
    "project.name": "Project name",
    "connection.name": "Connection name",
    "environment.name": "Environment name",
    "connectionProperties": "Connection properties",
    "connectionOverrides": "Connection properties",
    "name": "Name",
    "description": "Description",
    "displayName": "Display name",
    "email": "Email",
    "role": "Role",
    "projectRole": "Role",
    "accessLevel": "Access level",
    "defaultUserAccessLevel": "Default access level",
    "defaultAgentId": "Agent",
    "agentId": "Agent",
    "userId": "User",
    "memberId": "Member",
    "invitationId": "Invitation",
    "returnAcceptUrl": "Invitation link",
    "warehouse": "Warehouse",
    "agentDeploymentType": "Deployment type",
    "agentType": "Agent type",
    "cloudProvider": "Cloud provider",
    "deployment": "Deployment",
    "trackName": "Release track",
    "restrictedAccess": "Restricted access",
    "password": "Password",
    "currentPassword": "Current password",
    "newPassword": "New password",
    "confirmPassword": "Password again",
    "secretName": "Secret name",
    "secretKey": "Key in the secret",
    "repositoryName": "Repository name",
    "provider": "Provider",
    "providerParameters": "Repository",
    "url": "URL",
    "ownerName": "Owner",
    "namespace": "Namespace",
    "from": "From",
    "to": "To",
    "actor": "Actor",
    "action": "Action",
    "project": "Project",
    "csrf_token": "Form",
}

_PROPERTIES = "connectionProperties"
_SEGMENTS = re.compile(r"[.\[\]]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: A wire name inside a message: quoted ('port', "port") or a camelCase word.
_IN_MESSAGE = re.compile(
    r"(['\"`])([A-Za-z][\w.\[\]]*)\1|\b[a-z]+(?:[A-Z][a-z0-9]*)+(?:(?:\.|\[\d+\]\.?)[A-Za-z]\w*)*"
)


def _words(name: str) -> str:
    """``defaultAgentId`` -> "Default agent id": a name no table knows, still in words."""
    spaced = _CAMEL.sub(" ", name).replace("_", " ").strip().lower()
    return spaced[:1].upper() + spaced[1:] if spaced else name


def label(path: str) -> str:
    """The words for a wire name or a violation's JSON path: a connection property's label
    wherever it sits (``environment.connectionProperties.port.value``,
    ``connectionOverrides[0].connectionProperties.url``: "Port", "Host"), else the label of
    the whole path or of its last name (``secretReference.secretName``: "Secret name"), else
    the name split into words."""
    if path in FIELD_LABELS:
        return FIELD_LABELS[path]
    names = [part for part in _SEGMENTS.split(path) if part and not part.isdigit()]
    if not names:
        return path
    if _PROPERTIES in names[:-1]:
        key = names[names.index(_PROPERTIES) + 1]
        return PROPERTY_LABELS.get(key) or _words(key)
    last = names[-1]
    return FIELD_LABELS.get(last) or PROPERTY_LABELS.get(last) or _words(last)


def _known(name: str) -> bool:
    last = _SEGMENTS.split(name.rstrip("]"))[-1]
    return name in FIELD_LABELS or last in FIELD_LABELS or last in PROPERTY_LABELS


def reword(message: str) -> str:
    """``message`` with the wire names it mentions ('port', ``connectionProperties.url``,
    ``defaultDatabase``) replaced by their labels; other words are left as they are."""

    def swap(match: re.Match[str]) -> str:
        quote, quoted = match.group(1), match.group(2)
        name = quoted if quoted is not None else match.group(0)
        if not _known(name):
            return match.group(0)
        words = label(name)
        return f"{quote}{words}{quote}" if quote else words

    return _IN_MESSAGE.sub(swap, message)


def property_label(key: str) -> str:
    """The label of connection property ``key`` ("Host" for ``url``)."""
    return PROPERTY_LABELS.get(key) or _words(key)


def property_hint(spec: WarehouseSpec, key: str) -> str | None:
    """The hint under connection property ``key``'s input: :data:`PROPERTY_HINTS`, else the
    spec's format (its backticks dropped) and default, else None."""
    if key in PROPERTY_HINTS:
        return PROPERTY_HINTS[key]
    parts = [spec.formats.get(key, "").replace("`", "")]
    if key in spec.defaults:
        parts.append(f"left blank: {spec.defaults[key]}")
    text = "; ".join(part for part in parts if part)
    return text[:1].upper() + text[1:] + "." if text else None


def access_level(value: str) -> str:
    """The words for access level ``value`` (``readOnly`` -> "Read only"); an unknown value as
    it is. A template filter: ``{{ level|access_level }}``."""
    return dict(ACCESS_LEVELS).get(value, value)
