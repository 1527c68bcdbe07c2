"""``zoo reproduce lab``: the plan of lab recipes, and a short end-to-end reproduction with its report."""
from __future__ import annotations

import re

import pytest
from mlflow.tracking import MlflowClient

from datafixtures import write_kaggle
from zoo.cli import main
from zoo.errors import ConfigError
from zoo.lab.plan import check_scopes, kind_of, make_plan, settings_for
from zoo.recipes import Recipe, load_recipes
from zoo.registry import Registry

# Small backbones, so that a reproduction on the fixture takes seconds (each applies only to the
# recipes that use that backbone: --set lstm.* never reaches a CNN).
SMALL = ["--set", "lstm.hidden=8", "--set", "lstm.layers=1", "--set", "cnn.channels=4,8",
         "--set", "ast.depth=1", "--set", "ast.embed_dim=32", "--set", "ast.heads=2",
         "--set", "train.batch_size=8"]


# -- the plan ---------------------------------------------------------------------------------------
def test_the_plan_covers_every_lab_table_and_puts_a_transfer_source_first():
    recipes = load_recipes()
    steps = make_plan(recipes)
    names = [s.name for s in steps]
    lab = sorted(n for n, r in recipes.items() if r.group in ("lab", "baseline"))
    assert sorted(names) == lab  # every lab recipe once, and the baselines (tests/test_baseline.py)
    assert {kind_of(s.recipe) for s in steps} == {"baseline", "genre", "regression", "transfer", "multitask"}
    assert names.index("lab-ast-mel") < names.index("lab-transfer-ast-valence")
    only = make_plan(recipes, ["lab-transfer-*"])
    assert [(s.name, s.needed_by) for s in only][2:] == [("lab-ast-mel", ("lab-transfer-ast-valence",)),
                                                    ("lab-transfer-ast-valence", ())]
    both = make_plan(recipes, ["lab-lstm-chroma, lab-cnn-mel"])
    assert [s.name for s in both] == [n for n in names if n in ("baseline-genre", "lab-lstm-chroma", "lab-cnn-mel")]
    with pytest.raises(ConfigError, match="--only 'lab-lstm-chrome' matches no lab recipe"):
        make_plan(recipes, ["lab-lstm-chrome"])


def test_transfer_chains_are_checked_and_settings_reach_only_recipes_that_use_them():
    a = Recipe("a", "lstm+mel:genre", group="lab", transfer={"from": "b"})
    b = Recipe("b", "lstm+mel:genre", group="lab", transfer={"from": "a"})
    with pytest.raises(ConfigError, match="a -> b -> a"):
        make_plan({"a": a, "b": b})
    by_run = Recipe("c", "lstm+mel:valence", group="lab", transfer={"from": "0123abcd"})
    assert [s.name for s in make_plan({"c": by_run})] == ["c"]  # a run id, not a recipe: nothing to add
    extra = {"lstm": {"hidden": "8"}, "cnn": {"channels": "4"}, "train": {"lr": "0.1"}, "mel": {"n_mels": "64"}}
    got = settings_for(Recipe("x", "lstm+chroma:genre"), extra)
    assert got == {"lstm": {"hidden": "8"}, "train": {"lr": "0.1"}}
    registry = Registry()
    check_scopes({"ast": {"depth": "1"}, "train": {"lr": "0.1"}}, registry)  # installed, even if unused
    check_scopes({"cnn-wide": {"dropout": "0.2"}}, registry)  # a variant (ComponentSpec.variants) is a scope too
    with pytest.raises(ConfigError, match="'lsmt' is neither a general scope.*did you mean 'lstm'"):
        check_scopes({"lsmt": {"hidden": "8"}}, registry)


# -- end to end --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    root = tmp_path_factory.mktemp("kaggle-lab")
    write_kaggle(root, train_per_genre=5, test_per_genre=2, multitask_train=16)
    return root


