"""The table behind ``zoo compare``: tracked runs pooled over seeds, read straight from MLflow.

Three listings, each after :func:`~zoo.tracking.mlflow.reconcile.reconcile` has ended the runs
whose process is gone: :func:`compare_rows` (finished runs, pooled over seeds),
:func:`unfinished_runs` (still RUNNING, and those just found dead and ended KILLED) and
:func:`failed_runs` (FAILED or KILLED, with the reason).
"""
from __future__ import annotations

import fnmatch
import json
import math
import re
import shlex
from typing import Any, Iterator, Mapping

from ...engine import intervals
from ...errors import ConfigError
from .. import DEFAULT_EXPERIMENT, FAILURE_TAG, PARENT_TAG
from .reconcile import describe_running, reconcile, recorded_process
from .store import client, get_experiment
from ..credentials import redact_uri

BY = "zoo compare"


def _all_runs(c: Any, experiment_id: str, filter_string: str) -> Iterator[Any]:
    token = None
    while True:
        page = c.search_runs([experiment_id], filter_string=filter_string,
                             order_by=["attributes.start_time DESC"], max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _experiment(c: Any, experiment: str):
    exp = get_experiment(c, experiment, create=False)
    if exp is None:
        names = sorted(e.name for e in c.search_experiments())
        raise ConfigError(
            f"no experiment '{experiment}' in the MLflow store {redact_uri(c.tracking_uri)}; experiments there: "
            f"{', '.join(names) or '(none: train something with `zoo run` first)'}; pass --experiment NAME"
        )
    return exp


def compare_rows(experiment: str = DEFAULT_EXPERIMENT, spec: str | None = None, uri: str | None = None) -> list[dict]:
    """One row per group of finished training runs that differ only in their seed, latest first.

    A row: ``spec``, ``dataset``, ``fingerprint``, ``group``, ``seeds`` (sorted), ``n_runs``,
    ``metrics`` ``{name: {mean, std, half_width, n}}`` for the key test metrics,
    ``run_ids`` and ``parent_run_ids`` (latest first, full ids), ``latest`` (start time, ms),
    ``params`` (the latest run's, seed left out) and ``differs`` (see :func:`mark_differences`). A seed run
    again with the same settings counts once (its latest run); the older ones are listed in
    ``repeated_run_ids``.
    ``spec`` filters with a shell-style pattern (``lstm+*:genre``).
    """
    c = client(uri)
    exp = _experiment(c, experiment)
    reconcile(c, [exp.experiment_id], by=BY)
    groups: dict[str, list[Any]] = {}
    for run in _all_runs(c, exp.experiment_id, "attributes.status = 'FINISHED' and tags.`zoo.kind` = 'run'"):
        tags = run.data.tags
        if spec and not fnmatch.fnmatch(tags.get("zoo.spec", ""), spec.lower()):
            continue
        groups.setdefault(tags.get("zoo.group") or run.info.run_id, []).append(run)
    rows = []
    for key, found in groups.items():
        # A seed trained twice with the same settings gives the same numbers: count it once (latest).
        latest: dict[str, Any] = {}
        for r in found:
            latest.setdefault(r.data.params.get("seed", r.data.tags.get("zoo.seed", "0")), r)
        runs = list(latest.values())
        used = {r.info.run_id for r in runs}
        tags = runs[0].data.tags
        names = [m for m in tags.get("zoo.key_metrics", "").split(",") if m]
        if not names:
            names = sorted(k for k in runs[0].data.metrics if k.startswith("test."))
        names = [n for n in names if any(n in r.data.metrics for r in runs)]  # what the row's tasks reported
        metrics = {n: intervals.t_interval([r.data.metrics[n] for r in runs if n in r.data.metrics]) for n in names}
        seeds = sorted({int(r.data.params.get("seed", tags.get("zoo.seed", "0"))) for r in runs})
        rows.append({
            "spec": tags.get("zoo.spec", ""), "dataset": tags.get("zoo.dataset", ""),
            "fingerprint": tags.get("zoo.fingerprint", ""), "group": key, "seeds": seeds, "n_runs": len(found),
            "metrics": metrics, "lower_is_better": lower_is_better(tags, names), "run_ids": [r.info.run_id for r in runs],
            "run_seeds": [int(r.data.params.get("seed", r.data.tags.get("zoo.seed", "0"))) for r in runs],
            "repeated_run_ids": [r.info.run_id for r in found if r.info.run_id not in used],
            "parent_run_ids": sorted({r.data.tags[PARENT_TAG] for r in runs if PARENT_TAG in r.data.tags}),
            "recipe": tags.get("zoo.recipe", ""), "latest": max(r.info.start_time for r in runs),
            "sweep": tags.get("zoo.sweep", ""),  # a sweep trial's: the sweep's run id
            "data_source": {k: v for k, v in tags.items() if k.startswith(DATA_TAGS)},
            "params": {k: v for k, v in runs[0].data.params.items() if k not in SEED_PARAMS},
        })
    rows.sort(key=lambda r: r["latest"], reverse=True)
    mark_differences(rows)
    return rows


DATA_TAGS = "zoo.data."
"""The tags that say where a run's clips came from (zoo.engine.datasource), features aside."""
SEED_PARAMS = ("seed",)
"""Params that differ between the runs of one group, so never a difference between groups."""
SKIPPED_PREFIXES = ("provider.", "data.fingerprint", "data.description")
"""Params not worth a column: versions (in the run) and what the dataset column already shows."""


def mark_differences(rows: list[dict]) -> None:
    """Give each row ``differs``: its values of the params that are not the same in every row of
    its spec (a ``--limit 120`` run then shows ``data.clips=120`` beside the full run)."""
    by_spec: dict[str, list[dict]] = {}
    for r in rows:
        by_spec.setdefault(r["spec"], []).append(r)
    for same in by_spec.values():
        keys = sorted({k for r in same for k in r["params"] if not k.startswith(SKIPPED_PREFIXES)})
        varying = [k for k in keys if len({r["params"].get(k) for r in same}) > 1]
        for r in same:
            r["differs"] = {k: r["params"].get(k, "-") for k in varying}


def lower_is_better(tags: Mapping[str, str], names: list[str]) -> list[str]:
    """Which of ``names`` (a row's test metrics) are minimised: those the run's tasks declared so
    (the tag ``zoo.lower_is_better``, :class:`zoo.protocols.DeclaresMetrics`). A run logged before
    the tag existed names errors by :data:`LEGACY_LOWER_BETTER`."""
    if "zoo.lower_is_better" in tags:
        declared = set(tags["zoo.lower_is_better"].split(","))
        return [n for n in names if n in declared]
    return [n for n in names if n.rsplit(".", 1)[-1] in LEGACY_LOWER_BETTER]


def is_lower_better(rows: list[dict], metric: str) -> bool:
    """Whether the rows' ``metric`` (a full ``test.TASK.METRIC`` name) is minimised, as its runs declared
    (a row without ``lower_is_better``, made by hand, reads as a run logged before the tag)."""
    return any(metric in (r["lower_is_better"] if "lower_is_better" in r else lower_is_better({}, [metric]))
               for r in rows if metric in r["metrics"])


def sort_rows(rows: list[dict], metric: str) -> list[dict]:
    """``rows`` by the mean of ``metric`` (``accuracy``, ``genre.accuracy`` or ``test.genre.mae``),
    best first (lowest first for errors and losses); rows without it last."""
    name = metric if metric.startswith("test.") else f"test.{metric}"

    def value(row: dict) -> float | None:
        found = [v for k, v in row["metrics"].items() if k == name or k.endswith("." + metric.removeprefix("test."))]
        return found[0]["mean"] if found and found[0].get("mean") is not None else None

    known = sorted({k for r in rows for k in r["metrics"]})
    if rows and all(value(r) is None for r in rows):
        raise ConfigError(f"--sort {metric}: no run has that test metric; metrics here: "
                          f"{', '.join(k.removeprefix('test.') for k in known) or '(none)'}")
    have = [r for r in rows if value(r) is not None]
    matched = next((k for r in have for k in r["metrics"] if k == name or k.endswith("." + metric.removeprefix("test."))), name)
    lower_better = is_lower_better(have, matched)
    have.sort(key=lambda r: value(r), reverse=not lower_better)
    return have + [r for r in rows if value(r) is None]


def failed_runs(experiment: str = DEFAULT_EXPERIMENT, spec: str | None = None, uri: str | None = None) -> list[dict]:
    """Runs that ended FAILED or KILLED, latest first: run id, spec, name, status, reason."""
    c = client(uri)
    exp = _experiment(c, experiment)
    reconcile(c, [exp.experiment_id], by=BY)
    runs = [r for status in ("FAILED", "KILLED")
            for r in _all_runs(c, exp.experiment_id, f"attributes.status = '{status}'")]
    out = []
    for run in sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True):
        tags = run.data.tags
        if spec and not fnmatch.fnmatch(tags.get("zoo.spec", ""), spec.lower()):
            continue
        out.append({"run_id": run.info.run_id, "spec": tags.get("zoo.spec", ""), "name": run.info.run_name,
                    "status": run.info.status, "reason": tags.get(FAILURE_TAG, "(no reason recorded)"),
                    "start_time": run.info.start_time})
    return out


