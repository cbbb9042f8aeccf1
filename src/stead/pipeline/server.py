"""How ``stead serve`` runs uvicorn: idle connections and slow request heads time out.

uvicorn closes a connection left idle after a response (``timeout_keep_alive``), but it cancels
that timer at the first byte received, and sets none on a new connection: a client that
connects and sends nothing, or a header line now and then, keeps its connection (and a file
descriptor) for ever. :class:`Protocol` gives every request head (request line and headers) the
same deadline, counted from the connection's opening or from the previous response; the body
has its own (:mod:`stead.pipeline.body`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from stead.settings import Settings


class Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline (``timeout_keep_alive``) on each request head."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        # Armed first: completing the response may run the next, pipelined, request at once.
        self._arm_head_timer()
        super().on_response_complete()

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._head_timer.cancel()  # the head is in
            self._head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings of ``stead serve``: :class:`Protocol`, the idle timeout, no
    forwarded headers (uvicorn believes them from 127.0.0.1 by default; the app believes them
    from ``STEAD_TRUSTED_PROXIES`` only), and how long a graceful shutdown may wait for the
    requests in flight."""
    return {
        "http": Protocol,
        "timeout_keep_alive": settings.idle_timeout_seconds,
        "proxy_headers": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds,
    }
