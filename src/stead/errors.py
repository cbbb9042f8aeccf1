"""The error tree and its problem+json rendering (docs/api.md, RFC 9457).

Every error leaves the server as ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail``, ``instance`` (the request path) and ``violations`` (a list of
``"<json.path>: <message>"``). Validation failures are 400, never 422.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

PROBLEM_BASE = "https://stead.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class ProblemResponse(JSONResponse):
    """An ``application/problem+json`` response, rendered as ASCII JSON.

    Problems may quote the caller's input (a bad key, a bad name); ASCII escapes carry any
    string, even an unpaired surrogate that UTF-8 cannot encode, so rendering never fails.
    """

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


class AppError(Exception):
    """Base of every error a service raises; rendered as problem+json.

    Args:
        detail: human-readable explanation; never contains a secret.
        violations: ``"<json.path>: <message>"`` strings, one per bad field.
        extra: additional members of the problem object (e.g. ``existingId``).
        headers: extra response headers (e.g. ``Retry-After``).
    """

    status: int = 500
    kind: str = "internal"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        violations: list[str] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.violations = violations or []
        self.extra = extra or {}
        self.headers = headers or {}

    def to_problem(self, instance: str) -> dict[str, Any]:
        """Return the problem+json body for a request to path ``instance``."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "violations": self.violations,
        }
        body.update(self.extra)
        return body


class BadRequest(AppError):
    """400: the input is invalid; ``violations`` names each bad field."""

    status, kind, title = 400, "validation", "Invalid request"


class Unauthorized(AppError):
    """401: missing, invalid or expired credentials (sent with ``WWW-Authenticate: Bearer``)."""

    status, kind, title = 401, "unauthorized", "Authentication required"


class Forbidden(AppError):
    """403: the caller can see the resource but may not do this."""

    status, kind, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    """404: unknown, or invisible to the caller (the same answer on purpose)."""

    status, kind, title = 404, "not-found", "Not found"


class Conflict(AppError):
    """409: the request conflicts with the current state (duplicate name, still in use ...)."""

    status, kind, title = 409, "conflict", "Conflict"


@dataclass(frozen=True)
class Blocker:
    """An object that keeps another from being deleted.

    Attributes:
        type: its kind as the API names it: ``environment``, ``secretReference``, ``secret``
            (hosted), ``repository``.
        name: its name.
        project: the name of its project.
    """

    type: str
    name: str
    project: str


_KIND_WORDS = {
    "environment": "environment",
    "secretReference": "secret reference",
    "secret": "hosted secret",
    "repository": "repository",
}
BLOCKERS_SHOWN = 10
"""At most this many blockers are listed; ``more`` says that others exist."""


def in_use(what: str, blockers: Sequence[Blocker], *, then: str, more: bool = False) -> Conflict:
    """409 for deleting ``what`` (e.g. ``"Agent 'eu-agent'"``) while ``blockers`` use it.

    ``detail`` names each blocker with its project (``environment 'prod' of project
    'finance'``) and ends with ``then``, what to do first; ``blockedBy`` lists them as
    ``{"type", "name", "project"}`` for programs. ``more``: there are others besides those
    given (callers pass at most :data:`BLOCKERS_SHOWN`).
    """
    listed = ", ".join(
        f"{_KIND_WORDS.get(b.type, b.type)} {b.name!r} of project {b.project!r}" for b in blockers
    )
    return Conflict(
        f"{what} is used by {listed}{' and others' if more else ''}; {then}",
        extra={
            "blockedBy": [{"type": b.type, "name": b.name, "project": b.project} for b in blockers]
        },
    )


class UnsupportedMediaType(AppError):
    """415: the request body is not ``application/json``."""

    status, kind, title = 415, "unsupported-media-type", "Unsupported media type"


class TooManyRequests(AppError):
    """429: rate limit exceeded; carries ``Retry-After`` (seconds)."""

    status, kind, title = 429, "rate-limited", "Too many requests"


class UpstreamError(AppError):
    """502: an upstream (git provider, warehouse, secret manager) failed."""

    status, kind, title = 502, "upstream-error", "Upstream error"


class UpstreamUnavailable(AppError):
    """503: an upstream is rate limiting or unavailable; may carry ``Retry-After``."""

    status, kind, title = 503, "upstream-unavailable", "Upstream unavailable"


class UpstreamTimeout(AppError):
    """504: an upstream did not answer in time."""

    status, kind, title = 504, "upstream-timeout", "Upstream timeout"


class ServiceUnavailable(AppError):
    """503: Stead's own database is unreachable."""

    status, kind, title = 503, "unavailable", "Service unavailable"


class ContentTooLarge(AppError):
    """413: the request body is larger than the configured limit (``STEAD_MAX_BODY_BYTES``)."""

    status, kind, title = 413, "content-too-large", "Content too large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body exceeds the limit of {limit} bytes",
            violations=[f"body: must be at most {limit} bytes"],
            headers={"Connection": "close"},
        )


class HTTPProblem(AppError):
    """A status the framework itself answers (404 no such route, 405 method not allowed ...),
    as problem+json.

    Args:
        status: the HTTP status.
        detail: the framework's text, also used as the title.
    """

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers=headers)
        self.status = status
        self.kind = {404: "not-found", 405: "method-not-allowed"}.get(status, "http-error")
        self.title = detail


class RequestTimeout(AppError):
    """408: the request body did not arrive in time (``STEAD_BODY_TIMEOUT_SECONDS``)."""

    status, kind, title = 408, "request-timeout", "Request timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request body did not arrive within {seconds:g} s",
            violations=[f"body: must arrive within {seconds:g} s"],
            headers={"Connection": "close"},
        )