def unfinished_runs(experiment: str = DEFAULT_EXPERIMENT, spec: str | None = None,
                    uri: str | None = None) -> list[dict]:
    """Runs that have not finished, latest first: those still RUNNING, and those this call found
    dead and ended KILLED (``status`` KILLED). A row: run id, spec, name, kind, status, ``reason``
    (why it was ended, or what the zoo can tell of its process), host, pid, start time, parent."""
    c = client(uri)
    exp = _experiment(c, experiment)
    ended = reconcile(c, [exp.experiment_id], by=BY)
    runs = [c.get_run(i) for i in ended] + list(_all_runs(c, exp.experiment_id, "attributes.status = 'RUNNING'"))
    out = []
    for run in sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True):
        tags = run.data.tags
        if spec and not fnmatch.fnmatch(tags.get("zoo.spec", ""), spec.lower()):
            continue
        proc = recorded_process(tags)
        out.append({"run_id": run.info.run_id, "spec": tags.get("zoo.spec", ""), "name": run.info.run_name,
                    "kind": tags.get("zoo.kind", ""), "status": run.info.status,
                    "reason": ended.get(run.info.run_id) or describe_running(run),
                    "host": proc.host if proc else None, "pid": proc.pid if proc else None,
                    "start_time": run.info.start_time, "parent_run_id": tags.get(PARENT_TAG)})
    return out


