"""Carry out a sweep: check the search space, prepare the features once, run the trials on Ray Tune, log the result.

The only module of the core that imports Ray (inside functions, so ``import zoo`` never needs it).
One MLflow parent run holds the sweep (search space, scheduler, the best trial's settings and
metric); each trial is a normal zoo run nested under it (:mod:`zoo.sweep.trial`). Trials the
scheduler stopped early are ended FINISHED with the tag ``zoo.sweep.stopped``; a failed trial is
FAILED with its reason and the sweep goes on; Ctrl-C stops every trial and ends the parent KILLED.
"""
from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..processes import guard_descendants, keep_signal_handlers, stop_guard
from ..errors import ConfigError, RunError
from ..tracking import FAILURE_TAG, failure_reason
from .space import Param, merge, settings_of
from .trial import RUN_ID_KEY, SWEEP_TAG, TRIAL_TAG, TrialJob, run_trial

STOPPED_TAG = "zoo.sweep.stopped"
"""On a trial's run that the scheduler stopped early: why, and after which epoch."""
BEST_TAG = "zoo.sweep.best_run"
"""On the sweep's run: the best trial's run id."""
INSTALL = 'pip install "music-zoo[sweep]"'


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.tune  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"zoo sweep needs Ray Tune, which is not installed here ({exc.name} is missing); "
                          f"install it with: {INSTALL}") from None
    return ray


@dataclass(frozen=True)
class SweepPlan:
    """One sweep: ``spec`` (or a recipe name) with ``settings`` (``--set``) under the searched ``params``.

    ``train``: the options every trial gets, flat as ``zoo run`` takes them (data, layout, epochs, limit,
    seed, ...; :func:`zoo.api.grouped` groups them for ``zoo.train``). ``metric``: the per-epoch validation metric the scheduler and the ranking use (None: the first
    task's primary one, e.g. ``val.genre.accuracy``). ``concurrent``: trials at once (None: as many as
    the CPUs allow). ``address``: an existing Ray cluster (``auto``, ``ray://HOST:PORT``); None
    starts a local Ray sized to ``cpus`` (None: this process's free cores) and stops it after.
    """

    spec: str
    params: tuple[Param, ...]
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    trials: int = 8
    metric: str | None = None
    concurrent: int | None = None
    address: str | None = None
    cpus: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    grace: int = 1
    experiment: str = "music-zoo"
    register: str | None = None
    object_store_mb: int = 256


@dataclass
class SweepResult:
    """What :func:`sweep` returns: the parent run, one row per trial (leaderboard order), the best row."""

    run_id: str
    metric: str
    mode: str
    rows: list[dict]
    best: dict | None
    registered: Any = None


def _base(plan: SweepPlan) -> tuple[str, dict[str, dict[str, Any]], Any]:
    """(spec, settings with a recipe's under the ``--set`` ones, recipe or None)."""
    spec = plan.spec.strip()
    settings = {k: dict(v) for k, v in plan.settings.items()}
    if ":" in spec or "+" in spec:
        return spec, settings, None
    from ..recipes import get_recipe
    recipe = get_recipe(spec)
    return recipe.spec, merge({k: dict(v) for k, v in recipe.settings.items()}, settings), recipe


def _check_one(spec: str, settings: dict, registry: Any) -> Any:
    from ..config import make_config
    from ..engine.trainconfig import backbone_defaults, split_settings, train_config
    from ..model.building import build_components
    from ..spec import parse_spec
    components, train, _ = split_settings(settings)
    comp = parse_spec(spec, registry)
    train_config(backbone_defaults(registry, comp.backbone), train)
    built = build_components(comp, registry, components)
    # The backbone's settings, typed and checked without building it (that needs the data's bins).
    make_config(registry.load("backbone", comp.backbone).config, built.settings.get("backbone", {}),
                where=f"backbone '{comp.backbone}'")
    return built


