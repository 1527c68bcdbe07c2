"""The markdown report of ``zoo reproduce lab``: each lab table with the zoo's numbers beside the lab's.

The zoo's numbers are the mean and 95 % Student-t half-width over seeds; the lab's are the single
numbers of LAB.md, carried in registry.yaml as each recipe's ``reference``. A metric named
``val_<metric>`` in a reference is compared with the validation split, every other one with the
test split.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from .project import METHOD_NAMES

METRIC_ORDER = ("accuracy", "macro_f1", "val_accuracy", "mae", "mse", "spearman")
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro F1", "val_accuracy": "val. accuracy",
                "mae": "MAE", "mse": "MSE", "spearman": "Spearman"}
DASH = "—"


def cell(summary: dict[str, dict[str, float]], key: str, digits: int = 3) -> str:
    """``0.412 ± 0.018`` (mean ± 95 % half-width), ``0.412`` for one seed, a dash when missing."""
    s = summary.get(key)
    if not s or s.get("n", 0) == 0 or math.isnan(s["mean"]):
        return DASH
    half = s.get("half_width", float("nan"))
    return f"{s['mean']:.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}")


def lab_cell(value: Any) -> str:
    return DASH if value is None else f"{float(value):g}"


def zoo_value(outcome: Any, task: str, metric: str) -> str:
    """The zoo's cell for ``task``/``metric`` (``val_`` metrics from the validation split)."""
    if not outcome.ok:
        return "failed"
    if metric.startswith("val_"):
        return cell(outcome.summary("val"), f"{task}.{metric[4:]}")
    return cell(outcome.summary("test"), f"{task}.{metric}")


def metrics_of(outcomes: Iterable[Any], task_of=None) -> list[str]:
    """The metrics the lab reported for these experiments, in a fixed readable order."""
    seen: set[str] = set()
    for o in outcomes:
        for task, ref in o.step.recipe.references().items():
            if task_of is None or task == task_of(o):
                seen |= set(ref)
    ordered = [m for m in METRIC_ORDER if m in seen]
    return ordered + sorted(seen - set(ordered))


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _metric_header(metrics: Sequence[str]) -> list[str]:
    out = []
    for m in metrics:
        name = METRIC_NAMES.get(m, m)
        out += [f"{name} (zoo)", f"{name} (lab)"]
    return out


def _pairs(outcome: Any, task: str, metrics: Sequence[str]) -> list[str]:
    ref = outcome.step.recipe.references().get(task, {})
    out = []
    for m in metrics:
        out += [zoo_value(outcome, task, m), lab_cell(ref.get(m))]
    return out


def _single_task(outcomes: Sequence[Any], backbone: str, target: str) -> Any | None:
    """The plain regression experiment of ``target`` on ``backbone`` (the baseline of steps 9-10)."""
    for o in outcomes:
        comp = o.step.recipe.composition
        if o.kind == "regression" and comp.backbone == backbone and comp.tasks == (target,):
            return o
    return None


def baseline_for(outcomes: Sequence[Any], task: str) -> Any | None:
    """The baseline experiment (``stats`` backbone, kind "baseline") that has ``task``, if it ran."""
    for o in outcomes:
        if o.kind == "baseline" and task in o.step.recipe.composition.tasks:
            return o
    return None


def genre_section(outcomes: Sequence[Any]) -> list[str]:
    rows_of = [o for o in outcomes if o.kind == "genre"]
    if not rows_of:
        return []
    metrics = metrics_of(rows_of)
    base = baseline_for(outcomes, "genre")
    rows = [[o.name, f"`{o.step.recipe.spec}`", o.step.recipe.lab_step or DASH, *_pairs(o, "genre", metrics)]
            for o in ([base] if base else []) + rows_of]
    if base:
        rows[0][2] = "baseline"
    return ["## Genre classification (lab steps 5-7)", "",
            "Test split of the data above; the lab's LSTM numbers also give its validation accuracy. The "
            "baseline row (`stats`: a linear model on per-bin statistics) is the floor every model must clear.", "",
            *table(["recipe", "spec", "lab step", *_metric_header(metrics)], rows), ""]


