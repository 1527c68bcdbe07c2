"""Does the embedded set reward temporal structure? One model trained on clips as they are and on
clips whose frames were shuffled in time, scored on the validation split over seeds.

Each clip's ``[F, T]`` features are prepared once; the shuffled copy permutes the T columns of every
clip (train, validation and test alike) with a fixed generator, so only the order of frames changes,
never which frames a clip has. A model that pools statistics per bin sees almost the same input
either way (only its mean ``|x[t+1] - x[t]|`` changes); a model that reads sequences loses whatever
order carried. The gap ``as is - shuffled`` is what time is worth to that model on this set.

    python bench/shuffle_time.py                                    # stats+mel+chroma:genre, 3 seeds
    python bench/shuffle_time.py --spec cnn+mel:genre --epochs 3 --limit 200
    python bench/shuffle_time.py --sound shared --set train.threads=1   # the shared-sound variant of the set
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def shuffled(prepared, seed: int = 0):
    """A copy of ``prepared`` whose every clip has its frames (columns) in a random order."""
    rng = np.random.default_rng(seed)
    out = prepared.subset(np.arange(len(prepared.x)))
    out.x = [a[:, rng.permutation(a.shape[1])] for a in prepared.x]
    out.fingerprint = prepared.fingerprint + "-time-shuffled"
    out.description = prepared.description + "; frames shuffled in time"
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default="stats+mel+chroma:genre")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, help="default: the backbone's recommended training")
    p.add_argument("--limit", type=int, help="at most this many clips, stratified")
    p.add_argument("--size", default="default", help="embedded set size (tiny, small, default, large)")
    p.add_argument("--sound", choices=("genre", "shared"), default="genre",
                   help="the embedded set's sound setting (shared: each clip sounds like a random genre)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SCOPE.KEY=VALUE",
                   help="a setting for both trainings, as zoo run --set takes it (e.g. train.threads=1)")
    p.add_argument("--home", type=Path, help="the zoo workspace (default: ZOO_HOME or ~/.zoo)")
    p.add_argument("--json", type=Path, help="write the per-seed numbers here")
    args = p.parse_args(argv)

    import zoo
    from zoo.api import compose
    from zoo.engine import intervals
    from zoo.engine.request import DataRequest
    from zoo.engine.runner import load_data
    from zoo.workspace import Workspace
    ws = Workspace(home=args.home) if args.home else Workspace.from_env()
    built = compose(args.spec, workspace=ws)
    data = DataRequest(settings={"size": args.size, "sound": args.sound}, limit=args.limit)
    from zoo.config import parse_assignments
    settings = parse_assignments(args.overrides)
    prepared = load_data(built, ws.registry(), data, seed=0, workspace=ws, progress=False)
    task = args.spec.split(":", 1)[1].split(",")[0]
    metric = f"{task}.accuracy" if task == "genre" else f"{task}.spearman"
    out = {}
    for name, what in (("as is", prepared), ("time-shuffled", shuffled(prepared))):
        start = time.perf_counter()
        res = zoo.train(args.spec, data=what, seeds=args.seeds, epochs=args.epochs, track=False, progress=False,
                        workspace=ws, settings=settings)
        vals = [r.val[metric] for r in res.results]
        out[name] = {"val": vals, "interval": intervals.t_interval(vals), "seconds": time.perf_counter() - start,
                     "test": [r.test.get(metric) for r in res.results]}
        print(f"{args.spec} {name}: val {metric} {intervals.plus_minus(out[name]['interval'])} "
              f"(seeds {vals}) in {out[name]['seconds']:.0f} s", flush=True)
    gap = [a - b for a, b in zip(out["as is"]["val"], out["time-shuffled"]["val"])]
    print(f"gap as is - shuffled, per seed: {[round(g, 3) for g in gap]}; "
          f"{intervals.plus_minus(intervals.t_interval(gap))}  ({prepared.description})")
    if args.json:
        args.json.write_text(json.dumps({"spec": args.spec, "data": prepared.description, "runs": out, "gap": gap},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
