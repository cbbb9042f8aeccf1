"""A small threaded HTTP server on 127.0.0.1 for fakes of REST APIs: every request goes to one
``answer`` function, which returns the status, headers and body (a JSON value, or text sent as
HTML unless the headers name another ``Content-Type``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request as the fake received it: ``path`` is the raw request target (percent-encoding
    and query kept)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (None when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


Answer = tuple[int, dict[str, str], Any]


class RestServer:
    """Serves ``answer(request)`` over HTTP; ``url`` is ``http://127.0.0.1:PORT`` and
    ``requests`` lists every request received."""

    def __init__(self, answer: Callable[[Request], Answer]) -> None:
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, answer))
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def _handler(
    server: RestServer, answer: Callable[[Request], Answer]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
            )
            server.requests.append(request)
            status, headers, body = answer(request)
            if body is None:
                payload = b""
            elif isinstance(body, str):
                payload = body.encode()
                headers = {"Content-Type": "text/html; charset=utf-8", **headers}
            else:
                payload = json.dumps(body).encode()
                headers = {"Content-Type": "application/json; charset=utf-8", **headers}
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _serve  # noqa: N815 - http.server's naming

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

    return Handler
