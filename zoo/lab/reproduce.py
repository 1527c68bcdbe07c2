"""``zoo reproduce lab``: run every lab recipe over several seeds and write one markdown report.

Each experiment is one ``zoo.train`` of a recipe (all seeds nested under one MLflow parent run).
A transfer recipe starts from the packaged model of its source recipe trained in the same
invocation (of its seeds, the one with the best validation score, as :mod:`zoo.refs` picks), so
the whole lab is reproduced on the same data. A failing experiment is recorded with its reason
and the rest go on; the report lists it and the exit code is 1.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ZooError
from .plan import Step, check_scopes, kind_of, make_plan, settings_for

DEFAULT_EXPERIMENT = "music-zoo-lab"
MAP_KINDS = ("genre",)
"""The experiments whose latent maps the report shows (lab step 11 maps its genre models)."""


@dataclass(frozen=True)
class Options:
    """What ``zoo reproduce lab`` was asked to do (the command-line flags, typed)."""

    data: str | None = None
    layout: str | None = None
    seeds: int = 3
    seed: int = 0
    epochs: int | None = None
    limit: int | None = None
    only: tuple[str, ...] = ()
    out: str = "lab-report.md"
    maps: tuple[str, ...] = ("pca",)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    device: str | None = None
    workers: int | None = None
    skip_bad: bool = False
    experiment: str = DEFAULT_EXPERIMENT
    track: bool = True
    progress: bool = False
    command: str = ""
    """The command line, quoted in the report."""


@dataclass
class Outcome:
    """One experiment: its recipe, whether it ran, its per-seed metrics, runs and latent maps."""

    step: Step
    ok: bool = False
    seconds: float = 0.0
    error: str = ""
    result: Any = field(default=None, repr=False)
    test: list[dict[str, float]] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    run_id: str | None = None
    run_ids: list[str | None] = field(default_factory=list)
    data: str = ""
    device: str = ""
    transfer_from: str = ""
    maps: list[Any] = field(default_factory=list)
    map_error: str = ""

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def kind(self) -> str:
        return kind_of(self.step.recipe)

    def summary(self, split: str = "test") -> dict[str, dict[str, float]]:
        from ..engine.intervals import summarise
        return summarise(self.test if split == "test" else self.val)


@dataclass
class LabRun:
    """Everything ``reproduce`` did: the outcomes in plan order, the report and the time taken."""

    options: Options
    outcomes: list[Outcome]
    report: Path
    seconds: float
    interrupted: str = ""
    """The experiment that was running when the user interrupted (Ctrl-C); "" when it ran to the end."""
    store: str = ""
    """The MLflow store the runs went to (the workspace's tracking URI)."""

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.failed


def _elapsed(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{seconds:.1f} s"


def _headline(o: Outcome) -> str:
    """The one metric to show on the progress line (each task's primary metric)."""
    from ..engine.intervals import plus_minus
    task_metrics = {"genre": "accuracy"}
    parts = []
    summary = o.summary()
    for task in o.step.recipe.composition.tasks:
        key = f"{task}.{task_metrics.get(task, 'spearman')}"
        if key in summary:
            parts.append(f"{key} {plus_minus(summary[key], 3)}")
    return ", ".join(parts)


def _train(step: Step, opt: Options, registry: Any, workspace: Any, done: Mapping[str, Outcome],
           recipes: Mapping[str, Any]) -> Outcome:
    """Train one recipe; a transfer from a recipe starts from that recipe's model trained just before."""
    from .. import api
    out = Outcome(step)
    recipe = step.recipe
    init_from = freeze = None
    src = step.source
    if src is not None and src in recipes:
        source = done.get(src)
        if source is None or not source.ok or source.result is None:
            why = source.error if source is not None else "it is not part of this reproduction"
            raise _SourceFailed(f"its transfer source {src} did not train ({why})")
        import tempfile
        from pathlib import Path

        from ..refs import resolve
        with tempfile.TemporaryDirectory(prefix="zoo-transfer-") as tmp:  # a RunResult is here: nothing to copy
            chosen = resolve(source.result, workdir=Path(tmp))  # several seeds: the one zoo.refs's rule picks
        init_from = chosen.folder
        freeze = recipe.transfer.get("freeze", "none")
        out.transfer_from = f"{src} (run {chosen.run_id})" if opt.track else src
    flat = {"data": opt.data, "layout": opt.layout, "epochs": opt.epochs, "device": opt.device, "seed": opt.seed,
            "seeds": opt.seeds, "limit": opt.limit, "skip_bad": opt.skip_bad, "workers": opt.workers}
    res = api.train(recipe.name, settings=settings_for(recipe, opt.settings), track=opt.track,
                    experiment=opt.experiment, registry=registry, init_from=init_from, freeze=freeze,
                    progress=opt.progress, workspace=workspace, **api.grouped(flat))
    out.ok, out.result = True, res
    out.test = [dict(r.test) for r in res.results]
    out.val = [dict(r.val) for r in res.results]
    out.run_id, out.run_ids = res.run_id, list(res.run_ids)
    out.data, out.device = res.data["description"], res.device
    return out


class _SourceFailed(ZooError):
    """A transfer experiment cannot start because its source experiment failed."""


def _maps(o: Outcome, opt: Options, folder: Path, registry: Any, workspace: Any) -> None:
    from ..engine.reporting import QuietReporter
    from ..engine.request import DataRequest
    from .embed import LatentMapRequest, latent_maps
    try:
        # The data exactly as the experiment was given it (its first seed drew any --limit subset).
        data = DataRequest(path=opt.data, layout=opt.layout, settings=dict(opt.settings.get("dataset", {})),
                           limit=opt.limit, seed=opt.seed)
        request = LatentMapRequest(o.result, methods=opt.maps, split="test", data=data, out_dir=folder / o.name,
                                   log=opt.track, experiment=opt.experiment, device=opt.device or "auto")
        o.maps = latent_maps(request, workspace=workspace, registry=registry,
                             reporter=QuietReporter(progress=opt.progress))
    except Exception as exc:  # a map that cannot be drawn is reported, the numbers still stand
        o.map_error = f"{type(exc).__name__}: {exc}"


def reproduce(opt: Options, *, registry: Any = None, echo: Callable[[str], None] | None = None,
              recipes: Mapping[str, Any] | None = None, workspace: Any = None) -> LabRun:
    """Run the lab recipes as ``opt`` says, write the report to ``opt.out`` and return what happened.

    ``recipes``: the catalogue (default: the zoo's registry.yaml). Failures do not stop the run.
    ``workspace``: the store, data and cache folders (default: from the environment); ``registry``
    defaults to the workspace's.
    """
    from ..recipes import load_recipes
    from ..workspace import Workspace
    from .report import write_report
    from .project import check_method
    workspace = workspace if workspace is not None else Workspace.from_env()
    registry = registry if registry is not None else workspace.registry()
    echo = echo or (lambda line: print(line, flush=True))
    if opt.seeds < 1:
        from ..errors import ConfigError
        raise ConfigError(f"--seeds {opt.seeds}: give 1 or more")
    maps = tuple(check_method(m) for m in opt.maps)
    recipes = recipes if recipes is not None else load_recipes()
    steps = make_plan(recipes, opt.only)
    check_scopes(opt.settings, registry)
    report_path = Path(opt.out).expanduser()
    report_path.parent.mkdir(parents=True, exist_ok=True)
    map_folder = report_path.parent / f"{report_path.stem}-maps"
    echo(f"reproducing the lab: {len(steps)} experiment(s) x {opt.seeds} seed(s) "
         f"[{', '.join(s.name for s in steps)}]")
    start = time.perf_counter()
    outcomes: list[Outcome] = []
    done: dict[str, Outcome] = {}
    for n, step in enumerate(steps, 1):
        t0 = time.perf_counter()
        note = f" (needed by {', '.join(step.needed_by)})" if step.needed_by else ""
        echo(f"[{n}/{len(steps)}] {step.name}: {step.recipe.spec}{note} ...")
        try:
            o = _train(step, opt, registry, workspace, done, recipes)
        except KeyboardInterrupt:
            # Keep what is done: the report of the finished experiments, then stop as asked.
            lab = LabRun(opt, outcomes, report_path, time.perf_counter() - start, interrupted=step.name,
                         store=workspace.tracking_uri)
            write_report(lab, registry=registry)
            echo(f"interrupted during {step.name}; report of the {len(outcomes)} finished experiment(s): {report_path}")
            raise
        except Exception as exc:  # one failed experiment must not hide the others' results
            o = Outcome(step, error=f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, ZooError):
                o.error += "\n" + "".join(traceback.format_exception(exc)[-3:]).rstrip()
        if o.ok and maps and o.kind in MAP_KINDS:
            _maps(o, replace(opt, maps=maps), map_folder, registry, workspace)
        o.seconds = time.perf_counter() - t0
        outcomes.append(o)
        done[step.name] = o
        total = _elapsed(time.perf_counter() - start)
        if o.ok:
            echo(f"[{n}/{len(steps)}] {step.name}: done in {_elapsed(o.seconds)} (elapsed {total}); {_headline(o)}"
                 + (f"; latent map failed: {o.map_error}" if o.map_error else ""))
        else:
            echo(f"[{n}/{len(steps)}] {step.name}: FAILED after {_elapsed(o.seconds)} (elapsed {total}): "
                 f"{o.error.splitlines()[0]}")
    lab = LabRun(opt, outcomes, report_path, time.perf_counter() - start, store=workspace.tracking_uri)
    write_report(lab, registry=registry)
    bad = len(lab.failed)
    echo(f"report: {report_path} ({len(outcomes) - bad} of {len(outcomes)} experiments ran, {bad} failed; "
         f"{_elapsed(lab.seconds)})")
    return lab
