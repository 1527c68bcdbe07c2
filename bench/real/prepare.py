"""Turn a fetched git directory of a public real-music set into a zoo ``folder`` data set.

The audio stays out of the project (it is for research use): this script copies the files out of
a bare git directory (``git --git-dir=DIR``, as the project's tooling fetches public repositories)
into ``--out``, and writes ``--out/manifest.csv``, which the zoo's ``folder`` reader takes
(``zoo run SPEC --data OUT``):

- ``path``, ``id``, ``label`` (the genre), ``split`` (train / val / test): fixed splits, stratified
  by label and drawn with ``--seed``, written into the manifest so every run uses the same clips;
- for Emotify, the nine GEMS emotions as numeric target columns, each the share of the clip's
  listeners who ticked that emotion (0-1), ``listeners`` excluded (it would be read as a target).

Sets it knows (``SET``):

- ``emotify``: the Emotify set as laid out in ``sergi-andreu/ProjectMusicInformatics``:
  ``data/emotifymusic/{classical,electronic,pop,rock}/1.mp3 ... 100.mp3`` and ``data/data.csv``
  (one row per listener; ``track id`` runs classical 1-100, rock 101-200, electronic 201-300,
  pop 301-400, and its ``genre`` column is checked against those ranges). ``--check-mapping``
  tests the file-to-track mapping by listening statistics (loudness against the share of
  listeners who ticked ``power`` or ``calmness``, within each genre).
- ``gtzan-mini``: ``TempoBeatDownbeat/gtzan_mini``: ``genres/<genre>/<genre>.000NN.wav``.

    python bench/real/prepare.py emotify --git-dir /work/.mirror/sergi-andreu+ProjectMusicInformatics/repo \\
        --out ~/zoo-real/emotify
    python bench/real/prepare.py gtzan-mini --git-dir /work/.mirror/TempoBeatDownbeat+gtzan_mini/repo \\
        --out ~/zoo-real/gtzan-mini
"""
from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EMOTIONS = ("amazement", "solemnity", "tenderness", "nostalgia", "calmness", "power",
            "joyful_activation", "tension", "sadness")
"""Emotify's nine GEMS emotion columns, in the order of its ``data.csv``."""

EMOTIFY_GENRES = ("classical", "rock", "electronic", "pop")
"""Emotify's genres in the order of their ``track id`` ranges (1-100, 101-200, 201-300, 301-400)."""


class PrepareError(Exception):
    """Input that cannot be turned into a data set; the message says what and how to fix it."""


@dataclass(frozen=True)
class Entry:
    """One clip: its path inside the repository, the id and label it gets, and its targets."""

    source: str
    id: str
    label: str
    targets: dict


