"""``zoo run``: train a composition (or a named recipe) on a data set, evaluate it, track it."""
from __future__ import annotations

import json
import signal
import threading

from ..config import parse_assignments
from ..data.prepare import MAX_SECONDS
from .argtypes import NON_NEGATIVE, POSITIVE, SEED, number

EXAMPLES = """\
examples:
  zoo run lstm+chroma:genre                       embedded data, default settings
  zoo run ast+mel:valence --epochs 10 --lr 3e-4
  zoo run cnn+mel:genre --data ~/data/patreco3 --seeds 5
  zoo run lab-cnn-mel                             a recipe from registry.yaml
  zoo run cnn+mel:genre --overfit-batches 2       sanity check: can it fit two batches?
  zoo run lstm+mel:genre --set backbone.hidden=256 --set train.schedule=plateau
  zoo run ast+mel:valence --from lab-ast-mel --freeze none   transfer: start from a genre AST
"""


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="train and evaluate a composition or recipe, tracked in MLflow",
        description="Train SPEC (BACKBONE+FEATURE[+FEATURE...]:TASK[,TASK...]) or a recipe name from\n"
                    "registry.yaml, evaluate it on the test split, write the reports and the packaged\n"
                    "model, and record everything in MLflow. Without --data the embedded data set is used.",
        epilog=EXAMPLES, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC_OR_RECIPE", help="e.g. lstm+chroma:genre, or a recipe name such as lab-cnn-mel")
    p.add_argument("--data", metavar="PATH", help="data folder (Kaggle, FMA, audio folder or CSV manifest); default: embedded set")
    p.add_argument("--layout", metavar="L", help="the data folder's layout when detection is ambiguous (kaggle, fma, folder, ...)")
    p.add_argument("--epochs", type=POSITIVE, help="most epochs (train.epochs)")
    p.add_argument("--batch-size", type=POSITIVE, help="batch size (train.batch_size)")
    p.add_argument("--lr", type=number(0.0, strict=True), help="peak learning rate (train.lr)")
    p.add_argument("--patience", type=NON_NEGATIVE, help="early-stopping patience in epochs, 0 = off (train.patience)")
    p.add_argument("--limit", type=POSITIVE, metavar="N", help="use at most N clips (stratified), for quick runs")
    p.add_argument("--seed", type=SEED, default=0, help="first seed (default 0)")
    p.add_argument("--seeds", type=POSITIVE, default=1, metavar="K",
                   help="train K models with seeds SEED..SEED+K-1 and report mean ± 95%% interval")
    p.add_argument("--overfit-batches", type=NON_NEGATIVE, metavar="N",
                   help="sanity check: train on N fixed batches until the loss is near zero, and say if it got there")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="SCOPE.KEY=VAL",
                   help="a setting: backbone.hidden=256, mel.n_mels=64, task.dropout=0.3, train.lr=3e-4, "
                        "dataset.mapping=none (repeatable)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable clips (listed and logged) instead of stopping")
    p.add_argument("--max-seconds", type=number(0.0), default=MAX_SECONDS, metavar="S",
                   help=f"cut longer audio to its middle S seconds, and say how many clips were cut "
                        f"(default {MAX_SECONDS:g}, the lab's clips; 0 = no limit)")
    p.add_argument("--min-class-clips", type=NON_NEGATIVE, default=0, metavar="N",
                   help="stop with an error naming every class that has fewer than N clips, e.g. a mistyped label "
                        "(default 0: only warn about labels given to one clip of a CSV manifest)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    p.add_argument("--experiment", default="music-zoo", help="MLflow experiment (default: music-zoo)")
    p.add_argument("--no-track", action="store_true", help="do not record the run in MLflow")
    p.add_argument("--register", metavar="NAME", help="register the trained model in the MLflow model registry as NAME "
                   "(with --seeds: the seed with the best validation score); then: zoo predict NAME AUDIO...")
    p.add_argument("--workers", type=POSITIVE, metavar="N", help="processes for feature extraction (default: all cores)")
    p.add_argument("--from", "--init-from", dest="init_from", metavar="RUN",
                   help="transfer: start the backbone from a trained model: run id (or prefix), recipe (its latest "
                        "run), registered model or model folder")
    p.add_argument("--freeze", metavar="WHAT", help="with --from: none (default), backbone, or N (its first N blocks)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (messages go to stderr)")
    p.set_defaults(func=run)


def _terminated(signum, frame):
    # Raising here unwinds the run like Ctrl-C does, so its MLflow run is ended FAILED with the reason.
    raise SystemExit(f"zoo run: terminated by signal {signal.Signals(signum).name}")


def run(args, registry, workspace) -> int:
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        return _run(args, registry, workspace)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run(args, registry, workspace)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args, registry, workspace) -> int:
    from .. import api
    from ..engine.reporting import ConsoleReporter
    # With --json, stdout carries the JSON document only: the lines go to stderr.
    reporter = ConsoleReporter(progress=not args.no_progress, to_stderr=args.json)
    say = reporter.say
    settings = parse_assignments(args.assignments)
    if args.register and (args.no_track or args.overfit_batches):
        from ..errors import ConfigError
        why = "--no-track records no run to register" if args.no_track else "an overfit check saves no model"
        raise ConfigError(f"--register {args.register}: {why}; drop one of the two")
    res = api.train(args.spec, data=args.data, layout=args.layout, settings=settings, epochs=args.epochs,
                    lr=args.lr, batch_size=args.batch_size, patience=args.patience,
                    overfit_batches=args.overfit_batches, device=args.device, seed=args.seed, seeds=args.seeds,
                    limit=args.limit, skip_bad=args.skip_bad, workers=args.workers, track=not args.no_track,
                    max_seconds=args.max_seconds, min_class_clips=args.min_class_clips,
                    experiment=args.experiment, registry=registry, init_from=args.init_from, freeze=args.freeze,
                    workspace=workspace, reporter=reporter)
    if args.no_track:
        say("run:     not tracked (--no-track)")
    else:
        say(f"run:     {res.tracking}")
        say("browse:  zoo ui   (then open the address it prints);  compare: zoo compare")
    if args.register:
        import tempfile
        from pathlib import Path

        from ..refs import resolve
        from ..tracking.mlflow.model_registry import register_model
        with tempfile.TemporaryDirectory(prefix="zoo-register-") as tmp:  # several seeds: the seed rule's pick
            chosen = resolve(res, workdir=Path(tmp), uri=workspace.tracking_uri)
        version = register_model(chosen.run_id, args.register, uri=workspace.tracking_uri)
        say(f"registered: '{args.register}' version {version.version} (run {chosen.run_id}); "
            f"predict with: zoo predict {args.register}/{version.version} AUDIO...")
    if args.json:
        from ..engine.reports import jsonable
        print(json.dumps(jsonable(res.to_json()), indent=2, default=str))
    return 0 if res.ok else 1