def format_unfinished(rows: list[dict]) -> str:
    """The unfinished runs as a section of ``zoo compare``'s text ("" when there are none)."""
    if not rows:
        return ""
    lines = [f"unfinished runs ({len(rows)}; not in the table):"]
    for r in rows:
        state = "RUNNING" if r["status"] == "RUNNING" else f"{r['status']} now"
        lines.append(fold(f"  {r['run_id']}  {r['name'] or r['spec']}  {state}: {r['reason']}"))
    return "\n".join(lines)


TABLE_WIDTH = 120
"""Columns ``zoo compare``'s table fits (``--wide``: none)."""


def fold(line: str, indent: str = "    ") -> str:
    """A line of free text (a reason, a note) folded to :data:`TABLE_WIDTH` columns, its own indent kept
    and ``indent`` more on the lines it goes on to; words are never cut."""
    import textwrap
    lead = line[:len(line) - len(line.lstrip(" "))]
    return textwrap.fill(line.strip(), TABLE_WIDTH, initial_indent=lead, subsequent_indent=lead + indent,
                         break_long_words=False, break_on_hyphens=False)


def _legend(ids: Mapping[str, str]) -> str:
    """The data ids' legend under a table: each id and its data description, folded."""
    import textwrap
    return "data:\n" + "\n".join(
        textwrap.fill(shown_dataset(d), TABLE_WIDTH, initial_indent=f"  {i}  ", subsequent_indent=" " * (len(i) + 4),
                      break_on_hyphens=False) for d, i in ids.items())


def data_ids(rows: list[dict]) -> dict[str, str]:
    """A short id per data description, in the order the rows first show them: ``{description: "D1", ...}``."""
    ids: dict[str, str] = {}
    for r in rows:
        ids.setdefault(r["dataset"], f"D{len(ids) + 1}")
    return ids


def _wrap(text: str, width: int, sep: str) -> list[str]:
    """``text`` cut at ``sep`` into lines of at most ``width`` characters (a longer piece stays whole)."""
    lines: list[str] = []
    mark = sep.rstrip()  # a line cut at ", " ends with ",": the reader sees it goes on
    for piece in text.split(sep):
        if lines and len(lines[-1]) + len(sep) + len(piece) + len(mark) <= width:
            lines[-1] += sep + piece
        else:
            if lines:
                lines[-1] += mark
            lines.append(piece)
    return [ln.rstrip() for ln in lines] or [""]


