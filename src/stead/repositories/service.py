"""Repository association rules (docs/api.md, Repository): one repository per project,
confirmed with the provider using the caller's access token, which is never stored or logged.

Deploy keys [Stead]: when the token may manage them, Stead generates an Ed25519 key pair,
registers the public half with the provider as a read-only deploy key titled
``stead:<project name>``, and keeps the private half (OpenSSH format) as a hosted secret of the
project (``git-deploy-key``, type ``PASSWORD``), which the repository owns: it cannot be deleted
on its own, is replaced when the key is rotated and deleted with the association. The key is
what lasts; the token is used for one request.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.errors import AppError, Conflict, Forbidden, NotFound
from stead.identity.actor import Actor
from stead.outbound import Policy
from stead.projects.models import Project
from stead.repositories import azure_devops, git, github, github_enterprise, gitlab, scaffold
from stead.repositories.models import Repository
from stead.repositories.provider import TOKEN_HEADER, GitProvider, RepositoryInfo
from stead.repositories.schemas import RepositoryCreate, RepositoryRead
from stead.secrets import service as secrets_service
from stead.secrets import store
from stead.settings import Settings

log = logging.getLogger("stead.repositories")

READ_ONLY = True
"""Deploy keys are read-only: agents fetch pipelines; a writable GitHub deploy key would act with
admin-like rights on the repository (docs.github.com, "Create a deploy key": ``read_only``)."""
SECRET_PREFIX, SECRET_SUFFIX = "git", "-deploy-key"

T = TypeVar("T")


class Outside(Protocol):
    """Runs ``work`` (the provider calls, which touch no database) and returns its result. The
    HTTP routes pass one that ends the request's transaction first and starts a new write
    transaction afterwards, so SQLite's write lock is not held while a provider answers; the
    service then re-reads what it acted on. :func:`run_inline` just calls ``work``."""

    def __call__(self, work: Callable[[], T]) -> T: ...


def run_inline(work: Callable[[], T]) -> T:
    """An :class:`Outside` that runs ``work`` inside the current transaction."""
    return work()


PROVIDERS: dict[str, GitProvider] = {
    "github": github,
    "azure-devops": azure_devops,
    "github-enterprise": github_enterprise,
    "gitlab": gitlab,
    "git": git,
}


def find(session: Session, *, project: Project) -> Repository | None:
    """The project's repository, or None."""
    return session.scalars(select(Repository).where(Repository.project_id == project.id)).first()


def get(session: Session, *, project: Project) -> Repository:
    """The project's repository.

    Raises:
        NotFound: the project has no repository.
    """
    repository = find(session, project=project)
    if repository is None:
        raise NotFound(f"Project {project.name!r} has no repository")
    return repository


def associate(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    data: RepositoryCreate,
    token: SecretStr,
    settings: Settings,
    initialize: bool = False,
    outside: Outside = run_inline,
) -> Repository:
    """Associate a repository with the project after the provider confirmed that it exists and
    ``token`` can read it; record its default branch and URLs. With ``initialize``, first push
    the scaffold commit (:mod:`stead.repositories.scaffold`) to the empty repository. Then, if
    the token may, create the deploy key (module docstring); when it may not, or the provider
    refuses or fails, associate anyway with ``deploy_key_reason`` saying why. The provider calls
    run through ``outside`` (see :class:`Outside`).

    Raises:
        BadRequest: invalid ``providerParameters``/``repositoryName``, token rejected, or
            repository not found (see :class:`provider.GitProvider` for the provider's answers).
        Conflict: the project already has a repository (one per project, DPC), or
            ``initialize`` and the repository is not empty (nothing pushed).
        Forbidden, UpstreamError, UpstreamUnavailable, UpstreamTimeout: from the provider or
            from the push (Forbidden: no push permission).
    """
    provider = PROVIDERS[data.provider]
    params = provider.parse_parameters(
        data.provider_parameters, repository_name=data.repository_name
    )
    _refuse_second(session, project=project)
    files = (
        _scaffold_files(session, actor=actor, project=project, data=data, params=params)
        if initialize
        else None
    )
    info, branch, commit, key = outside(
        lambda: _confirm_new(
            provider, data, params, token, project=project, files=files, settings=settings
        )
    )
    try:
        # the transaction was ended while the provider answered: look again
        _refuse_second(session, project=project)
    except AppError:
        if not isinstance(key, str):
            _discard(
                provider,
                key,
                token,
                params=params,
                repository_name=data.repository_name,
                settings=settings,
            )
        raise
    return _record_association(
        session,
        actor=actor,
        project=project,
        data=data,
        params=params,
        confirmed=(info, branch, commit, key),
    )


