"""``zoo run``: train a composition (or a named recipe) on a data set, evaluate it, track it."""
from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

from ..config import options, parse_assignments
from ..engine.request import DataRequest
from ..engine.trainconfig import TrainConfig
from .argtypes import POSITIVE
from .options import add_data_options, add_train_options, given_options

EXAMPLES = """\
examples:
  zoo run lstm+chroma:genre                       embedded data, default settings
  zoo run ast+mel:valence --epochs 10 --lr 3e-4
  zoo run cnn+mel:genre --data ~/data/patreco3 --seeds 5
  zoo run lab-cnn-mel                             a recipe from registry.yaml
  zoo run cnn+mel:genre --overfit-batches 2       sanity check: can it fit two batches?
  zoo run lstm+mel:genre --set backbone.hidden=256 --set train.schedule=plateau
  zoo run ast+mel:valence --from lab-ast-mel --freeze none   transfer: start from a genre AST
  zoo run lstm+chroma:genre --print-config > run.yaml   every setting, defaults included
  zoo run --config run.yaml --epochs 5            the file's settings; options given here win
  zoo run --resume 3f2a9c01                       go on with an interrupted or killed run
"""


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="train and evaluate a composition or recipe, tracked in MLflow",
        description="Train SPEC (BACKBONE+FEATURE[+FEATURE...]:TASK[,TASK...]) or a recipe name from\n"
                    "registry.yaml, evaluate it on the test split, write the reports and the packaged\n"
                    "model, and record everything in MLflow. Without --data the embedded data set is used.",
        epilog=EXAMPLES, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC_OR_RECIPE", nargs="?",
                   help="e.g. lstm+chroma:genre, or a recipe name such as lab-cnn-mel (optional with --from-sweep)")
    p.add_argument("--from-sweep", "--settings-of", dest="from_sweep", metavar="RUN",
                   help="train with the settings a sweep found: its run id (its best trial) or a trial's run id; "
                        "your --set and flags win (give --data/--limit again)")
    p.add_argument("--config", metavar="FILE.yaml",
                   help="take the spec and every setting from FILE.yaml (a recipe's shape; --print-config writes one, "
                        "and every run keeps its own as config.yaml); options given on the command line win")
    p.add_argument("--print-config", action="store_true",
                   help="print the full resolved config (every component's settings, the train config and the data "
                        "options, defaults included) as YAML that --config accepts, and exit without training")
    p.add_argument("--resume", metavar="RUN",
                   help="go on with an interrupted or killed run (its id or a unique prefix) from its last "
                        "checkpoint, in the same MLflow run; a FINISHED run cannot be resumed")
    add_data_options(p)
    add_train_options(p)
    p.add_argument("--no-track", action="store_true", help="do not record the run in MLflow")
    p.add_argument("--devices", type=POSITIVE, metavar="N",
                   help="train one model with N processes on this machine (DistributedDataParallel: a GPU each, or "
                        "the CPU cores shared), started through torch.distributed.run as torchrun --standalone "
                        "--nproc-per-node N -m zoo run ... would; --batch-size and --lr stay global (docs/scale.md)")
    p.add_argument("--register", metavar="NAME", help="register the trained model in the MLflow model registry as NAME "
                   "(with --seeds: the seed with the best validation score); then: zoo predict NAME AUDIO...")
    p.add_argument("--from", "--init-from", dest="init_from", metavar="RUN",
                   help="transfer: start the backbone from a trained model: run id (or prefix), recipe (its latest "
                        "run), registered model or model folder")
    p.add_argument("--freeze", metavar="WHAT", help="with --from: none (default), backbone, or N (its first N blocks)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (messages go to stderr)")
    p.set_defaults(func=run)