def _aligned(header: tuple[str, ...], lines: list[tuple[str, ...]], *, width: int | None = None,
             wrap: Mapping[int, str] | None = None) -> str:
    """``lines`` under ``header`` in aligned columns; with ``width``, the columns in ``wrap`` (index:
    separator) are narrowed, longest first, and their cells wrapped until a line fits."""
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    wrap = dict(wrap or {})
    if width is not None:  # a wrapped column is never narrower than its longest piece (nor a short header)
        floors = {i: max(min(len(header[i]), 20), *(len(piece) + len(sep.rstrip())
                                                     for line in lines for piece in line[i].split(sep)))
                  for i, sep in wrap.items()}
        while (over := sum(widths) + 2 * (len(widths) - 1) - width) > 0:
            narrower = [i for i in wrap if widths[i] > floors[i]]
            if not narrower:
                break
            i = max(narrower, key=lambda k: widths[k] - floors[k])
            widths[i] = max(floors[i], widths[i] - over)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for line in lines:
        cells = [_wrap(c, widths[i], wrap[i]) if i in wrap and len(c) > widths[i] else [c]
                 for i, c in enumerate(line)]
        for k in range(max(len(c) for c in cells)):
            out.append("  ".join((c[k] if k < len(c) else "").ljust(w) for c, w in zip(cells, widths)).rstrip())
    return "\n".join(out)


def format_table(rows: list[dict], *, wide: bool = False) -> str:
    """The rows as aligned text: spec, data, seeds, metrics (mean ± 95 % half-width), run ids.

    It fits :data:`TABLE_WIDTH` columns: the data set is a short id (D1, D2, ...) explained in a
    legend below the table, run ids are their first 8 characters (every command takes a unique
    prefix), and long metrics wrap. ``wide``: every column in full, one line per row, as wide as it takes.
    """
    if not rows:
        return "no finished runs"
    if not wide:
        return _compact_table(rows)
    header = ("spec", "dataset", "differs", "seeds", "test metrics (mean ± 95% CI half-width over seeds)",
              "runs, full ids (latest first; zoo compare --runs: each with its seed)")
    with_baseline = any("baseline" in r for r in rows)
    if with_baseline:
        header = header[:5] + ("vs baseline",) + header[5:]
    lines = []
    for r in rows:
        differs = " ".join(f"{k}={v}" for k, v in r.get("differs", {}).items())
        metrics = ", ".join(f"{k.removeprefix('test.')} {intervals.plus_minus(v)}" for k, v in r["metrics"].items())
        more = len(r["run_ids"]) - 4
        ids = " ".join(r["run_ids"][:4]) + (f" +{more}" if more > 0 else "")
        vs = (baseline_text(r),) if with_baseline else ()
        lines.append((r["spec"], r["dataset"], differs or "-", str(len(r["seeds"])), metrics or "-", *vs, ids))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*l) for l in lines])


def _compact_table(rows: list[dict]) -> str:
    ids = data_ids(rows)
    with_baseline = any("baseline" in r for r in rows)
    header = ("spec", "data", "differs", "seeds", "test metrics (mean ± 95% CI)",
              *(("vs baseline",) if with_baseline else ()), "runs")
    lines = []
    for r in rows:
        differs = " ".join(f"{k}={v}" for k, v in r.get("differs", {}).items())
        metrics = ", ".join(f"{k.removeprefix('test.')} {intervals.plus_minus(v)}" for k, v in r["metrics"].items())
        more = len(r["run_ids"]) - 2
        runs = " ".join(i[:8] for i in r["run_ids"][:2]) + (f" +{more}" if more > 0 else "")
        vs = (baseline_text(r),) if with_baseline else ()
        lines.append((r["spec"], ids[r["dataset"]], differs or "-", str(len(r["seeds"])), metrics or "-", *vs, runs))
    wrap = {0: ",", 2: " ", 4: ", ", len(header) - 1: " "}
    if with_baseline:
        wrap[5] = ", "  # as baseline_text joins its cells
    table = _aligned(header, lines, width=TABLE_WIDTH, wrap=wrap)
    return table + "\n\n" + _legend(ids) + (
        "\n(runs: latest first; zoo compare --wide: every column in full; --runs: each run's full id and seed)")


def shown_dataset(description: str) -> str:
    """A data description as the legend shows it (one line)."""
    return " ".join(description.split()) or "(no data description recorded)"


CSV_COLUMNS = ("spec", "data_id", "dataset", "fingerprint", "differs", "seeds", "n_runs")


def format_csv(rows: list[dict]) -> str:
    """The rows as CSV for scripts: one line per row, every test metric as ``<metric>`` (mean),
    ``<metric>.ci95`` (95 % half-width) and ``<metric>.n``; the run ids space-separated, latest first."""
    import csv
    import io
    ids = data_ids(rows)
    names = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"{n}{s}" for n in names for s in ("", ".ci95", ".n")), "run_ids"])
    for r in rows:
        cells = [r["spec"], ids[r["dataset"]], r["dataset"], r.get("fingerprint", ""),
                 " ".join(f"{k}={v}" for k, v in r.get("differs", {}).items()),
                 " ".join(map(str, r["seeds"])), r.get("n_runs", len(r["run_ids"]))]
        for n in names:
            m = r["metrics"].get(n)
            cells += ["", "", ""] if m is None else [m.get("mean", ""), m.get("half_width", ""), m.get("n", "")]
        writer.writerow([*cells, " ".join(r["run_ids"])])
    return out.getvalue().rstrip("\n")


