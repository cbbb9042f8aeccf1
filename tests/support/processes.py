"""Start and stop a test server process on 127.0.0.1, waiting until it answers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from stead.tls import client_context

START_TIMEOUT = 30.0


@contextmanager
def server_process(
    cmd: Sequence[str], *, ready_url: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (output to ``log``) until ``GET ready_url`` answers below 500; stop it after.

    Raises:
        RuntimeError: with the log's tail when the process exits or is not ready in 30 s.
    """
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=1.0, verify=client_context()) as http:
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{cmd[0]} did not start:\n{tail}")
                try:
                    if http.get(ready_url).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
