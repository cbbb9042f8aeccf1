"""SCIM rules: users and groups as an identity provider sees them (RFC 7643, RFC 7644;
docs/scim.md). Its bearer tokens are :mod:`stead.scim.tokens`.

Payloads are read, checked and written with ``scim2-models``: its models (``User`` with the
``EnterpriseUser`` extension, ``Group``), its PATCH engine and its filter parser. Errors are its
``SCIMException``\\ s (each carries the RFC 7644 section 3.12 ``scimType``), which the routes
render as SCIM error bodies.

Every account user is a SCIM ``User``: one the identity provider wrote has a
:class:`~stead.scim.models.ScimUser` row (its ``userName``, ``externalId`` and attributes); any
other is shown with its email as ``userName``, so a provider can find and link it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    GroupMember,
    InvalidFilterException,
    InvalidValueException,
    ListResponse,
    NotFoundException,
    Pagination,
    Patch,
    PatchOp,
    ResourceType,
    ScimFilter,
    ScimPolicy,
    ScimProvider,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    UniquenessException,
    User,
)
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from stead import audit
from stead.db import utcnow
from stead.identity import users as user_admin
from stead.identity.actor import Actor
from stead.identity.models import ProjectMember
from stead.identity.models import User as SteadUser
from stead.identity.schemas import check_email
from stead.identity.service import create_user, email_key, find_user, get_account
from stead.scim.models import ScimGroup, ScimGroupMember, ScimUser
from stead.wire import name_key

#: The SCIM resource of a user: the core schema with the enterprise extension (RFC 7643 4.3).
UserResource = User[EnterpriseUser]

#: What Stead tolerates from identity providers (scim2-models ``ScimPolicy``): attributes of
#: schemas it does not publish are dropped rather than refused; a PATCH ``remove`` with a
#: ``value`` removes that value, and an ``add``/``replace`` whose path filter matches no entry
#: creates it (both as Microsoft Entra ID sends them, "Known issues" of its SCIM docs).
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)

#: The largest page a list returns (``count`` above it is lowered to it; RFC 7644 3.4.2.4).
MAX_RESULTS = 1000

#: Set the account role and project memberships of ``user`` from the names of their SCIM
#: groups (``STEAD_OIDC_GROUP_ROLES``, docs/scim.md "Groups and roles").
RoleSync = Callable[[Session, SteadUser, list[str], Actor], None]


# --- discovery ---------------------------------------------------------------------------------


def provider(*, documentation_uri: str | None = None) -> ScimProvider:
    """What ``/ServiceProviderConfig``, ``/ResourceTypes`` and ``/Schemas`` publish
    (RFC 7644 section 4): Users (with the enterprise extension) and Groups; PATCH and filters
    supported (at most :data:`MAX_RESULTS` results a page); no bulk, sort, ETag preconditions
    or password change; authentication by bearer token."""
    config = ServiceProviderConfig(
        documentation_uri=documentation_uri,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        pagination=Pagination(cursor=False, index=True, default_page_size=100),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="A SCIM token made by an account admin (stead admin scim-token, "
                "/v1/scim-tokens or the console), sent as Authorization: Bearer <token>",
                primary=True,
            )
        ],
    )
    return ScimProvider(
        models=[User, EnterpriseUser, Group],
        resource_types=[
            ResourceType.from_resource(UserResource),
            ResourceType.from_resource(Group),
        ],
        config=config,
        policy=POLICY,
    )


# --- filters -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A filterable attribute: its SQL expression and how it compares (``text``: case-
    insensitive, the expression is already lower-case; ``exact``: case-sensitive; ``bool``).
    ``equals``, when given, builds the ``eq`` clause (one that can use an index)."""

    expression: ColumnElement[Any] | InstrumentedAttribute[Any]
    kind: str
    equals: Callable[[str], ColumnElement[bool]] | None = None


#: The attribute names of the filter columns as RFC 7643 spells them (the columns' keys are
#: lower-case, as attribute names are case-insensitive: RFC 7643 section 2.1).
_SCIM_SPELLING = {"username": "userName", "externalid": "externalId", "displayname": "displayName"}

