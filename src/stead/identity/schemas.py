"""Wire models of identity: tokens and login (docs/api.md), API clients, members,
invitations and environment access (docs/api.md, People)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr

from stead.wire import CI, NAME_MAX, Name, Timestamp, WireModel, check_text

_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,253}")
EMAIL_MAX = 254
PASSWORD_MIN = 12
PASSWORD_MAX = 1024


def check_email(value: str) -> str:
    """Validate an email address: ``local@domain``, at most 254 characters, no whitespace or
    control characters (RFC 5321 section 4.5.3.1 limits). Never trims.

    Raises:
        ValueError: not an email address.
    """
    check_text(value)
    if len(value) > EMAIL_MAX or not _EMAIL.fullmatch(value):
        raise ValueError("must be an email address such as ada@example.com")
    return value


Email = Annotated[str, Field(examples=["ada@example.com"]), AfterValidator(check_email)]
Password = Annotated[
    SecretStr,
    Field(
        min_length=PASSWORD_MIN,
        max_length=PASSWORD_MAX,
        description=f"{PASSWORD_MIN}-{PASSWORD_MAX} characters",
    ),
]
AccountRoleIn = Annotated[Literal["SUPER_ADMIN", "ADMIN", "MEMBER"], CI]
ProjectRoleIn = Annotated[Literal["OWNER", "CONTRIBUTOR", "VIEWER"], CI]
AccessLevelIn = Annotated[Literal["default", "admin", "runner", "readOnly", "noAccess"], CI]
DisplayName = Annotated[str, Field(min_length=1, max_length=NAME_MAX), AfterValidator(check_text)]


class TokenResponse(BaseModel):
    """OAuth 2.0 access token response (RFC 6749 section 5.1). ``refresh_token`` only for
    Stead's command line (``client_id=stead-cli``): the CLI grant's next refresh token."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str | None = None


class LoginRequest(WireModel):
    """``POST /v1/auth/login`` body."""

    email: Email
    password: SecretStr


class CliGrantRead(WireModel):
    """A CLI grant of the calling user (``stead login`` on one machine): never a token.

    ``method``: ``password`` (``stead login --email``) or ``browser`` (``stead login --sso``,
    approved in the console). ``lastUsedAt``: the latest token issue or refresh;
    ``expiresAt``: when it ends unless refreshed (30 days after the last refresh, 90 days
    after creation at most). ``current``: the grant of the token this request came with.
    """

    id: str
    name: str
    method: str
    created_at: Timestamp
    last_used_at: Timestamp
    expires_at: Timestamp
    current: bool = False


class PasswordChange(WireModel):
    """``POST /v1/users/me/password`` body (and the console's account form)."""

    current_password: SecretStr
    new_password: Password


class ApiClientCreate(WireModel):
    """``POST /v1/api-clients`` body."""

    name: Name
    role: AccountRoleIn


class ApiClientRead(WireModel):
    """An API client as read back: never its secret.

    ``clientId`` is what the token endpoint and ``/v1/api-clients/{clientId}`` take; ``id`` is
    the client's principal id, as project members and audit events name it.
    """

    id: str
    client_id: str
    name: str
    role: str
    revoked_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class ApiClientCreated(ApiClientRead):
    """An API client with its secret: the only response that shows it (create, rotate)."""

    client_secret: str


class UserRead(WireModel):
    """A user of the account as read back: never a password or a hash.

    ``locked``: failed logins lock the user out from at least one address now
    (``POST /v1/users/{userId}/unlock`` clears it). ``lastLoginAt``: the latest successful
    login, null before the first.
    """

    id: str
    email: str
    display_name: str
    role: str
    disabled: bool
    locked: bool
    last_login_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class UserUpdate(WireModel):
    """``PATCH /v1/users/{userId}`` body: what is left out stays as it is."""

    disabled: bool | None = None
    role: AccountRoleIn | None = None


class PasswordResetCreated(WireModel):
    """A password reset link made for a user (``POST /v1/users/{userId}/password-reset``).

    ``resetUrl`` (the console page ``/console/reset/<token>``) is shown in this response only;
    ``mailSent`` says whether it was also mailed to the user.
    """

    user_id: str
    email: str
    expires_at: Timestamp
    reset_url: str
    mail_sent: bool


class PasswordResetUse(WireModel):
    """``POST /v1/auth/password-reset`` body: the reset link's ``token`` (the last segment of
    its path) and the new ``password``."""

    token: SecretStr = Field(min_length=1, max_length=200)
    password: Password


class MemberRead(WireModel):
    """A project member: a user (``name`` is the email) or an API client."""

    principal_type: Literal["user", "api_client"]
    principal_id: str
    name: str
    project_role: str
    created_at: Timestamp
    updated_at: Timestamp


class MemberUpdate(WireModel):
    """``PATCH /v1/projects/{projectId}/members/{memberId}`` body."""

    project_role: ProjectRoleIn


class InvitationCreate(WireModel):
    """``POST /v1/projects/{projectId}/invitations`` body (docs/api.md, People).

    ``returnAcceptUrl``: hand the accept URL to the caller instead of mailing it (account
    Admins and Super Admins only; the only way to invite without a mail server).
    """

    email: Email
    project_role: ProjectRoleIn
    return_accept_url: bool = False


class InvitationRead(WireModel):
    """An invitation as read back: never its token."""

    id: str
    email: str
    project_role: str
    invited_by: str
    expires_at: Timestamp
    accepted_at: Timestamp | None
    created_at: Timestamp


class InvitationCreated(InvitationRead):
    """A new invitation. ``acceptUrl`` (the console page ``/console/invitations/<token>``) is
    returned only when an account Admin asked for it (``returnAcceptUrl``); otherwise it went
    out by mail to the invitee and ``acceptUrl`` is null."""

    mail_sent: bool
    accept_url: str | None


class InvitationAccept(WireModel):
    """``POST /v1/invitations/accept`` body: the invitation ``token`` (the last segment of
    the accept URL), and a password (and optionally a display name) for a new user; only the
    token when the email already belongs to a user, who must be logged in as that user."""

    token: SecretStr = Field(min_length=1, max_length=200)
    password: Password | None = None
    display_name: DisplayName | None = None


class InvitationAccepted(WireModel):
    """The membership an accepted invitation created."""

    user_id: str
    email: str
    project_id: str
    project_role: str
    user_created: bool


class EnvironmentAccessSet(WireModel):
    """``PUT .../environments/{environmentName}/access/{userId}`` body."""

    access_level: AccessLevelIn


class EnvironmentAccessRead(WireModel):
    """A user's own access level to an environment."""

    user_id: str
    email: str
    access_level: str
    created_at: Timestamp
    updated_at: Timestamp
