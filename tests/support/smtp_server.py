"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support.postgres import free_port


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
    """The running server: ``host``, ``port`` and its :class:`Mailbox`."""

    def __init__(self, host: str, port: int, mailbox: Mailbox) -> None:
        self.host, self.port, self.mailbox = host, port, mailbox

    def reset(self) -> None:
        self.mailbox.messages.clear()
        self.mailbox.refuse = False


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """An SMTP server for the whole test session (call ``reset()`` per test)."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer("127.0.0.1", port, mailbox)
    controller.stop()
