"""Read chosen columns of a CSV whose header spans several rows (FMA's tracks.csv, echonest.csv).

Such a file starts with one row per header level (``,track,track,...`` then
``,genre_top,title,...``), then usually a row naming the index (``track_id,,,``), then data rows
whose first cell is the integer index. A column is found by the names it must carry, e.g.
``("track", "genre_top")`` or ``("audio_features", "valence")``: the last name must be the
column's last level, the others any of its levels.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import DataError

_MAX_HEADER_ROWS = 10


def _header(path: Path) -> tuple[list[list[str]], int, bool]:
    """The header levels, the number of lines before the first data row, and whether one exists."""
    levels: list[list[str]] = []
    n = -1
    with open(path, encoding="utf-8", newline="") as fh:
        for n, row in enumerate(csv.reader(fh)):
            if row and row[0].strip().isdigit():
                return levels, n, True
            if n >= _MAX_HEADER_ROWS:
                raise DataError(f"{path}: no data row (a row starting with an integer id) in the first "
                                f"{_MAX_HEADER_ROWS} lines; is this FMA's metadata file, unmodified?")
            if row and any(c.strip() for c in row[1:]):
                levels.append([c.strip() for c in row])
            # a row with only its first cell set names the index column: not a level
    return levels, n + 1, False


def read_columns(path: Path, wanted: Mapping[str, Sequence[str]]) -> dict[str, dict[int, str]]:
    """``{key: {index: cell}}`` for each ``wanted[key]`` column (names as in the module docstring).

    Raises DataError naming the file when it is missing, unreadable or lacks a wanted column.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; download fma_metadata.zip and unpack it next to the audio folder")
    try:
        levels, skip, has_data = _header(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path} cannot be read as a CSV file: {exc}") from exc
    if not levels:
        raise DataError(f"{path} has no header rows; expected FMA's multi-row header")
    width = max(len(r) for r in levels)
    columns = [tuple(r[j] if j < len(r) else "" for r in levels) for j in range(width)]
    where: dict[str, int] = {}
    for key, names in wanted.items():
        *groups, last = names
        found = [j for j, col in enumerate(columns) if j > 0 and col[-1] == last and all(g in col for g in groups)]
        if not found:
            shown = ", ".join(".".join(filter(None, c)) for c in columns[1:20])
            raise DataError(f"{path} has no column {'.'.join(names)}; its columns begin {shown}; "
                            f"is this FMA's {path.name}, unmodified?")
        where[key] = found[0]
    if not has_data:
        return {key: {} for key in wanted}
    use = sorted({0, *where.values()})
    try:
        table = pd.read_csv(path, header=None, skiprows=skip, usecols=use, dtype=str,
                            keep_default_na=False, encoding="utf-8")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path} cannot be parsed: {exc}") from exc
    index = table[0].str.strip()
    bad = index[~index.str.isdigit()]
    if len(bad):
        raise DataError(f"{path}: data row {int(bad.index[0]) + 1} has index {bad.iloc[0]!r}, not an integer "
                        f"track id; the file is damaged: download fma_metadata.zip again")
    ids = index.astype(int).tolist()
    return {key: dict(zip(ids, table[j].str.strip().tolist())) for key, j in where.items()}
