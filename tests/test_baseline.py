"""The baseline in the lab: `zoo reproduce lab` plans it first and every report table shows it."""
from __future__ import annotations

import json

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


# -- zoo compare --baseline ------------------------------------------------------------------------------
EMBEDDED = {"zoo.data.source": "embedded", "zoo.data.layout": "", "zoo.data.settings": "{}", "zoo.data.limit": "",
            "zoo.data.seed": "0", "zoo.data.skip_bad": "false"}
SPLITS = "embedded set -> 300 clips at frames rate (train 180 / val 60 / test 60)"


def _row(spec, metrics, *, fingerprint="fp-x", source=EMBEDDED, dataset=SPLITS):
    from zoo.engine.intervals import t_interval
    return {"spec": spec, "dataset": dataset, "fingerprint": fingerprint, "group": spec, "run_ids": [spec + "-run"],
            "data_source": dict(source), "metrics": {k: t_interval(v) for k, v in metrics.items()}}


def test_compare_marks_rows_whose_interval_does_not_clear_the_baseline():
    from zoo.tracking.mlflow.compare import baseline_text, format_baseline_notes, mark_baselines
    base = _row("stats+mel+chroma:genre", {"test.genre.accuracy": [0.78, 0.80], "test.genre.macro_f1": [0.7, 0.7]},
                fingerprint="fp-stats")
    clear = _row("cnn+mel:genre", {"test.genre.accuracy": [0.85, 0.86, 0.87], "test.genre.macro_f1": [0.1, 0.1]},
                 fingerprint="fp-cnn")
    # Its mean (0.82) is above the baseline's 0.79 but its interval's lower end is not.
    wide = _row("lstm+mel:genre", {"test.genre.accuracy": [0.70, 0.94]}, fingerprint="fp-lstm")
    one_seed = _row("ast+mel:genre", {"test.genre.accuracy": [0.80]}, fingerprint="fp-ast")
    elsewhere = _row("cnn+mel:genre", {"test.genre.accuracy": [0.9]}, fingerprint="fp-other",
                     source=dict(EMBEDDED, **{"zoo.data.settings": '{"balance": "lab"}', "zoo.data.limit": "120"}))
    rows = [clear, wide, one_seed, elsewhere, base]
    mark_baselines(rows)
    assert base["baseline"]["is_baseline"] and baseline_text(base) == "(baseline B1)"
    vs = clear["baseline"]["metrics"]["test.genre.accuracy"]  # the task's key metric only, not macro F1
    assert list(clear["baseline"]["metrics"]) == ["test.genre.accuracy"]
    assert vs["spec"] == "stats+mel+chroma:genre" and abs(vs["mean"] - 0.79) < 1e-9 and vs["beats"]
    assert not clear["baseline"]["below"] and baseline_text(clear) == "genre.accuracy 0.790 (B1)"
    assert wide["baseline"]["below"] and baseline_text(wide) == "genre.accuracy 0.790 (B1) NOT ABOVE"
    assert not one_seed["baseline"]["below"]  # one seed: its mean, 0.80 > 0.79
    assert elsewhere["baseline"]["missing"] == ["test.genre.accuracy"] and baseline_text(elsewhere) == "genre.accuracy none"
    assert elsewhere["baseline"]["hint"] == ("no baseline for a --limit 120 run: a baseline is a full run on all "
                                             "the clips, so compare this model's full run (without --limit) with: "
                                             "zoo run baseline-genre --set dataset.balance=lab")
    notes = format_baseline_notes(rows)
    assert "NOT ABOVE" in notes and notes.count("zoo run baseline-genre") == 1
    assert "  B1: stats+mel+chroma:genre, 2 seeds, run stats+mel+chroma:genre-run" in notes


