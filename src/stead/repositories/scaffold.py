"""The first commit ``?initialize=true`` pushes to an empty repository (docs/api.md, Repository
[Stead]): a README, one folder per environment (``environments/<name>/README.md``) and
``stead.yaml``, the project in the declarative format exactly as ``stead export`` writes it
(``stead.document.export_document``; secret values and tokens are never in it).

The commit is built in memory and pushed with dulwich over git smart HTTP, the access token as
Basic-auth password, to the repository's default branch (``main`` when the remote does not say).
The push only creates the branch: if the repository has any ref it answers 409 and pushes
nothing, and the server refuses the ref update if a ref appeared in the meantime.
"""

from __future__ import annotations

import time

from dulwich.index import commit_tree
from dulwich.object_store import MemoryObjectStore
from dulwich.objects import Blob, Commit, ObjectID
from dulwich.refs import Ref, check_ref_format
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from stead.agents.models import Agent
from stead.agents.schemas import AgentRead
from stead.document import ProjectState, State, dump, export_document
from stead.errors import Conflict
from stead.identity.actor import Actor
from stead.outbound import Policy
from stead.projects.models import Project
from stead.repositories import git
from stead.repositories.provider import unreachable
from stead.repositories.schemas import RepositoryRead
from stead.state import service as state_service
from stead.wire import name_key

DEFAULT_BRANCH = "main"
AUTHOR = b"Stead <stead@localhost>"
SERVER = "The git server"
_FILE = 0o100644


def branch_for(default_branch: str | None) -> str:
    """The branch the first commit goes to: the provider's default branch if it is a valid ref
    name, else :data:`DEFAULT_BRANCH`."""
    if default_branch and check_ref_format(Ref(f"refs/heads/{default_branch}".encode())):
        return default_branch
    return DEFAULT_BRANCH


def project_files(
    session: Session, *, actor: Actor, project: Project, repository: RepositoryRead
) -> dict[str, bytes]:
    """The scaffold's files by path: ``README.md``, ``stead.yaml`` (the project, its
    connections, secrets' names and types, secret references, environments and ``repository``
    as ``stead export`` writes them) and ``environments/<name>/README.md`` per environment.

    Only what ``actor`` may read goes in: environments whose settings its access level hides
    (no ``environment.read``, docs/permissions.md) are left out of both."""
    state = _state(session, actor=actor, project=project, repository=repository)
    environments = state.projects[name_key(project.name)].environments
    lines = [
        f"# {project.name}",
        "",
        *([project.description, ""] if project.description else []),
        f"Pipelines of the Stead project **{project.name}** ({project.warehouse}).",
        "",
        "- `stead.yaml`: the project in Stead's declarative format; `stead plan -f stead.yaml`",
        "  compares it with the server, `stead apply -f stead.yaml` makes the server match it.",
        "  Secret values and access tokens are never written in it.",
        "- `environments/`: one folder per environment.",
    ]
    files = {
        "README.md": "\n".join(lines) + "\n",
        "stead.yaml": dump(export_document(state)),
    }
    for env in environments:
        files[f"environments/{_folder(env.name)}/README.md"] = (
            f"# {env.display_name}\n\nEnvironment `{env.name}` of project {project.name}: "
            f"default agent {env.default_agent_name}, default access "
            f"{env.default_user_access_level}.\n"
        )
    return {path: text.encode() for path, text in files.items()}


def push_first_commit(
    url: str,
    token: SecretStr,
    *,
    username: str,
    branch: str,
    files: dict[str, bytes],
    message: str,
    timeout: float,
    field: str,
    policy: Policy,
) -> str:
    """Push one commit holding ``files`` to ``refs/heads/<branch>`` of the empty repository at
    ``url``; return the commit's hex id.

    Raises:
        Conflict: the repository has a ref (it is not empty); nothing was pushed.
        DestinationRefused: ``policy`` refuses ``url`` (400 naming ``field``).
        BadRequest, Forbidden (no push permission), UpstreamError, UpstreamUnavailable,
            UpstreamTimeout: as :func:`stead.repositories.git.translated_errors`, with
            ``field`` named when the repository is not found.
    """
    store = MemoryObjectStore()
    blobs = []
    for name, data in sorted(files.items()):
        blob = Blob.from_string(data)
        store.add_object(blob)
        blobs.append((name.encode(), blob.id, _FILE))
    commit = Commit()
    commit.tree = commit_tree(store, blobs)
    commit.author = commit.committer = AUTHOR
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = message.encode()
    store.add_object(commit)
    ref = Ref(f"refs/heads/{branch}".encode())

    def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        if any(name != b"HEAD" for name in refs):
            raise _NotEmpty
        return {ref: commit.id}

    client, path = git.connect(
        url, token, username=username, timeout=timeout, policy=policy, field=field
    )
    try:
        with git.translated_errors(
            url, timeout=timeout, permission="push (write)", field=field, name=SERVER
        ):
            result = client.send_pack(path, update_refs, store.generate_pack_data)
    except _NotEmpty:
        raise not_empty(url) from None
    status = (result.ref_status or {}).get(ref)
    if status is not None:
        raise (
            not_empty(url)
            if "exist" in status or "fast-forward" in status
            else unreachable(SERVER, "it refused the push")
        )
    return commit.id.decode()


def not_empty(url: str) -> Conflict:
    """409: ``?initialize=true`` on a repository that already has commits."""
    return Conflict(
        f"The repository at {url} is not empty; initialize pushes only to an empty repository",
        violations=["initialize: the repository already has commits"],
    )


class _NotEmpty(Exception):
    """The remote advertised a ref: the push is abandoned before anything is sent."""


def _folder(name: str) -> str:
    # git refuses a tree entry called ".git" in any case
    return f"_{name}" if name.lower() == ".git" else name


def _state(
    session: Session, *, actor: Actor, project: Project, repository: RepositoryRead
) -> State:
    (read,) = state_service.states(session, actor=actor, projects=[project])
    project_state = ProjectState.from_read(read)
    project_state.repository = repository
    agent_ids = {e.default_agent_id for e in read.environments} | {
        r.agent_id for r in read.secret_references if r.agent_id is not None
    }
    agents = list(session.scalars(select(Agent).where(Agent.id.in_(agent_ids))))
    return State(
        agents={name_key(a.name): AgentRead.model_validate(a) for a in agents},
        projects={name_key(project.name): project_state},
    )