def check_space(plan: SweepPlan, registry: Any) -> tuple[Any, str, str]:
    """Check every searched setting against the composition, at both ends of each range and for every
    listed value, before anything starts; return ``(built, metric, mode)``."""
    spec, settings, _ = _base(plan)
    if isinstance(plan.trials, bool) or not isinstance(plan.trials, int) or plan.trials < 1:
        raise ConfigError(f"--trials {plan.trials!r}: give 1 or more")
    first = {p.name: p.samples()[0] for p in plan.params}
    built = None
    for p in plan.params:
        for value in p.samples():
            try:
                built = _check_one(spec, merge(settings, settings_of(dict(first, **{p.name: value}))), registry)
            except ConfigError as exc:
                raise ConfigError(f"--param {p.text()}: with {p.name}={value}: {exc}") from None
    for p in plan.params:
        if p.kind not in ("uniform", "loguniform"):
            continue
        # A range draws fractions between its ends: a setting that takes whole numbers only passes at both
        # ends and would fail in every trial, inside Ray.
        inside = math.nextafter(float(p.values[0]), float(p.values[1]))
        try:
            _check_one(spec, merge(settings, settings_of(dict(first, **{p.name: inside}))), registry)
        except ConfigError:
            low, high = (int(math.ceil(p.values[0])), int(math.floor(p.values[1])))
            raise ConfigError(f"--param {p.text()}: {p.name} takes whole numbers only, and {p.kind} draws "
                              f"fractions between them; search it with {p.name}=randint:{low}:{high} (or "
                              f"choice:A,B,...)") from None
    built = _check_one(spec, merge(settings, settings_of(first)), registry)
    metric, mode = _metric(plan.metric, built)
    return built, metric, mode


def _metric(given: str | None, built: Any) -> tuple[str, str]:
    """The validation metric and whether it is maximised ("max") or minimised ("min"), as its task
    declares (:func:`zoo.protocols.metric_direction`)."""
    tasks = built.tasks
    first_name, first = next(iter(tasks.items()))
    if given is None:
        return f"val.{first_name}.{first.primary_metric}", "max" if first.greater_is_better else "min"
    if given == "val.loss":
        return given, "min"
    parts = given.split(".")
    if len(parts) != 3 or parts[0] != "val" or parts[1] not in tasks:
        valid = ", ".join(f"val.{n}.{t.primary_metric}" for n, t in tasks.items())
        raise ConfigError(f"--metric {given!r}: give a validation metric val.TASK.METRIC of this spec's tasks "
                          f"(e.g. {valid}), or val.loss")
    from ..protocols import metric_direction, metric_directions
    higher = metric_direction(tasks[parts[1]], parts[2])
    if higher is None:
        declared = ", ".join(f"val.{parts[1]}.{m}" for m in metric_directions(tasks[parts[1]]))
        raise ConfigError(f"--metric {given!r}: task '{parts[1]}' does not declare whether a higher {parts[2]} is "
                          f"better; give one it declares ({declared}), or add {parts[2]!r} to the task's "
                          f"higher_is_better (zoo.protocols.DeclaresMetrics)")
    return given, "max" if higher else "min"


def _attach(ray: Any, address: str) -> None:
    """``ray.init`` on the cluster at ``address``, Ray's refusals as one line naming the address and the fix."""
    try:
        ray.init(address=address, log_to_driver=False)
    except (ValueError, ConnectionError, RuntimeError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--address {address}: could not attach to a Ray cluster there ({first}); start one "
                          f"(ray start --head) or give its address, or leave --address out to start a local "
                          f"Ray") from None


PROBE_SECONDS = 5.0


def _probe(address: str) -> None:
    """Refuse an ``--address`` that cannot work before anything starts: a ``ray://`` one without Ray's
    client, or a HOST:PORT where nothing answers within :data:`PROBE_SECONDS` (``ray.init`` would
    retry for minutes, silently). ``auto`` is left to Ray, which finds the local cluster or says none runs."""
    if address in ("auto", "local"):
        return
    client = address.startswith("ray://")
    if client:
        if importlib.util.find_spec("grpc") is None:  # what Ray's client needs
            raise ConfigError(f"--address {address}: a ray:// address needs Ray's client (grpcio), which is "
                              f'not installed here; install it with: pip install "ray[client]"')
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address}: give HOST:PORT (the head node's, e.g. 10.0.0.5:6379), "
                          f"ray://HOST:PORT for Ray's client, or auto")
    import socket
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        why = "no answer within {:g} s".format(PROBE_SECONDS) if isinstance(exc, TimeoutError) else \
            (exc.strerror or str(exc)).lower()
        raise ConfigError(f"--address {address}: no Ray cluster answers at {host}:{port} ({why}); start it "
                          f"(ray start --head{' --ray-client-server-port ' + port if client else ''}) or fix the "
                          f"address, or leave --address out to start a local Ray") from None


