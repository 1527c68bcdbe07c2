"""``zoo list``: every installed component by kind, its distribution and its summary."""
from __future__ import annotations

import json

from ..errors import PluginError
from ..protocols import KINDS


def register(sub) -> None:
    p = sub.add_parser("list", help="list installed components by kind, with the distribution that provides each",
                       description="List every installed feature, backbone, task and data set, the distribution "
                                   "(name==version) that provides it and its one-line summary. Plugins that fail "
                                   "to import are listed with the reason; the others stay usable.")
    p.add_argument("kind", nargs="?", choices=KINDS, help="only this kind")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def rows(registry, kinds=KINDS) -> list[dict]:
    """One dict per discovered entry: kind, name, provider, summary or error."""
    conflicts = registry.conflicts()
    out = []
    for e in registry.discover():
        if e.kind not in kinds:
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
    return out


def run(args, registry) -> int:
    kinds = (args.kind,) if args.kind else KINDS
    table = rows(registry, kinds)
    if args.json:
        print(json.dumps(table, indent=2))
        return 1 if any(r["error"] for r in table) else 0
    width = max([len(r["name"]) for r in table] + [4])
    pwidth = max([len(r["provider"]) for r in table] + [8])
    for kind in kinds:
        these = [r for r in table if r["kind"] == kind]
        print(f"{kind}s ({len(these)}):" if these else f"{kind}s: none installed")
        for r in these:
            text = r["summary"] if not r["error"] else f"BROKEN: {r['error']}"
            print(f"  {r['name']:<{width}}  {r['provider']:<{pwidth}}  {text}")
    if not registry.autoload:
        print("(plugin autoloading is off: only the core and the plugins named with -p / ZOO_PLUGINS)")
    return 1 if any(r["error"] for r in table) else 0
