"""``zoo sweep``: search a composition's settings on Ray Tune; every trial a zoo run under one MLflow run."""
from __future__ import annotations

import argparse
import json

from ..config import parse_assignments
from ..processes import stop_signals
from .argtypes import POSITIVE, number
from .options import SWEEP_EXCLUDES, add_data_options, add_train_options, given_options

EXAMPLES = """\
examples:
  zoo sweep lstm+chroma:genre --param train.lr=loguniform:1e-4:3e-3 --param backbone.hidden=choice:64,128 --trials 8
  zoo sweep cnn+mel:genre --data ~/data/patreco3 --param task.dropout=uniform:0.1:0.5 --trials 16 --concurrent 4
  zoo sweep lab-cnn-mel --param train.lr=loguniform:1e-4:1e-2 --address auto      on a running Ray cluster
then:
  zoo compare --sweep RUN          the leaderboard
  zoo run --from-sweep RUN --seeds 5   the best settings again, over five seeds
"""


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="search settings of a composition on Ray Tune, each trial tracked in MLflow",
        description="Train SPEC_OR_RECIPE once per trial with settings drawn from the --param ranges, on Ray\n"
                    "Tune (a local Ray sized to the free cores, or the cluster at --address). Bad trials are\n"
                    "stopped early (ASHA) on the per-epoch validation metric. One MLflow run holds the sweep,\n"
                    "each trial is a normal zoo run under it. Needs: pip install \"music-zoo[sweep]\".",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC_OR_RECIPE", help="e.g. lstm+chroma:genre, or a recipe name such as lab-cnn-mel")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="SCOPE.KEY=KIND:ARGS",
                   help="a searched setting: train.lr=loguniform:1e-4:3e-3, task.dropout=uniform:0.1:0.5, "
                        "backbone.layers=randint:1:3, backbone.hidden=choice:128,256, or grid:A,B (every value) "
                        "(repeatable)")
    p.add_argument("--trials", type=POSITIVE, default=8, metavar="N",
                   help="trials to draw (default 8; each grid value gets N)")
    p.add_argument("--metric", metavar="val.TASK.METRIC",
                   help="the validation metric to stop on and rank by (default: the first task's primary one)")
    p.add_argument("--concurrent", type=POSITIVE, metavar="K", help="at most K trials at once (default: as CPUs allow)")
    p.add_argument("--address", metavar="ADDR",
                   help="attach to a running Ray cluster (auto, or ray://HOST:PORT) instead of starting a local one")
    p.add_argument("--cpus", type=POSITIVE, metavar="N", help="CPUs of the local Ray (default: this process's free cores)")
    p.add_argument("--cpus-per-trial", type=number(0.0, strict=True), default=1.0, metavar="C",
                   help="CPUs each trial holds (default 1)")
    p.add_argument("--gpus-per-trial", type=number(0.0), default=0.0, metavar="G",
                   help="GPUs each trial holds (default 0; e.g. 0.5 puts two trials on one GPU)")
    p.add_argument("--grace", type=POSITIVE, default=1, metavar="E",
                   help="epochs every trial trains before the scheduler may stop it (default 1)")
    p.add_argument("--register", metavar="NAME", help="register the best trial's model in the MLflow model registry "
                                                      "as NAME")
    add_data_options(p)
    add_train_options(p, exclude=SWEEP_EXCLUDES)
    p.add_argument("--json", action="store_true", help="print the leaderboard as JSON on stdout")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars, as zoo run takes it (a sweep draws none: its trials report by line)")
    p.set_defaults(func=run)


def run(args, registry, workspace) -> int:
    from ..sweep.driver import SweepPlan, require_ray, sweep
    from ..sweep.space import parse_params
    from ..tracking.mlflow.compare import format_sweep
    params = parse_params(args.params)  # the grammar, before anything starts
    from ..engine.request import DataRequest
    from ..engine.trainconfig import TrainConfig
    train = {**given_options(args, DataRequest), **given_options(args, TrainConfig), "seed": args.seed,
             "experiment": args.experiment}
    train["data"] = train.pop("path", None)
    plan = SweepPlan(spec=args.spec, params=params, settings=parse_assignments(args.assignments),
                     train={k: v for k, v in train.items() if v is not None}, trials=args.trials, metric=args.metric,
                     concurrent=args.concurrent, address=args.address, cpus=args.cpus,
                     cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, grace=args.grace,
                     experiment=args.experiment, register=args.register)
    require_ray()
    say = (lambda line: print(line, file=__import__("sys").stderr, flush=True)) if args.json else print
    with stop_signals():  # SIGTERM and SIGHUP unwind the sweep as Ctrl-C does: trials stopped, runs ended KILLED
        result = sweep(plan, registry=registry, workspace=workspace, say=say)
    if args.json:
        print(json.dumps({"run_id": result.run_id, "metric": result.metric, "mode": result.mode,
                          "best": result.best, "trials": result.rows}, indent=2, default=str))
        return 0
    print("\n" + format_sweep(result.rows))
    best = result.best
    assert best is not None  # sweep() raises when no trial finished
    print(f"\nbest: trial {best['trial']} (run {best['run_id']}), {result.metric} {best['score']:.4f}, "
          + ", ".join(f"{k}={v}" for k, v in best["params"].items()))
    print(f"sweep run: {result.run_id}")
    print(f"rerun the best settings: zoo run --from-sweep {result.run_id} --seeds 5")
    if result.registered is not None:
        print(f"registered: '{plan.register}' version {result.registered.version}; "
              f"predict with: zoo predict {plan.register}/{result.registered.version} AUDIO...")
    return 0
