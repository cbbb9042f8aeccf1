"""What exists on the server, read through the SDK: for a plan, and for ``stead export``.

Projects are read with ``GET /v1/projects/state`` (docs/api.md, Project state): a request per
100 projects, each answering everything the projects hold, instead of several requests per
project.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from stead.document import ProjectState, State
from stead.sdk import Client, NotFound
from stead.wire import name_key

#: Parallel requests while reading projects (the server handles each on its own thread).
READERS = 4
#: Names (or ids) per request: one page of states answers them all.
CHUNK = 100


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def read_state(
    client: Client,
    *,
    names: Iterable[str] | None = None,
    project_ids: Iterable[str] | None = None,
) -> State:
    """Read the agents, and the projects named in ``names`` (compared by name key) or with the
    ids ``project_ids``, or every visible project when both are None.

    Raises:
        stead.sdk.ApiError: an API call failed (NotFound for an id in ``project_ids`` that no
            visible project has).
    """
    agents = {name_key(a.name): a for a in client.agents.list()}
    if names is None and project_ids is None:
        reads = list(client.projects.states())
    else:
        by_name = _chunks(sorted({name_key(n): n for n in names or ()}.values()))
        by_id = _chunks(list(dict.fromkeys(project_ids or ())))
        requests: list[tuple[list[str], list[str]]] = [(chunk, []) for chunk in by_name] + [
            ([], chunk) for chunk in by_id
        ]
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            pages = pool.map(
                lambda r: list(client.projects.states(names=r[0], project_ids=r[1])), requests
            )
            reads = [read for page in pages for read in page]
        found = {r.project.id for r in reads}
        for pid in project_ids or ():
            if pid.lower() not in found:
                client.projects.get(pid)  # raises the server's answer: 400 or 404
                raise NotFound(404, {"status": 404, "detail": f"project {pid} not found"})
    states = [ProjectState.from_read(read) for read in reads]
    allow_lists = {
        key: client.agents.get_allow_list(agent.agent_id)
        for key, agent in agents.items()
        if not agent.hosted
    }
    return State(
        agents=agents,
        projects={name_key(s.project.name): s for s in states},
        allow_lists=allow_lists,
    )