def check_resources(plan: SweepPlan, cluster: Mapping[str, float] | None) -> str | None:
    """Refuse a trial that asks for more CPUs or GPUs than the local Ray has: Tune would wait for them
    forever, silently. ``cluster``: Ray's resources once it runs; None checks this machine before a local
    Ray starts. A cluster at ``--address`` may grow (an autoscaler adds nodes), so its shortfall is
    returned as a warning to say instead."""
    if cluster is None:
        if plan.address:
            _probe(plan.address)
            return None
        import torch
        cluster = {"CPU": float(plan.cpus or _free_cores()), "GPU": float(torch.cuda.device_count())}
    where = f"the Ray cluster at {plan.address}" if plan.address else "this machine's local Ray"
    for option, wanted, key in (("--cpus-per-trial", plan.cpus_per_trial, "CPU"),
                                ("--gpus-per-trial", plan.gpus_per_trial, "GPU")):
        have = float(cluster.get(key, 0.0))
        if wanted <= have:
            continue
        if plan.address:
            return (f"{option} {wanted:g}: {where} has {have:g} {key}(s) now; trials wait until nodes with "
                    f"more join")
        fix = "--gpus-per-trial 0 (trials on the CPU)" if key == "GPU" and not have else f"{option} {have:g} or less"
        raise ConfigError(f"{option} {wanted:g}: {where} has {have:g} {key}(s), so no trial could ever start; "
                          f"use {fix}, or --address for a Ray cluster that has them")
    return None


def _free_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _prepare(built: Any, plan: SweepPlan, registry: Any, workspace: Any, say: Callable[[str], None]) -> Any:
    """Extract the features of the data once, into the workspace's cache, which every trial then reads."""
    from ..data.prepare import MAX_SECONDS
    from ..engine.request import DataRequest
    from ..engine.runner import load_data
    t = plan.train
    _, settings, _ = _base(plan)
    data = DataRequest(path=t.get("data"), layout=t.get("layout"), settings=settings.get("dataset", {}),
                       limit=t.get("limit"), skip_bad=bool(t.get("skip_bad")), workers=t.get("workers"),
                       max_seconds=t.get("max_seconds", MAX_SECONDS), min_class_clips=t.get("min_class_clips", 0))
    prepared = load_data(built, registry, data, seed=t.get("seed", 0), workspace=workspace, progress=False)
    say(f"data: {prepared.description}: {len(prepared)} clips, features cached under {workspace.cache_dir}")
    return prepared


def _scheduler(plan: SweepPlan, metric: str, mode: str) -> tuple[Any, dict[str, Any]]:
    from ray.tune.schedulers import ASHAScheduler
    from ..engine.trainconfig import TrainConfig
    epochs = plan.train.get("epochs") or TrainConfig.epochs
    params = {"sweep.scheduler": "ASHA", "sweep.scheduler.max_t": epochs, "sweep.scheduler.grace_period": plan.grace,
              "sweep.scheduler.reduction_factor": 2, "sweep.scheduler.time_attr": "training_iteration"}
    # One past the last epoch: ASHA stops a trial that reaches max_t, and a trial that trains all its
    # epochs must end on its own (evaluated on test, its model packaged).
    return ASHAScheduler(time_attr="training_iteration", max_t=epochs + 1, grace_period=min(plan.grace, epochs),
                         reduction_factor=2), params