def test_errors_must_be_lower_than_the_baselines_and_each_task_is_held_to_its_own():
    from zoo.tracking.mlflow.compare import mark_baselines
    base = _row("stats+mel+chroma:valence,energy", {"test.valence.spearman": [0.6], "test.valence.mae": [0.1],
                                                    "test.energy.spearman": [0.8]})
    row = _row("cnn+mel:valence,energy,danceability",
               {"test.valence.spearman": [0.7], "test.energy.spearman": [0.7], "test.danceability.spearman": [0.5]})
    mae = _row("lstm+mel:valence", {"test.valence.mae": [0.2, 0.21]})
    folder = _row("lstm+mel:valence", {"test.valence.spearman": [0.2]}, fingerprint="fp-f",
                  source=dict(EMBEDDED, **{"zoo.data.source": "/music/my songs", "zoo.data.layout": "folder"}))
    mark_baselines([row, mae, folder], [base])
    marks = row["baseline"]
    assert marks["metrics"]["test.valence.spearman"]["beats"] and not marks["metrics"]["test.energy.spearman"]["beats"]
    assert marks["below"] and marks["missing"] == ["test.danceability.spearman"]
    assert marks["hint"] == "no baseline run on this data: zoo run baseline-emotion"
    assert mae["baseline"]["below"]  # an mae of 0.2 is worse than the baseline's 0.1
    assert folder["baseline"]["hint"] == ("no baseline run on this data: zoo run baseline-emotion "
                                          "--data '/music/my songs' --layout folder")


