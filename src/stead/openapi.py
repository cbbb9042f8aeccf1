"""The OpenAPI document as the server really answers (ARCHITECTURE rule 6).

FastAPI documents a 422 ``HTTPValidationError`` on every operation; Stead never sends one
(validation failures are 400 problem+json, docs/api.md "Errors"). :func:`install` replaces it with
the statuses every API operation can answer, each with the problem+json schema, so generated
clients and schema-driven tests (schemathesis) see what actually comes back:

- every ``/v1`` operation: 400, 401 (with ``WWW-Authenticate``), 403, 429 and 503 (with
  ``Retry-After``); 404 when the path has parameters; 409 when it changes something;
  408, 413 and 415 when it takes a body;
- the token endpoint: its RFC 6749 errors (400/401 ``{"error", "error_description"}``) or a
  problem (400 for an unreadable form, 408, 413, 429 after too many failures, 503).

:func:`install` also serves ``/docs``: Swagger UI, whose files ship inside the package
(``static/swagger-ui-<version>/``, from the npm package ``swagger-ui-dist``, Apache-2.0), so the
page loads nothing from another origin.

It also writes the warehouse property tables (:func:`stead.warehouses.properties_table`) into
the description of every ``connectionProperties``, so the document says which keys each
warehouse takes without the SDK's schemas importing the warehouse modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from stead.errors import PROBLEM_JSON
from stead.warehouses import properties_table, redshift, snowflake

#: The swagger-ui-dist release in ``static/``; its version is in the folder's name, so a new one
#: is a new URL and a browser never mixes a cached old file with a new page.
SWAGGER_UI_VERSION = "5.36.0"
STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_UI_URL = f"/static/swagger-ui-{SWAGGER_UI_VERSION}"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details (docs/api.md, Errors); some kinds add members, "
    "e.g. existingId on a duplicate project name.",
    "required": ["type", "title", "status", "detail", "instance", "violations"],
    "properties": {
        "type": {"type": "string", "examples": ["https://stead.dev/problems/conflict"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "examples": ["/v1/projects"]},
        "violations": {
            "type": "array",
            "items": {"type": "string"},
            "examples": [["name: must not be empty"]],
        },
    },
    "additionalProperties": True,
}
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "OAuthError",
    "description": "RFC 6749 section 5.2 error response.",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
DESCRIPTIONS = {
    400: "Invalid request: one violation per bad field",
    401: "Missing, invalid or expired bearer token",
    403: "The caller may not do this",
    404: "Unknown, or not visible to the caller",
    408: "The request body did not arrive in time",
    409: "Conflicts with the current state: a duplicate name, or an object still in use "
    '(detail names each user; blockedBy lists them as {"type", "name", "project"})',
    413: "Request body over the size limit",
    415: "Request body is not application/json",
    429: "Rate limit, or failed sign-ins limit, exceeded; see Retry-After",
    503: "The database (or an upstream) is unavailable; see Retry-After",
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_OAUTH_REF = {"$ref": "#/components/schemas/OAuthError"}
_CHANGES = frozenset({"post", "put", "patch", "delete"})
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    body = "requestBody" in operation
    if path.startswith("/v1/"):
        codes = [400, 401, 403, 429, 503]
        if "{" in path:
            codes.append(404)
        if method in _CHANGES:
            codes.append(409)
        if body:
            codes += [408, 413, 415]
        return codes
    if path.startswith("/oauth/"):
        return [400, 408, 413, 429, 503]
    return []


PROPERTIES_DESCRIPTION = (
    "The environment's warehouse credentials: property name -> PropertyValue. The keys depend "
    "on the project's warehouse; unknown keys are refused. Any property may be held in a secret "
    "(`secretName`); a sensitive one given as `value` is stored as a hosted secret and read back "
    'as `{"secretName": "<environment>-<property>", "set": true}`. See docs/warehouses.md.'
    "\n\nSnowflake (authType KEY_PAIR):\n\n"
    + properties_table(snowflake.SPEC)
    + "\nAmazon Redshift (authType PASSWORD):\n\n"
    + properties_table(redshift.SPEC)
)


def describe_properties(schema: dict[str, Any]) -> None:
    """Set :data:`PROPERTIES_DESCRIPTION` on each component's ``connectionProperties``."""
    for component in schema.get("components", {}).get("schemas", {}).values():
        prop = component.get("properties", {}).get("connectionProperties")
        if prop is not None:
            prop["description"] = PROPERTIES_DESCRIPTION


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a FastAPI-generated OpenAPI ``schema`` in place (module docstring); return it."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = PROBLEM_SCHEMA
    components["OAuthError"] = OAUTH_ERROR_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in _statuses(path, method, operation):
                responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
            for key, response in responses.items():
                if not key.startswith(("4", "5")):
                    continue
                content = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
                if path.startswith("/oauth/") and key in ("400", "401"):
                    content["application/json"] = {"schema": _OAUTH_REF}
                response["content"] = content
                if int(key) in _HEADERS:
                    response.setdefault("headers", _HEADERS[int(key)])
    return schema


# A module-level endpoint reading the app from the request: FastAPI keeps every endpoint it has
# analysed in process-wide caches, so one closing over its app would keep that app alive.
docs_router = APIRouter(include_in_schema=False)


@docs_router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI for ``/openapi.json``, its files served by this app (``/static``)."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} API",
        swagger_js_url=f"{SWAGGER_UI_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI_URL}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_UI_URL}/favicon-32x32.png",
        oauth2_redirect_url=None,
        # No badge that would send the document to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )


def install(app: FastAPI) -> None:
    """Serve the rewritten document at ``/openapi.json`` (built once, on first request), and
    Swagger UI's files under ``/static`` (FastAPI, "Custom Docs UI Static Assets"); the app
    routes :data:`docs_router` (``/docs``) itself. The app must be built with ``docs_url=None``
    and ``redoc_url=None``."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
            describe_properties(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
