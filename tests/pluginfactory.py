"""Build real plugin distributions in a temp folder and pip-install them into a target dir.

Tests then put the target dir on sys.path (or PYTHONPATH for a subprocess): importlib.metadata
finds the installed ``*.dist-info`` with its ``entry_points.txt`` exactly as for any plugin.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def write_distribution(root: Path, dist: str, version: str, module: str, source: str,
                       entry_points: dict[str, dict[str, str]]) -> Path:
    """Write a minimal setuptools project ``root/dist`` providing ``module`` and ``entry_points``."""
    folder = root / dist
    (folder / module).mkdir(parents=True, exist_ok=True)
    (folder / module / "__init__.py").write_text(textwrap.dedent(source))
    eps = ""
    for group, entries in entry_points.items():
        eps += f'\n[project.entry-points."{group}"]\n' + "".join(f'{k} = "{v}"\n' for k, v in entries.items())
    (folder / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "{version}"

        [tool.setuptools]
        packages = ["{module}"]
        """) + eps)
    return folder


def pip_install(projects: list[Path], target: Path) -> None:
    """``pip install --target`` the projects (no deps, no build isolation: offline and quick)."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
           "--no-index", "--target", str(target), *map(str, projects)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


GRU_SOURCE = '''
"""A third-party backbone: a GRU over time, as a plugin author would write it from the docs."""
from dataclasses import dataclass

from zoo.protocols import BackboneOutput, ComponentSpec


@dataclass(frozen=True)
class GRUConfig:
    hidden: int = 16


def build(config, n_bins):
    import torch
    from torch import nn

    class GRUBackbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(n_bins, config.hidden, batch_first=True)
            self.out_dim = config.hidden

        def forward(self, x, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(
                x.transpose(1, 2), lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, h = self.gru(packed)
            return BackboneOutput(h[-1])

    return GRUBackbone()


spec = ComponentSpec(kind="backbone", name="gru", config=GRUConfig, build=build,
                     summary="a one-layer GRU (third-party example)")
'''
