"""A request body size limit (413 problem+json), enforced before the body is read.

A declared ``Content-Length`` over the limit is answered at once, without reading a byte of the
body. A body without a length (``Transfer-Encoding: chunked``) is counted as it streams in; the
chunk that crosses the limit raises :class:`BodyTooLarge`, which FastAPI passes through body
parsing untouched (it is an ``HTTPException``) and the app's handler renders as 413.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stead.errors import PROBLEM_BASE, PROBLEM_JSON

TITLE = "Content too large"


class BodyTooLarge(HTTPException):
    """413: the request body is larger than the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit} bytes")
        self.limit = limit


def _problem(limit: int, path: str) -> dict[str, object]:
    return {
        "type": PROBLEM_BASE + "content-too-large",
        "title": TITLE,
        "status": 413,
        "detail": f"The request body exceeds the limit of {limit} bytes",
        "instance": path,
        "violations": [f"body: must be at most {limit} bytes"],
    }


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    """ASGI middleware refusing HTTP request bodies over ``max_bytes`` with 413.

    Args:
        app: the wrapped ASGI app.
        max_bytes: the largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            body = json.dumps(_problem(self.max_bytes, scope.get("path", ""))).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        received = 0
        limit = self.max_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


def install(app: FastAPI, max_bytes: int) -> None:
    """Limit request bodies of ``app`` to ``max_bytes`` (setting ``max_body_bytes``)."""

    async def too_large(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BodyTooLarge)
        return JSONResponse(
            _problem(exc.limit, request.url.path), status_code=413, media_type=PROBLEM_JSON
        )

    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
