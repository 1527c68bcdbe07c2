"""A built wheel of ``music-zoo`` works without the checkout: it carries the recipe catalogue and its entry points."""
from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from zoo.recipes import default_path, load_recipes

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = "zoo/recipes/registry.yaml"
DATASETS = ("embedded", "fma", "folder", "kaggle")


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_catalogue_is_a_real_file_in_the_package_and_the_top_level_one_links_to_it():
    packaged = ROOT / CATALOGUE
    assert default_path() == packaged.resolve()
    assert packaged.is_file() and not packaged.is_symlink()
    top = ROOT / "registry.yaml"
    assert top.is_symlink() and top.resolve() == packaged.resolve()


def test_a_wheel_installed_in_a_fresh_venv_lists_its_components_and_finds_a_recipe(tmp_path):
    # Build from a copy of the sources: an in-tree build reuses ``build/lib``, where a module
    # moved away since the last build would linger and end up in the wheel.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "zoo", src / "zoo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(wheels), str(src)], cwd=tmp_path)
    (wheel,) = wheels.glob("music_zoo-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read(CATALOGUE) == (ROOT / CATALOGUE).read_bytes()

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
          str(wheel)], cwd=tmp_path)
    # torch, numpy, yaml... come from this interpreter's site-packages, added as a plain path: the
    # .pth files there (the editable installs of the core and the plugins) are not processed, so
    # ``zoo`` can only come from the wheel. (--system-site-packages would reach the base
    # interpreter's packages, not those of a venv running the tests.) Added after the install,
    # so that pip does not find the editable music-zoo and skip the wheel.
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip())
    (site / "zoo_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(ZOO_HOME=str(tmp_path / "home"), ZOO_DISABLE_PLUGIN_AUTOLOAD="1",
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    listed = _run([str(venv / "bin" / "zoo"), "list"], cwd=tmp_path, env=env)
    assert "BROKEN" not in listed, listed
    for name in DATASETS:  # listing loads each entry point: the readers import from the wheel
        provider = f"music-zoo=={md.version('music-zoo')}"
        assert any(line.split()[:2] == [name, provider] for line in listed.splitlines()), listed

    expected = load_recipes()["lab-cnn-mel"].spec
    code = ("import zoo; from zoo.recipes import default_path, get_recipe; "
            "print(zoo.__file__); print(default_path()); print(get_recipe('lab-cnn-mel').spec)")
    where, catalogue, spec = _run([str(python), "-c", code], cwd=tmp_path, env=env).split()
    assert Path(where).is_relative_to(site) and Path(catalogue).is_relative_to(site), (where, catalogue)
    assert spec == expected