def run(args, registry, workspace) -> int:
    from ..engine import preempt
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        return _stopped_as(args, registry, workspace)
    # SIGTERM (a scheduler's preemption or time limit) and SIGHUP (a closed terminal) unwind the run where it
    # is: it is ended KILLED, its last epoch's checkpoint kept, and zoo run exits 75 (zoo.engine.preempt).
    previous = signal.signal(signal.SIGTERM, preempt.on_signal)
    previous_hup = signal.signal(signal.SIGHUP, preempt.on_signal)
    try:
        return _stopped_as(args, registry, workspace)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGHUP, previous_hup)


def _stopped_as(args, registry, workspace) -> int:
    """:func:`_run`; a run stopped from outside says how to go on and exits 75 (requeue, or resume)."""
    import sys

    from ..engine import preempt
    try:
        return _run(args, registry, workspace)
    except preempt.Preempted as exc:
        run_id = getattr(exc, "run_id", None)
        if workspace.rank == 0:
            then = (f"the run is marked KILLED; go on from its last epoch with: zoo run --resume {run_id}" if run_id
                    else "no run was recorded yet: start it again")
            print(f"zoo run: {exc}; {then} (exit {preempt.EXIT_REQUEUE}: requeue the job)", file=sys.stderr)
        return preempt.EXIT_REQUEUE


def _run(args, registry, workspace) -> int:
    from .. import api
    from ..engine.reporting import ConsoleReporter
    # With --json, stdout carries the JSON document only: the lines go to stderr.
    reporter = ConsoleReporter(progress=not args.no_progress, to_stderr=args.json)
    say = reporter.say
    if args.devices and args.devices > 1 and workspace.world_size == 1:
        _check_devices(args)  # refused or warned here, once, before torchrun starts any process
        return _launch(args)
    settings = parse_assignments(args.assignments)
    if args.resume:
        return _resume(args, registry, workspace, reporter)
    if args.from_sweep:
        args.spec, settings = _from_sweep(args, settings, workspace, say)
    elif not args.spec and not args.config:
        from ..errors import ConfigError
        raise ConfigError("zoo run: give SPEC_OR_RECIPE (e.g. lstm+chroma:genre), --config FILE.yaml, "
                          "--resume RUN or --from-sweep RUN")
    if args.register and (args.no_track or args.overfit_batches):
        from ..errors import ConfigError
        why = "--no-track records no run to register" if args.no_track else "an overfit check saves no model"
        raise ConfigError(f"--register {args.register}: {why}; drop one of the two")
    if args.config or args.print_config:
        from ..engine.runconfig import config_yaml
        from ..engine.runner import resolved_run_config
        request, init_from, freeze = _configured(args, settings, registry)
        if args.print_config:
            doc = resolved_run_config(request, registry)
            if init_from is not None:
                doc["transfer"] = {"from": str(init_from), "freeze": freeze if freeze is not None else "none"}
            print(config_yaml(doc), end="")
            return 0
        res = api.train(request, track=not args.no_track, experiment=args.experiment, registry=registry,
                        init_from=init_from, freeze=freeze, workspace=workspace, reporter=reporter)
    else:
        flat = {**given_options(args, DataRequest), **given_options(args, TrainConfig), "seed": args.seed,
                "seeds": args.seeds}
        res = api.train(args.spec, settings=settings, track=not args.no_track, experiment=args.experiment,
                        registry=registry, init_from=args.init_from, freeze=args.freeze, workspace=workspace,
                        reporter=reporter, **api.grouped(flat))
    if workspace.rank == 0:  # under torchrun the other ranks trained alongside and have nothing to say
        _finish(args, res, workspace, say)
    return 0 if res.ok else 1


def _without_devices(argv: list[str]) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--devices":
            skip = True
        elif not item.startswith("--devices="):
            out.append(item)
    return out


