"""Invitation mail over SMTP (RFC 5321), when a mail server is configured."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from stead.errors import UpstreamError, UpstreamTimeout
from stead.settings import Settings


def send_invitation(
    settings: Settings,
    *,
    to: str,
    project_name: str,
    project_role: str,
    inviter: str,
    accept_url: str,
    expires: str,
) -> None:
    """Send an invitation to ``to`` through ``settings.smtp_host``.

    STARTTLS (verified against the system's trust store) when ``smtp_starttls``; login when
    ``smtp_username`` is set. The accept URL holds the invitation token: it goes only into the
    mail body, never into a log line.

    Raises:
        UpstreamTimeout: the mail server did not answer within ``upstream_timeout_seconds``.
        UpstreamError: the mail server refused the connection, the login or the message.
    """
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = f"You are invited to the project {project_name} on Stead"
    message.set_content(
        f"{inviter} invites you to the project {project_name} as {project_role}.\n\n"
        f"To accept, send a POST request to\n\n    {accept_url}\n\n"
        'with the JSON body {"password": "<a password of at least 12 characters>"} '
        "(or the body {} if you already have a Stead user with this address).\n\n"
        f"The invitation can be used once and expires at {expires}.\n"
    )
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.upstream_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except TimeoutError:
        raise UpstreamTimeout("The mail server did not answer in time") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise UpstreamError(
            f"The invitation mail could not be sent ({type(exc).__name__})"
        ) from None