_ORDER_OPERATORS = frozenset(
    {CompareOperator.gt, CompareOperator.ge, CompareOperator.lt, CompareOperator.le}
)


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlFilter(FilterVisitor[ColumnElement[bool]]):
    """A parsed SCIM filter (RFC 7644 section 3.4.2.2) as a SQL ``WHERE`` clause over the
    attributes of ``columns`` (lower-case attribute path -> :class:`Column`).

    Operators ``eq``, ``ne``, ``co``, ``sw``, ``ew``, ``pr``, ``and``, ``or``, ``not`` and
    value paths (``emails[value eq "x"]``) are supported; ``gt``/``ge``/``lt``/``le`` and any
    attribute not in ``columns`` raise ``InvalidFilterException`` (400 ``invalidFilter``).
    """

    def __init__(self, columns: dict[str, Column], prefix: str = "") -> None:
        self.columns = columns
        self.prefix = prefix

    def _column(self, path: AttrPath) -> Column:
        given = self.prefix + path.attr + (f".{path.sub_attr}" if path.sub_attr else "")
        column = self.columns.get(given.lower())
        if column is None:
            supported = ", ".join(
                sorted((_SCIM_SPELLING.get(k, k) for k in self.columns), key=str.lower)
            )
            raise InvalidFilterException(
                detail=f"Filtering on {given!r} is not supported; supported: {supported}"
            )
        return column

    def visit_comparison(self, node: Comparison) -> ColumnElement[bool]:
        column = self._column(node.attr_path)
        op, value = node.op, node.value
        if op in _ORDER_OPERATORS:
            raise InvalidFilterException(detail=f"The operator {op.value!r} is not supported")
        if column.kind == "bool":
            if op not in (CompareOperator.eq, CompareOperator.ne) or not isinstance(value, bool):
                raise InvalidFilterException(
                    detail=f"{node.attr_path} compares only with eq or ne and true or false"
                )
            wanted = value if op == CompareOperator.eq else not value
            return column.expression == true() if wanted else not_(column.expression)
        if not isinstance(value, str):
            raise InvalidFilterException(detail=f"{node.attr_path} compares with a string")
        expression = column.expression
        if column.kind == "text":
            value = name_key(value)
        if op == CompareOperator.eq:
            return column.equals(value) if column.equals else expression == value
        if op == CompareOperator.ne:
            return or_(expression != value, expression.is_(None))
        pattern = {
            CompareOperator.co: f"%{_like(value)}%",
            CompareOperator.sw: f"{_like(value)}%",
            CompareOperator.ew: f"%{_like(value)}",
        }[op]
        return expression.like(pattern, escape="\\")

    def visit_present(self, node: Present) -> ColumnElement[bool]:
        column = self._column(node.attr_path)
        if column.kind == "bool":
            return true()
        return and_(column.expression.is_not(None), column.expression != "")

    def visit_not(self, node: Not) -> ColumnElement[bool]:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> ColumnElement[bool]:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_value_path(self, node: ValuePath) -> ColumnElement[bool]:
        inner = SqlFilter(self.columns, prefix=f"{self.prefix}{node.attr_path.attr.lower()}.")
        return inner.visit(node.val_filter)


_USER_NAME = func.coalesce(ScimUser.user_name_key, SteadUser.email_key)
USER_COLUMNS: dict[str, Column] = {
    "id": Column(SteadUser.id, "exact"),
    "username": Column(
        _USER_NAME,
        "text",
        # The provider's userName, or the email of a user it never wrote: two index probes.
        equals=lambda value: or_(
            SteadUser.id.in_(select(ScimUser.user_id).where(ScimUser.user_name_key == value)),
            and_(SteadUser.email_key == value, ScimUser.user_id.is_(None)),
        ),
    ),
    "emails": Column(SteadUser.email_key, "text"),
    "emails.value": Column(SteadUser.email_key, "text"),
    "externalid": Column(ScimUser.external_id, "exact"),
    "displayname": Column(func.lower(SteadUser.display_name), "text"),
    "active": Column(SteadUser.disabled_at.is_(None), "bool"),
}
_MEMBER = select(ScimGroupMember.id).where(ScimGroupMember.group_id == ScimGroup.id)
GROUP_COLUMNS: dict[str, Column] = {
    "id": Column(ScimGroup.id, "exact"),
    "displayname": Column(ScimGroup.display_name_key, "text"),
    "externalid": Column(ScimGroup.external_id, "exact"),
}