def regression_section(outcomes: Sequence[Any]) -> list[str]:
    rows_of = [o for o in outcomes if o.kind == "regression"]
    if not rows_of:
        return []
    metrics = metrics_of(rows_of)
    ordered = sorted(rows_of, key=lambda o: (o.step.recipe.composition.tasks[0], o.step.recipe.composition.backbone))
    rows = []
    for o in ordered:
        target = o.step.recipe.composition.tasks[0]
        base = baseline_for(outcomes, target)
        if base and (not rows or rows[-1][0] != target):
            rows.append([target, f"{base.step.recipe.composition.backbone} (baseline)", base.name,
                         *_pairs(base, target, metrics)])
        rows.append([target, o.step.recipe.composition.backbone, o.name, *_pairs(o, target, metrics)])
    return ["## Emotion regression, one model per target (lab step 8)", "",
            *table(["target", "backbone", "recipe", *_metric_header(metrics)], rows), ""]


def _baseline_cell(outcomes: Sequence[Any], task: str) -> str:
    base = baseline_for(outcomes, task)
    return zoo_value(base, task, "spearman") if base else DASH


def transfer_section(outcomes: Sequence[Any]) -> list[str]:
    rows_of = [o for o in outcomes if o.kind == "transfer"]
    if not rows_of:
        return []
    rows = []
    for o in rows_of:
        comp = o.step.recipe.composition
        for task in comp.tasks:
            ref = o.step.recipe.references().get(task, {})
            base = _single_task(outcomes, comp.backbone, task)
            base_ref = base.step.recipe.references().get(task, {}) if base else {}
            rows.append([o.name, o.transfer_from or str(o.step.recipe.transfer.get("from", DASH)),
                         str(o.step.recipe.transfer.get("freeze", "none")), task,
                         zoo_value(o, task, "mae"), lab_cell(ref.get("mae")),
                         zoo_value(o, task, "mse"), lab_cell(ref.get("mse")),
                         zoo_value(o, task, "spearman"), lab_cell(ref.get("spearman")),
                         zoo_value(base, task, "spearman") if base else DASH, lab_cell(base_ref.get("spearman")),
                         _baseline_cell(outcomes, task)])
    header = ["recipe", "backbone from", "freeze", "target", "MAE (zoo)", "MAE (lab)", "MSE (zoo)", "MSE (lab)",
              "Spearman (zoo)", "Spearman (lab)", "Spearman without transfer (zoo)", "(lab)", "Spearman baseline (zoo)"]
    return ["## Transfer learning (lab step 9)", "",
            "The genre model's backbone, fine-tuned as a regressor; the last two columns are the same "
            "backbone trained from scratch on the target (step 8).", "", *table(header, rows), ""]


def multitask_section(outcomes: Sequence[Any]) -> list[str]:
    rows_of = [o for o in outcomes if o.kind == "multitask"]
    if not rows_of:
        return []
    rows = []
    for o in rows_of:
        comp = o.step.recipe.composition
        weighting = (o.step.recipe.settings.get("train") or {}).get("task_weighting", "fixed")
        for task in comp.tasks:
            ref = o.step.recipe.references().get(task, {})
            base = _single_task(outcomes, comp.backbone, task)
            base_ref = base.step.recipe.references().get(task, {}) if base else {}
            rows.append([o.name, weighting, task,
                         zoo_value(o, task, "mae"), lab_cell(ref.get("mae")),
                         zoo_value(o, task, "mse"), lab_cell(ref.get("mse")),
                         zoo_value(o, task, "spearman"), lab_cell(ref.get("spearman")),
                         zoo_value(base, task, "spearman") if base else DASH, lab_cell(base_ref.get("spearman")),
                         _baseline_cell(outcomes, task)])
    header = ["recipe", "task weights", "target", "MAE (zoo)", "MAE (lab)", "MSE (zoo)", "MSE (lab)",
              "Spearman (zoo)", "Spearman (lab)", "Spearman single-task (zoo)", "(lab)", "Spearman baseline (zoo)"]
    return ["## Multitask learning (lab step 10)", "",
            "One backbone, one regression head per target, the task weights learned (uncertainty) or fixed; "
            "the last two columns are the single-task models of step 8.", "", *table(header, rows), ""]


