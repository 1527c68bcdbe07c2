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


def test_the_guides_worked_task_installs_passes_the_contract_and_trains(tmp_path):
    project = tmp_path / "zoo-huber"
    (project / "zoo_huber").mkdir(parents=True)
    # Step 1's pyproject.toml, with the names and the entry point the worked example gives.
    toml = (_blocks("toml")[0].replace('name = "zoo-gru"', 'name = "zoo-huber"')
            .replace('[project.entry-points."music_zoo.backbones"]\ngru = "zoo_gru:spec"',
                     '[project.entry-points."music_zoo.tasks"]\nvalence-huber = "zoo_huber:spec"')
            .replace('packages = ["zoo_gru"]', 'packages = ["zoo_huber"]'))
    assert 'valence-huber = "zoo_huber:spec"' in toml
    (project / "pyproject.toml").write_text(toml)
    source = next(b for b in _blocks("python") if "class HuberValence" in b)
    (project / "zoo_huber" / "__init__.py").write_text(source)
    site = tmp_path / "site"
    pip_install([project], site)
    tests_dir = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(tests_dir)]), ZOO_HOME=str(tmp_path / "home"))

    listed = subprocess.run([sys.executable, "-m", "zoo", "list", "task"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert re.search(r"^\s*valence-huber\s+zoo-huber==0\.1\.0\s+valence regressed", listed.stdout, flags=re.M)

    test_code = next(b for b in _blocks("python") if "check_task(zoo_huber.spec" in b)
    train = (
        "import zoo\nfrom enginefixtures import TINY_LSTM, separable\n"
        "res = zoo.train('lstm+chroma:valence-huber', data=separable(8), track=False, progress=False,\n"
        "                settings={**TINY_LSTM, 'train': {'batch_size': 8, 'lr': 0.05, 'patience': 0}}, epochs=2)\n"
        "assert set(res.test) == {'valence-huber.mae', 'valence-huber.rmse'}, res.test\n"
        "assert 0 <= res.test['valence-huber.mae'] <= 1\n"
    )
    check = test_code + "\ntest_huber_meets_the_task_contract()\n" + train + "print('task ok')\n"
    ran = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0 and "task ok" in ran.stdout, ran.stderr[-3000:]