def sweep_rows(sweep_run_id: str, *, uri: str | None = None, metric: str | None = None,
               mode: str | None = None) -> tuple[list[dict], dict | None]:
    """The leaderboard of the sweep run ``sweep_run_id`` (``zoo compare --sweep``): ``(rows, best)``.

    A row per trial: ``run_id``, ``trial``, ``status``, ``score`` (the restored best model's
    ``final.<metric>``; for a trial stopped early, its last reported ``<metric>``), ``complete``
    (trained to the end, with a packaged model), ``epochs``, ``params`` (the searched settings),
    ``test`` (the key test metrics) and ``reason`` (why it failed or stopped). Complete trials come
    first, best first; ``best`` is the first complete FINISHED one (None when there is none).
    ``metric`` and ``mode`` default to the ones the sweep recorded.
    """
    c = client(uri)
    from .queries import get_run, runs_with_prefix
    parent = get_run(c, sweep_run_id)
    if parent is None and re.fullmatch(r"[0-9a-f]{1,31}", sweep_run_id):  # a prefix, as every command takes
        found = runs_with_prefix(c, sweep_run_id)
        sweeps = [r for r in found if r.data.tags.get("zoo.kind") == "sweep"]
        if len(sweeps) > 1:
            raise ConfigError(f"--sweep {sweep_run_id}: {len(sweeps)} sweeps start with it "
                              f"({', '.join(r.info.run_id for r in sweeps[:5])}); give more of the run id")
        parent = sweeps[0] if sweeps else (found[0] if len(found) == 1 else None)
    if parent is None or parent.data.tags.get("zoo.kind") != "sweep":
        what = "no run" if parent is None else f"run {parent.info.run_id} is a '{parent.data.tags.get('zoo.kind')}' run"
        raise ConfigError(f"--sweep {sweep_run_id}: {what}, not a sweep; the sweep's run id is printed by `zoo sweep` "
                          f"(or find runs of kind sweep in `zoo ui`)")
    metric = metric or parent.data.tags.get("zoo.sweep.metric", "")
    mode = mode or parent.data.tags.get("zoo.sweep.mode", "max")
    searched = [k.removeprefix("sweep.param.") for k in parent.data.params if k.startswith("sweep.param.")]
    children = c.search_runs([parent.info.experiment_id], max_results=5000,
                             filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'")
    rows = []
    for run in children:
        m, tags = run.data.metrics, run.data.tags
        complete = f"final.{metric}" in m
        score = m.get(f"final.{metric}", m.get(metric))
        rows.append({
            "run_id": run.info.run_id, "trial": tags.get("zoo.sweep.trial", ""), "status": run.info.status,
            "metric": metric,
            "score": score, "complete": complete and run.info.status == "FINISHED",
            "epochs": int(m.get("epochs_run", 0)) or None,
            "params": {k: run.data.params.get(f"sweep.{k}", run.data.params.get(k)) for k in searched},
            "test": {k: m[k] for k in tags.get("zoo.key_metrics", "").split(",") if k in m},
            "reason": tags.get(FAILURE_TAG) or tags.get("zoo.sweep.stopped", ""),
        })
    sign = -1.0 if mode == "max" else 1.0

    def order(r: dict) -> tuple:
        scored = r["score"] is not None and r["status"] == "FINISHED"
        return (not r["complete"], not scored, sign * r["score"] if scored else 0.0, r["trial"])

    rows.sort(key=order)
    best = next((r for r in rows if r["complete"] and r["score"] is not None), None)
    return rows, best


def format_sweep(rows: list[dict]) -> str:
    """The leaderboard as aligned text: rank, trial, status, score, the searched settings, run id."""
    if not rows:
        return "no trials recorded under this sweep"
    names = list(rows[0]["params"])
    metric = rows[0]["metric"]
    header = ("#", "trial", "status", metric, *names, "run", "note")
    lines = []
    for i, r in enumerate(rows, 1):
        score = "-" if r["score"] is None else f"{r['score']:.4f}"
        status = r["status"] if r["complete"] or r["status"] != "FINISHED" else "STOPPED"
        note = (r["reason"] or "")[:70]
        lines.append((str(i), r["trial"], status, score, *(str(r["params"].get(n)) for n in names),
                      r["run_id"][:8], note))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*line).rstrip() for line in lines])


