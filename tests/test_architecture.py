"""The shape of the code, checked on its source: layers, no import cycles, no private imports, short files.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a deferred
import hides a cycle from Python, not from a reader.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "methods", "models")
MAX_LINES = 400

#: What each part of the harness may import (besides itself, ``methods`` and ``models``):
#: cli → execution → engine → data; report → store → spec.
ALLOWED = {
    "benchmark.spec": set(),
    "benchmark.presets": set(),
    "benchmark.plugins": set(),
    "benchmark.store": {"benchmark.spec"},
    "benchmark.report": {"benchmark.store", "benchmark.spec"},
    "benchmark.data": set(),
    "benchmark.engine": {"benchmark.data", "benchmark.store", "benchmark.spec"},
    "benchmark.execution": {"benchmark.engine", "benchmark.store", "benchmark.spec", "benchmark.plugins"},
    "benchmark.checks": {"benchmark.execution", "benchmark.engine", "benchmark.data", "benchmark.spec"},
    "benchmark.cli": {"benchmark.flags", "benchmark.checks", "benchmark.execution", "benchmark.engine",
                      "benchmark.data", "benchmark.presets", "benchmark.report", "benchmark.store",
                      "benchmark.spec", "benchmark.plugins"},
    "benchmark.flags": {"benchmark.checks", "benchmark.execution", "benchmark.data", "benchmark.presets",
                        "benchmark.spec"},
    "benchmark.perf": {"benchmark.checks", "benchmark.execution", "benchmark.engine", "benchmark.data",
                       "benchmark.presets", "benchmark.store", "benchmark.spec"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    files = [ROOT / "run_benchmarks.py"]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return files


MODULES = {module_name(p): p for p in source_files()}


def imports_of(path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every project import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside = path.is_relative_to(ROOT)
    package = "" if not inside else module_name(path) if path.name == "__init__.py" \
        else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                if child in MODULES:  # ``from package import module``
                    found.append((child, None, node.lineno))
                else:
                    found.append((base, alias.name, node.lineno))
    return [(m, n, line) for m, n, line in found if m.split(".")[0] in PACKAGES]


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges[name] = {m for m, _, _ in imports_of(path) if m in MODULES and m != name}
    return edges


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def test_there_is_no_import_cycle():
    edges = graph()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack
                              else f"{node} → {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"
    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_the_harness_layers_import_one_way():
    wrong = []
    for name, path in MODULES.items():
        mine = layer_of(name)
        if mine is None:
            continue
        for imported, _, line in imports_of(path):
            theirs = layer_of(imported)
            if theirs is not None and theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} {mine} imports {imported}")
    assert wrong == []


def test_no_module_imports_another_modules_private_name():
    private = []
    for path in [*source_files(), *sorted((ROOT / "tests").glob("*.py"))]:
        for imported, name, line in imports_of(path):
            if name and name.startswith("_") and not name.startswith("__"):
                private.append(f"{path.relative_to(ROOT)}:{line} {imported}.{name}")
    assert private == []


def test_every_benchmark_module_is_in_a_layer():
    assert [m for m in MODULES if m.startswith("benchmark.") and layer_of(m) is None] == []


@pytest.mark.parametrize("folder", ["benchmark", "methods", "models", "tests"])
def test_no_source_file_is_over_the_line_limit(folder):
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / folder).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_no_module_re_exports_what_it_imports():
    """``# noqa: F401`` outside a package's ``__init__`` marks an import kept only to be re-exported."""
    hiding = [f"{p.relative_to(ROOT)}:{i}" for p in source_files() if p.name != "__init__.py"
              for i, text in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "noqa: F401" in text]
    assert hiding == []


def test_all_lists_only_what_a_module_defines():
    """An ``__all__`` naming an imported name re-exports it: import it from where it is defined
    (a package's ``__init__`` is its public face and may gather names)."""
    borrowed = []
    for path in [p for p in source_files() if p.name != "__init__.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assigned = [n.targets if isinstance(n, ast.Assign) else [n.target] for n in tree.body
                    if isinstance(n, (ast.Assign, ast.AnnAssign))]
        defined |= {t.id for targets in assigned for t in targets if isinstance(t, ast.Name)}
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                borrowed += [f"{path.relative_to(ROOT)}: {name}" for name in ast.literal_eval(node.value)
                             if name not in defined]
    assert borrowed == []


def test_the_checker_sees_a_cycle_and_a_private_import(tmp_path, monkeypatch):
    """The checks above can fail: a planted cycle and a planted private import are found."""
    edges = {"a": {"b"}, "b": {"a"}}
    monkeypatch.setattr(__import__(__name__), "graph", lambda: edges)
    with pytest.raises(AssertionError):
        test_there_is_no_import_cycle()
    planted = tmp_path / "x.py"
    planted.write_text("from benchmark.spec import _digest\n")
    assert imports_of(planted) == [("benchmark.spec", "_digest", 1)]
