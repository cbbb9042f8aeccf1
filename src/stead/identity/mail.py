"""Mail over SMTP (RFC 5321), when a mail server is configured: invitations and password
reset links."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from stead.errors import UpstreamError, UpstreamTimeout
from stead.settings import Settings

#: The port of each ``smtp_security`` mode when ``smtp_port`` is 0: submission with STARTTLS
#: (RFC 6409), submissions with implicit TLS (RFC 8314 section 7.3), and SMTP relay.
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


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
    """Mail an invitation to ``to``: who invites them, into which project and role, the link
    of the console page that accepts it (``accept_url``) and when it expires.

    The link holds the invitation token: it goes only into the mail body, never into a log line.

    Raises:
        UpstreamTimeout, UpstreamError: as :func:`send`.
    """
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = f"You are invited to the project {project_name} on Stead"
    message.set_content(
        f"{inviter} invites you to the project {project_name} as {project_role}.\n\n"
        f"To accept, open this link:\n\n    {accept_url}\n\n"
        "There you choose a password, or log in if you already have a Stead user with this "
        "address.\n\n"
        f"The link can be used once and expires at {expires}.\n"
    )
    send(settings, message)


def send_password_reset(
    settings: Settings, *, to: str, admin: str, reset_url: str, expires: str
) -> None:
    """Mail ``to`` the password reset link ``reset_url`` that account admin ``admin`` made.

    The link holds the reset token: it goes only into the mail body, never into a log line.

    Raises:
        UpstreamTimeout, UpstreamError: as :func:`send`.
    """
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = "Set a new password for Stead"
    message.set_content(
        f"{admin} has reset the password of your Stead user {to}: you have been signed out "
        "everywhere.\n\n"
        f"To choose a new password, open this link:\n\n    {reset_url}\n\n"
        f"The link can be used once and expires at {expires}. If you did not expect this, "
        "tell your Stead administrator.\n"
    )
    send(settings, message)


def send(settings: Settings, message: EmailMessage) -> None:
    """Send ``message`` (From ``settings.smtp_from``) through ``settings.smtp_host``.

    The session is encrypted as ``smtp_security`` says: STARTTLS (RFC 3207; refused when the
    server does not offer it), implicit TLS (RFC 8314) or, only when set to ``none``, plain
    text. The server's certificate and host name are verified against ``smtp_ca_bundle`` or the
    system's trust store. Login when ``smtp_username`` is set, after TLS.

    Raises:
        UpstreamTimeout: the mail server did not answer within ``upstream_timeout_seconds``.
        UpstreamError: the mail server refused the connection, TLS, the login or the message,
            or does not offer STARTTLS.
    """
    message["From"] = settings.smtp_from
    security = settings.smtp_security
    port = settings.smtp_port or DEFAULT_PORTS[security]
    timeout = settings.upstream_timeout_seconds
    context = ssl.create_default_context(cafile=settings.smtp_ca_bundle or None)
    try:
        connection: smtplib.SMTP
        if security == "tls":
            connection = smtplib.SMTP_SSL(
                settings.smtp_host, port, timeout=timeout, context=context
            )
        else:
            connection = smtplib.SMTP(settings.smtp_host, port, timeout=timeout)
        with connection as smtp:
            if security == "starttls":
                smtp.starttls(context=context)
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except TimeoutError:
        raise UpstreamTimeout("The mail server did not answer in time") from None
    except smtplib.SMTPNotSupportedError:
        raise UpstreamError(
            "The mail server does not offer STARTTLS; the mail was not sent "
            "(STEAD_SMTP_SECURITY=tls for implicit TLS, or none for a trusted local relay)"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise UpstreamError(
            f"The mail could not be sent ({type(exc).__name__})"
        ) from None
