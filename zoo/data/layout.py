"""Open a data set: pick its layout (``--layout``, or ask every registered layout to recognise the folder).

Detection asks ``kaggle``, ``fma`` and ``folder`` first, then every other registered data set
(the embedded set, third-party layouts) in name order. ``folder`` accepts almost any folder of
audio, so it is the fallback: it is chosen only when no more specific layout recognises the path.
Two specific layouts recognising the same path is an error that asks for ``--layout``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, DataError, PluginError
from ..protocols import Dataset, Restricts, ShowsProgress
from ..registry import Registry

DETECT_ORDER = ("kaggle", "fma", "folder")
FALLBACK = ("folder",)
DEFAULT = "embedded"
"""The data set used without ``--data``; its name may also be given as the data (``--data embedded``)."""


def data_path(path: str | Path | None) -> Path | None:
    """The folder ``path`` names, or None for the embedded set (no path, or the word ``embedded``;
    a folder of that name is given as ``./embedded``)."""
    if path is None or (isinstance(path, str) and path.strip() == DEFAULT):
        return None
    return Path(path).expanduser()


def detection_order(registry: Registry) -> list[str]:
    """Data set names in the order their ``detect`` is asked."""
    names = registry.names("dataset")
    return [n for n in DETECT_ORDER if n in names] + [n for n in names if n not in DETECT_ORDER]


def detect_layout(root: Path, registry: Registry) -> str:
    """The name of the one layout that recognises ``root``; DataError naming the candidates otherwise."""
    matches, problems, summaries = [], [], []
    for name in detection_order(registry):
        try:
            spec = registry.load("dataset", name)
        except PluginError as exc:  # a broken third-party layout must not stop the others
            problems.append(f"{name}: {exc}")
            continue
        summaries.append(f"{name} ({spec.summary})")
        if spec.detect is None:
            continue
        try:
            if spec.detect(root):
                matches.append(name)
        except Exception as exc:  # a layout's detect is plugin code: report, keep going
            problems.append(f"{name}: detect({root}) failed: {type(exc).__name__}: {exc}")
    chosen = [m for m in matches if m not in FALLBACK] or matches
    if len(chosen) == 1:
        return chosen[0]
    extra = f" (not asked: {'; '.join(problems)})" if problems else ""
    if not chosen:
        raise DataError(
            f"cannot tell the layout of {root}: no installed layout recognises it. Layouts: "
            f"{'; '.join(summaries)}{extra}. Arrange the data as one of them, or name one with --layout NAME"
        )
    raise DataError(
        f"{root} looks like more than one layout: {', '.join(chosen)}; choose one with --layout NAME "
        f"(e.g. --layout {chosen[0]}){extra}"
    )


def open_dataset(path: str | Path | None, *, layout: str | None = None, registry: Registry | None = None,
                 settings: Mapping[str, Any] | None = None, progress: bool = True,
                 data_dir: Path | None = None, limit: int | None = None, seed: int = 0) -> Dataset:
    """The data set at ``path`` (None or ``"embedded"``: the embedded set, kept under ``data_dir``),
    built with ``settings``.

    ``layout`` names the layout instead of detecting it. ``progress=False`` silences the data
    set's own progress bars (those of a layout that has a ``progress`` attribute, such as the
    embedded set's synthesis). ``limit`` and ``seed``: the run's ``--limit``, told to a layout that
    can read less for it (one with a ``restrict(limit, seed)`` method, such as the embedded set,
    which then synthesises only the clips the limit keeps). Raises DataError for a missing path or an
    unrecognised / ambiguous layout, ConfigError for settings the layout does not have.
    """
    registry = registry or Registry()
    path = data_path(path)
    if path is None:
        if layout not in (None, DEFAULT):
            raise DataError(f"--layout {layout} needs --data PATH (the folder in that layout); "
                            f"without --data the zoo uses the {DEFAULT} set")
        if data_dir is None:
            raise ConfigError(f"the {DEFAULT} set needs a folder to live in: pass data_dir (the workspace's, "
                              f"zoo.workspace.Workspace.from_env().data_dir), or a data path")
        return _restricted(_quiet(registry.create("dataset", DEFAULT, settings, Path(data_dir)), progress),
                           limit, seed)
    root = path
    if not root.exists():
        raise DataError(f"data path {root} does not exist; check --data (absolute, or relative to {Path.cwd()})")
    name = layout
    if name is None:
        name = detect_layout(root, registry)
    else:
        registry.info("dataset", name)  # unknown layout: error listing the installed ones
    return _restricted(_quiet(registry.create("dataset", name, settings, root), progress), limit, seed)


def _quiet(dataset: Dataset, progress: bool) -> Dataset:
    if not progress and isinstance(dataset, ShowsProgress):
        dataset.progress = False
    return dataset


def _restricted(dataset: Dataset, limit: int | None, seed: int) -> Dataset:
    if limit is not None and isinstance(dataset, Restricts):
        dataset.restrict(limit, seed)
    return dataset
