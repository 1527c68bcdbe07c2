"""What one training invocation is asked to do: the frozen, checked request that ``runner.run`` carries out.

A :class:`RunRequest` says what to train (a spec or a built composition, its component
settings, a transfer source, extra tags), on which data (:class:`DataRequest`), how
(:class:`~zoo.engine.trainconfig.TrainConfig`), with which seeds (:class:`SeedPlan`) and where its
files go. Everything that can be checked without building the model is checked when the request
is made, so a bad request fails before any work and names the fix.

Example::

    from zoo.engine.request import DataRequest, RunRequest, SeedPlan
    from zoo.engine.trainconfig import TrainConfig

    request = RunRequest("lstm+chroma:genre", data=DataRequest(settings={"size": "tiny"}, limit=200),
                         train=TrainConfig(epochs=3), seeds=SeedPlan(first=0, count=3))
    result = zoo.train(request, track=False)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..bounds import bounded, check_bounds
from ..config import SEED_MAX, flag, option, options, text
from ..data.prepare import MAX_SECONDS
from ..errors import ConfigError
from .datasource import DataSource, source_of
from .trainconfig import ENGINE_SCOPES, TrainConfig

if TYPE_CHECKING:
    from ..data.preparedset import Prepared
    from ..model.building import Built
    from .transfer import TransferSource


def _how(cls: type) -> Any:
    """The fix of a field of ``cls`` out of its range, for :func:`~zoo.bounds.check_bounds`: its option."""
    def fix(name: str) -> str:
        declared = options(cls)[name]
        if declared.flag:
            return f"set it with {declared.flag}" + (f" {declared.metavar}" if declared.metavar else "")
        return f"set it with '{name}:' in a config file's data section"
    return fix


@dataclass(frozen=True)
class DataRequest:
    """On which data a model trains: a data folder and how to prepare it, or ready arrays.

    ``path``: the data folder (None: the embedded set, under the workspace's data folder);
    ``layout``: its layout when detection is ambiguous; ``settings``: the data set's settings
    (``{"size": "tiny"}``, ``{"mapping": "none"}``). ``limit``: at most this many clips, stratified;
    ``skip_bad``: leave unreadable clips out (listed) instead of stopping; ``workers``: feature
    extraction processes (None: one per core). ``seed`` draws the ``limit`` subset and the splits
    of a data set that has none (None: the run's first seed). ``max_seconds``: audio longer than
    this is cut to its middle ``max_seconds`` (0 or None: no limit; default 30, the lab's clips).
    ``min_class_clips``: refuse classes with fewer clips (0: no check). ``prepared``: a ready
    :class:`~zoo.data.preparedset.Prepared` used as it is (no other field may then be set).
    Each field with an :class:`~zoo.config.Option` is a ``zoo run`` option and a key of a config
    file's ``data:`` section, checked alike.
    """

    path: str | Path | None = field(default=None, metadata=option(
        "data folder (Kaggle, FMA, audio folder or CSV manifest), or 'embedded'; default: embedded set", "--data",
        check=text("folder"), metavar="PATH"))
    layout: str | None = field(default=None, metadata=option(
        "the data folder's layout when detection is ambiguous (kaggle, fma, folder, ...)", "--layout",
        check=text("layout name"), metavar="L"))
    settings: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = bounded(None, ge=1, whole=True, why="at most N clips, or None for all", metadata=option(
        "use at most N clips (stratified), for quick runs", "--limit", metavar="N"))
    skip_bad: bool = field(default=False, metadata=option(
        "skip unreadable clips (listed and logged) instead of stopping", "--skip-bad", check=flag, switch=True))
    workers: int | None = bounded(
        None, ge=1, whole=True, why="extraction processes, or None for one per core", metadata=option(
            "processes for feature extraction (default: all cores)", "--workers", metavar="N"))
    seed: int | None = bounded(None, ge=0, le=SEED_MAX, whole=True, why="or None for the run's first seed",
                               metadata=option("the seed that draws --limit"))
    prepared: Prepared | None = None
    max_seconds: float | None = bounded(
        MAX_SECONDS, ge=0.0, why="the longest audio per clip in seconds, or 0 for no limit", metadata=option(
        f"cut longer audio to its middle S seconds, and say how many clips were cut (default {MAX_SECONDS:g}, the "
        f"lab's clips; 0 = no limit)", "--max-seconds", metavar="S"))
    min_class_clips: int = bounded(0, ge=0, whole=True, why="or 0 for no check", metadata=option(
        "stop with an error naming every class that has fewer than N clips, e.g. a mistyped label (default 0: only "
        "warn about labels given to one clip of a CSV manifest)", "--min-class-clips", metavar="N"))

    def __post_init__(self) -> None:
        if self.settings is None:
            object.__setattr__(self, "settings", {})
        if not isinstance(self.settings, Mapping):
            raise ConfigError(f"data settings {self.settings!r}: give a mapping such as {{'size': 'tiny'}}")
        object.__setattr__(self, "settings", dict(self.settings))
        check_bounds(self, "data", fix=_how(DataRequest))  # limit, workers, seed, max_seconds, min_class_clips
        if self.prepared is not None:
            unused = [name for name, value in (("data", self.path), ("layout", self.layout), ("limit", self.limit),
                                               ("skip_bad", self.skip_bad), ("dataset settings", self.settings),
                                               ("min_class_clips", self.min_class_clips))
                      if value]
            if unused:
                raise ConfigError(f"prepared data is used as it is, so {', '.join(unused)} would be ignored; "
                                  f"pass either prepared or the data-loading arguments")

    def source(self, seed: int) -> DataSource:
        """Where the data come from, as a run records it (``seed``: the one that drew the clips)."""
        return source_of(self.path, layout=self.layout, settings=self.settings, limit=self.limit, seed=seed,
                         skip_bad=self.skip_bad, prepared_given=self.prepared is not None)


@dataclass(frozen=True)
class SeedPlan:
    """Train ``count`` models with seeds ``first .. first+count-1`` (several: mean and 95 % interval).

    ``--seed`` / ``--seeds`` on the command line, ``seed`` / ``seeds`` in a config file (the options' names)."""

    first: int = bounded(0, ge=0, le=SEED_MAX, whole=True, metadata=option("first seed (default 0)", "--seed"))
    count: int = bounded(1, ge=1, whole=True, why="K trains K models with seeds seed..seed+K-1", metadata=option(
        "train K models with seeds SEED..SEED+K-1 and report mean ± 95%% interval", "--seeds", metavar="K"))

    def __post_init__(self) -> None:
        check_bounds(self, "seeds", fix=_how(SeedPlan))

    @property
    def seeds(self) -> list[int]:
        return list(range(self.first, self.first + self.count))


@dataclass(frozen=True)
class RunRequest:
    """One training invocation: what to train, on which data, how, with which seeds, where its files go.

    ``spec``: a spec string (``"lstm+chroma:genre"``) or a :class:`~zoo.model.building.Built`
    composition. ``settings``: component settings per scope (``{"backbone": {"hidden": 64}}``; the
    ``train`` and ``dataset`` scopes belong in ``train`` and ``data``). ``data``: a
    :class:`DataRequest` (a folder path or a ``Prepared`` is taken as one). ``transfer``: start the
    backbone from a trained model's (a spec string is then required). ``tags``: added to every run
    (e.g. ``zoo.recipe``). ``out_dir``: where the run's folder goes (None: the workspace's runs folder).
    """

    spec: str | Built
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    data: DataRequest = field(default_factory=DataRequest)
    train: TrainConfig = field(default_factory=TrainConfig)
    seeds: SeedPlan = field(default_factory=SeedPlan)
    transfer: TransferSource | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    out_dir: Path | None = None

    def __post_init__(self) -> None:
        from ..data.preparedset import Prepared
        from ..model.building import Built
        if isinstance(self.spec, str):
            if not self.spec.strip():
                raise ConfigError("an empty spec: give BACKBONE+FEATURE[+FEATURE...]:TASK[,TASK...], "
                                  "e.g. lstm+chroma:genre")
        elif not isinstance(self.spec, Built):
            raise ConfigError(f"spec {self.spec!r}: give a spec string (lstm+chroma:genre) or a zoo.api.compose() "
                              f"result")
        settings = {str(k): dict(v) for k, v in (self.settings or {}).items()}
        misplaced = [s for s in settings if s in ENGINE_SCOPES]
        if misplaced:
            where = {"train": "train=TrainConfig(...)", "dataset": "data=DataRequest(settings=...)"}
            raise ConfigError(f"settings['{misplaced[0]}'] is not a component's: give it as "
                              f"{where[misplaced[0]]} (zoo.train accepts it in settings and divides them)")
        if isinstance(self.spec, Built) and settings:
            raise ConfigError(f"settings {sorted(settings)} apply to a spec string; a built composition carries its "
                              f"own configuration (pass the settings to zoo.api.compose instead)")
        object.__setattr__(self, "settings", settings)
        data = self.data
        if data is None:
            data = DataRequest()
        elif isinstance(data, Prepared):
            data = DataRequest(prepared=data)
        elif isinstance(data, (str, Path)):
            data = DataRequest(path=data)
        if not isinstance(data, DataRequest):
            raise ConfigError(f"data {data!r}: give a DataRequest, a data folder or a Prepared")
        object.__setattr__(self, "data", data)
        if not isinstance(self.train, TrainConfig):
            raise ConfigError(f"train {self.train!r}: give a zoo.engine.trainconfig.TrainConfig")
        if not isinstance(self.seeds, SeedPlan):
            raise ConfigError(f"seeds {self.seeds!r}: give a SeedPlan(first=..., count=...)")
        if self.transfer is not None and isinstance(self.spec, Built):
            raise ConfigError("transfer needs a spec string (the backbone is rebuilt with the source's settings), "
                              "not an already built composition")
        object.__setattr__(self, "tags", {str(k): str(v) for k, v in (self.tags or {}).items()})
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", Path(self.out_dir).expanduser())

    @property
    def data_seed(self) -> int:
        """The seed that draws the ``limit`` subset and any missing splits."""
        return self.data.seed if self.data.seed is not None else self.seeds.first

    def replace(self, **changes: Any) -> RunRequest:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)


__all__ = ["RunRequest", "DataRequest", "SeedPlan"]
