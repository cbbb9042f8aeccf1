"""The OpenAPI document as the server really answers (ARCHITECTURE rule 6).

FastAPI documents a 422 ``HTTPValidationError`` on every operation; Stead never sends one
(validation failures are 400 problem+json, contract section 1). :func:`install` replaces it with
the statuses every API operation can answer, each with the problem+json schema, so generated
clients and schema-driven tests (schemathesis) see what actually comes back:

- every ``/v1`` operation: 400, 401 (with ``WWW-Authenticate``), 403, 429 and 503 (with
  ``Retry-After``); 404 when the path has parameters; 409 when it changes something;
  408, 413 and 415 when it takes a body;
- the token endpoint: its RFC 6749 errors (400/401 ``{"error", "error_description"}``) or a
  problem (400 for an unreadable form, 408, 413, 429 after too many failures, 503).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from stead.errors import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details (contract section 1); some kinds add members, "
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
    409: "Conflicts with the current state (duplicate name, still in use ...)",
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


def install(app: FastAPI) -> None:
    """Serve the rewritten document at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