def _launch(args) -> int:
    """``zoo run ... --devices N``: this same command in N processes, through torch's own launcher."""
    import sys

    import os
    import tempfile

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    from ..engine.preempt import EXIT_REQUEUE
    from ..workspace import LAUNCH_RECORD_ENV, Workspace
    with tempfile.TemporaryDirectory(prefix="zoo-launch-") as tmp, \
            Workspace.handed_to_children(LAUNCH_RECORD_ENV, str(Path(tmp) / "run_id")):
        record = Path(tmp) / "run_id"  # rank 0 writes its run id there
        try:
            torchrun(["--standalone", f"--nproc-per-node={args.devices}", "-m", "zoo", *_without_devices(args.argv)])
        except SignalException as exc:  # torchrun stopped the ranks with the same signal; they ended the run KILLED
            print(f"zoo run: stopped by {signal.Signals(exc.sigval).name}; every rank was stopped (exit "
                  f"{EXIT_REQUEUE}: requeue the job, or go on with zoo run --resume RUN)", file=sys.stderr)
            return EXIT_REQUEUE
        except ChildFailedError as exc:
            codes = {f.exitcode for f in exc.failures.values()}
            if codes == {EXIT_REQUEUE}:  # every rank that ended was stopped from outside: a preemption
                return EXIT_REQUEUE
            killed = _killed_ranks(exc, args.devices)
            if killed:
                _say_killed(record, killed)
            print(f"zoo run: {len(exc.failures)} of {args.devices} processes failed ({killed or 'see above'}; the "
                  f"run is marked FAILED with the first reason)", file=sys.stderr)
            return 1
    return 0


def _killed_ranks(exc, world_size: int) -> str:
    """``rank 1 of 2 killed by SIGKILL`` for each rank a signal ended (the launcher alone sees how they ended)."""
    killed = {rank: signal.Signals(-f.exitcode).name for rank, f in sorted(exc.failures.items()) if f.exitcode < 0}
    if any(name != "SIGTERM" for name in killed.values()):  # SIGTERM: torchrun stopping the others after it
        killed = {rank: name for rank, name in killed.items() if name != "SIGTERM"}
    return "; ".join(f"rank {rank} of {world_size} killed by {name}" for rank, name in killed.items())


def _say_killed(record, killed: str) -> None:
    """Put the launcher's word on how a rank ended first in the run's ``zoo.failure`` (a failure here only warns)."""
    import sys
    try:
        run_id = record.read_text().strip()
    except OSError:
        return
    try:
        from ..tracking import FAILURE_TAG
        from ..tracking.mlflow.tracker import MlflowTracker
        from ..workspace import Workspace
        tracker = MlflowTracker(uri=Workspace.from_env().tracking_uri)
        before = tracker.run(run_id).data.tags.get(FAILURE_TAG, "")
        tracker.set_tags(run_id, {FAILURE_TAG: f"{killed}" + (f" (rank 0 saw: {before})" if before else "")})
        if tracker.run(run_id).info.status == "RUNNING":
            tracker.end_run(run_id, "FAILED")
    except Exception as err:  # noqa: BLE001 - the run keeps rank 0's reason
        print(f"zoo run: warning: could not record '{killed}' in run {run_id} ({type(err).__name__})", file=sys.stderr)


def _finish(args, res, workspace, say) -> None:
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
        assert chosen.run_id is not None  # --register needs a tracked run, which resolves to its run
        version = register_model(chosen.run_id, args.register, uri=workspace.tracking_uri)
        say(f"registered: '{args.register}' version {version.version} (run {chosen.run_id}); "
            f"predict with: zoo predict {args.register}/{version.version} AUDIO...")
    if args.json:
        from ..engine.reports import jsonable
        print(json.dumps(jsonable(res.to_json()), indent=2, default=str))




