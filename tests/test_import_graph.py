"""No import cycle between dema's subpackages: each layer imports only layers below it.

The graph is built from the source with `ast`, every `import` and `from ... import` statement
counted wherever it stands (module level, inside functions, under `if TYPE_CHECKING`), relative
imports resolved. A node is a subpackage of dema (`dema/data/`, `dema/models/`, ...) or a
top-level module (`dema/envs.py` is the node `envs`); `dema/__init__.py` is the node `dema`.
docs/ARCHITECTURE.md draws the layers this test keeps true.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import dema

PACKAGE = Path(dema.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    """Whether `name` (dotted) is one of dema's modules or packages."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _node(module: str) -> str:
    """dema.data.load -> data; dema.envs -> envs; dema -> dema."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(dotted name of the dema module imported, line) for every import statement in `tree`."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: `from . import x`, `from ..data import y`
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # `from dema import envs` imports the module dema.envs
                submodule = f"{source}.{alias.name}"
                found.append((submodule if _is_module(submodule) else source, node.lineno))
    return [(name, line) for name, line in found if name == "dema" or name.startswith("dema.")]


def import_graph() -> dict[str, dict[str, str]]:
    """node -> {imported node: 'file:line' of one import that makes the edge}."""
    graph: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        source = _node(module)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, line in _imported(tree, module, path.name == "__init__.py"):
            target = _node(name)
            if target != source:
                graph[source].setdefault(target, f"{path.relative_to(PACKAGE.parent)}:{line}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, nodes in sorted order)."""
    state: dict[str, str] = {}  # "open" while on the search path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, {})):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def describe(cycle: list[str], graph: dict[str, dict[str, str]]) -> str:
    return " -> ".join(cycle) + "\n" + "\n".join(
        f"  {a} -> {b}: {graph[a][b]}" for a, b in zip(cycle, cycle[1:]))


def test_no_import_cycle_between_subpackages():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between dema's subpackages:\n" + describe(cycle, graph)


def test_the_graph_sees_imports_inside_functions_and_relative_ones(tmp_path):
    """The checker itself: a function-level import and a relative import both make edges, and a
    cycle through them is found and named."""
    code = ("from .blocks import x\n"
            "def f():\n"
            "    from dema.data.load import load_dataset\n"
            "    import dema.envs\n")
    names = {name for name, _ in _imported(ast.parse(code), "dema.models.policy", False)}
    assert names == {"dema.models.blocks", "dema.data.load", "dema.envs"}
    graph = {"data": {"atari": "a.py:1"}, "atari": {"evaluation": "b.py:2"}, "evaluation": {"atari": "c.py:3"}}
    cycle = find_cycle(graph)
    assert cycle == ["atari", "evaluation", "atari"]
    assert "evaluation -> atari: c.py:3" in describe(cycle, graph)
    assert find_cycle({"a": {"b": ""}, "b": {"c": ""}}) is None


def test_the_layers_of_the_architecture_hold():
    """The arrows docs/ARCHITECTURE.md draws: the lower layers never import the ones above."""
    graph = import_graph()
    below = {  # node -> nodes it must not import
        "envs": {"scan", "models", "data", "run", "train", "evaluation", "experiments"},
        "scan": {"models", "data", "run", "train", "evaluation", "experiments"},
        "models": {"run", "train", "evaluation", "experiments"},
        "data": {"models", "run", "train", "evaluation", "experiments"},
        "run": {"train", "evaluation", "experiments"},
        "evaluation": {"train", "experiments"},
        "train": {"experiments"},
    }
    wrong = [f"{a} -> {b} ({graph[a][b]})" for a, forbidden in below.items() for b in sorted(forbidden & set(graph[a]))]
    assert not wrong, "imports against the layers: " + "; ".join(wrong)
