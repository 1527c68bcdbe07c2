"""One source of a metric's direction: the task's ``higher_is_better`` (zoo.protocols.DeclaresMetrics).
``rmse`` monitored is minimised by early stopping, by the sweep and by ``zoo compare``; compare shows
only the metrics a row's tasks declare, and ``--sort`` offers only those."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from zoo.errors import ConfigError, RunError

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md"


def huber():
    """The worked task of docs/writing-a-plugin.md, as written."""
    source = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S) if "class HuberValence" in b)
    module = sys.modules.setdefault("zoo_huber_doc", types.ModuleType("zoo_huber_doc"))
    exec(compile(source, "zoo_huber", "exec"), module.__dict__)
    return module.HuberValence(module.HuberConfig())


class Plain:
    """A classification task that declares its primary metric only (no macro F1)."""
    name, kind, target, primary_metric, greater_is_better = "plain", "classification", "label", "accuracy", True


def test_rmse_as_monitor_is_minimised_by_early_stopping_and_the_sweep():
    from zoo.engine.augment import monitored
    from zoo.sweep.driver import _metric
    task = huber()
    model = SimpleNamespace(heads={"valence-huber": None}, tasks={"valence-huber": task})
    assert monitored(model, "rmse") == ("val.valence-huber.rmse", False)
    assert monitored(model, "valence-huber.mae") == ("val.valence-huber.mae", False)
    built = SimpleNamespace(tasks={"valence-huber": task})
    assert _metric("val.valence-huber.rmse", built) == ("val.valence-huber.rmse", "min")


def test_a_metric_the_task_does_not_declare_is_refused_with_the_fix():
    from zoo.engine.augment import monitored
    from zoo.sweep.driver import _metric
    model = SimpleNamespace(heads={"plain": None}, tasks={"plain": Plain()})
    with pytest.raises(RunError, match=r"train.monitor=macro_f1: task 'plain' does not declare .* declares accuracy.*"
                                       r"higher_is_better"):
        monitored(model, "macro_f1")
    with pytest.raises(ConfigError, match=r"--metric 'val.plain.macro_f1': task 'plain' does not declare"):
        _metric("val.plain.macro_f1", SimpleNamespace(tasks={"plain": Plain()}))


def test_key_metrics_are_the_declared_ones_with_their_directions():
    from zoo.engine.runner import key_metrics, lower_is_better
    from zoo.tasks import Classification, ClassificationConfig
    built = SimpleNamespace(tasks={"plain": Plain(), "valence-huber": huber()})
    assert key_metrics(built) == ["test.plain.accuracy", "test.valence-huber.mae"]  # no macro_f1: not declared
    assert key_metrics(built, "valence-huber.rmse")[-1] == "test.valence-huber.rmse"
    assert lower_is_better(built, "valence-huber.rmse") == ["test.valence-huber.mae", "test.valence-huber.rmse"]
    genre = SimpleNamespace(tasks={"genre": Classification("genre", ClassificationConfig())})
    assert key_metrics(genre) == ["test.genre.accuracy", "test.genre.macro_f1"] and lower_is_better(genre) == []


def test_zoo_compare_sorts_rmse_lowest_first_and_shows_only_reported_metrics(workspace, zoo_env, capsys):
    import json

    from zoo.cli import main
    from zoo.engine.runner import key_metrics, lower_is_better
    from zoo.tracking.mlflow.compare import compare_rows, sort_rows
    from zoo.tracking.mlflow.store import client, get_experiment
    built = SimpleNamespace(tasks={"valence-huber": huber()})
    c = client(workspace.tracking_uri)
    exp = get_experiment(c, "direction", create=True)
    for spec, rmse in (("lstm+mel:valence-huber", 0.30), ("cnn+mel:valence-huber", 0.10), ("ast+mel:valence-huber", 0.20)):
        run = c.create_run(exp.experiment_id, tags={
            "zoo.kind": "run", "zoo.spec": spec, "zoo.group": spec,
            "zoo.key_metrics": ",".join(key_metrics(built, "rmse") + ["test.valence-huber.macro_f1"]),
            "zoo.lower_is_better": ",".join(lower_is_better(built, "rmse"))})
        c.log_param(run.info.run_id, "seed", "0")
        c.log_metric(run.info.run_id, "test.valence-huber.mae", rmse / 2)
        c.log_metric(run.info.run_id, "test.valence-huber.rmse", rmse)
        c.set_terminated(run.info.run_id, "FINISHED")
    rows = compare_rows("direction", uri=workspace.tracking_uri)
    assert all(set(r["metrics"]) == {"test.valence-huber.mae", "test.valence-huber.rmse"} for r in rows)  # no n/a
    assert [r["spec"] for r in sort_rows(rows, "rmse")] == ["cnn+mel:valence-huber", "ast+mel:valence-huber",
                                                             "lstm+mel:valence-huber"]
    with pytest.raises(ConfigError, match=r"--sort macro_f1: no run has that test metric; metrics here: "
                                          r"valence-huber.mae, valence-huber.rmse$"):
        sort_rows(rows, "macro_f1")
    assert main(["compare", "--experiment", "direction", "--sort", "valence-huber.rmse", "--json"]) == 0
    ordered = [r["spec"] for r in json.loads(capsys.readouterr().out)]
    assert ordered[0] == "cnn+mel:valence-huber" and ordered[-1] == "lstm+mel:valence-huber"


def test_check_task_checks_the_declared_directions():
    from zoo.testing import check_task
    check_task(huber())
    task = huber()
    task.higher_is_better = {"mae": False}  # rmse reported without a direction
    with pytest.raises(AssertionError, match="metrics\\(\\) reports rmse without a direction in higher_is_better"):
        check_task(task)
    task.higher_is_better = {"mae": True, "rmse": False}
    with pytest.raises(AssertionError, match="higher_is_better\\['mae'\\] is True but greater_is_better is False"):
        check_task(task)