def _group_where(expression: ScimFilter[Any] | None) -> ColumnElement[bool]:
    if expression is None:
        return true()
    return _GroupFilter(GROUP_COLUMNS).visit(expression.ast)


class _GroupFilter(SqlFilter):
    """:class:`SqlFilter` for groups, where ``members`` / ``members.value`` compare the
    member user ids (``eq`` only) and ``members pr`` tells a group with members."""

    def _members(self, path: AttrPath) -> bool:
        name = self.prefix + path.attr.lower()
        if path.sub_attr:
            name += "." + path.sub_attr.lower()
        return name in ("members", "members.value")

    def visit_comparison(self, node: Comparison) -> ColumnElement[bool]:
        if not self._members(node.attr_path):
            return super().visit_comparison(node)
        if node.op != CompareOperator.eq or not isinstance(node.value, str):
            raise InvalidFilterException(detail="members compares only with eq and a user id")
        return _MEMBER.where(ScimGroupMember.user_id == node.value).exists()

    def visit_present(self, node: Present) -> ColumnElement[bool]:
        if not self._members(node.attr_path):
            return super().visit_present(node)
        return _MEMBER.exists()

    def visit_value_path(self, node: ValuePath) -> ColumnElement[bool]:
        if node.attr_path.attr.lower() != "members":
            return super().visit_value_path(node)
        inner = _GroupFilter(self.columns, prefix="members.")
        return inner.visit(node.val_filter)


def _page(search: SearchRequest[Any]) -> tuple[int, int]:
    """``(offset, limit)`` of a search's ``startIndex`` (1-based; below 1 is 1) and ``count``
    (negative is 0; above :data:`MAX_RESULTS` is that; RFC 7644 section 3.4.2.4)."""
    start = max(1, search.start_index or 1)
    count = search.count if search.count is not None else 100
    return start - 1, max(0, min(count, MAX_RESULTS))


# --- users -------------------------------------------------------------------------------------


def _location(base_url: str, kind: str, resource_id: str) -> str:
    return f"{base_url}/{kind}/{resource_id}"


def _version(*stamps: Any) -> str:
    latest = max(stamp for stamp in stamps if stamp is not None)
    return f'W/"{int(latest.timestamp() * 1000)}"'


def _user_groups(session: Session, user_ids: list[str]) -> dict[str, list[ScimGroup]]:
    groups: dict[str, list[ScimGroup]] = {user_id: [] for user_id in user_ids}
    rows = session.execute(
        select(ScimGroupMember.user_id, ScimGroup)
        .join(ScimGroup, ScimGroup.id == ScimGroupMember.group_id)
        .where(ScimGroupMember.user_id.in_(user_ids))
        .order_by(ScimGroup.display_name_key)
    )
    for user_id, group in rows:
        groups[user_id].append(group)
    return groups


