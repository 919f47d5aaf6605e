"""The package's import graph: no circle (lazy imports inside functions count too), and readers,
stores and evaluation never import the model or a stage, so each can be used, and tested, alone."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "wsjds"

# Who may not import whom: the low layers (dataset readers, HDF5 artifact stores, evaluation)
# below the network and the stages that run it.
LOW_LAYERS = ("wsjds.data", "wsjds.artifacts", "wsjds.proposals.store", "wsjds.evaluation")
HIGH_LAYERS = ("wsjds.model", "wsjds.cgl.task", "wsjds.stages", "wsjds.distributed", "wsjds.runs", "wsjds.commands",
               "wsjds.proposals.selective_search", "wsjds.report", "wsjds.workflow")


def test_the_package_has_no_import_circle():
    graph = import_graph()
    assert len(graph) > 80                                   # the walk found the package
    circles = [sorted(component) for component in strongly_connected(graph) if len(component) > 1]
    assert circles == [], circles


def test_readers_stores_and_evaluation_import_no_model_or_stage():
    graph = import_graph()
    wrong = sorted((module, target) for module, targets in graph.items() if in_layer(module, LOW_LAYERS)
                   for target in targets if in_layer(target, HIGH_LAYERS))
    assert wrong == [], wrong


def test_the_walk_sees_lazy_and_relative_imports(tmp_path):
    """The graph builder itself: an import inside a function and a relative one are edges."""
    package = tmp_path / "wsjds"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from wsjds.sub import b\n")
    (package / "sub" / "b.py").write_text("from .. import a\nfrom . import c\n")
    (package / "sub" / "c.py").write_text("import wsjds.sub\n")
    graph = import_graph(package)
    assert graph["wsjds.a"] == {"wsjds.sub.b"} and graph["wsjds.sub.b"] == {"wsjds.a", "wsjds.sub.c"}
    assert graph["wsjds.sub.c"] == {"wsjds.sub"}
    assert sorted(map(sorted, (c for c in strongly_connected(graph) if len(c) > 1))) == [["wsjds.a", "wsjds.sub.b"]]


def in_layer(module: str, layers: tuple[str, ...]) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its file (``from x import name`` is an
    edge to ``x.name`` when that is a module, else to ``x``)."""
    files = {_module_name(path, package): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {_known(alias.name, files) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in files else _known(base, files))
        graph[name] = {t for t in targets if t and t != name and t != package.name}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in graph:
                continue
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _known(name: str, files: dict[str, Path]) -> str:
    """The deepest package module ``name`` lies in ('' for one outside the package)."""
    while name and name not in files:
        name = name.rpartition(".")[0]
    return name
