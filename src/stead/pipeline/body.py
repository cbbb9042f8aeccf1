"""The request body, read whole before anything else runs: at most ``max_bytes`` of it, within
``timeout`` seconds (docs/request-lifecycle.md).

Nothing downstream (authentication, admission control, the database) starts until the body is
complete, so a client that announces a body and sends it slowly, or never, holds no slot, lock
or connection: it waits here, on the event loop, until its deadline answers 408. A declared
``Content-Length`` over the limit is answered 413 at once, without reading a byte of the body; a
body without a length (``Transfer-Encoding: chunked``) is answered 413 at the chunk that crosses
the limit. Both answers close the connection. The app then receives the body as one message.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stead.errors import AppError, ContentTooLarge, RequestTimeout
from stead.pipeline.problems import problem_response


def _declared_length(scope: Scope) -> int | None:
    """The ``Content-Length`` (-1 when malformed), 0 without a body, None when chunked."""
    length: int | None = 0
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
        if name == b"transfer-encoding":
            length = None
    return length


class BodyReader:
    """ASGI middleware reading each HTTP request body whole, bounded in size and time.

    Args:
        app: the wrapped ASGI app.
        max_bytes: the largest body accepted, in bytes (setting ``max_body_bytes``).
        timeout: seconds the whole body may take to arrive (setting ``body_timeout_seconds``).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared == 0:
            await self.app(scope, receive, send)
            return
        try:
            if declared is not None and declared > self.max_bytes:
                raise ContentTooLarge(self.max_bytes)
            body = await self._read(receive)
        except AppError as exc:
            await problem_response(exc, scope["path"])(scope, receive, send)
            return
        if body is None:  # the client went away: there is no one to answer
            return
        first: Message | None = {"type": "http.request", "body": body, "more_body": False}

        async def replay() -> Message:
            nonlocal first
            if first is None:
                return await receive()
            message, first = first, None
            return message

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body; None when the client disconnected first.

        Raises:
            ContentTooLarge: more than ``max_bytes`` arrived.
            RequestTimeout: it did not arrive within ``timeout`` seconds.
        """
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # http.disconnect
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ContentTooLarge(self.max_bytes)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise RequestTimeout(self.timeout) from None
        return b"".join(chunks)
