"""``zoo list``: installed components and recipes, by kind or by a name pattern, with who provides each."""
from __future__ import annotations

import fnmatch
import json

from ..errors import PluginError
from ..protocols import KINDS

RECIPES = "recipes"
KIND_WORDS = {**{k: k for k in KINDS}, **{f"{k}s": k for k in KINDS}, "recipe": RECIPES, RECIPES: RECIPES}
"""What a word of ``zoo list WHAT`` may name besides a pattern: a kind (singular or plural) or the recipes."""


def register(sub) -> None:
    p = sub.add_parser("list", help="list installed components and recipes, by kind or name pattern",
                       description="List every installed feature, backbone, task and data set, the distribution "
                                   "(name==version) that provides it and its one-line summary; `zoo list recipes` "
                                   "lists the named recipes with their spec, summary and the lab's reference "
                                   "numbers. A WHAT that is not a kind is a shell-style name pattern, as in "
                                   "timm.list_models: `zoo list '*lstm*'` lists the components and recipes whose "
                                   "name matches. Plugins that fail to import are listed with the reason; the "
                                   "others stay usable.")
    p.add_argument("what", nargs="*", metavar="WHAT",
                   help="a kind (feature, backbone, task, dataset, recipes) and/or a name pattern such as "
                        "'*lstm*' (default: every component)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a listed plugin is broken or its name clashes (for CI); without it a listing "
                        "that shows the broken entries exits 0")
    p.set_defaults(func=run)


def rows(registry, kinds=KINDS, patterns=()) -> list[dict]:
    """One dict per discovered entry of ``kinds`` whose name matches one of ``patterns`` (all when
    none): kind, name, provider, summary or error."""
    conflicts = registry.conflicts()
    out = []
    for e in registry.discover():
        if e.kind not in kinds or not _matches(e.name, patterns):
            continue
        row = {"kind": e.kind, "name": e.name, "provider": e.provider, "summary": "", "error": ""}
        if (e.kind, e.name) in conflicts:
            others = ", ".join(x.label for x in conflicts[(e.kind, e.name)])
            row["error"] = f"name clash: provided by {others}"
        else:
            try:
                row["summary"] = registry.load(e.kind, e.name).summary
            except PluginError as exc:
                row["error"] = str(exc)
        out.append(row)
    for kind in kinds:  # cheap variants (ComponentSpec.variants): listed as components, with their own summary
        for name, (entry, spec) in registry.variants(kind).items():
            if _matches(name, patterns):
                out.append({"kind": kind, "name": name, "provider": entry.provider, "summary": spec.summary,
                            "error": ""})
        for name, problem in registry.variant_problems(kind).items():
            if _matches(name, patterns):
                out.append({"kind": kind, "name": name, "provider": "", "summary": "", "error": str(problem)})
    return sorted(out, key=lambda r: (KINDS.index(r["kind"]), r["name"]))


def recipe_rows(patterns=()) -> list[dict]:
    """One dict per recipe whose name or spec matches one of ``patterns`` (all when none): name,
    spec, summary, lab step and the lab's reference numbers ``{task: {metric: value}}``."""
    from ..recipes import load_recipes

    out = []
    for r in load_recipes().values():
        if not (_matches(r.name, patterns) or _matches(r.spec, patterns)):
            continue
        out.append({"kind": "recipe", "name": r.name, "spec": r.spec, "summary": r.summary,
                    "lab_step": r.lab_step, "reference": r.references()})
    return out


def _matches(name: str, patterns) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)


def _split_what(words) -> tuple[tuple[str, ...], list[str]]:
    """``(kinds to list, name patterns)``; no kind named: every component kind, plus the recipes
    when a pattern is given."""
    kinds = tuple(dict.fromkeys(KIND_WORDS[w.lower()] for w in words if w.lower() in KIND_WORDS))
    patterns = [w for w in words if w.lower() not in KIND_WORDS]
    if not kinds:
        kinds = KINDS + ((RECIPES,) if patterns else ())
    return kinds, patterns


def _reference_text(reference: dict) -> str:
    parts = [f"{f'{task} ' if len(reference) > 1 else ''}{metric} {value:g}"
             for task, metrics in reference.items() for metric, value in metrics.items()]
    return ", ".join(parts)


def run(args, registry, workspace) -> int:
    kinds, patterns = _split_what(args.what)
    table = rows(registry, tuple(k for k in kinds if k != RECIPES), patterns)
    recipes = recipe_rows(patterns) if RECIPES in kinds else []
    broken = any(r["error"] for r in table)
    if args.json:
        print(json.dumps(table + recipes, indent=2))
        return 1 if broken and args.check else 0
    if patterns and not table and not recipes:
        print(f"nothing installed matches {' or '.join(repr(p) for p in patterns)}; `zoo list` shows every name")
        return 0
    width = max([len(r["name"]) for r in table] + [4])
    pwidth = max([len(r["provider"]) for r in table] + [8])
    for kind in kinds:
        if kind == RECIPES:
            _print_recipes(recipes, patterns)
            continue
        these = [r for r in table if r["kind"] == kind]
        if not these and patterns:
            continue
        print(f"{kind}s ({len(these)}):" if these else f"{kind}s: none installed")
        for r in these:
            text = r["summary"] if not r["error"] else f"BROKEN: {r['error']}"
            print(f"  {r['name']:<{width}}  {r['provider']:<{pwidth}}  {text}")
    if not registry.autoload:
        print("(plugin autoloading is off: only the core and the plugins named with -p / ZOO_PLUGINS)")
    return 1 if broken and args.check else 0


def _print_recipes(recipes: list[dict], patterns) -> None:
    if not recipes:
        if not patterns:
            print("recipes: none")
        return
    width = max(len(r["name"]) for r in recipes)
    swidth = max(len(r["spec"]) for r in recipes)
    print(f"recipes ({len(recipes)}; run one with `zoo run NAME`):")
    for r in recipes:
        ref = _reference_text(r["reference"])
        lab = f"  [lab{' step ' + r['lab_step'] if r['lab_step'] else ''}: {ref}]" if ref else ""
        print(f"  {r['name']:<{width}}  {r['spec']:<{swidth}}  {r['summary']}{lab}")