def user_resource(
    user: SteadUser, row: ScimUser | None, groups: list[ScimGroup], *, base_url: str
) -> UserResource:
    """The SCIM ``User`` of a Stead user: what the identity provider wrote (``row``), or, for
    a user Stead made otherwise, its email as ``userName`` and only email; ``active`` is
    ``not disabled``; ``groups`` its SCIM groups (read-only)."""
    if row is not None:
        document: dict[str, Any] = dict(row.attributes)
        document["userName"] = row.user_name
        document["externalId"] = row.external_id
        modified = _version(user.updated_at, row.updated_at)
    else:
        document = {
            "schemas": [str(User.__schema__)],
            "userName": user.email,
            "displayName": user.display_name,
            "emails": [{"value": user.email, "primary": True}],
        }
        modified = _version(user.updated_at)
    document["id"] = user.id
    document["active"] = user.disabled_at is None
    document["groups"] = [
        {
            "value": group.id,
            "display": group.display_name,
            "$ref": _location(base_url, "Groups", group.id),
            "type": "direct",
        }
        for group in groups
    ]
    last = max(user.updated_at, row.updated_at) if row is not None else user.updated_at
    document["meta"] = {
        "resourceType": "User",
        "created": user.created_at.isoformat(),
        "lastModified": last.isoformat(),
        "location": _location(base_url, "Users", user.id),
        "version": modified,
    }
    return UserResource.model_validate(document, scim_policy=POLICY)


def _user_query(actor: Actor) -> Select[SteadUser, ScimUser]:
    # The account is compared through an expression, not the bare indexed column: an
    # installation has one account, whose index would select every user and keep SQLite from
    # probing the indexes a filter names (userName eq: 2 probes instead of a scan).
    return (
        select(SteadUser, ScimUser)
        .outerjoin(ScimUser, ScimUser.user_id == SteadUser.id)
        .where(func.lower(SteadUser.account_id) == actor.account_id.lower())
    )


def search_users(
    session: Session, *, actor: Actor, search: SearchRequest[Any], base_url: str
) -> ListResponse[Any]:
    """One page of the account's users matching the search's ``filter`` (see
    :data:`USER_COLUMNS` for the attributes), oldest first.

    Raises:
        InvalidFilterException: the filter uses an attribute or operator Stead does not.
    """
    query = _user_query(actor)
    if search.filter is not None:
        query = query.where(SqlFilter(USER_COLUMNS).visit(search.filter.ast))
    offset, limit = _page(search)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(
        session.execute(
            query.order_by(SteadUser.created_at, SteadUser.id).offset(offset).limit(limit)
        )
    )
    groups = _user_groups(session, [user.id for user, _ in rows])
    resources = [user_resource(user, row, groups[user.id], base_url=base_url) for user, row in rows]
    return ListResponse[UserResource](
        total_results=total,
        start_index=offset + 1,
        items_per_page=len(resources),
        resources=resources,
    )


def get_user(session: Session, *, actor: Actor, user_id: str) -> tuple[SteadUser, ScimUser | None]:
    """The account's user ``user_id`` and its SCIM row (None for a user SCIM never wrote).

    Raises:
        NotFoundException: no such user (404).
    """
    found = session.execute(_user_query(actor).where(SteadUser.id == user_id)).first()
    if found is None:
        raise NotFoundException(detail=f"User {user_id} not found")
    user, row = found
    return user, row


def read_user(session: Session, *, actor: Actor, user_id: str, base_url: str) -> UserResource:
    """The SCIM ``User`` ``user_id`` (:func:`user_resource`).

    Raises:
        NotFoundException: no such user (404).
    """
    user, row = get_user(session, actor=actor, user_id=user_id)
    return user_resource(user, row, _user_groups(session, [user.id])[user.id], base_url=base_url)


def _email_of(resource: UserResource) -> str:
    """The Stead email (the login) of a SCIM user: ``userName`` when it is an email address,
    else its primary email (or first email) that is one, else ``userName`` as it is (such a
    user has no address Stead can mail, and SSO cannot link to them by email).

    Raises:
        InvalidValueException: ``userName`` is missing or longer than 320 characters.
    """
    user_name = (resource.user_name or "").strip()
    if not user_name or len(user_name) > 320:
        raise InvalidValueException(detail="userName must be 1-320 characters")
    emails = sorted(resource.emails or [], key=lambda email: not email.primary)
    for candidate in [user_name, *(str(email.value) for email in emails if email.value)]:
        try:
            return check_email(candidate.strip())
        except ValueError:
            continue
    return user_name