def maps_section(outcomes: Sequence[Any], report_dir: Path) -> list[str]:
    with_maps = [o for o in outcomes if o.maps or o.map_error]
    if not with_maps:
        return []
    lines = ["## Latent maps (lab step 11)", "",
             "The layer before the output layer for every test clip (first seed's model), projected to 2-D "
             "and coloured by genre. Each map is also logged to its run under `embeddings/`.", ""]
    for o in with_maps:
        lines.append(f"### {o.name} (`{o.step.recipe.spec}`)")
        lines.append("")
        if o.map_error:
            lines += [f"Latent map failed: {o.map_error}", ""]
        for m in o.maps:
            rel = Path(os.path.relpath(m.png, report_dir)).as_posix()
            lines += [f"{METHOD_NAMES[m.method]}, {m.clips} clips, {m.dim} dimensions:",
                      "", f"![{o.name} {m.method}]({rel})", ""]
    return lines


def failures_section(outcomes: Sequence[Any]) -> list[str]:
    failed = [o for o in outcomes if not o.ok]
    if not failed:
        return []
    lines = ["## Failed experiments", ""]
    for o in failed:
        lines += [f"- **{o.name}** (`{o.step.recipe.spec}`), after {o.seconds:.1f} s:", "", "  ```",
                  *[f"  {line}" for line in o.error.splitlines()], "  ```", ""]
    return lines


def runs_section(outcomes: Sequence[Any]) -> list[str]:
    rows = []
    for o in outcomes:
        seeds = ", ".join(f"`{r}`" for r in o.run_ids if r) or DASH
        rows.append([o.name, "ran" if o.ok else "FAILED", f"{o.seconds:.1f} s",
                     f"`{o.run_id}`" if o.run_id else DASH, seeds])
    return ["## Runs", "", "Every experiment is one MLflow parent run (several seeds) with one child run per seed; "
            "`zoo compare --experiment EXPERIMENT` lists them, `zoo ui` shows them.", "",
            *table(["recipe", "status", "time", "run (parent)", "seed runs"], rows), ""]


def header_section(lab: Any) -> list[str]:
    from .. import __version__
    opt = lab.options
    ok = [o for o in lab.outcomes if o.ok]
    data = sorted({o.data for o in ok}) or ["(no experiment ran)"]
    devices = sorted({o.device for o in ok}) or [DASH]
    seeds = list(range(opt.seed, opt.seed + opt.seeds))
    minutes, secs = divmod(int(round(lab.seconds)), 60)
    epochs = opt.epochs if opt.epochs is not None else "as recipe / backbone say (else 30), early stopping"
    stopped = f"; INTERRUPTED during {lab.interrupted}: the experiments after it did not run" if lab.interrupted else ""
    store = "not tracked (--no-track)"
    if opt.track:
        store = f"experiment `{opt.experiment}` in `{lab.store}`"
    lines = [
        "# The lab, reproduced by Music Zoo", "",
        f"Written {time.strftime('%Y-%m-%d %H:%M %Z')} by music-zoo {__version__}"
        + (f": `{opt.command}`" if opt.command else "") + ".", "",
        f"- experiments: {len(lab.outcomes)} ({len(ok)} ran, {len(lab.outcomes) - len(ok)} failed), "
        f"in {minutes} min {secs:02d} s{stopped}",
        f"- seeds: {', '.join(map(str, seeds))}; the zoo's numbers are the mean ± the 95 % Student-t half-width "
        f"over the seeds (the mean alone for one seed); the lab reports single runs",
        f"- training: epochs {epochs}, clips {f'at most {opt.limit}' if opt.limit else 'all'}; "
        f"device {', '.join(devices)}",
        f"- runs: {store}",
        "- data:", *[f"  - {d}" for d in data],
        "", "The lab's numbers (LAB.md) come from its Kaggle set: 10 genres after its class mapping, 2305 training "
        "and 575 test clips of 30 s; 1497 clips with valence, energy and danceability. On other data, or with "
        "short settings, the comparison says that every step runs end to end, not how the models rank.", "",
    ]
    return lines


def render(lab: Any) -> str:
    report_dir = Path(lab.report).resolve().parent
    outcomes = lab.outcomes
    lines = header_section(lab)
    for section in (genre_section(outcomes), regression_section(outcomes), transfer_section(outcomes),
                    multitask_section(outcomes), maps_section(outcomes, report_dir), failures_section(outcomes),
                    runs_section(outcomes)):
        lines += section
    return "\n".join(lines).rstrip() + "\n"


def write_report(lab: Any, *, registry: Any = None) -> Path:
    """Render ``lab`` (a :class:`~zoo.lab.reproduce.LabRun`) to its report path."""
    path = Path(lab.report)
    path.write_text(render(lab))
    return path