def test_zoo_compare_baseline_prints_the_column_and_json(zoo_env, workspace, capsys):
    import json

    from zoo.cli import main
    from zoo.tracking.mlflow.store import client, get_experiment
    c = client(workspace.tracking_uri)
    exp = get_experiment(c, "baseline-cmp", create=True)
    for spec, values, fingerprint in (("stats+mel+chroma:genre", [0.8, 0.8], "fp-a"), ("cnn+mel:genre", [0.6, 0.7], "fp-b")):
        for seed, value in enumerate(values):
            run = c.create_run(exp.experiment_id, tags={
                "zoo.kind": "run", "zoo.spec": spec, "zoo.fingerprint": fingerprint, "zoo.dataset": SPLITS,
                "zoo.group": spec, "zoo.key_metrics": "test.genre.accuracy,test.genre.macro_f1", **EMBEDDED})
            c.log_param(run.info.run_id, "seed", str(seed))
            c.log_metric(run.info.run_id, "test.genre.accuracy", value)
            c.set_terminated(run.info.run_id, "FINISHED")
    assert main(["compare", "--experiment", "baseline-cmp", "--baseline", "--spec", "cnn+*"]) == 0
    out = capsys.readouterr().out
    assert "vs baseline" in out and "genre.accuracy 0.800 (B1) NOT ABOVE" in out and "stats+" not in out.split("\n\n")[0]
    assert "B1: stats+mel+chroma:genre, 2 seeds, runs " in out  # the baseline, named
    assert main(["compare", "--experiment", "baseline-cmp", "--baseline", "--json"]) == 0
    rows = {r["spec"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["cnn+mel:genre"]["baseline"]["below"] is True
    assert rows["stats+mel+chroma:genre"]["baseline"]["is_baseline"] is True
    assert main(["compare", "--experiment", "baseline-cmp"]) == 0
    assert "vs baseline" not in capsys.readouterr().out


def test_the_baseline_is_the_latest_run_whose_heads_were_fitted_to_convergence():
    from zoo.tracking.mlflow.compare import mark_baselines
    row = _row("cnn+mel:genre", {"test.genre.accuracy": [0.85]}, fingerprint="fp-cnn")
    sgd = _row("stats+mel:genre", {"test.genre.accuracy": [0.70]}, fingerprint="fp-sgd")  # latest (rows come latest first)
    fitted = _row("stats+mel:genre", {"test.genre.accuracy": [0.88]}, fingerprint="fp-fit")
    fitted["params"] = {"fit.method": "closed-form", "fit.genre.C": "0.1"}
    fitted["group"] = "fitted"
    for r in (row, sgd):
        r["params"] = {}
    mark_baselines([row, sgd, fitted])
    vs = row["baseline"]["metrics"]["test.genre.accuracy"]
    assert vs["group"] == "fitted" and abs(vs["mean"] - 0.88) < 1e-9 and row["baseline"]["below"]
    mark_baselines([row, sgd])  # no fitted run on this data: the latest one all the same
    assert abs(row["baseline"]["metrics"]["test.genre.accuracy"]["mean"] - 0.70) < 1e-9


def test_a_sweep_trial_or_a_limit_run_is_never_the_baseline_and_none_is_said(zoo_env, workspace, capsys):
    """The 2-epoch sweep trial with accuracy 0.000 once made every row beat the baseline."""
    from zoo.cli import main
    from zoo.tracking.mlflow.store import client, get_experiment
    c = client(workspace.tracking_uri)
    exp = get_experiment(c, "baseline-pick", create=True)

    def tracked(spec, value, *, tags=(), source=EMBEDDED, fingerprint="fp"):
        run = c.create_run(exp.experiment_id, tags={
            "zoo.kind": "run", "zoo.spec": spec, "zoo.fingerprint": fingerprint, "zoo.dataset": SPLITS,
            "zoo.group": f"{spec}-{fingerprint}-{value}", "zoo.key_metrics": "test.genre.accuracy", **source,
            **dict(tags)})
        c.log_param(run.info.run_id, "seed", "0")
        c.log_metric(run.info.run_id, "test.genre.accuracy", value)
        c.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    full = tracked("stats+mel:genre", 0.80, fingerprint="fp-stats")
    tracked("stats+mel:genre", 0.60, fingerprint="fp-stats-limit",
            source=dict(EMBEDDED, **{"zoo.data.limit": "60"}))
    tracked("stats+mel:genre", 0.0, fingerprint="fp-stats", tags={"zoo.sweep": "ab" * 16, "zoo.sweep.trial": "3"})
    tracked("cnn+mel:genre", 0.70, fingerprint="fp-cnn")  # the latest: the sweep trial and the limit run came after
    capsys.readouterr()
    assert main(["compare", "--experiment", "baseline-pick", "--baseline", "--json"]) == 0
    rows = {(r["spec"], r["metrics"]["test.genre.accuracy"]["mean"]): r for r in json.loads(capsys.readouterr().out)}
    vs = rows[("cnn+mel:genre", 0.70)]["baseline"]
    assert vs["metrics"]["test.genre.accuracy"]["run_ids"] == [full] and vs["below"]
    assert rows[("stats+mel:genre", 0.0)]["baseline"]["not_baseline"] == "a trial of sweep abababab"
    assert rows[("stats+mel:genre", 0.60)]["baseline"]["not_baseline"] == "a --limit 60 run"
    assert main(["compare", "--experiment", "baseline-pick", "--baseline"]) == 0
    out = capsys.readouterr().out
    assert "genre.accuracy 0.800 (B1) NOT ABOVE" in out and f"B1: stats+mel:genre, 1 seed, run {full}" in out
    assert "(not a baseline: a trial of sweep abababab)" in out and "(not a baseline: a --limit 60 run)" in out

    limited = tracked("cnn+mel:genre", 0.9, fingerprint="fp-cnn-limit", source=dict(EMBEDDED, **{"zoo.data.limit": "60"}))
    assert main(["compare", "--experiment", "baseline-pick", "--baseline", "--spec", "cnn+*"]) == 0
    out = capsys.readouterr().out
    assert "genre.accuracy none" in out and "no baseline for a --limit 60 run" in out, out
    assert limited[:8] in out  # the table shows run ids by their first 8 characters (--wide: in full)


def test_with_no_baseline_anywhere_the_notes_say_so(zoo_env, workspace, capsys):
    from zoo.tracking.mlflow.compare import format_baseline_notes, mark_baselines
    row = _row("cnn+mel:genre", {"test.genre.accuracy": [0.85]}, fingerprint="fp-cnn")
    mark_baselines([row])
    notes = format_baseline_notes([row])
    assert "no row has a baseline" in notes and "zoo run baseline-genre" in notes
