"""The house: every import of hpo_bench points down (ARCHITECTURE.md, "Layout").

Reads the sources as text (ast), module- and function-level imports alike, as
``shared/tools/import_cycles.py`` does: a lazy import inside a function is still a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Bottom to top. A module may import its own package and anything in a lower layer, never above.
LAYERS = [
    ("hpo_bench._io", "hpo_bench._text", "hpo_bench.space", "hpo_bench._native"),
    ("hpo_bench.ops", "hpo_bench.kernels"),
    ("hpo_bench.nn", "hpo_bench.compression"),
    ("hpo_bench.profile", "hpo_bench.problems"),
    ("hpo_bench.evaluate", "hpo_bench.methods"),
    ("hpo_bench.harness",),
    ("hpo_bench.cli", "hpo_bench.__main__"),
]


def modules(root: Path, packages: dict[str, str]) -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is a package's __init__), for each folder -> package name."""
    out = {}
    for folder, package in packages.items():
        for f in sorted((root / folder).rglob("*.py")):
            parts = list(f.relative_to(root / folder).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            out[".".join([package, *parts])] = (f, is_pkg)
    return out


def import_graph(mods: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    """module -> the modules of ``mods`` it imports (a package's __init__ re-exporting its own
    submodules is not an edge back to the package)."""
    def owner(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, (path, is_pkg) in mods.items():
        package = m if is_pkg else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                o = owner(t)
                if o and o != m and not (m.startswith(o + ".") and mods[o][1]):
                    edges[m].add(o)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if any(module == top or module.startswith(top + ".") for top in layer):
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py: place it")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(modules(ROOT, {"hpo_bench": "hpo_bench", "kernels": "hpo_bench.kernels"}))


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_every_import_points_down(graph):
    def top(m: str) -> str:
        return ".".join(m.split(".")[:2])

    # ``from . import ops`` also names the root package, whose __init__ imports nothing (its public
    # names are lazy: test_the_root_package_imports_nothing)
    upward = [f"{m} -> {t}" for m, ts in graph.items() for t in ts
              if t != "hpo_bench" and m != "hpo_bench" and top(t) != top(m) and layer_of(t) > layer_of(m)]
    assert upward == []


def test_the_root_package_imports_nothing(graph):
    assert graph["hpo_bench"] == set()


def test_only_the_entry_point_imports_the_cli(graph):
    users = [m for m, ts in graph.items() if any(t == "hpo_bench.cli" or t.startswith("hpo_bench.cli.") for t in ts)
             and not m.startswith("hpo_bench.cli") and m != "hpo_bench.__main__"]
    assert users == []


def test_the_checks_see_a_planted_cycle_and_an_upward_import(tmp_path):
    """The checker itself can fail: a lazy import back up, inside a function, is found."""
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("from .a import f\n")
    (pkg / "low" / "a.py").write_text("def f():\n    from ..high import g\n    return g\n")
    (pkg / "high.py").write_text("from .low.a import f\n\ndef g():\n    return f\n")
    edges = import_graph(modules(tmp_path, {"pkg": "pkg"}))
    assert edges["pkg.low.a"] == {"pkg.high"} and edges["pkg.high"] == {"pkg.low.a"}
    assert cycles(edges) == [["pkg.high", "pkg.low.a"]]


def test_every_package_is_installed():
    """A non-editable install ships exactly the packages pyproject.toml lists: every folder of
    hpo_bench with an __init__.py must be there (CI installs editable and would not notice)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(("hpo_bench", *p.parent.relative_to(ROOT / "hpo_bench").parts)).rstrip(".")
             for p in (ROOT / "hpo_bench").rglob("__init__.py")}
    assert found - listed == set()
