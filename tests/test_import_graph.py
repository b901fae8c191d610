"""The package's import graph has no cycle and no upward import across its layers.

Every ``import`` of a ``toolformer`` module counts, at module level and inside functions alike
(a function-local import that dodges a cycle still ties the two modules together).
``from toolformer.x import y`` is an edge to ``toolformer.x.y`` when that is a module, else to
``toolformer.x``. A package ``__init__`` that exports names lazily (``toolformer/__init__.py``
and its ``__getattr__``) adds edges only for its real import statements.

The layers, bottom up (a module may import its own layer and those below it):

1. the ground floor: ``toolformer.errors``, ``paths``, ``atomic``, ``config_types``,
   ``records``, ``registry``, ``syntax`` and ``toolformer.text.*``: they import only each other;
2. checkpoints: ``toolformer.manifest`` (the ``toolformer.json`` file: imports only the ground
   floor) and ``toolformer.models.*`` (aliases, resolution, adapter folders and what a
   checkpoint's manifest declares, loading; imports only the ground floor, the manifest and
   itself, never a tool);
3. tools: ``toolformer.tools.*`` stand on models (QA's reader, MT) and the ground floor, never
   on what uses tools: ``generation``, ``data_aug``, ``finetune``, ``selftrain``, ``eval``,
   ``serve``, ``cli``;
4. the command line: only ``toolformer.cli.*`` imports ``toolformer.cli`` (the library never
   stands on its command line).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Set, Tuple

PACKAGE = "toolformer"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

GROUND = (
    "toolformer.errors",
    "toolformer.paths",
    "toolformer.atomic",
    "toolformer.config_types",
    "toolformer.records",
    "toolformer.registry",
    "toolformer.syntax",
    "toolformer.text",
)
CHECKPOINT = ("toolformer.manifest", "toolformer.models")
ABOVE_TOOLS = (
    "toolformer.generation",
    "toolformer.data_aug",
    "toolformer.finetune",
    "toolformer.finetune_config",
    "toolformer.selftrain",
    "toolformer.eval",
    "toolformer.serve",
    "toolformer.cli",
)


def _under(module: str, prefixes: Tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def module_sources(root: Path = ROOT, package: str = PACKAGE) -> Dict[str, str]:
    """``{module name: source}`` of every ``.py`` file under ``root`` (a package ``__init__`` is
    named for its package)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([package, *parts])] = path.read_text(encoding="utf-8")
    return out


def _target(name: str, modules: Mapping[str, str]) -> Optional[str]:
    """The project module an imported dotted name means: the longest prefix that is a module."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in modules else None


def import_graph(sources: Mapping[str, str], package: str = PACKAGE) -> Dict[str, Dict[str, int]]:
    """``{module: {imported module: line of the first import}}`` over ``sources`` (see
    :func:`module_sources`), for imports of the project's own modules only."""
    graph: Dict[str, Dict[str, int]] = {}
    for module, source in sources.items():
        edges = graph.setdefault(module, {})
        is_package = any(m.startswith(module + ".") for m in sources)
        for node in ast.walk(ast.parse(source, filename=module)):
            names: List[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package that holds the module
                    parts = module.split(".") if is_package else module.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                names = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in sources else base
                    for alias in node.names
                ]
            for name in names:
                if name != package and not name.startswith(package + "."):
                    continue
                target = _target(name, sources)
                if target is not None and target != module:
                    edges.setdefault(target, node.lineno)
    return graph


def find_cycle(graph: Mapping[str, Mapping[str, int]]) -> Optional[List[str]]:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (an iterative depth-first search)."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path: List[str] = []
        stack: List[Tuple[str, List[str]]] = [(start, sorted(graph.get(start, {})))]
        state[start] = 1
        path.append(start)
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop(0)
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph.get(nxt, {}))))
    return None


def upward_imports(graph: Mapping[str, Mapping[str, int]]) -> Set[Tuple[str, str]]:
    """The edges that break a layer rule of this module's docstring."""
    bad = set()
    for src, targets in graph.items():
        for dst in targets:
            if _under(src, GROUND) and not _under(dst, GROUND):
                bad.add((src, dst))
            elif src == "toolformer.manifest" and not _under(dst, GROUND):
                bad.add((src, dst))
            elif _under(src, ("toolformer.models",)) and not _under(dst, GROUND + CHECKPOINT):
                bad.add((src, dst))
            elif _under(src, ("toolformer.tools",)) and _under(dst, ABOVE_TOOLS):
                bad.add((src, dst))
            elif _under(dst, ("toolformer.cli",)) and not _under(src, ("toolformer.cli",)):
                bad.add((src, dst))
    return bad


@functools.lru_cache(maxsize=1)
def _graph() -> Dict[str, Dict[str, int]]:
    return import_graph(module_sources())


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    assert "toolformer.models.loading" in graph and len(graph) > 50  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, (
        "import cycle: "
        + " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:]))
        + f" -> {cycle[-1]}"
    )


def test_no_upward_import_across_layers():
    graph = _graph()
    bad = upward_imports(graph)
    assert not bad, "upward imports: " + "; ".join(
        f"{a} -> {b} (line {graph[a][b]})" for a, b in sorted(bad)
    )


def test_the_checker_finds_a_planted_cycle_and_an_upward_import():
    sources = {
        "toolformer": "",
        "toolformer.errors": "",
        "toolformer.models": "",
        "toolformer.models.loading": "def f():\n    from toolformer.tools import qa\n",
        "toolformer.tools": "",
        "toolformer.tools.qa": "from toolformer.models.loading import load_model\n",
        "toolformer.tools.calendar": "import os\nfrom .qa import X\n",
        "toolformer.paths": "from toolformer import models  # upward from the ground floor\n",
    }
    graph = import_graph(sources)
    assert graph["toolformer.tools.calendar"] == {"toolformer.tools.qa": 2}  # relative import
    assert graph["toolformer.paths"] == {"toolformer.models": 1}  # from pkg import submodule
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"toolformer.models.loading", "toolformer.tools.qa"}
    assert cycle[0] == cycle[-1]
    assert upward_imports(graph) == {
        ("toolformer.models.loading", "toolformer.tools.qa"),
        ("toolformer.paths", "toolformer.models"),
    }
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) is None
