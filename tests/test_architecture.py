"""Import arrows run one way: the server loads no client tooling, and no two of Stead's modules
import each other, directly or round a longer loop."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import stead

SOURCE = Path(stead.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every stead module ``path`` imports anywhere: at the top, in a function, under
    ``TYPE_CHECKING`` (an arrow all the same), ``from package import module`` included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    # A submodule's own packages are always loaded before it: not an arrow of its making.
    return {m for m in found if m in known and m != name and not name.startswith(m + ".")}


def _import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in SOURCE.rglob("*.py")}
    known = set(paths)
    return {name: _imports(path, name, known) for name, path in paths.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules() -> None:
    graph = _import_graph()
    assert "stead.identity.actor" in graph["stead.audit.service"]  # the walk sees imports
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _loaded(imports: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules named with one of ``prefixes`` that a fresh interpreter holds once it has
    run ``imports`` (Python statements)."""
    listed = f"sorted(m for m in sys.modules if m.startswith({prefixes!r}))"
    probe = f"import sys\n{imports}\nprint({listed})"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return list(ast.literal_eval(out))


def test_the_server_loads_neither_the_sdk_nor_the_declarative_tooling() -> None:
    """Nor SCIM's payload models until a SCIM request comes (``stead.scim.protocol``)."""
    client_side = ("stead.sdk", "stead.declarative", "stead.cli")
    scim_payloads = ("stead.scim.protocol", "stead.scim.service", "scim2_models")
    assert _loaded("import stead.app", client_side + scim_payloads) == []


def test_the_admin_commands_load_no_web_framework() -> None:
    """``stead admin`` and ``stead db`` start a fresh process each time, and importing FastAPI
    is a large share of that start (docs/decisions.md): the services they call page through
    ``stead.pagination``, which leaves the query parameters to ``stead.pipeline.paging``."""
    imports = (
        "import stead.cli.main, stead.db, stead.migrations, stead.settings\n"
        "import stead.identity.service, stead.scim.tokens, stead.secrets.store, stead.keycheck"
    )
    assert _loaded(imports, ("fastapi",)) == []
    assert "fastapi" in _loaded("import stead.pipeline.paging", ("fastapi",))  # the probe sees it
