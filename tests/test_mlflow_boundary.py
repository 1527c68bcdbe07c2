"""MLflow stays behind the tracking package: no module of the core outside ``zoo/tracking`` nor of any plugin
imports ``mlflow``, and the raw store client (``zoo.tracking.mlflow.store.client``) is used outside it only
where it is listed below (none is: every look-up is a named function or a method of queries.Store).

Imports are read from the source (ast), so one inside a function counts as much as one at the top.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RAW_CLIENT_USERS: set[str] = set()
"""Modules outside zoo/tracking that still open the raw client: none (the reference resolver holds a
zoo.tracking.mlflow.queries.Store). Keep it empty."""


def package_sources() -> list[tuple[str, Path]]:
    """(dotted module name, file) of the core and of every plugin's package, tests left out."""
    found = [(".".join(p.relative_to(ROOT).with_suffix("").parts), p) for p in (ROOT / "zoo").rglob("*.py")]
    for plugin in sorted((ROOT / "plugins").iterdir()):
        for package in sorted(plugin.glob("*/__init__.py")):
            base = package.parent
            found += [(".".join(p.relative_to(plugin).with_suffix("").parts), p) for p in base.rglob("*.py")
                      if "tests" not in p.relative_to(plugin).parts]
    return [(name.removesuffix(".__init__"), path) for name, path in found]


def imports(module: str, path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(absolute module imported, names taken from it) for every import statement in ``path``."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, tuple(a.name for a in node.names)))
    return out


SOURCES = package_sources()


def test_the_scan_sees_the_core_and_the_plugins():
    names = {name for name, _ in SOURCES}
    assert {"zoo.api", "zoo.sweep.driver", "zoo.lab.embed", "zoo.tracking.mlflow.store"} <= names
    assert any(n.startswith("zoo_ast") for n in names) and any(n.startswith("zoo_hf") for n in names)
    assert not any(".tests" in n or n.startswith("tests") for n in names)


def test_the_relative_imports_are_resolved_as_python_does(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from ..tracking.mlflow.store import client\nfrom . import x\nimport mlflow.pyfunc\n")
    assert imports("zoo.sweep.m", f) == [("zoo.tracking.mlflow.store", ("client",)), ("zoo.sweep", ("x",)),
                                         ("mlflow.pyfunc", ())]


@pytest.mark.parametrize("module,path", [(n, p) for n, p in SOURCES if not n.startswith("zoo.tracking")],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_no_module_outside_the_tracking_package_imports_mlflow(module, path):
    bad = [target for target, _ in imports(module, path) if target == "mlflow" or target.startswith("mlflow.")]
    assert not bad, (f"{path.relative_to(ROOT)} imports {', '.join(bad)}: MLflow is used through zoo.tracking "
                     f"(MlflowTracker for writes, zoo.tracking.mlflow.queries for look-ups); add the method there")


def test_the_raw_store_client_is_used_outside_the_tracking_package_only_where_listed():
    users = {module for module, path in SOURCES if not module.startswith("zoo.tracking")
             for target, names in imports(module, path)
             if target == "zoo.tracking.mlflow.store" and "client" in names}
    assert users <= RAW_CLIENT_USERS, (f"{sorted(users - RAW_CLIENT_USERS)} open the raw MLflow client: call a "
                                       f"method of MlflowTracker or a function of zoo.tracking.mlflow.queries")
    assert users == RAW_CLIENT_USERS, f"{sorted(RAW_CLIENT_USERS - users)} no longer use it: drop them from the list"


def test_zoo_uis_ghost_run_check_ends_a_run_whose_process_is_gone_through_the_tracking_package(tmp_path, capsys):
    from zoo.cli.track_cmd import _end_ghost_runs
    from zoo.tracking.mlflow import reconcile as rc
    from zoo.tracking.mlflow.tracker import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker("ghosts", uri=uri)
    ghost = tracker.start_run("ghost", {"zoo.kind": "run"})
    tracker.set_tags(ghost, {rc.STARTED_TAG: "ticks:1"})  # this pid, started at another time: the run's process is gone
    alive = tracker.start_run("alive", {"zoo.kind": "run"})
    _end_ghost_runs(uri)
    assert "ended 1 run(s) KILLED whose process is gone" in capsys.readouterr().out
    assert (tracker.run(ghost).info.status, tracker.run(alive).info.status) == ("KILLED", "RUNNING")


def test_every_look_up_that_takes_a_client_is_a_method_of_the_store_the_resolver_holds():
    import inspect

    from zoo.tracking.mlflow import queries

    takes_client = {name for name, f in vars(queries).items() if inspect.isfunction(f) and f.__module__ == queries.__name__
                    and not name.startswith("_") and list(inspect.signature(f).parameters)[:1] == ["c"]}
    assert {"get_run", "download_version", "seed_runs"} <= takes_client
    missing = sorted(n for n in takes_client if not callable(getattr(queries.Store, n, None)))
    assert not missing, f"zoo.tracking.mlflow.queries.Store lacks {missing}: add a method that passes its client"


def test_the_store_opens_its_client_on_the_first_look_up_and_names_a_bad_uri(tmp_path):
    from zoo.errors import ConfigError
    from zoo.tracking.mlflow.queries import Store

    db = tmp_path / "mlflow.db"
    store = Store(f"sqlite:///{db}")
    assert not db.exists()  # nothing opened (nor created) yet
    assert store.get_run("0" * 32) is None and store.registered_names() == "none is registered"
    assert db.exists() and store.tracking_uri == f"sqlite:///{db}"
    with pytest.raises(ConfigError, match="no MLflow tracking URI given"):
        Store("").get_run("0" * 32)