def _close_trials(tracker: Any, parent_id: str, grid: Any, interrupted: str | None) -> None:
    """End every trial's run the trial itself could not end: stopped early (FINISHED, tagged why),
    failed before its run began (a FAILED run with the reason), or interrupted (KILLED)."""
    by_trial = {r.data.tags.get(TRIAL_TAG): r for r in tracker.child_runs(parent_id)}
    for result in (list(grid) if grid is not None else []):
        trial_id = _trial_id(result)
        run = by_trial.pop(trial_id, None)
        if result.error is not None:
            reason = failure_reason(getattr(result.error, "cause", None) or result.error).splitlines()[0]
            if run is None:
                tracker.start_run(f"trial {trial_id}", {SWEEP_TAG: parent_id, TRIAL_TAG: trial_id}, parent_id)
                run = tracker.run(_latest_trial_run(tracker, parent_id, trial_id))
            if run.info.status == "RUNNING":
                tracker.set_tags(run.info.run_id, {FAILURE_TAG: reason})
                tracker.end_run(run.info.run_id, "FAILED")
        elif run is not None and (run.info.status == "RUNNING" or _stopped_by_tune(run)):
            # Tune stops a trial by raising SystemExit in its thread: the run ended FAILED, but it was not a failure.
            epoch = (result.metrics or {}).get("epoch")
            if FAILURE_TAG in run.data.tags:
                tracker.delete_tag(run.info.run_id, FAILURE_TAG)
            tracker.set_tags(run.info.run_id, {STOPPED_TAG: f"stopped early by the ASHA scheduler on its epoch-{epoch} result"})
            tracker.end_run(run.info.run_id, "FINISHED")
    for run in by_trial.values():  # trials Tune never reported on (an interrupted sweep)
        if run.info.status == "RUNNING":
            why = interrupted or "the sweep ended before this trial did"
            tracker.set_tags(run.info.run_id, {FAILURE_TAG: why})
            tracker.end_run(run.info.run_id, "KILLED")


def _stopped_by_tune(run: Any) -> bool:
    return run.info.status == "FAILED" and run.data.tags.get(FAILURE_TAG, "").startswith("SystemExit")


def _trial_id(result: Any) -> str:
    return str((result.metrics or {}).get("trial_id", ""))


def _latest_trial_run(tracker: Any, parent_id: str, trial_id: str) -> str:
    runs = [r for r in tracker.child_runs(parent_id) if r.data.tags.get(TRIAL_TAG) == trial_id]
    return max(runs, key=lambda r: r.info.start_time or 0).info.run_id


def leaderboard(parent_id: str, *, uri: str | None, metric: str | None = None, mode: str | None = None) -> tuple[list[dict], dict | None]:
    """The trials of sweep ``parent_id``, best first, and the best complete one: ranked by the
    restored best model's validation metric (``final.<metric>``); a trial stopped early by its last
    reported value, after the complete ones."""
    from ..tracking.mlflow.compare import sweep_rows
    return sweep_rows(parent_id, uri=uri, metric=metric, mode=mode)