def format_runs(rows: list[dict], *, wide: bool = False) -> str:
    """Every run of every row, one per line under its row: the seed, the full run id (which
    ``zoo predict``, ``zoo register`` and ``zoo embed`` accept) and the seeds' parent run. The data
    set is its id with the legend below (``wide``: its description in full on the row's line)."""
    if not rows:
        return "no finished runs"
    ids = data_ids(rows)
    lines = []
    for r in rows:
        differs = " ".join(f"{k}={v}" for k, v in r.get("differs", {}).items())
        head = f"{r['spec']}  {r['dataset'] if wide else ids[r['dataset']]}" + (f"  [{differs}]" if differs else "")
        lines.append(head if wide else fold(head))
        for seed, run_id in zip(r.get("run_seeds", r["seeds"]), r["run_ids"]):
            lines.append(f"  seed {seed}  {run_id}")
        for parent in r["parent_run_ids"]:
            lines.append(f"  parent {parent} (all seeds)")
    return "\n".join(lines) + ("" if wide else "\n\n" + _legend(ids))


def format_failed(rows: list[dict]) -> str:
    """``zoo compare --failed``: each failed or killed run, its spec and reason, folded."""
    return "\n".join(fold(f"{r['run_id']}  {r['spec'] or r['name']}: "
                           f"{'' if r['status'] == 'FAILED' else r['status'] + ' '}{r['reason']}") for r in rows)


# -- the baseline beside every row (zoo compare --baseline) ------------------------------------------------
BASELINE_PREFIX = "stats+"
"""Specs of the linear baseline (plugins/zoo-stats): the floor every other row is held against."""
LEGACY_LOWER_BETTER = ("mae", "mse", "rmse", "loss")
"""Errors among the metrics of a run logged before ``zoo.lower_is_better`` (every newer run declares its own)."""
BASELINE_RECIPES = {"classification": "baseline-genre", "regression": "baseline-emotion"}
TAG_METRICS = ("roc_auc", "pr_auc")
"""A multi-label task's metrics: its baseline is ``stats+FEATURES:TASK`` with the same tag settings."""
LABEL_SETTINGS = ("columns", "threshold")
"""Task settings that decide what a task's truth is (a multi-label task's tag columns and threshold):
a baseline row must share them, or its scores are of another task."""


def same_labels(a: dict, b: dict, metric: str) -> bool:
    """Whether rows ``a`` and ``b`` scored ``metric``'s task against the same truth (:data:`LABEL_SETTINGS`)."""
    task = metric.split(".")[1]
    pa, pb = a.get("params") or {}, b.get("params") or {}
    return all(pa.get(f"task.{task}.{k}") == pb.get(f"task.{task}.{k}") for k in LABEL_SETTINGS)
_SPLITS = re.compile(r"\(train (\d+) / val (\d+) / test (\d+)\)")


def is_baseline(row: dict) -> bool:
    """Whether ``row`` is a run of the stats baseline."""
    return row["spec"].startswith(BASELINE_PREFIX)


def not_a_baseline(row: dict) -> str:
    """Why the stats row ``row`` cannot stand as a baseline ("" when it can): a baseline is a finished, full
    run, so never a sweep trial (stopped or cut short by the sweep's budget) nor a ``--limit`` run."""
    if row.get("sweep"):
        return f"a trial of sweep {row['sweep'][:8]}"
    limit = (row.get("data_source") or {}).get(DATA_TAGS + "limit")
    if limit:
        return f"a --limit {limit} run"
    return ""


def same_data(a: dict, b: dict) -> bool:
    """Whether rows ``a`` and ``b`` were trained and tested on the same clips and splits.

    The same ``zoo.fingerprint`` says so, but the fingerprint also covers the features, so a
    ``cnn+mel`` row and the ``stats+mel+chroma`` baseline never share one. Rows of other features
    match when they recorded the same data source (folder, layout, data-set settings, ``--limit``
    and its seed, ``--skip-bad``) and the same split sizes. A set given in memory (the API) records
    no source: only its fingerprint matches.
    """
    if a["fingerprint"] and a["fingerprint"] == b["fingerprint"]:
        return True
    source = a.get("data_source") or {}
    if source.get(DATA_TAGS + "source") in (None, "", "in-memory"):
        return False
    return source == (b.get("data_source") or {}) and _split_sizes(a) == _split_sizes(b)