def _display_name(resource: UserResource, email: str) -> str:
    name = resource.name
    parts = [name.given_name, name.family_name] if name else []
    candidates = [
        resource.display_name,
        name.formatted if name else None,
        " ".join(part for part in parts if part),
        email.split("@", 1)[0],
    ]
    return next(candidate for candidate in candidates if candidate)[:255]


def _stored_attributes(resource: UserResource) -> dict[str, Any]:
    """What is kept of a user resource: all but ``id``, ``meta``, ``groups``, ``active``
    (Stead's own state) and ``password`` (never kept: people sign in with SSO)."""
    document = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    for key in ("id", "meta", "groups", "active", "userName", "externalId", "password"):
        document.pop(key, None)
    return document


def _external_id(value: str | None) -> str | None:
    """``externalId`` as stored.

    Raises:
        InvalidValueException: longer than 255 characters.
    """
    if value is not None and len(value) > 255:
        raise InvalidValueException(detail="externalId must be at most 255 characters")
    return value


def _check_unique(session: Session, *, user: SteadUser | None, user_name: str, email: str) -> None:
    taken = session.scalars(
        select(ScimUser.user_id).where(ScimUser.user_name_key == name_key(user_name))
    ).first()
    if taken is not None and (user is None or taken != user.id):
        raise UniquenessException(detail=f"A user with userName {user_name!r} already exists")
    other = find_user(session, email=email)
    if other is not None and (user is None or other.id != user.id):
        raise UniquenessException(detail=f"A user with email {email!r} already exists")
    if user_name != email and user is None:
        other = find_user(session, email=user_name)
        if other is not None:
            raise UniquenessException(detail=f"A user with userName {user_name!r} already exists")


def create_scim_user(
    session: Session, *, actor: Actor, resource: UserResource, role_sync: RoleSync
) -> SteadUser:
    """Create a user from a SCIM ``POST /Users`` (RFC 7644 section 3.3).

    The user's email is :func:`_email_of`; it gets the account role ``MEMBER``, no project and
    no usable password (they sign in with SSO, or an admin sends a password reset). The
    identity provider's allowed-domain rule for SSO does not apply. ``active: false`` creates
    the user disabled. Audited as ``scim.user_created``.

    Raises:
        UniquenessException: the ``userName`` or email is taken (409 ``uniqueness``).
        InvalidValueException: no ``userName`` (400 ``invalidValue``).
    """
    email = _email_of(resource)
    user_name = resource.user_name or email
    _check_unique(session, user=None, user_name=user_name, email=email)
    user = create_user(
        session,
        email=email,
        password=None,
        display_name=_display_name(resource, email),
        role="MEMBER",
    )
    if resource.active is False:
        user.disabled_at = utcnow()
    session.add(
        ScimUser(
            user_id=user.id,
            user_name=user_name,
            user_name_key=name_key(user_name),
            external_id=_external_id(resource.external_id),
            attributes=_stored_attributes(resource),
        )
    )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="scim.user_created",
        target_type="user",
        target_id=user.id,
        details={
            "userName": user_name,
            "email": email,
            "externalId": resource.external_id,
            "active": resource.active is not False,
        },
    )
    return user


def _write_user(
    session: Session,
    *,
    actor: Actor,
    user: SteadUser,
    row: ScimUser | None,
    resource: UserResource,
    action: str,
) -> None:
    """Make ``user`` what ``resource`` says (a PUT, or a PATCH applied to the current one)."""
    email = _email_of(resource)
    user_name = resource.user_name or email
    _check_unique(session, user=user, user_name=user_name, email=email)
    if row is None:
        row = ScimUser(user_id=user.id, user_name=user_name, user_name_key=name_key(user_name))
        session.add(row)
    previous_email = user.email
    if email_key(email) != user.email_key or email != user.email:
        user.email, user.email_key = email, email_key(email)
    user.display_name = _display_name(resource, email)
    row.user_name, row.user_name_key = user_name, name_key(user_name)
    row.external_id = _external_id(resource.external_id)
    row.attributes = _stored_attributes(resource)
    row.updated_at = utcnow()  # also when only the attributes changed
    session.flush()
    if resource.active is not None and resource.active != (user.disabled_at is None):
        # Disabling signs the user out everywhere at once (docs/scim.md, "Deactivation").
        user_admin.update_user(
            session, actor=actor, user=user, disabled=not resource.active, role=None
        )
    details: dict[str, Any] = {"userName": user_name, "email": email}
    if previous_email != email:
        details["previousEmail"] = previous_email
    if resource.active is not None:
        details["active"] = resource.active
    audit.record(
        session, actor=actor, action=action, target_type="user", target_id=user.id, details=details
    )