def _scaffold_files(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    data: RepositoryCreate,
    params: dict[str, Any],
) -> dict[str, bytes]:
    """The files of the first commit ``?initialize=true`` pushes (:mod:`scaffold`), holding
    only the environments ``actor`` may read."""
    # stead.yaml names the repository without its branch: it can be written before asking
    read = RepositoryRead(
        provider=data.provider,
        repository_name=data.repository_name,
        provider_parameters=params,
        default_branch=None,
        html_url=None,
        clone_url=None,
    )
    return scaffold.project_files(session, actor=actor, project=project, repository=read)


#: What the provider confirmed for a new association: the repository, the branch to record,
#: the first commit pushed (or None), and the registered deploy key or why there is none.
_Confirmed = tuple[RepositoryInfo, str | None, str | None, "_NewKey | str"]


def _confirm_new(
    provider: GitProvider,
    data: RepositoryCreate,
    params: dict[str, Any],
    token: SecretStr,
    *,
    project: Project,
    files: dict[str, bytes] | None,
    settings: Settings,
) -> _Confirmed:
    """The provider calls of :func:`associate`, outside the transaction: check the repository,
    push the first commit when there are ``files``, register the deploy key."""
    info = provider.check(token, params, repository_name=data.repository_name, settings=settings)
    branch, commit = info.default_branch, None
    if files is not None:
        branch = scaffold.branch_for(info.default_branch)
        commit = scaffold.push_first_commit(
            info.clone_url,
            token,
            username=info.git_username,
            branch=branch,
            files=files,
            message=f"Initialize Stead project {project.name}\n",
            timeout=settings.upstream_timeout_seconds,
            field=git.URL_FIELD if data.provider == "git" else "repositoryName",
            policy=Policy.from_settings(settings),
        )
    key = _register_key(
        provider,
        info,
        token,
        params=params,
        repository_name=data.repository_name,
        title=f"stead:{project.name}",
        settings=settings,
    )
    return info, branch, commit, key


def _record_association(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    data: RepositoryCreate,
    params: dict[str, Any],
    confirmed: _Confirmed,
) -> Repository:
    """Store the association the provider confirmed, its deploy key, and the audit event."""
    info, branch, commit, key = confirmed
    details: dict[str, Any] = {
        "provider": data.provider,
        "repositoryName": data.repository_name,
        "providerParameters": params,
        "defaultBranch": branch,
    }
    if commit is not None:
        details["initialized"] = {"branch": branch, "commit": commit}
    repository = Repository(
        project_id=project.id,
        provider=data.provider,
        repository_name=data.repository_name,
        provider_parameters=params,
        default_branch=branch,
        html_url=info.html_url,
        clone_url=info.clone_url,
    )
    if isinstance(key, str):
        repository.deploy_key_reason = key
        details["deployKeyReason"] = key
    session.add(repository)
    session.flush()
    if not isinstance(key, str):
        _keep_key(session, actor=actor, project=project, repository=repository, key=key)
        details["deployKey"] = _key_details(repository)
    audit.record(
        session,
        actor=actor,
        action="repository.associated",
        target_type="repository",
        target_id=str(repository.id),
        project_id=project.id,
        details=details,
    )
    return repository


def check_token(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    token: SecretStr,
    settings: Settings,
    outside: Outside = run_inline,
) -> Repository:
    """Re-check the project's repository with a new ``token`` (DPC ``POST .../repositories/token``),
    refresh the default branch and URLs the provider reports, and rotate the deploy key when the
    token may: a new key is registered, the old one removed from the provider, and the hosted
    secret replaced (its old versions deleted with it). When the token may not manage deploy
    keys, an existing key is kept (it does not depend on the token) and the audit event says why.
    The provider calls run through ``outside`` (see :class:`Outside`).

    Raises:
        NotFound: the project has no repository; otherwise the provider's answers as in
        :func:`associate` (a failure to remove the old key undoes the rotation: the new key is
        removed again and nothing changes).
    """
    repository = get(session, project=project)
    provider = PROVIDERS[repository.provider]
    params, name, old = (
        repository.provider_parameters,
        repository.repository_name,
        repository.deploy_key,
    )

    info, key = outside(
        lambda: _confirm_and_rotate(
            provider,
            token,
            params=params,
            name=name,
            old=old,
            project_name=project.name,
            settings=settings,
        )
    )
    if _changed(session, repository, old):
        if not isinstance(key, str):
            _discard(provider, key, token, params=params, repository_name=name, settings=settings)
        raise Conflict(
            f"The repository of project {project.name!r} changed while the token was checked; retry"
        )
    _record_check(
        session, actor=actor, project=project, repository=repository, info=info, key=key, old=old
    )
    return repository


