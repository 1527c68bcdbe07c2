"""The shape of the code: the layer order docs/architecture.md states, no import cycles (core and plugins),
no plugin imports in the core, a documented job for every module."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zoo"
DOC = ROOT / "docs" / "architecture.md"
LAYERS_HEADING = "## Layers and who may import whom"


def _modules(package: Path) -> dict[str, Path]:
    """``{"zoo.engine.runner": path}`` for every module under ``package`` (packages by their ``__init__``)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules(PACKAGE)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ``modules`` that ``name`` imports, at module level or inside a function."""
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
            if target in modules and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: _imports(name, path, modules) for name, path in modules.items()}


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


GRAPH = _graph(MODULES)


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


# -- the layer order of docs/architecture.md -------------------------------------------------------

def _layers(text: str, top: str = "zoo") -> list[tuple[str, ...]]:
    """The paths under ``top/`` that each numbered item of the doc's layer list names, first layer first."""
    assert LAYERS_HEADING in text, f"docs/architecture.md has no '{LAYERS_HEADING}' section"
    section = text.split(LAYERS_HEADING, 1)[1].split("\n## ", 1)[0]
    pattern = re.compile(rf"`({re.escape(top)}/[^`\s]*)`")
    return [tuple(pattern.findall(m.group(1))) for m in re.finditer(r"^\d+\. (.+)$", section, re.MULTILINE)]


def _layer_of(path: Path, root: Path, layers: list[tuple[str, ...]]) -> int | None:
    """The layer (1 = lowest) of the most specific listed path that covers ``path``; None if none does."""
    rel = path.relative_to(root).as_posix()
    best: tuple[int, int] | None = None  # (length of the listed path, its layer)
    for level, paths in enumerate(layers, 1):
        for listed in paths:
            if rel == listed or (listed.endswith("/") and rel.startswith(listed)):
                if best is None or len(listed) > best[0]:
                    best = (len(listed), level)
    return best[1] if best else None


def _layering(modules: dict[str, Path], root: Path, text: str, top: str = "zoo") -> tuple[list[str], list[str]]:
    """``(modules no layer covers, "A (layer i) imports B (layer j)" for every import that goes up)``."""
    layers = _layers(text, top)
    level = {name: _layer_of(path, root, layers) for name, path in modules.items()}
    unplaced = sorted(name for name, lv in level.items() if lv is None)
    upward = []
    for src, targets in sorted(_graph(modules).items()):
        for dst in sorted(targets):
            if level[src] is not None and level[dst] is not None and level[dst] > level[src]:
                upward.append(f"{src} (layer {level[src]}) imports {dst} (layer {level[dst]})")
    return unplaced, upward


def test_the_doc_places_every_core_module_in_one_layer():
    layers = _layers(DOC.read_text())
    assert len(layers) >= 5, f"docs/architecture.md lists {len(layers)} layers"
    listed = [p for paths in layers for p in set(paths)]
    assert sorted(p for p in set(listed) if listed.count(p) > 1) == [], "a path named in two layers"
    unplaced, _ = _layering(MODULES, ROOT, DOC.read_text())
    assert unplaced == [], f"docs/architecture.md's layer list covers none of: {unplaced}"


def test_imports_go_down_the_layers_docs_architecture_states_never_up():
    _, upward = _layering(MODULES, ROOT, DOC.read_text())
    assert upward == []


def _fake_tree(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return _modules(root / "zoo")


FAKE_DOC = f"""# the fake tree\n\n{LAYERS_HEADING}\n\n1. `zoo/base.py`: the bottom.\n2. `zoo/mid/`: \
the middle, above `zoo/base.py`.\n3. `zoo/top.py`: the front door.\n\n## The modules\n"""


def test_the_layer_check_finds_a_planted_upward_import_even_inside_a_function(tmp_path):
    files = {
        "zoo/__init__.py": '"""pkg"""\n',
        "zoo/base.py": '"""bottom"""\n',
        "zoo/mid/__init__.py": '"""middle"""\nfrom ..base import x\n',
        "zoo/mid/part.py": '"""part"""\nfrom .. import base\n',
        "zoo/top.py": '"""top"""\nfrom .mid import part\nimport zoo.base\n',
    }
    modules = _fake_tree(tmp_path, files)
    assert _layering(modules, tmp_path, FAKE_DOC) == (["zoo"], [])  # the package itself is not listed
    (tmp_path / "zoo/base.py").write_text('"""bottom"""\ndef f():\n    from .mid.part import y\n')
    _, upward = _layering(modules, tmp_path, FAKE_DOC)
    assert upward == ["zoo.base (layer 1) imports zoo.mid.part (layer 2)"]
    (tmp_path / "zoo/mid/part.py").write_text('"""part"""\nimport zoo.top\n')
    assert "zoo.mid.part (layer 2) imports zoo.top (layer 3)" in _layering(modules, tmp_path, FAKE_DOC)[1]


# -- plugins ----------------------------------------------------------------------------------------

PLUGIN_PACKAGES = sorted(p for p in (ROOT / "plugins").glob("*/zoo_*") if (p / "__init__.py").is_file())


def test_every_plugin_package_is_checked():
    assert {p.name for p in PLUGIN_PACKAGES} >= {"zoo_features", "zoo_cnn", "zoo_lstm", "zoo_ast", "zoo_stats"}


@pytest.mark.parametrize("package", PLUGIN_PACKAGES, ids=lambda p: p.name)
def test_no_import_cycle_inside_a_plugin_package_even_through_imports_inside_functions(package):
    assert _cycles(_graph(_modules(package))) == []


def test_the_cycle_check_finds_a_planted_cycle_through_an_import_inside_a_function(tmp_path):
    modules = _fake_tree(tmp_path, {
        "zoo/__init__.py": "", "zoo/kernels.py": "from .configs import C\n", "zoo/configs.py": "C = 1\n",
        "zoo/driver.py": "from . import kernels\n",
    })
    assert _cycles(_graph(modules)) == []
    (tmp_path / "zoo/kernels.py").write_text("from .configs import C\ndef batch():\n    from .driver import run\n")
    assert _cycles(_graph(modules)) == [["zoo.driver", "zoo.kernels"]]
