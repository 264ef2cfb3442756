"""The package's layers, read from its imports: data walks one way, nothing imports in circles.

spec -> run -> graph -> roles -> model door, with memory and records underneath.
Every ``import`` in every module counts: at module level, inside functions and
under ``TYPE_CHECKING``, because a deferred import is still a dependency (it only
hides a loop until the code path that runs it). Importing ``a.b.c`` counts as
importing the packages ``a`` and ``a.b`` too, as Python runs their ``__init__``.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "concilium"


@cache
def modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def _owner(name: str) -> str | None:
    """The module ``name`` lives in (``a.b.C`` -> ``a.b``), if it is one of ours."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


@cache
def edges() -> dict[str, frozenset[str]]:
    """Module -> the package's modules it imports, anywhere in its code."""
    known = modules()
    graph: dict[str, frozenset[str]] = {}
    for name, (path, is_package) in known.items():
        here = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in known else base)
        resolved: set[str] = set()
        for target in targets:
            if not target.startswith("concilium"):
                continue
            owner = _owner(target)
            if owner is None:
                continue
            parts = owner.split(".")
            for i in range(1, len(parts) + 1):  # the packages it sits in run first
                enclosing = ".".join(parts[:i])
                if (
                    enclosing in known
                    and not name.startswith(enclosing + ".")
                    and enclosing != name
                ):
                    resolved.add(enclosing)
        graph[name] = frozenset(resolved)
    return graph


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph = edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_is_read_whole() -> None:
    assert len(modules()) > 100  # the whole package, not an empty glob
    assert "concilium.run.execute" in edges()["concilium.team"]
    assert "concilium.memory.db" in edges()["concilium.memory.journal"]  # inside a function


def test_no_module_imports_itself_back_through_others() -> None:
    assert cycles() == []


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# (what, may not import these)
RULES = [
    ("concilium.records", ("concilium",)),
    ("concilium.errors", ("concilium",)),
    (
        "concilium.memory",
        (
            "concilium.agents",
            "concilium.graphs",
            "concilium.team",
            "concilium.teams",
            "concilium.run",
            "concilium.loader",
            "concilium.serve",
            "concilium.scale",
            "concilium.cli",
            "concilium.eval",
        ),
    ),
    (
        "concilium.spec",
        (
            "concilium.agents",
            "concilium.graphs",
            "concilium.run",
            "concilium.team",
            "concilium.loader",
            "concilium.memory",
        ),
    ),
    (
        "concilium.agents",
        (
            "concilium.graphs",
            "concilium.run",
            "concilium.team",
            "concilium.teams",
            "concilium.loader",
        ),
    ),
    (
        "concilium.graphs",
        (
            "concilium.run",
            "concilium.team",
            "concilium.teams",
            "concilium.loader",
            "concilium.memory",
        ),
    ),
    (
        "concilium.run",
        (
            "concilium.team",
            "concilium.teams",
            "concilium.serve",
            "concilium.scale",
            "concilium.cli",
            "concilium.eval",
        ),
    ),
]


@pytest.mark.parametrize(("layer", "above"), RULES, ids=[rule[0] for rule in RULES])
def test_a_layer_imports_nothing_above_it(layer: str, above: tuple[str, ...]) -> None:
    wrong = sorted(
        (module, target)
        for module, targets in edges().items()
        if _under(module, layer)
        for target in targets
        if _under(target, *above) and not _under(target, layer)
    )
    assert wrong == []


def test_tests_import_their_helpers_as_ci_runs_them() -> None:
    """CI runs plain ``pytest``: ``tests/`` is on ``sys.path``, the repository root is not.

    ``from tests.waiting import ...`` works under ``python -m pytest`` or with the root on
    ``PYTHONPATH`` and breaks collection of the whole suite in CI; helpers are imported
    by their own name (``from waiting import ...``).
    """
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}" for name in names
                          if name == "tests" or name.startswith("tests.")]
    assert not offenders, f"import test helpers by name, not through tests.: {offenders}"
