"""The plugin guide is true: its example, built and installed as written, is a working backbone."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pluginfactory import pip_install

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_guides_example_plugin_installs_lists_and_passes_the_contract(tmp_path):
    project = tmp_path / "zoo-gru"
    (project / "zoo_gru").mkdir(parents=True)
    (project / "pyproject.toml").write_text(_blocks("toml")[0])
    source = next(b for b in _blocks("python") if "spec = ComponentSpec" in b)
    (project / "zoo_gru" / "__init__.py").write_text(source)
    site = tmp_path / "site"
    pip_install([project], site)

    env = dict(os.environ, PYTHONPATH=str(site))
    listed = subprocess.run([sys.executable, "-m", "zoo", "list", "backbone"], env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert re.search(r"^\s*gru\s+zoo-gru==0\.1\.0\s+a GRU", listed.stdout, flags=re.M), listed.stdout

    test_code = next(b for b in _blocks("python") if "check_backbone(zoo_gru.spec" in b)
    check = test_code + "\ntest_gru_meets_the_backbone_contract()\nprint('contract ok')\n"
    ran = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert ran.returncode == 0 and "contract ok" in ran.stdout, ran.stderr[-2000:]
