"""The outermost ASGI middleware of every HTTP request (docs/request-lifecycle.md)."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stead.errors import UnsupportedMediaType
from stead.pipeline.metrics import Metrics
from stead.pipeline.problems import problem_response

access_log = structlog.get_logger("stead.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_API_PREFIXES = ("/v1/", "/dpc/v1/")
#: Console paths that carry a one-time token (an invitation, a password reset): the access log
#: keeps the path without it.
_TOKEN_PATH = re.compile(r"^(/console/(?:invitations|reset)/)[^/]+")


def loggable_path(path: str) -> str:
    """``path`` as the access log writes it: a console token path's token is ``[redacted]``."""
    return _TOKEN_PATH.sub(r"\1[redacted]", path)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


#: On every answer (OWASP REST Security Cheat Sheet, "Security headers"): no content sniffing,
#: no framing (the old header and CSP's), no referrer.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
)
#: On every answer that does not say how it may be cached: answers are per caller.
_NO_STORE = (b"cache-control", b"no-store")


class RequestMiddleware:
    """ASGI middleware, per HTTP request: a request id (``X-Request-ID``, the caller's when it is
    well formed), the JSON-body check (415), :data:`SECURITY_HEADERS` and ``Cache-Control:
    no-store`` on the response (each unless the answer sets its own), metrics and one access log
    line (with a console token path's token redacted, :func:`loggable_path`).

    The token endpoint takes a form, so only ``/v1`` and ``/dpc/v1`` bodies must be JSON.
    Plain ASGI rather than ``BaseHTTPMiddleware``: the response streams through unchanged, with
    no extra task or body copy per request.

    Args:
        app: the wrapped ASGI app.
        metrics: where each request's method, route template, status and duration go.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        request_id = headers.get("x-request-id") or ""
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path: str = scope["path"]
        method: str = scope["method"]
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                raw = list(message.get("headers", ()))
                raw.append((b"x-request-id", request_id.encode()))
                # An answer that sets a header of its own keeps it (the console's CSP).
                present = {name.lower() for name, _ in raw}
                raw.extend(h for h in (*SECURITY_HEADERS, _NO_STORE) if h[0] not in present)
                message["headers"] = raw
            await send(message)

        try:
            if (
                method in _BODY_METHODS
                and path.startswith(_API_PREFIXES)
                and (headers.get("content-length", "0") != "0" or "transfer-encoding" in headers)
                and not _is_json(headers.get("content-type", ""))
            ):
                exc = UnsupportedMediaType(
                    "The request body must be application/json",
                    violations=["Content-Type: must be application/json"],
                )
                await problem_response(exc, path)(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            if route != "unmatched" and path.startswith(_API_PREFIXES):
                # API routes carry their router-relative template; put the mount prefix back.
                route = path[: path.index("/v1/") + 3] + route
            self.metrics.observe(method, route, status, elapsed)
            actor = state.get("actor")
            access_log.info(
                "request",
                method=method,
                path=loggable_path(path),
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                request_id=request_id,
                actor=actor.id if actor else None,
            )
