"""``stead import``: objects made by hand or through the API, written into a declarative file.

The file's own entries are never rewritten (they may hold ``${VAR}`` references): only what the
file lacks is added, as ``stead export`` writes it.
"""

from __future__ import annotations

import json
from typing import Any

from stead.document import State, escape, export_document
from stead.wire import name_key

#: A project's lists of named objects, and the field that names their items.
_LISTS = {
    "connections": "name",
    "secretReferences": "name",
    "secrets": "name",
    "environments": "name",
    "members": "email",
}


def _key(item: dict[str, Any], field: str) -> str:
    return name_key(str(item.get(field, "")))


def import_into(document: dict[str, Any], state: State) -> tuple[dict[str, Any], list[str]]:
    """Add to ``document`` (a parsed declarative file, not interpolated) what ``state`` holds
    and the file does not: whole projects, the objects of a listed project (connections,
    secret references, secrets, environments, members, repository, an environment's
    ``access``) and the agents they use.

    Returns:
        The new document and the addresses added (``projects["p"].environments["dev"]``).

    Raises:
        ValueError: ``document`` is not a mapping with lists where the format has lists.
    """
    if not isinstance(document, dict):
        raise ValueError("the file is not a mapping")
    # written as export writes them, with every ``$`` doubled; the file's own text is kept
    exported = escape(export_document(state))
    out = dict(document)
    out.setdefault("version", 1)
    added: list[str] = []
    projects = list(out.get("projects") or [])
    by_name = {_key(p, "name"): i for i, p in enumerate(projects)}
    for entry in exported["projects"]:
        where = f"projects[{_quote(entry['name'])}]"
        index = by_name.get(_key(entry, "name"))
        if index is None:
            projects.append(entry)
            added.append(where)
            continue
        project = dict(projects[index])
        for field, key in _LISTS.items():
            theirs = entry.get(field)
            if theirs is None:
                continue
            mine = list(project.get(field) or [])
            have = {_key(item, key): item for item in mine}
            for item in theirs:
                if _key(item, key) not in have:
                    mine.append(item)
                    added.append(f"{where}.{field}[{_quote(str(item[key]))}]")
                elif field == "environments" and "access" in item:
                    _import_access(have[_key(item, key)], item, f"{where}.{field}", added)
            project[field] = mine
        if "repository" in entry and not project.get("repository"):
            project["repository"] = entry["repository"]
            added.append(f"{where}.repository")
        projects[index] = project
    out["projects"] = projects
    agents = list(out.get("agents") or [])
    known = {_key(a, "name") for a in agents}
    for agent in exported.get("agents", []):
        if _key(agent, "name") not in known:
            agents.append(agent)
            added.append(f"agents[{_quote(agent['name'])}]")
    if agents:
        out["agents"] = agents
    return out, added


def _import_access(
    mine: dict[str, Any], theirs: dict[str, Any], where: str, added: list[str]
) -> None:
    """Add the access levels of the server's environment ``theirs`` that ``mine`` lacks."""
    levels = list(mine.get("access") or [])
    have = {_key(a, "email") for a in levels}
    for level in theirs["access"]:
        if _key(level, "email") not in have:
            levels.append(level)
            added.append(
                f"{where}[{_quote(str(mine['name']))}].access[{_quote(str(level['email']))}]"
            )
    mine["access"] = levels


def _quote(text: str) -> str:
    """A name as file text (``$$`` for ``$``) quoted for an address, as the name itself."""
    return json.dumps(text.replace("$$", "$"), ensure_ascii=False)
