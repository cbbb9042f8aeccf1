"""Benchmark: the cost of log redaction's remembered secret values (``stead.logs``).

With ``KNOWN_SECRET_MAX`` values remembered (a third of them PEM private keys, the rest 40- to
60-character tokens, as a long-running server collects them), it measures:

* remember: CPU per new value (each one evicts the oldest), in microseconds;
* mask: CPU per access-log-sized text (about 200 characters) and per 4 KiB text, with and
  without a remembered value in it, in microseconds.

Run from the repository root: ``.venv/bin/python bench/redaction.py``.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stead.logs import KNOWN_SECRET_MAX, _KnownSecrets  # noqa: E402


def _value(number: int) -> str:
    if number % 3 == 0:
        body = secrets.token_urlsafe(1200)
        return f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"
    return secrets.token_urlsafe(30 + number % 15)


def _per_call(call: Callable[[], object], times: int) -> float:
    """CPU microseconds per call of ``call``."""
    started = time.process_time()
    for _ in range(times):
        call()
    return (time.process_time() - started) / times * 1e6


def main() -> None:
    known = _KnownSecrets()
    for number in range(KNOWN_SECRET_MAX):
        known.add(_value(number))
    fresh = [_value(number) for number in range(1, 601)]
    started = time.process_time()
    for value in fresh:
        known.add(value)
    remember = (time.process_time() - started) / len(fresh) * 1e6
    line = (
        '{"method": "POST", "path": "/v1/projects/a72df47d-74b7-4474-8571-edfa72fae0a8/secrets",'
        ' "status": 201, "duration_ms": 15.64, "request_id": "366f5ebc08da4113a80cc100fe07c9f5"}'
    )
    big = (line * 25)[:4096]
    print(f"values remembered: {KNOWN_SECRET_MAX}")
    print(f"remember a new value: {remember:10.1f} us")
    for name, text in (("access line", line), ("4 KiB text", big)):
        print(f"mask {name}, clean:   {_per_call(lambda t=text: known.mask(t), 2000):8.1f} us")
        dirty = text + " " + fresh[-1]
        print(f"mask {name}, a value: {_per_call(lambda t=dirty: known.mask(t), 2000):8.1f} us")


if __name__ == "__main__":
    main()
