"""Where a run's data came from, recorded as tags so the same clips can be prepared again.

A run records its data folder (or the embedded set), layout, data-set settings, ``--limit``,
the seed that drew the limited subset and ``--skip-bad``. ``zoo embed`` reads them back to
rebuild exactly the clips a model was trained and tested on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..fsio import shown

PREFIX = "zoo.data."
EMBEDDED = "embedded"
IN_MEMORY = "in-memory"


@dataclass(frozen=True)
class DataSource:
    """``path``: the data folder, None for the embedded set; ``in_memory``: the run was given a
    ready ``Prepared`` (nothing to re-read); the rest are the arguments ``prepare`` was called with."""

    path: str | None = None
    layout: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = None
    seed: int = 0
    skip_bad: bool = False
    in_memory: bool = False

    def tags(self) -> dict[str, str]:
        """``zoo.data.*`` tags of a run."""
        if self.in_memory:
            return {f"{PREFIX}source": IN_MEMORY}
        return {
            # A tracking store takes text only: a folder name that is not UTF-8 is kept with \xNN escapes.
            f"{PREFIX}source": shown(self.path) if self.path is not None else EMBEDDED,
            f"{PREFIX}layout": self.layout or "",
            f"{PREFIX}settings": json.dumps(dict(self.settings), sort_keys=True, default=str),
            f"{PREFIX}limit": "" if self.limit is None else str(self.limit),
            f"{PREFIX}seed": str(self.seed),
            f"{PREFIX}skip_bad": str(bool(self.skip_bad)).lower(),
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> "DataSource | None":
        """The source recorded in a run's ``tags``; None when the run recorded none (older runs)."""
        source = tags.get(f"{PREFIX}source")
        if source is None:
            return None
        if source == IN_MEMORY:
            return cls(in_memory=True)
        limit = tags.get(f"{PREFIX}limit", "")
        return cls(
            path=None if source == EMBEDDED else source,
            layout=tags.get(f"{PREFIX}layout") or None,
            settings=json.loads(tags.get(f"{PREFIX}settings") or "{}"),
            limit=int(limit) if limit else None,
            seed=int(tags.get(f"{PREFIX}seed") or 0),
            skip_bad=tags.get(f"{PREFIX}skip_bad") == "true",
        )


def source_of(data: Any, *, layout: str | None, settings: Mapping[str, Any] | None, limit: int | None,
              seed: int, skip_bad: bool, prepared_given: bool) -> DataSource:
    """The :class:`DataSource` of one ``run`` call (paths made absolute, so they work from anywhere)."""
    if prepared_given:
        return DataSource(in_memory=True)
    from ..data.layout import data_path
    path = None if data_path(data) is None else str(data_path(data).resolve())
    return DataSource(path, layout, dict(settings or {}), limit, seed, skip_bad)
