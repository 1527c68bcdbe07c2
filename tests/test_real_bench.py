"""bench/real: a fetched git directory of a real set becomes a zoo data set with fixed splits, and
the study runner writes the results tables.

The repositories here are tiny ones the tests build (a few short clips in a real git repository),
laid out as the public sets are; the real audio is never needed.
"""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datafixtures import music, write_audio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.real import prepare, study  # noqa: E402

EMOTIONS = prepare.EMOTIONS


def _commit(repo: Path) -> Path:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "data"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    return repo / ".git"


def _emotify_repo(root: Path, per_genre: int = 4) -> tuple[Path, dict[int, np.ndarray]]:
    """An Emotify-shaped repository: MP3s numbered per genre and a listener table with known shares."""
    rng = np.random.default_rng(0)
    shares = {}
    lines = ["track id, genre, " + ", ".join(EMOTIONS) + ", mood, liked, disliked, age, gender, mother tongue"]
    for g, genre in enumerate(prepare.EMOTIFY_GENRES):
        for k in range(1, per_genre + 1):
            write_audio(root / "data/emotifymusic" / genre / f"{k}.mp3", music(1.0, seed=g * 10 + k))
            track = g * 100 + k
            ticks = rng.integers(0, 2, size=(5, len(EMOTIONS)))
            shares[track] = ticks.mean(0)
            for row in ticks:
                lines.append(f"{track},{genre}," + ",".join(map(str, row)) + ",3,0,0,30,1,English")
    (root / "data/data.csv").write_text("\n".join(lines) + "\n")
    return _commit(root), shares


