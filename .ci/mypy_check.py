"""Type-check zoo/ and the plugins (mypy, configured in pyproject.toml) against .ci/mypy-baseline.txt.

The baseline lists the errors found when the checker was added, as ``path: message [code]`` (line
numbers left out, so an edit above an error does not move it). Any error not in it fails, naming it;
an error fixed is reported so its line leaves the baseline (``--update`` rewrites it from a clean run).
"""
from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

BASELINE = Path(__file__).with_name("mypy-baseline.txt")
ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+: error: (?P<rest>.*)$")


def errors() -> collections.Counter[str]:
    proc = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 2: mypy itself failed (a bad config, a syntax error)
        sys.exit(f"mypy failed to run:\n{proc.stdout}{proc.stderr}")
    found = collections.Counter(f"{m['path']}: {m['rest']}" for line in proc.stdout.splitlines()
                                if (m := ERROR.match(line)))
    return found


def main(argv: list[str]) -> int:
    found = errors()
    if argv[1:] == ["--update"]:
        BASELINE.write_text("".join(f"{k}\n" * n for k, n in sorted(found.items())))
        print(f"mypy: {sum(found.values())} error(s) written to {BASELINE}")
        return 0
    known = collections.Counter(line for line in BASELINE.read_text().splitlines() if line.strip())
    new, fixed = found - known, known - found
    for line in sorted(new.elements()):
        print(f"mypy: new error: {line}")
    if fixed:
        print(f"mypy: {sum(fixed.values())} baseline error(s) fixed; run python .ci/mypy_check.py --update")
    print(f"mypy: {sum(found.values())} error(s), {sum(new.values())} new, baseline {sum(known.values())}")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
