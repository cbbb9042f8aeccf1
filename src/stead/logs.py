"""Structured logging (structlog, JSON lines on stderr) with a redacting processor.

Secrets never reach a log line: values under secret-like keys are replaced, and any string that
looks like a bearer token, a JWT or a PEM private key, or that holds a secret value this process
has handled (see :func:`remember_secret`), is masked wherever it appears.

The process-wide list of handled secrets masks log lines only, which operators read. Text that
goes back to a caller is masked with :func:`redact_text` and the secrets of that caller's own
request: were it masked with everyone's, a caller could learn whether a string it sent is
someone else's secret by watching it turn into ``[REDACTED]``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

REDACTED = "[REDACTED]"

#: Loggers of the secret stores' SDKs, the warehouse drivers and their HTTP stack. At DEBUG some
#: write request and response bodies (botocore does; a store's answer holds the secret), so they
#: stay at WARNING whatever the configured level; so does Alembic's chatter (``stead serve`` logs
#: the migrations it applied).
WIRE_LOGGERS = (
    "alembic",
    "boto3",
    "botocore",
    "urllib3",
    "hvac",
    "azure",
    "msal",
    "google",
    "snowflake",
    "redshift_connector",
)

_SECRET_KEY = re.compile(
    r"(pass(word|phrase)?|secret|token|authorization|private_?key|api_?key|credential|cookie|pat)$",
    re.IGNORECASE,
)
_SECRET_TEXT = [
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # a JWT
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
]


#: Shorter values are not remembered: masking them would blank out ordinary words.
KNOWN_SECRET_MIN = 8
#: How many of the most recently handled secret values are remembered.
KNOWN_SECRET_MAX = 1000


class _KnownSecrets:
    """The secret values this process has handled (the :data:`KNOWN_SECRET_MAX` most recent),
    indexed by their first :data:`KNOWN_SECRET_MIN` characters.

    Remembering a value costs the same however many are remembered, and masking a text looks up
    each of its positions once. One regular expression of every value, compiled again for each
    new one, took half a second of CPU per new value once a thousand were remembered.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[str, None] = OrderedDict()
        # The values that start with each prefix, longest first. Each bucket is a tuple that
        # add() replaces whole, so that mask() reads the index without the lock.
        self._by_prefix: dict[str, tuple[str, ...]] = {}

    def add(self, value: str) -> None:
        if len(value) < KNOWN_SECRET_MIN:
            return
        with self._lock:
            if value in self._values:
                self._values.move_to_end(value)
                return
            self._values[value] = None
            self._index(value, keep=True)
            if len(self._values) > KNOWN_SECRET_MAX:
                oldest, _ = self._values.popitem(last=False)
                self._index(oldest, keep=False)

    def _index(self, value: str, *, keep: bool) -> None:
        prefix = value[:KNOWN_SECRET_MIN]
        bucket = [known for known in self._by_prefix.get(prefix, ()) if known != value]
        if keep:
            bucket.append(value)
        if bucket:
            self._by_prefix[prefix] = tuple(sorted(bucket, key=len, reverse=True))
        else:
            self._by_prefix.pop(prefix, None)

    def mask(self, text: str) -> str:
        """``text`` with each remembered value in it replaced by :data:`REDACTED`, from the left;
        where several start at one place, the longest (so a value that contains another is
        masked whole)."""
        index = self._by_prefix
        if not index or len(text) < KNOWN_SECRET_MIN:
            return text
        parts: list[str] = []
        start = position = 0
        last = len(text) - KNOWN_SECRET_MIN
        while position <= last:
            for value in index.get(text[position : position + KNOWN_SECRET_MIN], ()):
                if text.startswith(value, position):
                    parts += (text[start:position], REDACTED)
                    position = start = position + len(value)
                    break
            else:
                position += 1
        if not parts:
            return text
        parts.append(text[start:])
        return "".join(parts)


_known = _KnownSecrets()


def remember_secret(value: str) -> None:
    """Mask ``value`` in every later log line of this process (values of at least
    :data:`KNOWN_SECRET_MIN` characters; the :data:`KNOWN_SECRET_MAX` most recent are kept)."""
    _known.add(value)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask bearer tokens, JWTs, PEM private keys and each value of ``secrets`` (whatever its
    length, the longest first) inside ``text``.

    Nothing else is masked: the result depends only on ``text`` and ``secrets``, so it can go
    back to the caller that supplied ``secrets`` without revealing anyone else's.
    """
    given = sorted({s for s in secrets if s}, key=len, reverse=True)
    if given:
        text = re.sub("|".join(map(re.escape, given)), REDACTED, text)
    for pattern in _SECRET_TEXT:
        text = pattern.sub(REDACTED, text)
    return text


def redact_log_text(text: str) -> str:
    """:func:`redact_text` plus every secret value this process remembers (log lines only)."""
    return redact_text(_known.mask(text))


def _redact(value: Any, key: str = "") -> Any:
    if key and _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_log_text(value)
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_processor(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop secret-named fields and mask secret-looking text."""
    return {k: _redact(v, k if k != "event" else "") for k, v in event.items()}


def configure_logging(level: str = "INFO") -> None:
    """Route structlog and the standard library's logging through one redacting JSON renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Stead's own access log (stead.pipeline.middleware) is the only one: uvicorn's would repeat
    # every request, with the tokens of console token paths unredacted.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers[:] = []
    uvicorn_access.propagate = False
