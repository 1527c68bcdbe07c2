"""The shape of the core: no import cycles, no plugin imports, a documented job for every module."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zoo"


def _modules() -> dict[str, Path]:
    """``{"zoo.engine.runner": path}`` for every module of the core (packages by their ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of the core that ``name`` imports, at module level or inside a function."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        for target in targets:
            # "zoo.data.readers.kaggle.files" imports its parents' __init__ too, but those are not edges we
            # count: a package may import its own modules.
            if target in MODULES and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def _node(module: str) -> str:
    """The unit a cycle is counted between: a sub-package (its folder), or a module directly in ``zoo/``."""
    path = MODULES[module]
    if path.parent == PACKAGE:
        return module if path.name != "__init__.py" else "zoo"
    rel = path.parent.relative_to(ROOT)
    return ".".join(rel.parts)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_module_imports_another_that_imports_it_back():
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_packages_even_through_imports_inside_functions():
    packages: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        src = _node(module)
        packages.setdefault(src, set())
        for target in targets:
            dst = _node(target)
            if dst not in (src, "zoo"):
                packages[src].add(dst)
    assert _cycles(packages) == []


def test_the_core_never_imports_a_plugin_module():
    plugin_packages = {p.name for p in (ROOT / "plugins").glob("*/zoo_*") if p.is_dir()}
    assert plugin_packages, "no plugin packages found under plugins/"
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                heads = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                heads = [node.module.split(".")[0]]
            else:
                continue
            offenders += [f"{name} imports {h}" for h in heads if h in plugin_packages]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_states_its_one_job_in_its_first_docstring_line(name):
    doc = ast.get_docstring(ast.parse(MODULES[name].read_text()))
    assert doc and doc.strip().splitlines()[0].strip(), f"{MODULES[name]} has no docstring"


def test_docs_architecture_lists_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text()
    def cited(path: Path) -> str:
        rel = path.relative_to(ROOT)
        return f"`{rel.parent.as_posix()}/`" if path.name == "__init__.py" else f"`{rel.as_posix()}`"
    missing = [n for n, p in MODULES.items() if p.name != "__main__.py" and cited(p) not in text]
    assert missing == [], f"docs/architecture.md's module table lacks: {missing}"