def replace_user(
    session: Session, *, actor: Actor, user: SteadUser, row: ScimUser | None, resource: UserResource
) -> None:
    """Replace a user from a SCIM ``PUT`` (RFC 7644 section 3.5.1): attributes left out are
    cleared, except ``active``, which stays as it is when left out. Audited as
    ``scim.user_replaced`` (and ``user.disabled``/``user.enabled`` when ``active`` changes).

    Raises:
        UniquenessException, InvalidValueException: as :func:`create_scim_user`.
        PermissionDenied: the user is a Super Admin and ``active`` would change.
    """
    _write_user(
        session, actor=actor, user=user, row=row, resource=resource, action="scim.user_replaced"
    )


def patch_user(
    session: Session,
    *,
    actor: Actor,
    user: SteadUser,
    row: ScimUser | None,
    patch: PatchOp[Any],
    base_url: str,
) -> None:
    """Apply a SCIM ``PATCH`` (RFC 7644 section 3.5.2) to a user, all operations or none,
    with :data:`POLICY`'s tolerances. Audited as ``scim.user_patched``.

    Raises:
        SCIMException: an operation is invalid (``invalidPath``, ``noTarget``,
            ``mutability``, ``invalidValue``), or as :func:`replace_user`.
    """
    current = user_resource(user, row, [], base_url=base_url)
    with POLICY:
        patch.patch(current)
    current.groups = None
    _write_user(
        session, actor=actor, user=user, row=row, resource=current, action="scim.user_patched"
    )


def delete_scim_user(session: Session, *, actor: Actor, user: SteadUser) -> None:
    """Delete a user on a SCIM ``DELETE`` (RFC 7644 section 3.6): they are disabled and signed
    out everywhere first (:func:`stead.identity.users.update_user`), then the user, their
    project memberships, group memberships and SCIM attributes are deleted; the audit trail
    keeps their history (``scim.user_deleted``).

    Raises:
        PermissionDenied: the user is a Super Admin.
    """
    if user.disabled_at is None:
        user_admin.update_user(session, actor=actor, user=user, disabled=True, role=None)
    session.execute(
        delete(ProjectMember).where(
            ProjectMember.principal_type == "user", ProjectMember.principal_id == user.id
        )
    )
    details = {"email": user.email}
    session.delete(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="scim.user_deleted",
        target_type="user",
        target_id=user.id,
        details=details,
    )


# --- groups ------------------------------------------------------------------------------------


def _group_members(session: Session, group_ids: list[str]) -> dict[str, list[SteadUser]]:
    members: dict[str, list[SteadUser]] = {group_id: [] for group_id in group_ids}
    rows = session.execute(
        select(ScimGroupMember.group_id, SteadUser)
        .join(SteadUser, SteadUser.id == ScimGroupMember.user_id)
        .where(ScimGroupMember.group_id.in_(group_ids))
        .order_by(SteadUser.email_key)
    )
    for group_id, user in rows:
        members[group_id].append(user)
    return members