def _confirm_and_rotate(
    provider: GitProvider,
    token: SecretStr,
    *,
    params: dict[str, Any],
    name: str,
    old: dict[str, Any] | None,
    project_name: str,
    settings: Settings,
) -> tuple[RepositoryInfo, _NewKey | str]:
    """The provider calls of :func:`check_token`, outside the transaction (so with the values
    read before it, not the ORM object): check repository ``name`` with ``token``, register a
    new deploy key and remove the ``old`` one (on failure the new key is removed again and the
    error raised)."""
    info = provider.check(token, params, repository_name=name, settings=settings)
    key = _register_key(
        provider,
        info,
        token,
        params=params,
        repository_name=name,
        title=f"stead:{project_name}",
        settings=settings,
    )
    if old is not None and not isinstance(key, str):
        try:
            provider.remove_deploy_key(
                token, params, repository_name=name, key_id=str(old["id"]), settings=settings
            )
        except AppError:
            _discard(provider, key, token, params=params, repository_name=name, settings=settings)
            raise
    return info, key


def _record_check(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    repository: Repository,
    info: RepositoryInfo,
    key: _NewKey | str,
    old: dict[str, Any] | None,
) -> None:
    """Store what :func:`check_token` confirmed: the provider's branch and URLs, the rotated
    deploy key (``old`` is the one before; or why it was not rotated), and the audit event."""
    name = repository.repository_name
    repository.default_branch = info.default_branch
    repository.html_url = info.html_url
    repository.clone_url = info.clone_url
    details: dict[str, Any] = {"provider": repository.provider, "repositoryName": name}
    if isinstance(key, str):
        details["deployKeyRotated"] = False
        details["deployKeyReason"] = key
        if old is None:
            repository.deploy_key_reason = key
    else:
        if old is not None:
            details["previousDeployKey"] = _key_details(repository)
            _drop_secret(session, actor=actor, project=project, repository=repository)
        _keep_key(session, actor=actor, project=project, repository=repository, key=key)
        details["deployKeyRotated"] = True
        details["deployKey"] = _key_details(repository)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="repository.token_checked",
        target_type="repository",
        target_id=str(repository.id),
        project_id=project.id,
        details=details,
    )


def remove(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    token: SecretStr | None = None,
    settings: Settings,
    outside: Outside = run_inline,
) -> None:
    """Remove the project's repository association (the repository itself is untouched) and the
    hosted secret holding the deploy key's private half. With ``token``, the deploy key is first
    removed from the provider; without it, the key stays registered there, unusable since its
    private half is gone, and the audit event records its provider id (``removedAtProvider``
    false) so it can be deleted by hand. The provider calls run through ``outside``.

    Raises:
        NotFound: the project has no repository.
        BadRequest, Forbidden, UpstreamError, UpstreamUnavailable, UpstreamTimeout: with
            ``token``, the provider's answers to the access check (as :func:`associate`; Forbidden
            also when the token may not manage deploy keys) or to the removal; nothing is
            removed.
    """
    repository = get(session, project=project)
    details: dict[str, Any] = {
        "provider": repository.provider,
        "repositoryName": repository.repository_name,
    }
    if repository.deploy_key is not None:
        if token is not None:
            old = repository.deploy_key
            outside(lambda: _remove_at_provider(repository, token, settings=settings))
            if _changed(session, repository, old):
                raise Conflict(
                    f"The repository of project {project.name!r} changed while its deploy key "
                    "was removed; retry"
                )
        details["deployKey"] = {
            **_key_details(repository),
            "removedAtProvider": token is not None,
        }
        _drop_secret(session, actor=actor, project=project, repository=repository)
    audit.record(
        session,
        actor=actor,
        action="repository.removed",
        target_type="repository",
        target_id=str(repository.id),
        project_id=project.id,
        details=details,
    )
    session.delete(repository)
    session.flush()


def _remove_at_provider(repository: Repository, token: SecretStr, *, settings: Settings) -> None:
    """Remove the repository's deploy key from the provider with ``token``, after checking that
    the token may manage deploy keys (GitHub answers 404 both for a key that is gone and to a
    token without admin permission, so the answer alone cannot tell them apart)."""
    assert repository.deploy_key is not None
    provider = PROVIDERS[repository.provider]
    info = provider.check(
        token,
        repository.provider_parameters,
        repository_name=repository.repository_name,
        settings=settings,
    )
    if info.no_deploy_key_reason is not None:
        raise Forbidden(
            f"The deploy key cannot be removed: {info.no_deploy_key_reason}; remove the "
            "association without the token to leave the key at the provider",
            violations=[f"{TOKEN_HEADER}: {info.no_deploy_key_reason}"],
        )
    provider.remove_deploy_key(
        token,
        repository.provider_parameters,
        repository_name=repository.repository_name,
        key_id=str(repository.deploy_key["id"]),
        settings=settings,
    )