def _split_sizes(row: dict) -> tuple[str, ...] | None:
    found = _SPLITS.search(row.get("dataset", ""))
    return found.groups() if found else None


def primary_metrics(row: dict) -> list[str]:
    """Each task's key metric in ``row`` (the first one listed per task: accuracy, spearman, ...)."""
    out: dict[str, str] = {}
    for name in row["metrics"]:
        parts = name.split(".")
        if len(parts) >= 3:
            out.setdefault(parts[1], name)
    return list(out.values())


def mark_baselines(rows: list[dict], baselines: list[dict] | None = None) -> None:
    """Give each row ``baseline``: the stats baseline's score beside its own, per task.

    ``baselines``: rows to take the baseline from (default ``rows``; pass the unfiltered rows when
    ``rows`` were filtered with ``--spec``). A baseline is a finished, full stats+ row: never a sweep trial
    nor a ``--limit`` run (:func:`not_a_baseline`; such a stats row gets ``not_baseline``, the reason), of
    the same data set and split (:func:`same_data`) that scored the same task against the same truth
    (:func:`same_labels`); among several, the latest whose heads
    were fitted to convergence (param ``fit.method`` = closed-form, :mod:`zoo.engine.linearfit`),
    else the latest (one trained by SGD: before the fit existed, or with a hidden layer). A row gets
    ``{"is_baseline", "metrics": {metric: {label, spec, group, run_ids, dataset, mean, half_width, n,
    compared, beats}}, "below", "missing", "hint"}`` (``label``: B1, B2, ... the name the table and its
    notes give that baseline): ``compared`` is the row's mean, or with several seeds the
    end of its 95 % interval nearer the baseline (the lower end; the upper one for errors), and
    ``beats`` says whether it is above the baseline's mean (below, for errors). ``below``: some task
    does not beat it. ``missing`` lists the metrics with no baseline run on this data, and ``hint``
    the command that would train one.
    """
    pool = [b for b in (rows if baselines is None else baselines) if is_baseline(b) and not not_a_baseline(b)]
    pool.sort(key=lambda b: (b.get("params") or {}).get("fit.method") != "closed-form")  # stable: latest first in each
    labels: dict[str, str] = {}  # baseline group -> B1, B2, ... in the order the rows first use them
    for row in rows:
        if is_baseline(row):
            why = not_a_baseline(row)
            row["baseline"] = {"is_baseline": not why, "not_baseline": why, "metrics": {}, "below": False,
                               "missing": [], "hint": ""}
            continue
        found, missing = {}, []
        for metric in primary_metrics(row):
            base = next((b for b in pool if same_data(row, b) and same_labels(row, b, metric) and not math.isnan(
                b["metrics"].get(metric, {}).get("mean", float("nan")))), None)
            if base is None:
                missing.append(metric)
                continue
            own, ref = row["metrics"][metric], base["metrics"][metric]
            lower = is_lower_better([row], metric)
            spread = own.get("half_width", float("nan"))
            compared = own["mean"] if math.isnan(spread) else own["mean"] + (spread if lower else -spread)
            beats = (compared < ref["mean"]) if lower else (compared > ref["mean"])  # NaN: False
            label = labels.setdefault(base["group"], f"B{len(labels) + 1}")
            found[metric] = {"label": label, "spec": base["spec"], "group": base["group"], "run_ids": base["run_ids"],
                             "dataset": base.get("dataset", ""), "mean": ref["mean"],
                             "half_width": ref["half_width"], "n": ref["n"], "compared": compared,
                             "beats": bool(beats)}
        row["baseline"] = {"is_baseline": False, "metrics": found, "missing": missing,
                           "below": any(not f["beats"] for f in found.values()),
                           "hint": baseline_hint(row, missing) if missing else ""}
    for row in rows:  # a baseline's own row says which one it is
        if row["baseline"]["is_baseline"] and row["group"] in labels:
            row["baseline"]["label"] = labels[row["group"]]


