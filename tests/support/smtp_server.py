"""Real SMTP servers on 127.0.0.1 (aiosmtpd) that keep every message they receive: one that
requires STARTTLS, one with implicit TLS, and one in plain text, all with a self-signed
certificate for 127.0.0.1 (``cert``, also the CA bundle to trust)."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support.postgres import free_port
from tests.support.tls import self_signed


class Mailbox:
    """Messages received by the SMTP server, oldest first; ``refuse`` makes it answer 554."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse:
            return "554 5.7.1 Message refused"
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


class SmtpServer:
    """The running server: ``host``, ``port``, its :class:`Mailbox`, its ``security``
    (``starttls``, ``tls`` or ``none``) and the CA bundle that verifies it (``cert``)."""

    def __init__(self, host: str, port: int, mailbox: Mailbox, security: str, cert: Path) -> None:
        self.host, self.port, self.mailbox = host, port, mailbox
        self.security, self.cert = security, cert

    def reset(self) -> None:
        self.mailbox.messages.clear()
        self.mailbox.refuse = False

    def settings(self) -> dict[str, Any]:
        """Settings that send mail to this server, trusting its certificate."""
        return {
            "smtp_host": self.host,
            "smtp_port": self.port,
            "smtp_security": self.security,
            "smtp_ca_bundle": str(self.cert),
        }


@pytest.fixture(scope="session")
def smtp_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SmtpServer]]:
    """Three SMTP servers for the whole test session, by security: ``starttls`` (STARTTLS
    required before any mail), ``tls`` (implicit TLS) and ``none`` (no TLS offered)."""
    certificate = self_signed(tmp_path_factory.mktemp("smtp-tls"))
    context = certificate.server_context()
    options: dict[str, dict[str, Any]] = {
        "starttls": {"tls_context": context, "require_starttls": True},
        "tls": {"ssl_context": context},
        "none": {},
    }
    servers, controllers = {}, []
    for security, kwargs in options.items():
        mailbox, port = Mailbox(), free_port()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        servers[security] = SmtpServer("127.0.0.1", port, mailbox, security, certificate.cert)
    yield servers
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_server(smtp_servers: dict[str, SmtpServer]) -> SmtpServer:
    """The STARTTLS server, emptied."""
    server = smtp_servers["starttls"]
    server.reset()
    return server