def git(git_dir: Path, *args: str, data: bytes | None = None) -> bytes:
    """Run ``git --git-dir=GIT_DIR ARGS`` and return its standard output."""
    proc = subprocess.run(["git", f"--git-dir={git_dir}", *args], input=data, capture_output=True)
    if proc.returncode != 0:
        raise PrepareError(f"git --git-dir={git_dir} {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def tree(git_dir: Path, under: str) -> dict[str, str]:
    """``{path: blob id}`` of every file under ``under`` at ``HEAD``."""
    out = git(git_dir, "ls-tree", "-r", "HEAD", "--", under)
    files = {}
    for line in out.decode().splitlines():
        meta, _, path = line.partition("\t")
        _, kind, blob = meta.split()
        if kind == "blob":
            files[path] = blob
    return files


def stratified_splits(labels: list[str], *, seed: int, val: float, test: float) -> list[str]:
    """A split per clip: within each label, a seeded shuffle; the first ``round(n * test)`` clips
    are test, the next ``round(n * val)`` validation, the rest train (at least one test and one
    validation clip per label with three or more clips)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    splits = ["train"] * len(labels)
    for label in sorted(by_label):
        idx = by_label[label]
        order = [idx[j] for j in rng.permutation(len(idx))]
        n = len(order)
        n_test = max(1, round(n * test)) if n >= 3 else 0
        n_val = max(1, round(n * val)) if n >= 3 else 0
        for k, i in enumerate(order):
            splits[i] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return splits


def emotify_entries(git_dir: Path) -> list[Entry]:
    """Emotify's 400 clips with, per clip, the share of its listeners who ticked each emotion."""
    files = tree(git_dir, "data/emotifymusic")
    table = git(git_dir, "show", "HEAD:data/data.csv").decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(table)))
    header = [c.strip().lower() for c in rows[0]]
    col = {name: header.index(name) for name in ("track id", "genre", *EMOTIONS) if name in header}
    missing = [n for n in ("track id", "genre", *EMOTIONS) if n not in col]
    if missing:
        raise PrepareError(f"data/data.csv in {git_dir} lacks the columns {', '.join(missing)} (has: {', '.join(header)})")
    ticks: dict[int, np.ndarray] = {}
    listeners: dict[int, int] = defaultdict(int)
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        track = int(row[col["track id"]])
        genre = row[col["genre"]].strip().lower()
        expected = EMOTIFY_GENRES[(track - 1) // 100]
        if genre != expected:
            raise PrepareError(f"data/data.csv line {n}: track {track} is '{genre}', but track ids "
                               f"{(track - 1) // 100 * 100 + 1}-{(track - 1) // 100 * 100 + 100} are {expected}; "
                               f"the id-to-genre ranges this script assumes do not hold")
        vals = np.array([float(row[col[e]]) for e in EMOTIONS])
        ticks[track] = ticks.get(track, np.zeros(len(EMOTIONS))) + vals
        listeners[track] += 1
    entries = []
    for g, genre in enumerate(EMOTIFY_GENRES):
        count = sum(1 for f in files if f.startswith(f"data/emotifymusic/{genre}/") and f.endswith(".mp3"))
        if not 0 < count <= 100:
            raise PrepareError(f"{git_dir}: data/emotifymusic/{genre}/ holds {count} MP3 files, expected 1-100; "
                               f"is this the Emotify repository?")
        for k in range(1, count + 1):
            source = f"data/emotifymusic/{genre}/{k}.mp3"
            if source not in files:
                raise PrepareError(f"{git_dir} has no {source} (the files of a genre are numbered 1..{count}); "
                                   f"is this the Emotify repository?")
            track = g * 100 + k
            if listeners[track] == 0:
                raise PrepareError(f"data/data.csv has no listener for track {track} ({source})")
            shares = ticks[track] / listeners[track]
            entries.append(Entry(source, f"{genre}/{k}", genre,
                                 {e: round(float(s), 4) for e, s in zip(EMOTIONS, shares)}))
    return entries


def gtzan_mini_entries(git_dir: Path) -> list[Entry]:
    """gtzan_mini's clips: ``genres/<genre>/<genre>.000NN.wav``, labelled by folder."""
    entries = []
    for path in sorted(tree(git_dir, "genres")):
        parts = path.split("/")
        if len(parts) == 3 and parts[2].endswith(".wav"):
            entries.append(Entry(path, f"{parts[1]}/{Path(parts[2]).stem}", parts[1], {}))
    if not entries:
        raise PrepareError(f"{git_dir} has no genres/<genre>/*.wav; is this the gtzan_mini repository?")
    return entries


SETS = {"emotify": emotify_entries, "gtzan-mini": gtzan_mini_entries}


def export(git_dir: Path, entries: list[Entry], out: Path) -> None:
    """Copy each entry's blob to ``out/audio/<id><suffix>`` (skipping files already there with the right size)."""
    blobs = tree(git_dir, ".")
    todo = []
    for e in entries:
        dest = out / "audio" / (e.id + Path(e.source).suffix)
        if not dest.exists():
            todo.append((e, dest))
    if not todo:
        return
    stream = git(git_dir, "cat-file", "--batch", data="".join(f"{blobs[e.source]}\n" for e, _ in todo).encode())
    pos = 0
    for e, dest in todo:
        end = stream.index(b"\n", pos)
        _, kind, size = stream[pos:end].decode().split()
        body = stream[end + 1:end + 1 + int(size)]
        pos = end + 1 + int(size) + 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_bytes(body)
        tmp.replace(dest)


def write_manifest(entries: list[Entry], splits: list[str], out: Path) -> Path:
    """``out/manifest.csv``: path, id, label, split and the entries' target columns."""
    targets = list(entries[0].targets)
    path = out / "manifest.csv"
    tmp = path.with_name(".manifest.csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "id", "label", "split", *targets])
        for e, split in zip(entries, splits):
            w.writerow([f"audio/{e.id}{Path(e.source).suffix}", e.id, e.label, split,
                        *[e.targets[t] for t in targets]])
    tmp.replace(path)
    return path


def loudness(files: list[Path], seconds: float = 30.0) -> np.ndarray:
    """Mean RMS level in dB of the first ``seconds`` of each file (mono, 11025 Hz)."""
    import librosa
    out = []
    for f in files:
        y, _ = librosa.load(f, sr=11025, mono=True, duration=seconds)
        out.append(float(np.mean(librosa.amplitude_to_db(librosa.feature.rms(y=y)[0] + 1e-8))))
    return np.asarray(out)


def check_mapping(entries: list[Entry], out: Path) -> list[str]:
    """Within each Emotify genre, the Spearman correlation of a clip's loudness with the share of
    its listeners who ticked ``power`` (and, negatively, ``calmness``), under the mapping used
    (file k -> track offset + k) and under the same shares shifted by one track and reversed. A right
    mapping correlates; a wrong one is near zero."""
    from scipy.stats import spearmanr
    level = loudness([out / "audio" / (e.id + Path(e.source).suffix) for e in entries])
    lines = []
    for genre in EMOTIFY_GENRES:
        idx = [i for i, e in enumerate(entries) if e.label == genre]
        lv = level[idx]
        arousal = np.array([entries[i].targets["power"] - entries[i].targets["calmness"] for i in idx])
        rho = {name: spearmanr(lv, a).statistic
               for name, a in (("as mapped", arousal), ("shifted by 1", np.roll(arousal, 1)), ("reversed", arousal[::-1]))}
        lines.append(f"{genre:<10} " + "  ".join(f"{k}: {v:+.2f}" for k, v in rho.items()))
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("set", choices=sorted(SETS))
    p.add_argument("--git-dir", type=Path, required=True, help="the fetched bare git directory")
    p.add_argument("--out", type=Path, required=True, help="folder for audio/ and manifest.csv")
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified splits (default 0)")
    p.add_argument("--val", type=float, default=0.15, help="validation share per label (default 0.15)")
    p.add_argument("--test", type=float, default=0.15, help="test share per label (default 0.15)")
    p.add_argument("--check-mapping", action="store_true", help="emotify: test the file-to-track mapping by loudness")
    args = p.parse_args(argv)
    if not (args.git_dir / "HEAD").exists():
        print(f"prepare: {args.git_dir} is not a git directory (no HEAD); pass the path the fetch printed", file=sys.stderr)
        return 2
    try:
        entries = SETS[args.set](args.git_dir)
        args.out.mkdir(parents=True, exist_ok=True)
        export(args.git_dir, entries, args.out)
    except PrepareError as exc:
        print(f"prepare: {exc}", file=sys.stderr)
        return 2
    splits = stratified_splits([e.label for e in entries], seed=args.seed, val=args.val, test=args.test)
    manifest = write_manifest(entries, splits, args.out)
    counts = {s: splits.count(s) for s in ("train", "val", "test")}
    labels = sorted({e.label for e in entries})
    print(f"{args.set}: {len(entries)} clips, {len(labels)} labels ({', '.join(labels)}); "
          f"train {counts['train']} / val {counts['val']} / test {counts['test']} -> {manifest}")
    if args.check_mapping and args.set == "emotify":
        print("loudness against share(power) - share(calmness), Spearman within each genre:")
        for line in check_mapping(entries, args.out):
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