@dataclass(frozen=True)
class _NewKey:
    """A key pair whose public half the provider registered as ``key_id``."""

    key_id: str
    read_only: bool
    private_openssh: SecretStr
    fingerprint: str


def generate_key_pair() -> tuple[SecretStr, str, str]:
    """A new Ed25519 key pair: ``(private key in OpenSSH format, public key as one
    "ssh-ed25519 AAAA..." line, its "SHA256:..." fingerprint as ssh-keygen -l prints it)``."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    blob = base64.b64decode(public.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return SecretStr(private), public, f"SHA256:{digest}"


def _register_key(
    provider: GitProvider,
    info: RepositoryInfo,
    token: SecretStr,
    *,
    params: dict[str, Any],
    repository_name: str,
    title: str,
    settings: Settings,
) -> _NewKey | str:
    """A new key pair registered with the provider, or why there is none: the token may not
    manage deploy keys, or the provider refused (403) or failed to register it."""
    if info.no_deploy_key_reason is not None:
        return info.no_deploy_key_reason
    private, public, fingerprint = generate_key_pair()
    try:
        registered = provider.add_deploy_key(
            token,
            params,
            repository_name=repository_name,
            title=title,
            public_key_openssh=public,
            read_only=READ_ONLY,
            settings=settings,
        )
    except Forbidden as exc:
        return exc.detail
    except AppError as exc:
        return f"registering the deploy key failed: {exc.detail}"
    return _NewKey(registered.id, registered.read_only, private, fingerprint)


def _keep_key(
    session: Session, *, actor: Actor, project: Project, repository: Repository, key: _NewKey
) -> None:
    """Store the private half as the repository's hosted secret and record the key."""
    secret = secrets_service.add_hosted(
        session,
        actor=actor,
        project=project,
        name=secrets_service.free_name(
            session, project_id=project.id, prefix=SECRET_PREFIX, suffix=SECRET_SUFFIX
        ),
        secret_type="PASSWORD",
        value=key.private_openssh.get_secret_value(),
        details={"deployKey": key.key_id, "repositoryName": repository.repository_name},
    )
    repository.deploy_key = {
        "id": key.key_id,
        "fingerprint": key.fingerprint,
        "readOnly": key.read_only,
        "secretName": secret.name,
    }
    repository.deploy_key_reason = None
    session.flush()


def _drop_secret(
    session: Session, *, actor: Actor, project: Project, repository: Repository
) -> None:
    """Delete the hosted secret holding the current key's private half (if it still exists)."""
    assert repository.deploy_key is not None
    secret = store.find(session, project_id=project.id, name=repository.deploy_key["secretName"])
    if secret is not None:
        secrets_service.remove_hosted(session, actor=actor, secret=secret)


def _discard(
    provider: GitProvider,
    key: _NewKey,
    token: SecretStr,
    *,
    params: dict[str, Any],
    repository_name: str,
    settings: Settings,
) -> None:
    """Remove a just-registered key again; a failure is logged (its private half is dropped, so
    the key left at the provider cannot be used)."""
    try:
        provider.remove_deploy_key(
            token, params, repository_name=repository_name, key_id=key.key_id, settings=settings
        )
    except AppError as exc:
        log.warning(
            "deploy key %s of %s left at the provider: %s", key.key_id, repository_name, exc.detail
        )


def _refuse_second(session: Session, *, project: Project) -> None:
    """Raise Conflict if the project has a repository, NotFound if the project is gone."""
    if session.get(Project, project.id, populate_existing=True) is None:
        raise NotFound(f"Project {project.name!r} no longer exists")
    existing = find(session, project=project)
    if existing is not None:
        raise Conflict(
            f"Project {project.name!r} already has repository "
            f"{existing.repository_name!r}; delete it before associating another"
        )


def _changed(session: Session, repository: Repository, deploy_key: dict[str, Any] | None) -> bool:
    """True if the association was removed, or its deploy key replaced, since it was read
    (re-read from the database)."""
    current = session.get(Repository, repository.id, populate_existing=True)
    return current is None or current.deploy_key != deploy_key


def _key_details(repository: Repository) -> dict[str, Any]:
    key = repository.deploy_key or {}
    return {"id": key.get("id"), "fingerprint": key.get("fingerprint")}
