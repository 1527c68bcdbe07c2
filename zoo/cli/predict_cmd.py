"""``zoo predict`` (apply a trained model to audio files) and ``zoo register`` (name a run's model)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .argtypes import POSITIVE, number

PREDICT_EXAMPLES = """\
MODEL is one of:
  a model folder            the model/ folder `zoo run` prints (holds zoo_model.json)
  a run id                  e.g. 3f2a9c01 from `zoo compare`: the full id or a unique prefix (4+ digits);
                            runs:/ID also works; a parent of several seeds means its best seed
  a registered model        NAME (latest version), NAME/VERSION, NAME@ALIAS, models:/NAME/VERSION
  a recipe name             its latest finished run, e.g. lab-cnn-mel (recipe:NAME if the name is also taken)

examples:
  zoo predict lab-cnn-mel song.mp3 other.ogg
  zoo predict genre-net/2 ~/music --format csv > predictions.csv
  zoo predict ./runs/.../seed0/model long-set.flac --windows --window-seconds 10

exit status: 0 every file predicted, 1 some could not be (each is named with the reason; the
others are still predicted and printed), 2 a usage or model error.
"""


def register(sub) -> None:
    """Add ``predict`` and ``register`` to ``sub``."""
    p = sub.add_parser(
        "predict", help="apply a trained model to audio files: genre top-k and emotion values",
        description="Decode each audio file at the model's sample rate, compute the model's own features with "
                    "the settings it was trained with, normalise them with its training statistics, and predict. "
                    "Files longer than the model's typical training clip are analysed in windows (half a window "
                    "apart) whose predictions are averaged.",
        epilog=PREDICT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="model folder, run id (or prefix), registered model or recipe name")
    p.add_argument("audio", metavar="AUDIO", nargs="+",
                   help="audio files (wav, flac, ogg, mp3, ...) or folders (their audio files, recursively)")
    p.add_argument("--top-k", type=POSITIVE, default=3, metavar="K", help="classes shown per classification task, tags per multi-label task (default 3)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format (default table)")
    p.add_argument("--windows", action="store_true", help="also print each window's predictions (start, end seconds)")
    p.add_argument("--window-seconds", type=number(0.0, strict=True), metavar="S",
                   help="window length (default: the model's training crop, else its median training clip)")
    p.add_argument("--hop-seconds", type=number(0.0, strict=True), metavar="S", help="step between windows (default: half a window)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    p.add_argument("--experiment", metavar="NAME",
                   help="with a recipe name or a run-id prefix: runs of this experiment only (default: every "
                        "experiment)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_predict)

    r = sub.add_parser(
        "register", help="register a run's model in the MLflow model registry under a name",
        description="Register the pyfunc model of training run RUN as a new version of the registered model "
                    "NAME (created if needed). Then `zoo predict NAME ...` and "
                    "mlflow.pyfunc.load_model('models:/NAME/VERSION') use it.")
    r.add_argument("run_id", metavar="RUN", help="a training run's id or a unique prefix of it (zoo compare lists "
                   "them); a parent of several seeds means its best seed; any MODEL of zoo predict that has a run")
    r.add_argument("name", metavar="NAME", help="the registered model's name, e.g. genre-net")
    r.add_argument("--alias", metavar="ALIAS", help="also point this alias (e.g. champion) at the new version")
    r.set_defaults(func=run_register)


def expand_inputs(items: list[str]) -> list[str]:
    """Files as given; a folder becomes its audio files (sorted, recursively), or stays itself when
    it holds none (it then gets its own error line)."""
    from ..data.audio import is_audio
    out: list[str] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.is_file() and is_audio(p))
            out.extend(found or [item])
        else:
            out.append(item)
    return out


def run_predict(args, registry, workspace) -> int:
    from ..api import open_model
    from ..predict import FilePrediction
    from ..predict.output import format_csv, format_table, record
    predictor = open_model(args.model, registry=registry, device=args.device or "auto",
                           window_seconds=args.window_seconds, hop_seconds=args.hop_seconds,
                           experiment=args.experiment, workspace=workspace)
    info = predictor.describe()
    print(f"model: {info['model']} ({info['spec']}); windows of {info['window_seconds']:g} s every "
          f"{info['hop_seconds']:g} s ({info['window_note']})", file=sys.stderr, flush=True)
    from tqdm import tqdm
    inputs = expand_inputs(args.audio)
    preds = []
    for item in tqdm(inputs, desc="predicting", unit="file", file=sys.stderr,
                     disable=args.no_progress or len(inputs) < 2):
        if Path(item).expanduser().is_dir():
            preds.append(FilePrediction(item, error=f"folder {item} holds no audio files (.wav, .flac, .ogg, .mp3, ...)"))
        else:
            try:
                preds.append(predictor.predict_file(Path(item).expanduser()))
            except Exception as exc:  # one file's failure must not lose the predictions already made
                preds.append(FilePrediction(item, error=f"{type(exc).__name__}: {exc}"))
    tasks = predictor.tasks
    if args.format == "json":
        doc = {"model": info, "files": [record(p, tasks, args.top_k, args.windows) for p in preds]}
        print(json.dumps(doc, indent=2))
    elif args.format == "csv":
        sys.stdout.write(format_csv(preds, tasks, args.top_k, args.windows))
    else:
        print(format_table(preds, tasks, args.top_k, args.windows))
    failed = [p for p in preds if not p.ok]
    if failed:
        print(f"zoo predict: {len(failed)} of {len(preds)} file(s) could not be predicted (reasons above)",
              file=sys.stderr)
        return 1
    return 0


def run_register(args, registry, workspace) -> int:
    import tempfile

    from ..errors import ConfigError
    from ..refs import resolve
    from ..tracking.mlflow.model_registry import register_model
    with tempfile.TemporaryDirectory(prefix="zoo-register-") as tmp:
        ref = resolve(args.run_id, workdir=Path(tmp), uri=workspace.tracking_uri)
    if not ref.run_id:
        raise ConfigError(f"{ref.label} is a model folder no tracked run wrote: only a run can be registered; give "
                          f"its run id (zoo compare lists them)")
    version = register_model(ref.run_id, args.name, alias=args.alias, uri=workspace.tracking_uri)
    alias = f", alias '{args.alias}'" if args.alias else ""
    print(f"registered {ref.label} as '{args.name}' version {version.version}{alias}")
    print(f"predict with:  zoo predict {args.name}/{version.version} AUDIO...")
    print(f"or in Python:  mlflow.pyfunc.load_model('models:/{args.name}/{version.version}')")
    return 0