def sweep(plan: SweepPlan, *, registry: Any, workspace: Any, say: Callable[[str], None] = print,
          trainable: Callable[[dict, TrialJob], None] = run_trial) -> SweepResult:
    """Run ``plan``: check it, prepare the features once, run its trials on Ray Tune, log and rank them.

    ``trainable`` runs one trial (default :func:`~zoo.sweep.trial.run_trial`; tests wrap it).
    """
    built, metric, mode = check_space(plan, registry)
    ray = require_ray()
    check_resources(plan, None)
    from ..tracking.mlflow.tracker import MlflowTracker
    spec, settings, recipe = _base(plan)
    tracker = MlflowTracker(plan.experiment, uri=workspace.tracking_uri, warn=lambda m: say(f"warning: {m}"))
    tags = {"zoo.kind": "sweep", "zoo.spec": str(built.composition), "zoo.sweep.metric": metric,
            "zoo.sweep.mode": mode, **({"zoo.recipe": recipe.name} if recipe else {})}
    parent_id = tracker.start_run(f"{built.composition} sweep", tags)
    started = False
    guard = None
    grid = None
    try:
        from ray import tune
        scheduler, scheduler_params = _scheduler(plan, metric, mode)
        tracker.log_params(parent_id, {"spec": str(built.composition), "sweep.trials": plan.trials,
                                       "sweep.metric": metric, "sweep.mode": mode, **scheduler_params,
                                       **{f"sweep.param.{p.name}": p.text() for p in plan.params},
                                       **{f"set.{k}": v for k, v in _flat(settings).items()}})
        _prepare(built, plan, registry, workspace, say)
        train_settings = dict(settings.get("train", {}))
        train_settings.setdefault("threads", max(1, int(plan.cpus_per_trial)))
        job = TrialJob(spec=spec, settings=dict(settings, train=train_settings),
                       train={k: v for k, v in plan.train.items()}, workspace=workspace,
                       experiment=plan.experiment, parent=parent_id, metric=metric,
                       tags={"zoo.recipe": recipe.name} if recipe else {})
        if not ray.is_initialized():
            os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C reaches us, so we end the runs
            os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
            with keep_signal_handlers():  # ray.init puts its own on SIGTERM: it aborted, ending no run
                if plan.address:
                    _attach(ray, plan.address)
                    started = True
                    say(f"ray: attached to {plan.address}")
                else:
                    cpus = plan.cpus or _free_cores()
                    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                             object_store_memory=plan.object_store_mb * 1024 * 1024, configure_logging=True,
                             logging_level="error")
                    started = True
                    guard = guard_descendants()  # Ray's agents outlive a killed driver by minutes
                    say(f"ray: started locally with {cpus} CPU(s)")
        short = check_resources(plan, ray.cluster_resources())
        if short:
            say(f"warning: {short}")
        resources = {"cpu": plan.cpus_per_trial, **({"gpu": plan.gpus_per_trial} if plan.gpus_per_trial else {})}
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(trainable, job=job), resources),
            param_space={p.name: p.to_tune() for p in plan.params},
            tune_config=tune.TuneConfig(metric=metric, mode=mode, num_samples=plan.trials, scheduler=scheduler,
                                        max_concurrent_trials=plan.concurrent),
            run_config=tune.RunConfig(name=f"sweep-{parent_id[:8]}", storage_path=str(workspace.home / "sweeps"),
                                      verbose=0, failure_config=tune.FailureConfig(max_failures=0)),
        )
        say(f"sweep: run {parent_id}, {plan.trials} trial(s), ranked by {metric} ({mode})")
        grid = tuner.fit()
        _close_trials(tracker, parent_id, grid, None)
        rows, best = leaderboard(parent_id, uri=workspace.tracking_uri, metric=metric, mode=mode)
        if best is None:
            raise RunError(f"no trial of sweep {parent_id} finished (zoo compare --sweep {parent_id} lists why); "
                           f"check the settings with one `zoo run`")
        tracker.log_params(parent_id, {f"best.{k}": v for k, v in best["params"].items()})
        tracker.log_metrics(parent_id, {f"best.{metric}": best["score"]})
        tracker.set_tags(parent_id, {BEST_TAG: best["run_id"], "zoo.sweep.trials.failed": str(
            sum(r["status"] == "FAILED" for r in rows))})
        registered = None
        if plan.register:
            from ..tracking.mlflow.model_registry import register_model
            registered = register_model(best["run_id"], plan.register, uri=workspace.tracking_uri)
            tracker.set_tags(parent_id, {"zoo.sweep.registered": f"{plan.register}/{registered.version}"})
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        reason = failure_reason(exc)
        if started:
            ray.shutdown()  # ends every trial still running
            started = False
        try:
            _close_trials(tracker, parent_id, None, f"sweep {'interrupted' if interrupted else 'failed'}: "
                                                            f"{reason}")
            tracker.set_tags(parent_id, {FAILURE_TAG: reason})
            tracker.end_run(parent_id, "KILLED" if interrupted else "FAILED")
        except Exception as log_exc:
            exc.add_note(f"(also: could not end sweep run {parent_id}: {log_exc})")
        raise
    finally:
        if started:
            ray.shutdown()
        stop_guard(guard)
    tracker.end_run(parent_id, "FINISHED")
    return SweepResult(parent_id, metric, mode, rows, best, registered)


def _flat(settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {f"{scope}.{k}": v for scope, values in settings.items() for k, v in values.items()}


__all__ = ["SweepPlan", "SweepResult", "sweep", "check_space", "leaderboard", "require_ray", "STOPPED_TAG", "BEST_TAG",
           "RUN_ID_KEY"]
