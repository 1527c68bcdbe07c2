"""The options ``zoo run`` and ``zoo sweep`` share: where the data are and how every model trains."""
from __future__ import annotations

from ..data.prepare import MAX_SECONDS
from .argtypes import NON_NEGATIVE, POSITIVE, SEED, number


def add_data_options(p) -> None:
    """``--data --layout --limit --skip-bad --max-seconds --min-class-clips --workers`` (defaults: None,
    so that a value from a config file or a sweep's own choice can be told from one given here)."""
    p.add_argument("--data", metavar="PATH", help="data folder (Kaggle, FMA, audio folder or CSV manifest), or "
                                                  "'embedded'; default: embedded set")
    p.add_argument("--layout", metavar="L", help="the data folder's layout when detection is ambiguous (kaggle, fma, folder, ...)")
    p.add_argument("--limit", type=POSITIVE, metavar="N", help="use at most N clips (stratified), for quick runs")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable clips (listed and logged) instead of stopping")
    p.add_argument("--max-seconds", type=number(0.0), metavar="S",
                   help=f"cut longer audio to its middle S seconds, and say how many clips were cut "
                        f"(default {MAX_SECONDS:g}, the lab's clips; 0 = no limit)")
    p.add_argument("--min-class-clips", type=NON_NEGATIVE, metavar="N",
                   help="stop with an error naming every class that has fewer than N clips, e.g. a mistyped label "
                        "(default 0: only warn about labels given to one clip of a CSV manifest)")
    p.add_argument("--workers", type=POSITIVE, metavar="N", help="processes for feature extraction (default: all cores)")


def add_train_options(p) -> None:
    """``--epochs --batch-size --lr --patience --seed --set --device --experiment``."""
    p.add_argument("--epochs", type=POSITIVE, help="most epochs (train.epochs)")
    p.add_argument("--batch-size", type=POSITIVE, help="batch size (train.batch_size)")
    p.add_argument("--lr", type=number(0.0, strict=True), help="peak learning rate (train.lr)")
    p.add_argument("--patience", type=NON_NEGATIVE, help="early-stopping patience in epochs, 0 = off (train.patience)")
    p.add_argument("--seed", type=SEED, help="first seed (default 0)")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="SCOPE.KEY=VAL",
                   help="a setting: backbone.hidden=256, mel.n_mels=64, task.dropout=0.3, train.lr=3e-4, "
                        "dataset.mapping=none (repeatable)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    p.add_argument("--experiment", default="music-zoo", help="MLflow experiment (default: music-zoo)")
