"""``zoo embed`` (latent maps of a trained run) and ``zoo reproduce lab`` (the whole lab, one report)."""
from __future__ import annotations

import argparse
import sys

from ..config import parse_assignments
from .argtypes import POSITIVE, SEED

EMBED_EXAMPLES = """\
examples:
  zoo embed RUN_ID                                PCA of the test clips, coloured by genre
  zoo embed lab-ast-mel --method tsne,umap        a recipe's latest run, two projections
  zoo embed RUN_ID --color valence --split all    every clip, coloured by its valence
  zoo embed path/to/model --data ~/data/patreco3  a model folder, on data given explicitly
"""

REPRODUCE_EXAMPLES = """\
examples:
  zoo reproduce lab                                       every lab recipe, 3 seeds, embedded data
  zoo reproduce lab --epochs 2 --limit 200 --seeds 2      a quick end-to-end pass (minutes on a CPU)
  zoo reproduce lab --data ~/data/patreco3 --seeds 5      the lab's own data set
  zoo reproduce lab --only 'lab-lstm-*' --maps all        the LSTM experiments, PCA, t-SNE and UMAP maps
  zoo reproduce lab --only lab-cnn-mel --set cnn.channels=16,32
"""


def register(sub) -> None:
    e = sub.add_parser(
        "embed", help="latent map of a trained run: PCA / t-SNE / UMAP of the layer before the output",
        description="Load RUN's model (a run id, a recipe name for its latest run, a model folder, ...), prepare "
                    "the data it was trained on again (from the run's record, or --data), take the layer before "
                    "the output layer for every clip of a split, project it to 2-D and save a scatter (PNG) and "
                    "the coordinates (CSV). Both are logged to the run as artifacts under embeddings/.",
        epilog=EMBED_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("run", metavar="RUN",
                   help="run id or a unique prefix (a parent of several seeds: its best seed), recipe name, "
                        "registered model, or model folder")
    e.add_argument("--method", default="pca", metavar="M",
                   help="pca (default), tsne, umap, a comma-separated list, or all")
    e.add_argument("--color", "--colour", dest="color", metavar="C",
                   help="genre (default when the data has labels) or a target: valence, energy, danceability")
    e.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                   help="which clips (default test)")
    e.add_argument("--task", help="whose last hidden layer, for a model of several tasks (default: its first task)")
    e.add_argument("--data", metavar="PATH", help="map these data instead of the run's own (layout detected)")
    e.add_argument("--layout", metavar="L", help="the layout of --data when detection is ambiguous")
    e.add_argument("--limit", type=POSITIVE, metavar="N", help="with --data: at most N clips (stratified)")
    e.add_argument("--set", dest="assignments", action="append", default=[], metavar="dataset.KEY=VAL",
                   help="data-set settings for --data, e.g. dataset.size=tiny (repeatable)")
    e.add_argument("--out", metavar="DIR", help="folder for the PNG and CSV (default: ZOO_HOME/embeddings/RUN)")
    e.add_argument("--no-log", action="store_true", help="do not attach the files to the run in MLflow")
    e.add_argument("--seed", type=SEED, default=0, help="seed of the t-SNE / UMAP layout (default 0)")
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda when available")
    e.add_argument("--experiment", default="music-zoo",
                   help="MLflow experiment to find a recipe's run or a run-id prefix in")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=run_embed)

    r = sub.add_parser(
        "reproduce", help="run the lab's experiments (registry.yaml group: lab) and write one markdown report",
        description="Train every recipe of registry.yaml tagged group: lab (LSTM on mel, beat, chroma, mel+chroma; "
                    "CNN; AST; a regressor per target and backbone; transfer; multitask) with several seeds on "
                    "one data set, then write a markdown report: each of the lab's tables with the zoo's mean and "
                    "95% interval beside the lab's numbers, the run ids, and latent maps of the genre models. "
                    "A failed experiment is reported (with its reason) and the others go on; the exit code is 1 "
                    "if any failed.",
        epilog=REPRODUCE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("what", choices=("lab",), help="what to reproduce (the lab)")
    r.add_argument("--data", metavar="PATH", help="data folder (e.g. the lab's Kaggle set); default: the embedded set")
    r.add_argument("--layout", metavar="L", help="the data folder's layout when detection is ambiguous")
    r.add_argument("--seeds", type=POSITIVE, default=3, metavar="K", help="seeds per experiment (default 3)")
    r.add_argument("--seed", type=SEED, default=0, help="first seed (default 0)")
    r.add_argument("--epochs", type=POSITIVE, metavar="N", help="most epochs per model (default: the recipe's or backbone's, else 30)")
    r.add_argument("--limit", type=POSITIVE, metavar="N", help="at most N clips per experiment (stratified)")
    r.add_argument("--only", action="append", default=[], metavar="GLOB",
                   help="only recipes matching this pattern, e.g. 'lab-lstm-*' (repeatable or comma-separated); "
                        "a transfer's source recipe is added when needed")
    r.add_argument("--out", default="lab-report.md", metavar="FILE", help="the report (default lab-report.md)")
    r.add_argument("--maps", default="pca", metavar="M",
                   help="latent-map projections of the genre models: pca (default), a comma list, all, or none")
    r.add_argument("--set", dest="assignments", action="append", default=[], metavar="SCOPE.KEY=VAL",
                   help="a setting for every experiment it applies to: train.lr=3e-4, dataset.size=small, "
                        "lstm.hidden=64 (only recipes using lstm) (repeatable)")
    r.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    r.add_argument("--workers", type=POSITIVE, metavar="N", help="processes for feature extraction (default: all cores)")
    r.add_argument("--skip-bad", action="store_true", help="skip unreadable clips (listed) instead of stopping")
    r.add_argument("--experiment", default="music-zoo-lab", help="MLflow experiment (default: music-zoo-lab)")
    r.add_argument("--no-track", action="store_true",
                   help="do not record the runs in MLflow (maps are then not logged)")
    r.add_argument("--progress", action="store_true", help="show each training's progress bars")
    r.set_defaults(func=run_reproduce)


def _methods(text: str, *, allow_none: bool = False) -> tuple[str, ...]:
    from ..errors import ConfigError
    from ..lab.project import METHODS
    items = [m.strip().lower() for m in str(text).split(",") if m.strip()]
    if items == ["all"]:
        return METHODS
    if allow_none and items == ["none"]:
        return ()
    if not items:
        raise ConfigError(f"no projection method in {text!r}; use {', '.join(METHODS)} or all")
    return tuple(dict.fromkeys(items))


def run_embed(args, registry, workspace) -> int:
    if args.out:
        from ..fsio import refuse_missing_root
        refuse_missing_root(args.out, "zoo embed --out", "give --out a folder that exists")
    from ..engine.reporting import ConsoleReporter
    from ..engine.request import DataRequest
    from ..errors import ConfigError
    from ..lab.embed import LatentMapRequest, latent_maps
    settings = parse_assignments(args.assignments)
    other = [s for s in settings if s != "dataset"]
    if other:
        raise ConfigError(f"zoo embed --set {other[0]}.*: only dataset.KEY=VALUE settings apply (the model is fixed)")
    data = None  # without any data option: the run's own recorded data
    if args.data is not None or args.layout is not None or settings or args.limit is not None:
        data = DataRequest(path=args.data, layout=args.layout, settings=settings.get("dataset", {}), limit=args.limit)
    request = LatentMapRequest(args.run, methods=_methods(args.method), color=args.color, split=args.split,
                               task=args.task, data=data, out_dir=args.out, log=not args.no_log, seed=args.seed,
                               device=args.device, experiment=args.experiment)
    maps = latent_maps(request, workspace=workspace, registry=registry,
                       reporter=ConsoleReporter(progress=not args.no_progress))
    first = maps[0]
    print(f"data: {first.data}" + ("" if first.same_data is not False else " (not the model's training data)"))
    if not first.logged:
        print("(not logged to MLflow: " + ("--no-log" if args.no_log else "the model has no tracked run") + ")")
    return 0


def _command(args) -> str:
    """``zoo reproduce lab`` and the flags given, for the report (rebuilt: argv may be someone else's)."""
    import shlex
    parts = ["zoo", "reproduce", args.what]
    flags = (("--data", args.data), ("--layout", args.layout), ("--seeds", args.seeds), ("--seed", args.seed or None),
             ("--epochs", args.epochs), ("--limit", args.limit), ("--maps", args.maps if args.maps != "pca" else None),
             ("--device", args.device), ("--out", args.out))
    for flag, value in flags:
        if value is not None:
            parts += [flag, str(value)]
    for item in args.only:
        parts += ["--only", item]
    for item in args.assignments:
        parts += ["--set", item]
    if args.no_track:
        parts.append("--no-track")
    return " ".join(shlex.quote(p) for p in parts)


def run_reproduce(args, registry, workspace) -> int:
    from ..fsio import refuse_missing_root
    refuse_missing_root(args.out, "zoo reproduce --out", "give --out a file in a folder that exists")
    from ..lab.reproduce import Options, reproduce
    opt = Options(data=args.data, layout=args.layout, seeds=args.seeds, seed=args.seed, epochs=args.epochs,
                  limit=args.limit, only=tuple(args.only), out=args.out, maps=_methods(args.maps, allow_none=True),
                  settings=parse_assignments(args.assignments), device=args.device, workers=args.workers,
                  skip_bad=args.skip_bad, experiment=args.experiment, track=not args.no_track,
                  progress=args.progress, command=_command(args))
    lab = reproduce(opt, registry=registry, workspace=workspace,
                    echo=lambda line: print(line, file=sys.stdout, flush=True))
    return 0 if lab.ok else 1