def group_resource(group: ScimGroup, members: list[SteadUser], *, base_url: str) -> Group:
    """The SCIM ``Group`` of a stored group: its name, ``externalId`` and member users."""
    return Group.model_validate(
        {
            "schemas": [str(Group.__schema__)],
            "id": group.id,
            "displayName": group.display_name,
            "externalId": group.external_id,
            "members": [
                {
                    "value": user.id,
                    "display": user.email,
                    "$ref": _location(base_url, "Users", user.id),
                    "type": "User",
                }
                for user in members
            ],
            "meta": {
                "resourceType": "Group",
                "created": group.created_at.isoformat(),
                "lastModified": group.updated_at.isoformat(),
                "location": _location(base_url, "Groups", group.id),
                "version": _version(group.updated_at),
            },
        },
        scim_policy=POLICY,
    )


def search_groups(
    session: Session, *, actor: Actor, search: SearchRequest[Any], base_url: str
) -> ListResponse[Any]:
    """One page of the account's SCIM groups matching the search's ``filter``
    (``displayName``, ``externalId``, ``id``, ``members``), by name.

    Raises:
        InvalidFilterException: the filter uses an attribute or operator Stead does not.
    """
    query = (
        select(ScimGroup)
        .where(ScimGroup.account_id == actor.account_id)
        .where(_group_where(search.filter))
    )
    offset, limit = _page(search)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    groups = list(
        session.scalars(
            query.order_by(ScimGroup.created_at, ScimGroup.id).offset(offset).limit(limit)
        )
    )
    members = _group_members(session, [group.id for group in groups])
    resources = [group_resource(g, members[g.id], base_url=base_url) for g in groups]
    return ListResponse[Group](
        total_results=total,
        start_index=offset + 1,
        items_per_page=len(resources),
        resources=resources,
    )


def get_group(session: Session, *, actor: Actor, group_id: str) -> ScimGroup:
    """The account's SCIM group ``group_id``.

    Raises:
        NotFoundException: no such group (404).
    """
    group = session.get(ScimGroup, group_id)
    if group is None or group.account_id != actor.account_id:
        raise NotFoundException(detail=f"Group {group_id} not found")
    return group


def read_group(session: Session, *, actor: Actor, group_id: str, base_url: str) -> Group:
    """The SCIM ``Group`` ``group_id``.

    Raises:
        NotFoundException: no such group (404).
    """
    group = get_group(session, actor=actor, group_id=group_id)
    return group_resource(group, _group_members(session, [group.id])[group.id], base_url=base_url)


def _member_ids(session: Session, *, actor: Actor, members: Iterable[GroupMember]) -> set[str]:
    """The user ids of a group's ``members``.

    Raises:
        InvalidValueException: a member is not a user of the account (groups hold users only).
    """
    wanted = set()
    for member in members:
        if member.type not in (None, "User") or not member.value:
            raise InvalidValueException(detail="A Stead group's members are users, by id")
        wanted.add(str(member.value))
    if not wanted:
        return wanted
    found = set(
        session.scalars(
            select(SteadUser.id).where(
                SteadUser.id.in_(wanted), SteadUser.account_id == actor.account_id
            )
        )
    )
    missing = sorted(wanted - found)
    if missing:
        raise InvalidValueException(detail=f"No user has the id {missing[0]!r}")
    return wanted


def _write_group(
    session: Session,
    *,
    actor: Actor,
    group: ScimGroup,
    resource: Group,
    action: str,
    role_sync: RoleSync,
) -> None:
    """Make ``group`` what ``resource`` says and sync the roles of every user whose groups
    changed (:data:`RoleSync`)."""
    name = (resource.display_name or "").strip()
    if not name or len(name) > 255:
        raise InvalidValueException(detail="displayName must be 1-255 characters")
    other = session.scalars(
        select(ScimGroup.id).where(ScimGroup.display_name_key == name_key(name))
    ).first()
    if other is not None and other != group.id:
        raise UniquenessException(detail=f"A group named {name!r} already exists")
    wanted = _member_ids(session, actor=actor, members=resource.members or [])
    current = set(
        session.scalars(select(ScimGroupMember.user_id).where(ScimGroupMember.group_id == group.id))
    )
    renamed = group.display_name != name
    group.display_name, group.display_name_key = name, name_key(name)
    group.external_id = _external_id(resource.external_id)
    group.updated_at = utcnow()
    added, removed = wanted - current, current - wanted
    if removed:
        session.execute(
            delete(ScimGroupMember).where(
                ScimGroupMember.group_id == group.id, ScimGroupMember.user_id.in_(removed)
            )
        )
    session.add_all(ScimGroupMember(group_id=group.id, user_id=u) for u in sorted(added))
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=action,
        target_type="scim_group",
        target_id=group.id,
        details={
            "displayName": name,
            "externalId": group.external_id,
            "membersAdded": len(added),
            "membersRemoved": len(removed),
        },
    )
    # Those who join first, so that a project keeps an Owner when one replaces another.
    sync_roles(session, actor=actor, user_ids=added, role_sync=role_sync)
    sync_roles(session, actor=actor, user_ids=removed, role_sync=role_sync)
    if renamed:
        sync_roles(session, actor=actor, user_ids=wanted & current, role_sync=role_sync)


