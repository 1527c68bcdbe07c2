"""The real-audio study: each recipe on each real set for 3 seeds; validation chooses, test reports.

The sets are folders made by ``bench/real/prepare.py`` (fixed, stratified splits in their
manifests). Each (set, recipe) pair is trained for seeds ``0 .. N-1`` with ``bench/tune.py``'s
``run_variant`` (untracked; the same row format as the embedded-set studies) and appended to
``--out`` as one JSON line, so an interrupted study resumes where it stopped; ``--markdown``
prints the tables of ``docs/results.md`` from what ``--out`` holds: one table per set and task,
the linear baseline first, then the recipes by validation score, wall time and the machine's load
(1-minute load average at the start and end of the row) beside them.

    python bench/real/study.py --set gtzan-mini=~/zoo-real/gtzan-mini --set emotify=~/zoo-real/emotify \\
        --recipes baseline,baseline-chroma,cnn --out bench/studies/real.jsonl
    python bench/real/study.py --out bench/studies/real.jsonl --markdown

A recipe whose components are not installed (e.g. ``musicnn-probe`` without ``music-zoo-musicnn``)
is skipped with a line saying so; the others still run.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.tune import markdown, mean_ci, parse_variant, run_variant  # noqa: E402
from zoo.sweep.space import merge  # noqa: E402

EMOTIFY_TAGS = "amazement,solemnity,tenderness,nostalgia,calmness,power,joyful_activation,tension,sadness"
"""Emotify's nine emotion columns: the ``tags`` task's labels on that set."""


@dataclass(frozen=True)
class Recipe:
    """A composition (``{task}`` is filled with each set's tasks) and its ``--set``-style overrides."""

    spec: str
    settings: dict = field(default_factory=dict)
    baseline: bool = False


RECIPES: dict[str, Recipe] = {
    "baseline": Recipe("stats+mel:{task}", baseline=True),
    "baseline-chroma": Recipe("stats+mel+chroma:{task}"),
    "cnn": Recipe("cnn+mel:{task}"),
    "lstm": Recipe("lstm+mel:{task}"),
    "ast": Recipe("ast+mel:{task}"),
    "musicnn-probe": Recipe("stats+musicnn-embed:{task}"),
    "musicnn-finetune": Recipe("musicnn+musicnn-mel:{task}"),
}
"""The recipes the study knows, by name. ``baseline`` is the strong linear baseline every table
starts with (per-bin clip statistics of the same mel feature under a linear head)."""

TASKS: dict[str, list[tuple[str, dict]]] = {
    "gtzan-mini": [("genre", {})],
    "emotify": [("genre", {}), ("tags", {"tags": {"columns": EMOTIFY_TAGS, "threshold": "0.3"}})],
}
"""Each set's tasks and the settings a task needs there: the tags' columns, and their threshold. A
tag is on where at least 30 % of a clip's listeners ticked it: at 50 % amazement is on for 3 of
the 400 clips, at 30 % for 25 and every other emotion for 84 to 185."""


def installed(spec: str, workspace) -> str | None:
    """None when every component of ``spec`` is installed, else the zoo's message saying what is not."""
    from zoo.errors import ZooError
    from zoo.spec import parse_spec
    try:
        parse_spec(spec, workspace.registry())
    except ZooError as exc:
        return str(exc)
    return None


def rows_of(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reference_line(row: dict, tests: list[str]) -> str:
    """A table line for a reference row (``bench/real/textbook.py``): no validation score (it was
    fitted on the validation clips too), its test scores in the study's test columns."""
    cells = [f"{row['spec']} (reference)", "-"]
    for k in tests:
        cells.append(f"{row['test'][0][k]:.3f}" if k in row["test"][0] else "-")
    cells += ["-", f"{row['seconds'] / 60:.1f} min"]
    return "| " + " | ".join(cells) + " |"


def tables(rows: list[dict]) -> str:
    """One markdown table per (set, task): the baseline first, then the references (the textbook
    logistic regression), then the recipes by validation score."""
    out = []
    for set_name in dict.fromkeys(r["set"] for r in rows):
        for task in dict.fromkeys(r["task"] for r in rows if r["set"] == set_name):
            mine = [r for r in rows if r["set"] == set_name and r["task"] == task]
            refs = [r for r in mine if r.get("reference")]
            base = next((r for r in mine if r.get("baseline")), None)
            rest = [r for r in mine if r is not base and not r.get("reference")]
            out.append(f"#### {set_name}: {task}\n")
            if not rest and base is None:
                continue
            lines = (markdown(rest, base) if rest else markdown([base])).splitlines()
            if refs:
                tests = [c.strip()[len("test "):] for c in lines[0].strip("|").split("|") if c.strip().startswith("test ")]
                at = 3 if base is not None else 2
                lines[at:at] = [reference_line(r, tests) for r in refs]
            out.append("\n".join(lines))
            loads = [x for r in mine for x in r.get("load", [])]
            if loads:
                out.append(f"\n1-minute load average during these rows: {min(loads):.1f}-{max(loads):.1f} on 2 cores.")
            out.append("")
    return "\n".join(out)


BEGIN, END = "<!-- real:begin -->", "<!-- real:end -->"


def write_into(path: Path, text: str) -> None:
    """Replace what lies between the :data:`BEGIN` and :data:`END` lines of ``path`` with ``text``."""
    doc = path.read_text()
    if doc.count(BEGIN) != 1 or doc.count(END) != 1 or doc.index(BEGIN) > doc.index(END):
        raise SystemExit(f"study: {path} needs one {BEGIN} line and one {END} line after it, around the tables")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text.rstrip()}\n{END}{tail}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--set", action="append", default=[], metavar="NAME=FOLDER",
                   help=f"a prepared real set ({', '.join(TASKS)}) and its folder; repeat for several")
    p.add_argument("--recipes", default="baseline", help=f"comma-separated, from: {', '.join(RECIPES)}")
    p.add_argument("--tasks", default="", help="only these tasks (comma-separated); default: each set's all")
    p.add_argument("--variant", action="append", type=parse_variant, default=[],
                   help="extra NAME=KEY=VALUE[;...] overrides, one row each (as bench/tune.py)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    p.add_argument("--markdown", action="store_true", help="print the tables of what --out holds")
    p.add_argument("--into", type=Path, default=None,
                   help="write the tables between the <!-- real:begin --> and <!-- real:end --> lines of this file")
    args = p.parse_args(argv)
    unknown = [r for r in args.recipes.split(",") if r and r not in RECIPES]
    if unknown:
        p.error(f"unknown recipe {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    sets = []
    for item in args.set:
        name, _, folder = item.partition("=")
        if name not in TASKS or not folder:
            p.error(f"--set {item!r}: give NAME=FOLDER with NAME one of {', '.join(TASKS)}")
        if not (Path(folder).expanduser() / "manifest.csv").is_file():
            p.error(f"--set {item!r}: {folder} has no manifest.csv; make it with bench/real/prepare.py {name}")
        sets.append((name, Path(folder).expanduser()))
    rows = rows_of(args.out)
    if sets:
        from zoo.workspace import Workspace
        workspace = Workspace.from_env()
        only = {t for t in args.tasks.split(",") if t}
        variants = args.variant or [("defaults", {})]
        for set_name, folder in sets:
            for task, task_settings in TASKS[set_name]:
                if only and task not in only:
                    continue
                for recipe_name in [r for r in args.recipes.split(",") if r]:
                    recipe = RECIPES[recipe_name]
                    spec = recipe.spec.format(task=task)
                    missing = installed(spec, workspace)
                    if missing:
                        print(f"-- skip {set_name} {spec}: {missing}", file=sys.stderr)
                        continue
                    for vname, vsettings in variants:
                        label = recipe_name if vname == "defaults" else f"{recipe_name} [{vname}]"
                        if any(r["set"] == set_name and r["spec"] == spec and r["variant"] == label for r in rows):
                            continue
                        print(f"-- {set_name} {spec} [{label}]", file=sys.stderr, flush=True)
                        row = run_variant(spec, label, merge(merge(recipe.settings, task_settings), vsettings),
                                          seeds=args.seeds, size="default", workspace=workspace, data=folder)
                        row.update({"set": set_name, "task": task, "baseline": recipe.baseline and vname == "defaults",
                                    # the table names the recipe's own settings; the task's are the set's
                                    "settings": merge(recipe.settings, vsettings), "task_settings": task_settings})
                        with args.out.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        rows.append(row)
                        key = next(k for k in row["val"][0] if k.endswith(("accuracy", "pr_auc", "spearman")))
                        vm, vc = mean_ci([v[key] for v in row["val"]])
                        tm, tc = mean_ci([t[key] for t in row["test"]])
                        print(f"   val {key} {vm:.3f} ± {vc:.3f}   test {tm:.3f} ± {tc:.3f}   {row['seconds']:.0f} s",
                              file=sys.stderr, flush=True)
    if args.markdown and rows:
        print(tables(rows))
    if args.into is not None:
        write_into(args.into, tables(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