def _configured(args, settings, registry):
    """The request of ``--config FILE`` (or of SPEC alone, for ``--print-config``) with the options given
    on the command line over the file's: ``(request, init_from, freeze)``."""
    from ..engine.runconfig import read_config, request_from_config
    doc = read_config(args.config) if args.config else {"spec": args.spec}
    if args.spec:
        doc["spec"] = args.spec
    merged = {str(k): dict(v or {}) for k, v in (doc.get("settings") or {}).items()}
    for scope, values in settings.items():
        merged.setdefault(scope, {}).update(values)
    train = given_options(args, TrainConfig)
    if train:
        merged.setdefault("train", {}).update(train)
    doc["settings"] = merged
    doc["data"] = {**(doc.get("data") or {}), **given_options(args, DataRequest)}
    if args.seed is not None:
        doc["seed"] = args.seed
    if args.seeds is not None:
        doc["seeds"] = args.seeds
    transfer = dict(doc.get("transfer") or {})
    if args.init_from:
        transfer = {"from": args.init_from}
    if args.freeze is not None:
        transfer["freeze"] = args.freeze
    doc["transfer"] = transfer
    return request_from_config(doc, registry)


def _resume(args, registry, workspace, reporter) -> int:
    """``zoo run --resume RUN``: the run's own settings, nothing else."""
    from .. import api
    from ..errors import ConfigError
    given = [flag for flag, value in (
        ("SPEC_OR_RECIPE", args.spec), ("--config", args.config), ("--print-config", args.print_config),
        ("--set", args.assignments), ("--from-sweep", args.from_sweep), ("--from", args.init_from),
        ("--freeze", args.freeze), ("--seed", args.seed), ("--seeds", args.seeds), ("--no-track", args.no_track),
        ("--register", args.register),
        *((options(cls)[k].flag, v) for cls in (TrainConfig, DataRequest) for k, v in given_options(args, cls).items()))
        if value]
    if given:
        raise ConfigError(f"--resume {args.resume} goes on with the run's own settings (its config.yaml); drop "
                          f"{', '.join(given)}, or start a new run with zoo run --config")
    res = api.resume(args.resume, registry=registry, workspace=workspace, reporter=reporter)
    if workspace.rank != 0:  # under torchrun the other ranks trained alongside and have nothing to say
        return 0
    reporter.say(f"run:     {res.tracking} (resumed)")
    if args.json:
        from ..engine.reports import jsonable
        print(json.dumps(jsonable(res.to_json()), indent=2, default=str))
    return 0 if res.ok else 1


def _from_sweep(args, settings, workspace, say):
    """The spec and settings of ``--from-sweep RUN``, under the ones given on the command line."""
    from ..errors import ConfigError
    from ..sweep.rerun import settings_of_run
    from ..sweep.space import merge
    spec, found, trial = settings_of_run(args.from_sweep, uri=workspace.tracking_uri)
    if args.spec and args.spec != spec:
        raise ConfigError(f"--from-sweep {args.from_sweep} trained {spec}, but SPEC_OR_RECIPE is {args.spec}; "
                          f"drop one of the two")
    say(f"settings of trial run {trial}: " + ", ".join(f"{s}.{k}={v}" for s, vs in found.items() for k, v in vs.items()))
    return spec, merge(found, settings)


def _check_devices(args) -> None:
    """What ``--devices N`` cannot combine with is refused before any process starts (each rank would
    refuse it again, N times); more processes than this machine has GPUs, or cores without one, is warned."""
    import os
    import sys
    from ..errors import ConfigError
    overfit = args.overfit_batches or parse_assignments(args.assignments).get("train", {}).get("overfit_batches")
    if overfit:
        raise ConfigError(f"--overfit-batches checks a few batches in one process, not {args.devices}: drop "
                          f"--devices {args.devices} (or --overfit-batches)")
    import torch
    gpu = args.device != "cpu" and torch.cuda.is_available()
    have = torch.cuda.device_count() if gpu else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    if args.devices > have:
        what = f"{have} GPU(s)" if gpu else f"{have} usable CPU core(s) and no GPU"
        print(f"warning: --devices {args.devices} on a machine with {what}: the {args.devices} processes share "
              f"them, each slower than alone, and the run is slower than with --devices {have}", file=sys.stderr,
              flush=True)

