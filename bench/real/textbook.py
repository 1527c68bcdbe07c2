"""The textbook reference beside the zoo's baseline: scikit-learn's logistic regression on clip statistics.

Issue 22's reference: ``LogisticRegression(C=0.1)`` on the per-bin mean and standard deviation of
a clip's feature rows (standardised with the fitting clips' scaler), fitted on all training clips
(train and validation together, as a user without a validation split would), scored on the test
split. The features are the zoo's own (same extraction, same cache), so the only difference from
``stats+FEATURE:genre`` is the model. One JSON line per (set, feature) goes to ``--out``, in the
study's row format (one "seed": the fit is deterministic), so ``bench/real/study.py --markdown``
shows it in the same table as the zoo's rows.

    python bench/real/textbook.py --set gtzan-mini=~/zoo-real/gtzan-mini --out bench/studies/real.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def clip_statistics(x: np.ndarray) -> np.ndarray:
    """``[F, T]`` -> ``[2F]``: each bin's mean and population standard deviation over the clip."""
    x = np.asarray(x, dtype=np.float64)
    return np.concatenate([x.mean(1), x.std(1)])


def textbook_scores(Z: dict[str, np.ndarray], y: dict[str, np.ndarray], *, C: float = 0.1,
                    n_classes: int) -> dict[str, dict[str, float]]:
    """Fit ``LogisticRegression(C)`` on train + val statistics (scaled on them); accuracy and macro
    F1 of the validation split (seen in fitting: reported, never used to choose) and the test split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler
    fit_x = np.concatenate([Z["train"], Z["val"]])
    fit_y = np.concatenate([y["train"], y["val"]])
    scaler = StandardScaler().fit(fit_x)
    model = LogisticRegression(C=C, max_iter=20000).fit(scaler.transform(fit_x), fit_y)
    out = {}
    for split in ("val", "test"):
        hard = model.predict(scaler.transform(Z[split]))
        out[split] = {"genre.accuracy": float((hard == y[split]).mean()),
                      "genre.macro_f1": float(f1_score(y[split], hard, labels=list(range(n_classes)),
                                                       average="macro", zero_division=0))}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--set", action="append", required=True, metavar="NAME=FOLDER")
    p.add_argument("--feature", default="mel", help="the zoo feature whose rows are averaged (default mel)")
    p.add_argument("--C", type=float, default=0.1)
    p.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    args = p.parse_args(argv)
    from zoo.engine.request import DataRequest, RunRequest
    from zoo.engine.runner import compose_request, load_data
    from zoo.workspace import Workspace
    ws = Workspace.from_env()
    reg = ws.registry()
    spec = f"stats+{args.feature}:genre"
    for item in args.set:
        name, _, folder = item.partition("=")
        load, start = os.getloadavg()[0], time.perf_counter()
        req = RunRequest(spec, data=DataRequest(path=Path(folder).expanduser()))
        built = compose_request(req, reg)
        prepared = load_data(built, reg, req.data, seed=0, workspace=ws, progress=False)
        stats = np.stack([clip_statistics(a) for a in prepared.clips(np.arange(len(prepared)))])
        Z = {s: stats[prepared.splits == s] for s in ("train", "val", "test")}
        y = {s: prepared.labels[prepared.splits == s] for s in ("train", "val", "test")}
        scores = textbook_scores(Z, y, C=args.C, n_classes=len(prepared.classes))
        row = {"set": name, "task": "genre", "spec": f"scikit-learn LogisticRegression(C={args.C:g}) on {args.feature} "
               f"mean+std, fitted on train+val", "variant": "textbook", "settings": {},
               "seconds": round(time.perf_counter() - start, 1), "load": [round(load, 2), round(os.getloadavg()[0], 2)],
               "val": [scores["val"]], "test": [scores["test"]], "best_epoch": ["-"], "baseline": False,
               "reference": True}
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{name}: test accuracy {scores['test']['genre.accuracy']:.3f}, macro F1 {scores['test']['genre.macro_f1']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
