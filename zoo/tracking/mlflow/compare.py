"""The table behind ``zoo compare``: tracked runs pooled over seeds, read straight from MLflow."""
from __future__ import annotations

import fnmatch
from typing import Any, Iterator

from ...engine import intervals
from ...errors import ConfigError
from .. import DEFAULT_EXPERIMENT, FAILURE_TAG, PARENT_TAG
from .store import client, get_experiment


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
            f"no experiment '{experiment}' in the MLflow store {c.tracking_uri}; experiments there: "
            f"{', '.join(names) or '(none: train something with `zoo run` first)'}; pass --experiment NAME"
        )
    return exp


def compare_rows(experiment: str = DEFAULT_EXPERIMENT, spec: str | None = None, uri: str | None = None) -> list[dict]:
    """One row per group of finished training runs that differ only in their seed, latest first.

    A row: ``spec``, ``dataset``, ``fingerprint``, ``group``, ``seeds`` (sorted), ``n_runs``,
    ``metrics`` ``{name: {mean, std, half_width, n}}`` for the key test metrics,
    ``run_ids`` and ``parent_run_ids`` (latest first), ``latest`` (start time, ms). A seed run
    again with the same settings counts once (its latest run); the older ones are listed in
    ``repeated_run_ids``.
    ``spec`` filters with a shell-style pattern (``lstm+*:genre``).
    """
    c = client(uri)
    exp = _experiment(c, experiment)
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
        metrics = {n: intervals.t_interval([r.data.metrics[n] for r in runs if n in r.data.metrics]) for n in names}
        seeds = sorted({int(r.data.params.get("seed", tags.get("zoo.seed", "0"))) for r in runs})
        rows.append({
            "spec": tags.get("zoo.spec", ""), "dataset": tags.get("zoo.dataset", ""),
            "fingerprint": tags.get("zoo.fingerprint", ""), "group": key, "seeds": seeds, "n_runs": len(found),
            "metrics": metrics, "run_ids": [r.info.run_id for r in runs],
            "repeated_run_ids": [r.info.run_id for r in found if r.info.run_id not in used],
            "parent_run_ids": sorted({r.data.tags[PARENT_TAG] for r in runs if PARENT_TAG in r.data.tags}),
            "recipe": tags.get("zoo.recipe", ""), "latest": max(r.info.start_time for r in runs),
        })
    rows.sort(key=lambda r: r["latest"], reverse=True)
    return rows


def failed_runs(experiment: str = DEFAULT_EXPERIMENT, spec: str | None = None, uri: str | None = None) -> list[dict]:
    """Runs that ended FAILED, latest first: run id, spec, reason."""
    c = client(uri)
    exp = _experiment(c, experiment)
    out = []
    for run in _all_runs(c, exp.experiment_id, "attributes.status = 'FAILED'"):
        tags = run.data.tags
        if spec and not fnmatch.fnmatch(tags.get("zoo.spec", ""), spec.lower()):
            continue
        out.append({"run_id": run.info.run_id, "spec": tags.get("zoo.spec", ""), "name": run.info.run_name,
                    "reason": tags.get(FAILURE_TAG, "(no reason recorded)"), "start_time": run.info.start_time})
    return out


def format_table(rows: list[dict]) -> str:
    """The rows as aligned text: spec, dataset, seeds, metrics (mean ± 95 % half-width), run ids."""
    if not rows:
        return "no finished runs"
    header = ("spec", "dataset", "seeds", "test metrics (mean ± 95% CI half-width over seeds)", "runs (latest first)")
    lines = []
    for r in rows:
        data = r["dataset"] if len(r["dataset"]) <= 40 else r["dataset"][:37] + "..."
        metrics = ", ".join(f"{k.removeprefix('test.')} {intervals.plus_minus(v)}" for k, v in r["metrics"].items())
        ids = " ".join(i[:8] for i in r["run_ids"][:4]) + (f" +{len(r['run_ids']) - 4}" if len(r["run_ids"]) > 4 else "")
        lines.append((r["spec"], data, str(len(r["seeds"])), metrics or "-", ids))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*l) for l in lines])
