"""The zoo's workspace: its home folder, MLflow store and plugin switches, read from the environment once.

``ZOO_HOME``, ``MLFLOW_TRACKING_URI``, ``ZOO_DISABLE_PLUGIN_AUTOLOAD`` and ``ZOO_PLUGINS`` are read
here and nowhere else: the CLI builds a :class:`Workspace` in ``main()``, the Python API builds one
per call when it is not given one (``workspace=``), and both pass it down. Everything the zoo
writes by default lives under ``home``::

    home/data       generated data sets (the embedded set)
    home/cache      feature cache and packed data sets
    home/runs       each run's reports and packaged models
    home/mlflow     the default MLflow store (mlflow.db) and its artifacts
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from .registry import AUTOLOAD_ENV, PLUGINS_ENV, Registry

HOME_ENV = "ZOO_HOME"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
LAUNCH_RECORD_ENV = "ZOO_LAUNCH_RECORD"
SERVER_DB_ENV = "MLFLOW_BACKEND_STORE_URI"
STORE_FILE = "mlflow.db"
_LAUNCH = {"rank": 0, "world_size": 1, "local_rank": 0, "local_world_size": 1}
"""torchrun's variables (upper-cased) and their values in a process it did not start."""


def _switched_off(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class Workspace:
    """Where the zoo keeps things and which plugins it loads.

    ``home``: the root of everything the zoo writes by default. ``tracking_uri``: the MLflow
    store (empty: the sqlite store ``home/mlflow/mlflow.db``). ``autoload=False`` loads only the
    core and the distributions named in ``plugins`` (as pytest's ``-p NAME``).
    """

    home: Path
    tracking_uri: str = ""
    autoload: bool = True
    plugins: tuple[str, ...] = ()
    rank: int = 0
    """Under torchrun: this process's rank (``RANK``), of ``world_size`` (``WORLD_SIZE``) processes;
    ``local_rank`` (``LOCAL_RANK``) of ``local_world_size`` (``LOCAL_WORLD_SIZE``) on this machine."""
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    launch_record: str = ""
    """Under ``zoo run --devices N``: the file its launcher reads the run id from (``ZOO_LAUNCH_RECORD``),
    so that it can say in the run how a rank ended; empty elsewhere."""
    server_db: str = ""
    """For ``zoo server``: the database URI given in the environment (``MLFLOW_BACKEND_STORE_URI``, so that
    a password in it never shows on a command line); empty when not set."""

    def __post_init__(self) -> None:
        home = Path(self.home).expanduser().absolute()
        object.__setattr__(self, "home", home)
        object.__setattr__(self, "plugins", tuple(p.strip() for p in self.plugins if p and p.strip()))
        if not self.tracking_uri:
            object.__setattr__(self, "tracking_uri", f"sqlite:///{home / 'mlflow' / STORE_FILE}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, plugins: Iterable[str] = ()) -> Workspace:
        """The workspace the environment describes (``os.environ`` unless ``environ`` is given).

        ``ZOO_HOME`` (default ``~/.zoo``), ``MLFLOW_TRACKING_URI`` (default: the sqlite store under
        the home), ``ZOO_DISABLE_PLUGIN_AUTOLOAD=1`` and ``ZOO_PLUGINS=dist1,dist2``; ``plugins``
        (``zoo -p DIST``) are added to those named in ``ZOO_PLUGINS``. ``RANK``, ``WORLD_SIZE``,
        ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` (set by torchrun) say which process of a distributed run this is.
        """
        env = os.environ if environ is None else environ
        home = env.get(HOME_ENV) or (Path(env["HOME"]) if env.get("HOME") else Path.home()) / ".zoo"
        named = [p for p in env.get(PLUGINS_ENV, "").split(",")] + list(plugins)
        return cls(home=Path(home), tracking_uri=env.get(TRACKING_ENV) or "",
                   autoload=not _switched_off(env.get(AUTOLOAD_ENV)), plugins=tuple(named),
                   launch_record=env.get(LAUNCH_RECORD_ENV, ""), server_db=env.get(SERVER_DB_ENV, ""),
                   **{k: int(env.get(k.upper()) or d) for k, d in _LAUNCH.items()})

    @staticmethod
    @contextlib.contextmanager
    def handed_to_children(name: str, value: str) -> Iterator[None]:
        """Set ``name`` in this process's environment for the children it starts meanwhile (torchrun's
        ranks inherit it), then take it away again."""
        before = os.environ.get(name)
        os.environ[name] = value
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before

    def environ(self) -> dict[str, str]:
        """The environment variables that describe this workspace, for a child process's ``env``."""
        return {HOME_ENV: str(self.home), TRACKING_ENV: self.tracking_uri,
                AUTOLOAD_ENV: "0" if self.autoload else "1", PLUGINS_ENV: ",".join(self.plugins)}

    def registry(self) -> Registry:
        """A fresh :class:`~zoo.registry.Registry` that honours the autoload switch and named plugins."""
        return Registry(autoload=self.autoload, plugins=self.plugins)

    @property
    def default_store(self) -> bool:
        """Whether runs go to the sqlite store under ``home`` (not a store named in the environment)."""
        return self.tracking_uri == f"sqlite:///{self.mlflow_dir / STORE_FILE}"

    @property
    def data_dir(self) -> Path:
        """Generated data sets (the embedded set)."""
        return self.home / "data"

    @property
    def cache_dir(self) -> Path:
        """The feature cache (keyed by file content and feature settings) and packed data sets."""
        return self.home / "cache"

    @property
    def runs_dir(self) -> Path:
        """One folder per training run: reports and packaged models."""
        return self.home / "runs"

    @property
    def evaluations_dir(self) -> Path:
        """One folder per ``zoo.evaluate`` call."""
        return self.home / "evaluations"

    @property
    def embeddings_dir(self) -> Path:
        """Latent maps (``zoo embed``), one folder per run."""
        return self.home / "embeddings"

    @property
    def mlflow_dir(self) -> Path:
        """The default MLflow store's folder (``mlflow.db``, ``artifacts/``, the UI's logs)."""
        return self.home / "mlflow"

    @property
    def artifact_root(self) -> Path:
        """Where artifacts of runs in the default store go."""
        return self.mlflow_dir / "artifacts"


__all__ = ["Workspace", "HOME_ENV", "TRACKING_ENV"]
