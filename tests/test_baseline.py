"""The baseline in the lab: `zoo reproduce lab` plans it first and every report table shows it."""
from __future__ import annotations

from zoo.lab.plan import Step, kind_of, make_plan
from zoo.lab.report import genre_section, multitask_section, regression_section, transfer_section
from zoo.lab.reproduce import Outcome
from zoo.recipes import Recipe, load_recipes


def test_the_lab_plan_runs_the_baselines_first_for_the_tasks_it_measures():
    recipes = load_recipes()
    steps = make_plan(recipes)
    names = [s.name for s in steps]
    assert names[:2] == ["baseline-genre", "baseline-emotion"]
    assert kind_of(recipes["baseline-genre"]) == "baseline"
    assert "lab-lstm-chroma" in steps[0].needed_by
    genre_only = make_plan(recipes, ["lab-lstm-chroma"])
    assert [s.name for s in genre_only] == ["baseline-genre", "lab-lstm-chroma"]  # no emotion task: no emotion baseline
    assert make_plan({"c": Recipe("c", "lstm+mel:genre", group="lab")})[0].name == "c"  # no baseline in the catalogue


def _outcome(name, spec, test, group="lab", transfer=None, reference=None):
    return Outcome(Step(Recipe(name, spec, group=group, transfer=transfer or {}, reference=reference or {})),
                   ok=True, test=test)


def test_every_report_table_shows_the_baseline_row_or_column():
    outcomes = [
        _outcome("baseline-genre", "stats+mel+chroma:genre", [{"genre.accuracy": 0.8}, {"genre.accuracy": 0.78}],
                 group="baseline"),
        _outcome("baseline-emotion", "stats+mel+chroma:valence,energy", [{"valence.spearman": 0.61,
                                                                          "energy.spearman": 0.83}], group="baseline"),
        _outcome("lab-lstm-chroma", "lstm+chroma:genre", [{"genre.accuracy": 0.5}], reference={"accuracy": 0.4}),
        _outcome("lab-lstm-valence", "lstm+mel:valence", [{"valence.spearman": 0.4}], reference={"spearman": 0.2}),
        _outcome("lab-multi", "lstm+mel:valence,energy", [{"valence.spearman": 0.3, "energy.spearman": 0.7}]),
        _outcome("lab-transfer", "lstm+mel:valence", [{"valence.spearman": 0.5}], transfer={"from": "lab-lstm-chroma"}),
    ]
    genre = "\n".join(genre_section(outcomes))
    assert "| baseline-genre | `stats+mel+chroma:genre` | baseline | 0.790" in genre
    regression = "\n".join(regression_section(outcomes))
    assert "| valence | stats (baseline) | baseline-emotion | " in regression
    assert regression.index("baseline-emotion") < regression.index("lab-lstm-valence")
    for section in (multitask_section(outcomes), transfer_section(outcomes)):
        text = "\n".join(section)
        assert "Spearman baseline (zoo)" in text
        assert text.splitlines()[-2].endswith("| 0.610 |") or "| 0.610 |" in text
