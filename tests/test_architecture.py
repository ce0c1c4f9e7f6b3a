"""The architecture as tests: import-linter contracts, no import cycles, the shape of the tree.

The contracts themselves live in ``pyproject.toml`` (``[tool.importlinter]``: classify is pure,
measure never judges, report and store never measure, the kernel imports nothing above it, the
product never imports the laboratory); this module runs them through import-linter's API, so
``make test`` fails where ``make check``'s ``lint-imports`` would. Cycles are found with grimp,
import-linter's graph library, over every module of ``probe`` (imports inside functions count;
imports only for type checkers do not).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "probe"

#: The kernel may stay loose at the top of the package; everything else lives in a part.
#: The kernel: records, failures, errors, target lists and endpoint lists (issue 14).
LOOSE = {"__init__", "__main__", "model", "failures", "errors", "targets", "applists",
         "addresses"}
#: A step and its judgement may share a name: once in measure/, once in classify/.
STEP_AND_JUDGEMENT = {PACKAGE / "measure", PACKAGE / "classify"}


def test_import_contracts_hold(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # import-linter finds the package from the working directory
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True,
                        no_logo=True)
    assert code == 0, "an import-linter contract is broken: see the report above"


def _cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    inside = set(modules)
    edges = {m: sorted(set(graph.find_modules_directly_imported_by(m)) & inside)
             for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in modules:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(edges[node])):
                nxt = edges[node][j]
                if nxt not in index:
                    work += [(node, j + 1), (nxt, 0)]
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c", "p.d"):
        graph.add_module(m)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.d", imported="p.a")
    assert _cycles(graph, "p") == [["p.a", "p.b", "p.c"]]


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("probe", exclude_type_checking_imports=True, cache_dir=None)
    cycles = _cycles(graph, "probe")
    assert not cycles, "modules that import each other (directly or in a circle): " + "; ".join(
        " ↔ ".join(c) for c in cycles)


def test_at_most_the_kernel_is_loose() -> None:
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    assert loose <= LOOSE, f"loose modules outside the kernel: {sorted(loose - LOOSE)}"
    assert len(loose) <= len(LOOSE)


def test_every_part_is_a_package() -> None:
    parts = [p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"]
    missing = [str(p.relative_to(ROOT)) for p in parts
               if any(p.rglob("*.py")) and not (p / "__init__.py").exists()]
    assert not missing, f"folders without __init__.py: {missing}"


def test_no_module_name_means_two_things() -> None:
    modules = [p for p in PACKAGE.rglob("*.py") if p.stem not in ("__init__", "__main__")]
    counts = Counter(p.stem for p in modules)
    clashes = {}
    for name, n in counts.items():
        if n == 1:
            continue
        folders = sorted(p.parent for p in modules if p.stem == name)
        if n == 2 and set(folders) == STEP_AND_JUDGEMENT:
            continue  # a step in measure/ and its judgement in classify/
        clashes[name] = [str(f.relative_to(ROOT)) for f in folders]
    assert not clashes, f"module names used more than once: {clashes}"


def _documented_tree() -> set[str]:
    """The module paths of the tree in docs/architecture.md (indentation = nesting)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## The tree", 1)[1].split("```\n", 2)[1]
    paths: set[str] = set()
    stack: list[str] = []
    for line in block.splitlines():
        name = line.split()[0]
        depth = (len(line) - len(line.lstrip(" "))) // 2
        stack[depth:] = [name.rstrip("/")]
        if name.endswith(".py"):
            paths.add("/".join(stack))
        else:
            paths.add("/".join(stack) + "/__init__.py")
    return paths


def test_the_documented_tree_is_the_tree_on_disk() -> None:
    on_disk = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
               if "__pycache__" not in p.parts}
    documented = _documented_tree()
    assert not on_disk - documented, f"not in docs/architecture.md: {sorted(on_disk - documented)}"
    assert not documented - on_disk, f"documented, not on disk: {sorted(documented - on_disk)}"
