"""Exceptions of the SDK: one class per problem+json status (docs/api.md, RFC 9457)."""

from __future__ import annotations

from typing import Any


class SteadError(Exception):
    """Base of every exception the SDK raises."""


class TransportError(SteadError):
    """The server could not be reached, or the connection failed, after every retry."""


class ApiError(SteadError):
    """The server answered with an error (a problem+json body, or an OAuth 2.0 error).

    Attributes:
        status: the HTTP status code.
        title, detail: the problem's summary and explanation.
        type: the problem type URI (e.g. ``https://stead.dev/problems/conflict``).
        violations: ``"<json.path>: <message>"`` strings, one per bad field.
        problem: the whole problem body as received (extra members such as ``existingId``).
        request_id: the server's ``X-Request-ID`` for this answer, for its logs.
    """

    def __init__(
        self,
        status: int,
        problem: dict[str, Any],
        *,
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", ""))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        raw = problem.get("violations")
        self.violations: list[str] = [str(v) for v in raw] if isinstance(raw, list) else []
        self.request_id = request_id
        super().__init__(f"{status} {self.detail}")


class ValidationError(ApiError):
    """400: the request is invalid; :attr:`violations` names each bad field."""


class Unauthorized(ApiError):
    """401: the credentials or the token were refused."""


class Forbidden(ApiError):
    """403: the caller may see the resource but not do this."""


class NotFound(ApiError):
    """404: unknown, or invisible to the caller."""


class Conflict(ApiError):
    """409: a duplicate name, an object still in use, or an ``Idempotency-Key`` reused for a
    different request. :attr:`existing_id` holds the id of the object a duplicate name belongs
    to, when the server says (projects, agents)."""

    @property
    def existing_id(self) -> str | None:
        """The ``existingId`` member of the problem, if any."""
        value = self.problem.get("existingId")
        return str(value) if value is not None else None


class RateLimited(ApiError):
    """429: still rate limited after every retry."""


class ServerError(ApiError):
    """5xx: the server, or an upstream it called (git provider, warehouse, secret store),
    failed. 502, 504 and a passing 503 are raised only after every retry; a 503 naming a
    lasting cause (no ``Retry-After``) at once."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


def error_for(status: int, problem: dict[str, Any], *, request_id: str | None) -> ApiError:
    """The exception for an error answer with ``status`` and body ``problem``."""
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(status, problem, request_id=request_id)