def baseline_hint(row: dict, missing: list[str]) -> str:
    """The commands that would track the baseline on ``row``'s data for the ``missing`` metrics."""
    tagged = [m for m in missing if m.rsplit(".", 1)[-1] in TAG_METRICS]
    recipes = sorted({BASELINE_RECIPES["regression" if m.rsplit(".", 1)[-1] in ("spearman", "pearson", "r2", "ccc",
                                                                                     *LEGACY_LOWER_BETTER)
                                        else "classification"] for m in missing if m not in tagged})
    features = row["spec"].partition(":")[0].partition("+")[2]
    for task in dict.fromkeys(m.split(".")[1] for m in tagged):
        sets = [f"--set {shlex.quote(f'{task}.{k}={_setting(row, task, k)}')}" for k in LABEL_SETTINGS
                if _setting(row, task, k)]
        recipes.append(" ".join([f"stats+{features}:{task}", *sets]))
    source = row.get("data_source") or {}
    where = source.get(DATA_TAGS + "source")
    limited = source.get(DATA_TAGS + "limit")
    if where in (None, "", "in-memory"):
        composition, _, tasks = row["spec"].partition(":")
        features = composition.partition("+")[2]
        return (f"no baseline run on this data ({row['dataset'] or 'not recorded'}; given in memory): train "
                f"stats+{features}:{tasks} on the same data through the API (zoo.train)")
    args = [] if where == "embedded" else ["--data", shlex.quote(where)]
    if source.get(DATA_TAGS + "layout"):
        args += ["--layout", source[DATA_TAGS + "layout"]]
    if source.get(DATA_TAGS + "seed", "0") != "0":  # the seed that drew the clips and any missing splits
        args += ["--seed", source[DATA_TAGS + "seed"]]
    if source.get(DATA_TAGS + "skip_bad") == "true":
        args.append("--skip-bad")
    for key, value in sorted(json.loads(source.get(DATA_TAGS + "settings") or "{}").items()):
        args += ["--set", shlex.quote(f"dataset.{key}={value}")]
    commands = "; ".join(" ".join(["zoo run", r, *args]) for r in recipes)
    if limited:
        return (f"no baseline for a --limit {limited} run: a baseline is a full run on all the clips, so compare "
                f"this model's full run (without --limit) with: {commands}")
    return "no baseline run on this data: " + commands


def _setting(row: dict, task: str, key: str) -> str:
    """A task setting as ``--set`` takes it (a tuple param ``('a', 'b')`` as ``a,b``; "" when empty)."""
    value = (row.get("params") or {}).get(f"task.{task}.{key}", "")
    if value.startswith("(") and value.endswith(")"):
        value = ",".join(v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip())
    return value


def baseline_text(row: dict) -> str:
    """The ``vs baseline`` cell of a row: the baseline's mean per task, ``NOT ABOVE`` where the row
    does not beat it, ``(baseline)`` for the baseline's own rows, ``none`` where none was tracked."""
    b = row.get("baseline")
    if not b:
        return "-"
    if b["is_baseline"]:
        return f"(baseline {b['label']})" if b.get("label") else "(baseline)"
    if b.get("not_baseline"):
        return f"(not a baseline: {b['not_baseline']})"
    cells = []
    for metric, f in b["metrics"].items():
        name = metric.removeprefix("test.")
        cells.append(f"{name} {f['mean']:.3f} ({f['label']})" + ("" if f["beats"] else " NOT ABOVE"))
    if not cells and len(b["missing"]) > 1:
        return "none for any task"
    cells += [f"{m.removeprefix('test.')} none" for m in b["missing"]]
    return ", ".join(cells) or "-"


def format_baseline_notes(rows: list[dict]) -> str:
    """Under the table: what the mark means, and the command for each data set with no baseline run."""
    if not any(r.get("baseline") for r in rows):
        return ""
    lines = ["vs baseline: for each task, the latest finished, full stats+ run (no --limit, no sweep trial) on the "
             "same data set and split that scored the same task (fitted heads first), named below; NOT ABOVE: the "
             "row's mean (with seeds, the lower end of its 95% interval; the upper end for errors) is not better "
             "than the baseline's mean"]
    used: dict[str, dict] = {}
    for r in rows:
        for f in (r.get("baseline") or {}).get("metrics", {}).values():
            used.setdefault(f["label"], f)
    for label, f in used.items():
        seeds = f"{f['n']} seed{'s' if f['n'] != 1 else ''}"
        lines.append(f"  {label}: {f['spec']}, {seeds}, run{'s' if len(f['run_ids']) > 1 else ''} "
                     f"{', '.join(f['run_ids'])}")
    if not used:
        other = "other " if any(r["baseline"]["is_baseline"] for r in rows if r.get("baseline")) else ""
        lines.append(f"  no {other}row has a baseline: no finished, full stats+ run on its data set, split and tasks")
    for hint in dict.fromkeys(r["baseline"]["hint"] for r in rows if r.get("baseline") and r["baseline"]["hint"]):
        lines.append("  " + hint)
    return "\n".join(fold(line) for line in lines)
