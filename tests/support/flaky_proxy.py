"""A real HTTP proxy in front of a Stead server that misbehaves on cue.

It forwards every request to the upstream server and records it; :class:`Fault` entries make it
answer some requests itself (503 with ``Retry-After``) or lose the upstream's answer, and a hook
runs after each forwarded request (used to kill a client mid-way).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Fault:
    """Answer the next ``times`` requests matching ``method`` and ``path_prefix`` with
    ``status`` (and ``Retry-After`` unless None), as a Stead problem document or, with
    ``problem`` false, as a load balancer's HTML page. With ``forward``, the request reaches the
    server first and only its answer is lost."""

    method: str
    path_prefix: str
    status: int = 503
    retry_after: str | None = "1"
    forward: bool = False
    times: int = 1
    problem: bool = True


@dataclass(frozen=True)
class Seen:
    """A request as the proxy saw it (``body`` as sent), and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    status: int
    body: bytes = b""


@dataclass
class Proxy:
    """The running proxy: its URL, its faults, what it saw, and the after-forward hook."""

    url: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    after_forward: Callable[[Seen], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and method == fault.method
                    and path.startswith(fault.path_prefix)
                ):
                    fault.times -= 1
                    return fault
        return None


@contextmanager
def flaky_proxy(upstream: str) -> Iterator[Proxy]:
    """Run a proxy to ``upstream`` on a free port of 127.0.0.1."""
    client = httpx.Client(base_url=upstream, timeout=60)
    proxy = Proxy(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            path = self.path.split("?", 1)[0]
            fault = proxy.take_fault(self.command, path)
            if fault is None or fault.forward:
                upstream_answer = client.request(
                    self.command, self.path, content=body, headers=headers
                )
            if fault is None:
                status = upstream_answer.status_code
                out_headers = {
                    k: v for k, v in upstream_answer.headers.items() if k.lower() not in _HOP
                }
                out_body = upstream_answer.content
            else:
                status = fault.status
                out_headers = {"Content-Type": "application/problem+json"}
                if fault.retry_after is not None:
                    out_headers["Retry-After"] = fault.retry_after
                out_body = (
                    b'{"type":"https://stead.dev/problems/unavailable","title":"Service '
                    b'unavailable","status":%d,"detail":"proxy fault","violations":[]}' % status
                )
                if not fault.problem:
                    out_headers["Content-Type"] = "text/html"
                    out_body = b"<html><body>%d Service Unavailable</body></html>" % status
            seen = Seen(self.command, path, dict(self.headers.items()), status, body)
            with proxy.lock:
                proxy.seen.append(seen)
            if (fault is None or fault.forward) and proxy.after_forward is not None:
                proxy.after_forward(seen)
            try:
                self.send_response(status)
                for key, value in out_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(out_body)))
                self.end_headers()
                self.wfile.write(out_body)
            except OSError:
                self.close_connection = True  # the client is gone (killed on purpose)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        client.close()
