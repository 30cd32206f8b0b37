"""The agent-side modules import one another in one direction only: a cycle (even one hidden
behind `if TYPE_CHECKING:`) means two modules that cannot be read or changed apart."""

from __future__ import annotations

import ast
from pathlib import Path

import agenthub.client

PACKAGE = Path(agenthub.client.__file__).parent


def imports_of(path: Path) -> set[str]:
    """The `agenthub.client` modules `path` imports, wherever in the file the import is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(n.rsplit(".", 1)[-1] for n in names if n.startswith("agenthub.client."))
    return found


def test_no_module_of_the_client_package_imports_itself_back() -> None:
    # The package's __init__ re-exports everything: it is the top, not part of a cycle.
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {name: imports_of(path) & modules.keys() for name, path in modules.items()}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            name, trail = stack.pop()
            for nxt in graph[name]:
                if nxt == start:
                    return [*trail, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = [c for c in map(cycle_from, sorted(graph)) if c is not None]
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)