def test_reproduce_writes_one_report_with_lab_and_zoo_numbers_and_reports_failures(kaggle, tmp_path, capsys, zoo_env,
                                                                                   workspace):
    out = tmp_path / "report" / "lab.md"
    code = main(["reproduce", "lab", "--data", str(kaggle), "--epochs", "1", "--seeds", "2",
                 "--only", "lab-lstm-chroma,lab-lstm-valence,lab-transfer-*", "--only", "lab-cnn-energy",
                 "--experiment", "reproduce-test", "--out", str(out), *SMALL, "--set", "cnn.kernels=4"])
    printed = capsys.readouterr().out
    assert code == 1  # the CNN was given an even kernel on purpose: that experiment fails, the rest run
    # a duration reads "8.6 s" or, past a minute (a busy machine), "1 min 05 s"
    took = r"(?:\d+ min \d\d s|[\d.]+ s)"
    assert re.search(rf"\[3/7\] lab-lstm-chroma: done in {took} \(elapsed {took}\); genre.accuracy", printed)
    assert "[4/7] lab-cnn-energy: FAILED" in printed and "must all be odd" in printed  # catalogue order
    assert "[6/7] lab-ast-mel: ast+mel:genre (needed by lab-transfer-ast-valence)" in printed
    text = out.read_text()
    recipes = load_recipes()
    # The lab's numbers, next to the zoo's (mean ± half-width over 2 seeds).
    chroma_row = next(line for line in text.splitlines() if line.startswith("| lab-lstm-chroma |"))
    ref = recipes["lab-lstm-chroma"].reference
    cells = [c.strip() for c in chroma_row.strip("|").split("|")]
    assert cells[4] == f"{ref['accuracy']:g}" and cells[6] == f"{ref['macro_f1']:g}"
    assert re.fullmatch(r"\d\.\d{3} ± \d\.\d{3}", cells[3]), cells
    valence_row = next(line for line in text.splitlines() if "| lab-lstm-valence |" in line)
    assert f"| {recipes['lab-lstm-valence'].reference['spearman']:g} |" in valence_row
    assert "| baseline-genre | `stats+mel+chroma:genre` | baseline |" in text  # the baselines run first (#12)
    assert "## Failed experiments" in text and "lab-cnn-energy" in text and "must all be odd" in text
    assert f"kaggle data at {kaggle}" in text  # the data description
    # The run ids in the report are the runs in the store, one parent and two seeds per experiment.
    assert f"in `{workspace.tracking_uri}`" in text  # the store the runs went to
    client = MlflowClient(workspace.tracking_uri)
    runs_row = next(line for line in text.splitlines() if line.startswith("| lab-lstm-chroma | ran"))
    ids = re.findall(r"`([0-9a-f]{32})`", runs_row)
    assert len(ids) == 3
    parent = client.get_run(ids[0])
    assert parent.data.tags["zoo.recipe"] == "lab-lstm-chroma" and parent.data.tags["zoo.kind"] == "seeds"
    assert {client.get_run(i).data.tags["mlflow.parentRunId"] for i in ids[1:]} == {ids[0]}
    # The transfer started from the genre AST trained in the same reproduction (its first seed).
    ast_row = next(line for line in text.splitlines() if line.startswith("| lab-ast-mel | ran"))
    ast_seed0 = re.findall(r"`([0-9a-f]{32})`", ast_row)[1]
    transfer_row = next(line for line in text.splitlines() if line.startswith("| lab-transfer-ast-valence |"))
    assert f"| lab-ast-mel (run {ast_seed0}) | none | valence |" in transfer_row
    moved_row = next(line for line in text.splitlines() if line.startswith("| lab-transfer-ast-valence | ran"))
    for run_id in re.findall(r"`([0-9a-f]{32})`", moved_row)[1:]:
        assert client.get_run(run_id).data.tags["zoo.transfer.source_run"] == ast_seed0
    # A latent map of the genre model, next to the report, and logged to its first seed's run.
    png = re.search(r"!\[lab-lstm-chroma pca\]\(([^)]+)\)", text).group(1)
    assert (out.parent / png).is_file()
    logged = [f.path for f in client.list_artifacts(ids[1], "embeddings")]
    assert "embeddings/pca-genre-test.png" in logged and "embeddings/pca-genre-test.csv" in logged


def test_reproduce_refuses_bad_options_before_training(tmp_path, workspace, zoo_env):
    with pytest.raises(ConfigError, match="--seeds 0"):
        from zoo.lab.reproduce import Options, reproduce
        reproduce(Options(seeds=0, out=str(tmp_path / "r.md")), workspace=workspace)
    assert main(["reproduce", "lab", "--maps", "umpa", "--out", str(tmp_path / "r.md")]) == 2
    assert not (tmp_path / "r.md").exists()