def _manifest(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_emotify_becomes_a_manifest_with_listener_shares_and_fixed_stratified_splits(tmp_path):
    git_dir, shares = _emotify_repo(tmp_path / "repo")
    out = tmp_path / "emotify"
    assert prepare.main(["emotify", "--git-dir", str(git_dir), "--out", str(out), "--val", "0.25", "--test", "0.25"]) == 0
    rows = _manifest(out / "manifest.csv")
    assert len(rows) == 16 and list(rows[0])[:4] == ["path", "id", "label", "split"]
    for row in rows:
        genre, k = row["id"].split("/")
        track = prepare.EMOTIFY_GENRES.index(genre) * 100 + int(k)
        assert row["label"] == genre and (out / row["path"]).read_bytes() == \
            (tmp_path / "repo/data/emotifymusic" / genre / f"{k}.mp3").read_bytes()
        assert np.allclose([float(row[e]) for e in EMOTIONS], shares[track], atol=1e-4)
    for genre in prepare.EMOTIFY_GENRES:  # stratified: every genre in every split
        splits = sorted(r["split"] for r in rows if r["label"] == genre)
        assert splits == ["test", "train", "train", "val"]
    # fixed: a second call (files already there) writes the very same manifest
    before = (out / "manifest.csv").read_bytes()
    assert prepare.main(["emotify", "--git-dir", str(git_dir), "--out", str(out), "--val", "0.25", "--test", "0.25"]) == 0
    assert (out / "manifest.csv").read_bytes() == before
    # and the zoo reads it: labels, the nine shares as targets, the manifest's splits
    from zoo.data.readers.folder import FolderConfig, FolderDataset
    clips = FolderDataset(FolderConfig(), out).clips("frames")
    assert len(clips) == 16 and {c.split for c in clips} == {"train", "val", "test"}
    assert set(clips[0].targets) == set(EMOTIONS)


def test_emotify_refuses_a_listener_table_whose_genres_break_the_id_ranges(tmp_path, capsys):
    git_dir, _ = _emotify_repo(tmp_path / "repo", per_genre=2)
    table = tmp_path / "repo/data/data.csv"
    table.write_text(table.read_text().replace("101,rock", "101,pop"))
    subprocess.run(["git", "commit", "-q", "-am", "x"], cwd=tmp_path / "repo", check=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})
    assert prepare.main(["emotify", "--git-dir", str(git_dir), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "track 101 is 'pop'" in err and "101-200 are rock" in err


def test_gtzan_mini_layout_and_a_folder_that_is_not_a_git_directory(tmp_path, capsys):
    repo = tmp_path / "repo"
    for genre in ("blues", "jazz", "rock"):
        for k in range(5):
            write_audio(repo / "genres" / genre / f"{genre}.{k:05d}.wav", music(0.5, seed=k))
    (repo / "genres" / "README.md").write_text("x")
    git_dir = _commit(repo)
    out = tmp_path / "gm"
    assert prepare.main(["gtzan-mini", "--git-dir", str(git_dir), "--out", str(out)]) == 0
    rows = _manifest(out / "manifest.csv")
    assert len(rows) == 15 and {r["label"] for r in rows} == {"blues", "jazz", "rock"}
    assert list(rows[0]) == ["path", "id", "label", "split"]
    for genre in ("blues", "jazz", "rock"):
        assert sorted(r["split"] for r in rows if r["label"] == genre) == ["test", "train", "train", "train", "val"]
    assert prepare.main(["gtzan-mini", "--git-dir", str(tmp_path), "--out", str(out)]) == 2
    assert "is not a git directory" in capsys.readouterr().err


def test_splits_are_stratified_seeded_and_keep_one_of_each_for_small_labels():
    labels = ["a"] * 20 + ["b"] * 3 + ["c"] * 2
    s0 = prepare.stratified_splits(labels, seed=0, val=0.15, test=0.15)
    assert s0 == prepare.stratified_splits(labels, seed=0, val=0.15, test=0.15)
    assert s0 != prepare.stratified_splits(labels, seed=1, val=0.15, test=0.15)
    assert [s0[:20].count(x) for x in ("train", "val", "test")] == [14, 3, 3]
    assert sorted(s0[20:23]) == ["test", "train", "val"]
    assert s0[23:] == ["train", "train"]  # too few clips to hold any out


def test_study_tables_put_the_baseline_first_and_say_the_load():
    def row(variant, val, test, baseline=False):
        return {"set": "gtzan-mini", "task": "genre", "spec": f"{variant}+mel:genre", "variant": variant,
                "settings": {}, "seconds": 120.0, "best_epoch": [3, 4, 5], "load": [1.5, 2.5], "baseline": baseline,
                "val": [{"genre.accuracy": v, "genre.macro_f1": v} for v in val],
                "test": [{"genre.accuracy": t, "genre.macro_f1": t} for t in test]}

    ref = {**row("textbook", [0.9], [0.55]), "spec": "LogisticRegression", "reference": True}
    text = study.tables([row("cnn", [0.5, 0.6, 0.7], [0.6] * 3), row("stats", [0.4] * 3, [0.5] * 3, baseline=True),
                         ref, row("lstm", [0.8] * 3, [0.4] * 3)])
    lines = [ln for ln in text.splitlines() if ln.startswith("| `") or ln.startswith("| L")]
    assert text.startswith("#### gtzan-mini: genre")
    assert "(baseline)" in lines[0] and lines[2].startswith("| `lstm") and lines[3].startswith("| `cnn")
    # the reference has no validation score (it was fitted on the validation clips) and comes second
    assert lines[1] == "| LogisticRegression (reference) | - | 0.550 | 0.550 | - | 2.0 min |"
    assert "load average during these rows: 1.5-2.5" in text


def test_study_skips_a_recipe_whose_components_are_not_installed(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "gm"
    folder.mkdir()
    (folder / "manifest.csv").write_text("path,label\n")
    monkeypatch.setattr(study, "RECIPES", {"ghost": study.Recipe("stats+no-such-feature:{task}")})
    assert study.main(["--set", f"gtzan-mini={folder}", "--recipes", "ghost", "--out", str(tmp_path / "s.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "skip gtzan-mini stats+no-such-feature:genre" in err and "no-such-feature" in err
    assert not (tmp_path / "s.jsonl").exists()
    with pytest.raises(SystemExit):
        study.main(["--set", f"emotify={tmp_path / 'nowhere'}", "--out", str(tmp_path / "s.jsonl")])


def test_the_textbook_reference_fits_on_train_and_val_and_scores_the_test_split():
    from bench.real import textbook
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((4, 30)) + k % 3 for k in range(60)]
    stats = np.stack([textbook.clip_statistics(a) for a in x])
    assert stats.shape == (60, 8) and np.allclose(stats[0, :4], x[0].mean(1)) and np.allclose(stats[0, 4:], x[0].std(1))
    labels = np.arange(60) % 3
    split = np.array(["train"] * 40 + ["val"] * 10 + ["test"] * 10)
    Z = {s: stats[split == s] for s in ("train", "val", "test")}
    y = {s: labels[split == s] for s in ("train", "val", "test")}
    scores = textbook.textbook_scores(Z, y, C=0.1, n_classes=3)
    assert scores["test"]["genre.accuracy"] == 1.0 and set(scores) == {"val", "test"}
    y["test"] = (y["test"] + 1) % 3  # every test label wrong: the score must say so
    assert textbook.textbook_scores(Z, y, C=0.1, n_classes=3)["test"]["genre.accuracy"] == 0.0


def test_study_writes_its_tables_between_the_markers_and_keeps_the_rest(tmp_path):
    page = tmp_path / "results.md"
    page.write_text("# R\n\nbefore\n<!-- real:begin -->\nold\n<!-- real:end -->\nafter\n")
    study.write_into(page, "#### new table\n")
    assert page.read_text() == "# R\n\nbefore\n<!-- real:begin -->\n#### new table\n<!-- real:end -->\nafter\n"
    page.write_text("no markers")
    with pytest.raises(SystemExit, match="real:begin"):
        study.write_into(page, "x")
