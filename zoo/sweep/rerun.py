"""The settings a sweep found (``zoo run --from-sweep RUN`` / ``--settings-of RUN``): a spec and ``--set`` scopes.

A sweep's run stands for its best trial; a trial's run for itself. The settings are the sweep's
fixed ``--set`` ones, the trial's drawn values and the trial's training settings (those that
change the model, not where or how fast it trains); the caller's own ``--set`` win over them.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..tracking import PARENT_TAG
from .space import merge, settings_of
from .trial import PARAM_PREFIX
from ..tracking.credentials import redact_uri

_PLACEMENT = ("device", "threads", "refresh_steps", "eval_batch_size", "precision")
"""Training settings that say where and how fast a trial ran, not what it learned: not carried over."""


def settings_of_run(ref: str, *, uri: str | None) -> tuple[str, dict[str, dict[str, Any]], str]:
    """``(spec, settings, trial run id)`` of the sweep run or trial run ``ref`` (an id or unique prefix)."""
    from ..tracking.mlflow.queries import run_by_id, runs_by_ref
    found = runs_by_ref(ref, uri=uri)
    if len(found) != 1:
        raise ConfigError(f"--from-sweep {ref}: {'no run' if not found else f'{len(found)} runs'} with this id "
                          f"or prefix in {redact_uri(uri or '')}; give the sweep's run id `zoo sweep` printed")
    run = found[0]
    if run.data.tags.get("zoo.kind") == "sweep":
        best = run.data.tags.get("zoo.sweep.best_run")
        if not best:
            raise ConfigError(f"--from-sweep {ref}: sweep {run.info.run_id} has no best trial (status "
                              f"{run.info.status}); `zoo compare --sweep {run.info.run_id}` shows its trials")
        sweep, trial = run, run_by_id(best, uri=uri)
    elif run.data.tags.get("zoo.sweep"):
        sweep, trial = run_by_id(run.data.tags[PARENT_TAG], uri=uri), run
    else:
        raise ConfigError(f"--from-sweep {ref}: run {run.info.run_id} is neither a sweep nor one of its trials; "
                          f"give the run id `zoo sweep` printed")
    fixed = settings_of({k.removeprefix("set."): v for k, v in sweep.data.params.items() if k.startswith("set.")})
    drawn = settings_of({k.removeprefix(PARAM_PREFIX): v for k, v in trial.data.params.items()
                         if k.startswith(PARAM_PREFIX)})
    train = {k.removeprefix("train."): v for k, v in trial.data.params.items()
             if k.startswith("train.") and k.removeprefix("train.") not in _PLACEMENT}
    train = {k: v for k, v in train.items() if v not in ("()", "")}
    settings = merge(merge(fixed, {"train": train}), drawn)
    spec = trial.data.params.get("spec") or sweep.data.params["spec"]
    return spec, settings, trial.info.run_id


__all__ = ["settings_of_run"]
