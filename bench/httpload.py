"""A small HTTP/1.1 load generator on asyncio streams (keep-alive, no client library overhead),
so on a 2-core machine the client takes as little CPU from the server as possible."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def request(method: str, path: str, *, token: str = "", body: Any = None, extra: str = "") -> bytes:
    """The bytes of one HTTP/1.1 request (JSON body when ``body`` is not None)."""
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return (head + extra + "\r\n").encode() + data


class Connection:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request; return ``(status, body)``."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        match = _LENGTH.search(head)
        body = await self.reader.readexactly(int(match.group(1))) if match else b""
        return int(head[9:12]), body

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    """Latencies (seconds) of completed operations over ``elapsed`` seconds, and failures."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


#: Request numbers, unique in a run (they make names unique).
_NUMBERS = itertools.count()

#: The first few unexpected answers, for the report.
FAILURES: list[str] = []

#: One operation on a connection: returns True when every answer was the expected one.
Operation = Callable[[Connection, int], Awaitable[bool]]


def expect(raw_for: Callable[[int], bytes], status: int) -> Operation:
    """An operation sending ``raw_for(n)`` and expecting ``status``."""

    async def op(conn: Connection, n: int) -> bool:
        got, body = await conn.send(raw_for(n))
        if got != status and len(FAILURES) < 5:
            FAILURES.append(f"{got} {body[:200]!r}")
        return got == status

    return op


async def closed_loop(
    host: str, port: int, op: Operation, *, clients: int, seconds: float
) -> Result:
    """``clients`` connections each running ``op`` back to back for ``seconds``."""
    result = Result()
    counter = _NUMBERS
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        conn = await Connection.open(host, port)
        try:
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                ok = await op(conn, next(counter))
                if ok:
                    result.latencies.append(time.perf_counter() - began)
                else:
                    result.errors += 1
        finally:
            conn.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    result.elapsed = time.perf_counter() - began
    return result


async def open_loop(host: str, port: int, op: Operation, *, rate: float, seconds: float) -> Result:
    """Start ``op`` at a fixed ``rate`` per second for ``seconds``; latency counts from the
    scheduled start, so queueing in the server is included (no coordinated omission)."""
    result = Result()
    idle: list[Connection] = []
    total = int(rate * seconds)
    began = time.perf_counter()

    async def one(i: int) -> None:
        scheduled = began + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        conn = idle.pop() if idle else await Connection.open(host, port)
        ok = await op(conn, next(_NUMBERS))
        if ok:
            result.latencies.append(time.perf_counter() - scheduled)
        else:
            result.errors += 1
        idle.append(conn)

    await asyncio.gather(*(one(i) for i in range(total)))
    result.elapsed = time.perf_counter() - began
    for conn in idle:
        conn.close()
    return result