def sync_roles(
    session: Session, *, actor: Actor, user_ids: Iterable[str], role_sync: RoleSync
) -> None:
    """Give each of ``user_ids`` the roles their SCIM groups map to (``role_sync`` with the
    names of all their groups)."""
    ids = sorted(set(user_ids))
    if not ids:
        return
    groups = _user_groups(session, ids)
    for user in session.scalars(select(SteadUser).where(SteadUser.id.in_(ids))):
        role_sync(session, user, [group.display_name for group in groups[user.id]], actor)


def create_group(
    session: Session, *, actor: Actor, resource: Group, role_sync: RoleSync
) -> ScimGroup:
    """Create a group from a SCIM ``POST /Groups``; its members get the roles it maps to.
    Audited as ``scim.group_created``.

    Raises:
        UniquenessException: the ``displayName`` is taken (case-insensitive).
        InvalidValueException: no ``displayName``, or a member is not a user of the account.
    """
    group = ScimGroup(
        account_id=get_account(session).id, display_name="", display_name_key=secrets.token_hex(8)
    )
    session.add(group)
    session.flush()
    _write_group(
        session,
        actor=actor,
        group=group,
        resource=resource,
        action="scim.group_created",
        role_sync=role_sync,
    )
    return group


def replace_group(
    session: Session, *, actor: Actor, group: ScimGroup, resource: Group, role_sync: RoleSync
) -> None:
    """Replace a group from a SCIM ``PUT``: its name, ``externalId`` and members. Audited as
    ``scim.group_replaced``.

    Raises:
        UniquenessException, InvalidValueException: as :func:`create_group`.
    """
    _write_group(
        session,
        actor=actor,
        group=group,
        resource=resource,
        action="scim.group_replaced",
        role_sync=role_sync,
    )


def patch_group(
    session: Session,
    *,
    actor: Actor,
    group: ScimGroup,
    patch: PatchOp[Any],
    base_url: str,
    role_sync: RoleSync,
) -> None:
    """Apply a SCIM ``PATCH`` to a group (members added or removed by id, a new name ...),
    all operations or none. Audited as ``scim.group_patched``.

    Raises:
        SCIMException: an operation is invalid, or as :func:`create_group`.
    """
    current = group_resource(
        group, _group_members(session, [group.id])[group.id], base_url=base_url
    )
    with POLICY:
        patch.patch(current)
    _write_group(
        session,
        actor=actor,
        group=group,
        resource=current,
        action="scim.group_patched",
        role_sync=role_sync,
    )


def delete_group(session: Session, *, actor: Actor, group: ScimGroup, role_sync: RoleSync) -> None:
    """Delete a group; its former members get the roles their other groups map to. Audited as
    ``scim.group_deleted``."""
    members = list(
        session.scalars(select(ScimGroupMember.user_id).where(ScimGroupMember.group_id == group.id))
    )
    details = {"displayName": group.display_name, "members": len(members)}
    session.delete(group)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="scim.group_deleted",
        target_type="scim_group",
        target_id=group.id,
        details=details,
    )
    sync_roles(session, actor=actor, user_ids=members, role_sync=role_sync)
