"""Nothing a client does before it is authenticated holds a shared resource, over real HTTP
against ``stead serve``: slow or missing bodies, silent connections and slow request heads,
guessed secrets; and what every answer says about itself (security headers, the client's
address as the audit trail records it)."""

from __future__ import annotations

import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.reliability.servers import Served, serve

pytestmark = pytest.mark.process

#: A guessed secret, to be found nowhere.
CANARY = "canary-" + uuid.uuid4().hex
#: Deadline of a request body in these tests (seconds).
BODY_TIMEOUT = 6


@contextmanager
def served(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> Iterator[Served]:
    """``stead serve`` with ``STEAD_<NAME>`` set from ``env``."""
    for name, value in env.items():
        monkeypatch.setenv(f"STEAD_{name.upper()}", value)
    with serve(db_url, tmp_path / "data") as server:
        yield server


def _announce_body(server: Served, path: str, headers: dict[str, str]) -> socket.socket:
    """A connection that sends a POST's head announcing 100 bytes of body, and no body."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 100"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _project(name: str) -> dict[str, str]:
    return {"name": name, "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}


def test_bodies_that_never_arrive_hold_nothing_and_time_out(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with served(db_url, tmp_path, monkeypatch, body_timeout_seconds=str(BODY_TIMEOUT)) as server:
        auth = server.headers()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        as_json = {"Content-Type": "application/json"}
        stalled = [_announce_body(server, "/oauth/dpc/token", form) for _ in range(4)]
        stalled += [_announce_body(server, "/v1/projects", as_json) for _ in range(2)]
        stalled += [_announce_body(server, "/v1/projects", {**as_json, **auth}) for _ in range(2)]
        started = time.monotonic()
        try:
            with httpx.Client(base_url=server.url, headers=auth, timeout=5) as http:
                # Writes and sign-ins keep flowing while eight bodies are awaited.
                for i in range(5):
                    began = time.monotonic()
                    resp = http.post("/v1/projects", json=_project(f"flowing-{i}"))
                    assert resp.status_code == 201, resp.text
                    assert time.monotonic() - began < 2
                assert server.headers()["Authorization"].startswith("Bearer ")
            assert time.monotonic() - started < BODY_TIMEOUT
            for sock in stalled:
                answer = _answer(sock)
                head = answer.split(b"\r\n\r\n", 1)[0].lower()
                assert head.startswith(b"http/1.1 408"), answer[:200]
                assert b"connection: close" in head
                assert b"request-timeout" in answer
        finally:
            for sock in stalled:
                sock.close()
        # The timed-out requests changed nothing.
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=10) as http:
            assert http.get("/v1/projects").json()["total"] == 5


def test_silent_connections_and_slow_request_heads_are_closed(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with served(db_url, tmp_path, monkeypatch, idle_timeout_seconds="1") as server:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        trickle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            trickle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            began = time.monotonic()
            closed = False
            # One header line every half second: each byte used to restart uvicorn's timer.
            for i in range(12):
                try:
                    trickle.sendall(f"X-Slow-{i}: 1\r\n".encode())
                except OSError:
                    closed = True
                    break
                time.sleep(0.5)
            if not closed:
                trickle.settimeout(2)
                closed = _answer(trickle) == b""
            assert closed
            assert time.monotonic() - began < 5
            silent.settimeout(5)
            assert _answer(silent) == b""  # closed by the server, not timed out here
        finally:
            silent.close()
            trickle.close()
        # A request sent in time is answered, on a kept-alive connection too.
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/healthz").status_code == 200


def _token(server: Served, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/oauth/dpc/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=30,
    )


def test_failed_sign_ins_are_throttled_per_client_and_per_address(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with served(
        db_url,
        tmp_path,
        monkeypatch,
        sign_in_failures_per_minute="3",
        sign_in_failures_per_minute_per_address="5",
    ) as server:
        for _ in range(3):
            assert _token(server, server.client_id, CANARY).status_code == 401
        refused = _token(server, server.client_id, CANARY)
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["violations"] == []
        # The client is refused before its secret is checked, even the right one ...
        assert _token(server, server.client_id, server.client_secret).status_code == 429
        # ... while another client id is still checked (401), until this address has had 5.
        other = str(uuid.uuid4())
        assert _token(server, other, CANARY).status_code == 401
        assert _token(server, other, CANARY).status_code == 401
        assert _token(server, str(uuid.uuid4()), CANARY).status_code == 429
        login = httpx.post(
            f"{server.url}/v1/auth/login",
            json={"email": "nobody@example.com", "password": CANARY},
            timeout=30,
        )
        assert login.status_code == 429
        answers = [refused, login]
    # The guessed secrets are in no answer and no log line.
    assert all(CANARY not in resp.text for resp in answers)
    assert CANARY.encode() not in (server.data_dir / "server.log").read_bytes()


def test_guessed_secrets_do_not_slow_the_api(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six anonymous clients guessing secrets without pause (throttling off): the API's reads
    wait for no password check."""
    with served(
        db_url,
        tmp_path,
        monkeypatch,
        sign_in_failures_per_minute="0",
        sign_in_failures_per_minute_per_address="0",
    ) as server:
        stop = threading.Event()
        guesses = [0]

        def guess() -> None:
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    http.post(
                        f"{server.url}/oauth/dpc/token",
                        data={
                            "grant_type": "client_credentials",
                            "client_id": str(uuid.uuid4()),
                            "client_secret": "guess",
                        },
                    )
                    guesses[0] += 1

        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=30) as http:
            project_id = http.post("/v1/projects", json=_project("read-me")).json()["projectId"]
            threads = [threading.Thread(target=guess) for _ in range(6)]
            for thread in threads:
                thread.start()
            try:
                time.sleep(1)
                took: list[float] = []
                # 30 reads at least, and on until the guessers have been answered 7 times (a
                # guess is a production-cost argon2 check, seconds each on a busy machine).
                deadline = time.monotonic() + 60
                while len(took) < 30 or (guesses[0] <= 6 and time.monotonic() < deadline):
                    began = time.monotonic()
                    assert http.get(f"/v1/projects/{project_id}").status_code == 200
                    took.append(time.monotonic() - began)
            finally:
                stop.set()
                for thread in threads:
                    thread.join()
        assert guesses[0] > 6
        # Each check is ~100 ms of argon2; queued behind them a read took ~400 ms.
        assert statistics.median(took) < 0.1, took


