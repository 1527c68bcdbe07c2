"""Choose training settings by validation score over seeds: the measurements behind ``train_defaults``.

Each variant is a set of ``--set``-style overrides; every variant of a spec is trained for seeds
``0 .. N-1`` on the embedded set (untracked) and scored on the validation split, which is what the
choice follows; the test split is recorded beside it, never used to choose. One JSON line per
variant goes to ``--out`` (appended, so a long study survives an interruption and a second call
skips the variants already there), and a table sorted by validation score is printed.

    python bench/tune.py cnn+mel:genre --variant base= --variant mix=train.mixup=0.2 \\
        --variant masks=train.time_masks=2,train.freq_masks=2 --out /tmp/tune.jsonl

A variant is ``NAME=KEY=VALUE[;KEY=VALUE...]`` (``;`` separates settings because values may hold
commas); ``NAME=`` alone is the spec's defaults.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_variant(text: str) -> tuple[str, dict[str, dict[str, str]]]:
    """``NAME=KEY=VALUE;...`` -> ``(NAME, {scope: {key: value}})``."""
    name, _, rest = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"variant {text!r}: give NAME=KEY=VALUE[;KEY=VALUE...], e.g. mix=train.mixup=0.2")
    if "[" in name or "]" in name:
        raise argparse.ArgumentTypeError(f"variant name {name!r}: give the bare name (e.g. bf16 for the row "
                                          "'cnn [bf16]'); the recipe's name and the brackets are added")
    from zoo.config import parse_assignments
    from zoo.errors import ConfigError
    try:
        return name, parse_assignments([s.strip() for s in rest.split(";") if s.strip()])
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"variant {name}: {exc}") from exc


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and 95 % t-interval half-width (0 for a single value)."""
    from zoo.engine.intervals import t_interval
    s = t_interval(values)
    return s["mean"], 0.0 if s["half_width"] != s["half_width"] else s["half_width"]


def run_variant(spec: str, name: str, settings: dict, *, seeds: int, size: str, workspace, data=None) -> dict:
    """Train ``spec`` with ``settings`` for ``seeds`` seeds on the embedded set of ``size`` (or on
    the data folder ``data``), untracked; one JSON-ready row with every seed's scores and history.
    ``settings["transfer"]`` (``from``, ``freeze``) starts the backbone from a trained model, as ``zoo run --from``."""
    import os

    import zoo
    merged = {k: dict(v) for k, v in settings.items()}
    transfer = merged.pop("transfer", {})  # transfer.from=REF (a model folder, run, recipe); transfer.freeze=WHAT
    if data is None:
        merged.setdefault("dataset", {}).setdefault("size", size)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    res = zoo.train(spec, data=data, settings=merged, seeds=seeds, track=False, progress=False, workspace=workspace,
                    init_from=transfer.get("from"), freeze=transfer.get("freeze"))
    seconds = time.perf_counter() - start
    return {"spec": spec, "variant": name, "settings": settings, "seconds": round(seconds, 1),
            "load": [round(load, 2), round(os.getloadavg()[0], 2)],
            "val": [dict(r.val) for r in res.results], "test": [dict(r.test) for r in res.results],
            "best_epoch": [r.best_epoch for r in res.results], "epochs_run": [len(r.history) for r in res.results],
            "history": [[{k: round(v, 4) for k, v in row.items()} for row in r.history] for r in res.results]}


def key_of(row: dict) -> str:
    first = next(iter(row["val"][0]))
    task = first.split(".")[0]
    for m in ("accuracy", "spearman", "pr_auc"):
        if f"{task}.{m}" in row["val"][0]:
            return f"{task}.{m}"
    return first


def show(rows: list[dict]) -> None:
    if not rows:
        return
    key = key_of(rows[0])
    extra = [k for k in rows[0]["test"][0] if k != key and k.endswith(("macro_f1", "spearman"))][:4]
    scored = []
    for r in rows:
        vm, vc = mean_ci([v[key] for v in r["val"]])
        scored.append((vm, vc, r))
    print(f"{'variant':<24} {'val ' + key:>22} {'test ' + key:>22} " + " ".join(f"{'test ' + k:>26}" for k in extra)
          + "   epochs   seconds")
    for vm, vc, r in sorted(scored, key=lambda t: -t[0]):
        tm, tc = mean_ci([t[key] for t in r["test"]])
        cols = []
        for k in extra:
            m, c = mean_ci([t[k] for t in r["test"]])
            cols.append(f"{m:>18.3f} ± {c:.3f}")
        print(f"{r['variant']:<24} {vm:>14.3f} ± {vc:.3f} {tm:>14.3f} ± {tc:.3f} " + " ".join(cols)
              + f"   {','.join(map(str, r['best_epoch']))}   {r['seconds']:.0f}")


def markdown(rows: list[dict], baseline: dict | None = None) -> str:
    """A markdown table of ``rows`` (one spec), best validation score first; each cell mean ± 95 %
    t-interval half-width over the seeds; ``baseline`` (a row of another spec) first when given."""
    key = key_of(rows[0])
    tests = [k for k in rows[0]["test"][0] if k.split(".")[1] in ("accuracy", "macro_f1", "spearman", "pr_auc", "roc_auc")]
    head = ["spec [variant]", f"val {key}"] + [f"test {k}" for k in tests] + ["best epochs", "wall time, 3 seeds"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def line(r: dict, label: str) -> str:
        vm, vc = mean_ci([v[key] for v in r["val"]]) if key in r["val"][0] else (float("nan"), 0.0)
        cells = [label, f"{vm:.3f} ± {vc:.3f}" if vm == vm else "-"]
        for k in tests:
            if k in r["test"][0]:
                m, c = mean_ci([t[k] for t in r["test"]])
                cells.append(f"{m:.3f} ± {c:.3f}")
            else:
                cells.append("-")
        cells += [",".join(map(str, r["best_epoch"])), f"{r['seconds'] / 60:.1f} min"]
        return "| " + " | ".join(cells) + " |"

    if baseline is not None:
        out.append(line(baseline, f"`{baseline['spec']}` (baseline)"))
    ranked = sorted(rows, key=lambda r: -mean_ci([v[key] for v in r["val"]])[0])
    for r in ranked:
        settings = "; ".join(f"{scope}.{k}={v}" for scope, kv in r["settings"].items() for k, v in kv.items()
                             if k != "threads") or "defaults"
        out.append(line(r, f"`{r['spec']}` {r['variant']}: {settings}"))
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec")
    p.add_argument("--variant", action="append", type=parse_variant, default=[], help="NAME=KEY=VALUE[;...]")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--size", default="default", choices=("tiny", "small", "default", "large"))
    p.add_argument("--data", type=Path, default=None, help="a data folder instead of the embedded set")
    p.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    p.add_argument("--show", action="store_true", help="only print the table of what --out holds")
    p.add_argument("--markdown", action="store_true", help="print the markdown table of what --out holds")
    args = p.parse_args(argv)
    from zoo.workspace import Workspace
    done = []
    if args.out.exists():
        done = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
    mine = [r for r in done if r["spec"] == args.spec]
    if not args.show:
        workspace = Workspace.from_env()
        have = {r["variant"] for r in mine}
        for name, settings in args.variant:
            if name in have:
                continue
            print(f"-- {args.spec} [{name}] {settings}", file=sys.stderr, flush=True)
            row = run_variant(args.spec, name, settings, seeds=args.seeds, size=args.size, workspace=workspace,
                              data=args.data)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            mine.append(row)
            show([row])
    if args.markdown and mine:
        print(markdown(mine))
    else:
        show(mine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
