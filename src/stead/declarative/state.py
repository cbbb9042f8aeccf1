"""What exists on the server, read through the SDK: for a plan, and for ``stead export``."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from stead.document import ProjectState, State
from stead.projects.schemas import ProjectRead
from stead.sdk import Client, NotFound
from stead.wire import name_key

#: Parallel reads while loading projects (the server handles each on its own thread).
READERS = 8


def _project_state(client: Client, project: ProjectRead) -> ProjectState:
    pid = project.id
    state = ProjectState(
        project=project,
        connections=list(client.connections.list(pid)),
        secret_references=list(client.secret_references.list(pid)),
        secrets=list(client.secrets.list(pid)),
        environments=[client.environments.get(pid, e.name) for e in client.environments.list(pid)],
    )
    try:
        state.repository = client.repositories.get(pid)
    except NotFound:
        state.repository = None
    return state


def read_state(
    client: Client,
    *,
    names: Iterable[str] | None = None,
    project_ids: Iterable[str] | None = None,
) -> State:
    """Read the agents, and the projects named in ``names`` (compared by name key) or with the
    ids ``project_ids``, or every visible project when both are None.

    Raises:
        stead.sdk.ApiError: an API call failed (NotFound for an unknown id in ``project_ids``).
    """
    agents = {name_key(a.name): a for a in client.agents.list()}
    if project_ids is not None:
        chosen = [client.projects.get(pid) for pid in project_ids]
    else:
        wanted = None if names is None else {name_key(n) for n in names}
        chosen = [p for p in client.projects.list() if wanted is None or name_key(p.name) in wanted]
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        states = list(pool.map(lambda project: _project_state(client, project), chosen))
    return State(agents=agents, projects={name_key(s.project.name): s for s in states})