def test_every_answer_carries_security_headers(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        served(db_url, tmp_path, monkeypatch) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        answers = [
            http.get("/healthz"),
            http.get("/v1/projects"),  # 401
            http.get("/v1/projects", headers=server.headers()),
            http.get("/docs"),
            _token(server, server.client_id, server.client_secret),
        ]
        for resp in answers:
            assert resp.headers["x-content-type-options"] == "nosniff", resp.url
            assert resp.headers["x-frame-options"] == "DENY"
            assert resp.headers["content-security-policy"] == "frame-ancestors 'none'"
            assert resp.headers["referrer-policy"] == "no-referrer"
            assert resp.headers.get_list("cache-control") == ["no-store"]
        assert answers[3].headers["content-type"].startswith("text/html")


def _source_ips(server: Served, headers: dict[str, str]) -> list[str | None]:
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        assert (
            http.post(
                "/v1/projects",
                json=_project(f"forwarded-{uuid.uuid4().hex[:8]}"),
                headers={"X-Forwarded-For": "203.0.113.7"},
            ).status_code
            == 201
        )
        events = http.get("/v1/audit-events", params={"action": "project.created"}).json()
    return [event["sourceIp"] for event in events["results"]]


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with served(db_url, tmp_path, monkeypatch) as server:
        assert _source_ips(server, server.headers()) == ["127.0.0.1"]
    with served(db_url, tmp_path, monkeypatch, trusted_proxies="10.0.0.0/8, 127.0.0.1") as server:
        assert sorted(_source_ips(server, server.headers())) == ["127.0.0.1", "203.0.113.7"]
