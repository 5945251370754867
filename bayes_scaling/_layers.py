"""The layer map of the package, in one place, and the check that keeps it.

Each module belongs to one layer; a module may import from its own layer and the
layers below it, never from a layer above, not even lazily inside a function or for
type checking only. Inside a layer the imports must not form a cycle. The map is
explained in ``docs/architecture.md``; ``tests/test_architecture.py`` runs
:func:`violations` on the package and on a copy with a planted upward import.

The package itself (``bayes_scaling/__init__.py``, the public API) sits above every
layer. This module is data and standard-library code only: nothing in the package
imports it at run time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = "bayes_scaling"

#: Layers from the bottom up: (name, modules). A subpackage (``laws``, ``decisions``,
#: ``report``, ``cli``) belongs whole to one layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("errors", "units", "tables", "metrics", "risk", "executor", "compilation_cache", "_jax",
                    "provenance", "files", "_layers")),
    ("data", ("data", "simulate", "training_logs")),
    ("laws and cards", ("laws", "discrepancy", "cards")),
    ("model", ("model", "huber", "noise", "replicate_model", "task_model", "task_baseline")),
    ("posterior", ("posterior", "fitfile", "diagnostics", "fitted", "prediction", "discrepancy_evidence")),
    ("inference", ("nuts", "sampling", "discrepancy_scale", "task_inference", "inference", "replicates")),
    ("allocation", ("allocation", "task_prediction")),
    ("decisions", ("decisions",)),
    ("analyses", ("approaches", "comparison", "averaging", "backtesting", "sensitivity_analysis",
                  "calibration_evidence", "calibration", "task_backtest", "arms")),
    ("report", ("report",)),
    ("cli", ("cli",)),
)


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of a module named relative to the package (``"laws.base"``); ``None`` for the package."""
    if module == "":
        return None
    top = module.split(".")[0]
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    raise KeyError(f"module {module!r} is in no layer: add it to {PACKAGE}._layers.LAYERS and docs/architecture.md")


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package folder ``root``, by name relative to the package (``""`` for ``__init__``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(root: Path) -> dict[str, set[str]]:
    """The package's own imports of each module, lazy and type-checking ones included: {module: {imported}}."""
    found = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if name else []
        base = here if is_package else here[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            candidates: list[str] = []
            if isinstance(node, ast.Import):
                candidates = [a.name[len(PACKAGE) + 1:] for a in node.names if a.name.startswith(PACKAGE + ".")]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    module = ".".join([*anchor, *([node.module] if node.module else [])])
                elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
                    module = node.module[len(PACKAGE) + 1:]
                else:
                    continue
                candidates = [f"{module}.{a.name}".lstrip(".") if f"{module}.{a.name}".lstrip(".") in found
                              else module for a in node.names]
            for target in candidates:
                while target not in found and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in found and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (import cycles), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is small, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return out


def violations(root: Path) -> list[str]:
    """Every import from a lower layer to a higher one, and every import cycle, in the package folder ``root``.

    Returns
    -------
    list of str
        One line per problem, e.g. ``"allocation (allocation) imports report (report): upward"``;
        empty when the package keeps its layers.
    """
    graph = imports(root)
    problems = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        if mine is None:
            continue
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                problems.append(f"{module} ({LAYERS[mine][0]}) imports {target} ({LAYERS[theirs][0]}): upward")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


__all__ = ["LAYERS", "PACKAGE", "cycles", "imports", "layer_of", "modules", "violations"]
