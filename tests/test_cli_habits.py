"""The command line's habits: no abbreviated options, help text as printed, a closed pipe is not an error, a
listing exits 0, every command takes a run-id prefix, and `zoo sweep` takes `zoo run`'s `--no-progress`."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from zoo.cli import build_parser, main
from zoo.workspace import Workspace


def _parsers(parser: argparse.ArgumentParser, prefix: str = "zoo"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def test_no_parser_abbreviates_an_option(capsys):
    loose = [name for name, p in _parsers(build_parser()) if p.allow_abbrev]
    assert loose == []
    assert main(["run", "lstm+chroma:genre", "--overfit", "2", "--no-track"]) == 2  # was --overfit-batches 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --overfit 2" in err and "did you mean --overfit-batches?" in err
    assert err.startswith("usage: zoo run")
    assert main(["data", "stats", "--lim", "3"]) == 2
    assert "unrecognized arguments: --lim 3" in capsys.readouterr().err
    assert main(["data", "stats", "--dat", "x"]) == 2  # in a sub-command's sub-command
    err = capsys.readouterr().err
    assert "unrecognized arguments: --dat x" in err and "did you mean --data?" in err and "usage: zoo data stats" in err


def test_help_texts_print_a_single_percent_sign():
    doubled = [name for name, p in _parsers(build_parser()) if "%%" in p.format_help()]
    assert doubled == []
    assert "95% interval" in dict(_parsers(build_parser()))["zoo reproduce"].format_help()


def test_a_reader_that_stops_reading_ends_the_command_quietly(zoo_env):
    code = "import sys; from zoo.cli import main; sys.exit(main(sys.argv[1:]))"
    for argv in (["list"], ["list", "--json"]):
        proc = subprocess.Popen([sys.executable, "-c", code, *argv], env=zoo_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        proc.stdout.close()  # `| head -0`: the reader is gone before the first line
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 141, err
        assert err == ""  # no word about ZOO_HOME, no "Exception ignored"


def test_sweep_takes_no_progress_as_run_does():
    args = build_parser().parse_args(["sweep", "lstm+chroma:genre", "--no-progress"])
    assert args.no_progress is True


def test_compare_sweep_takes_a_unique_prefix(zoo_env, capsys):
    c = MlflowClient(Workspace.from_env().tracking_uri)
    from zoo.tracking.mlflow.store import get_experiment
    exp = get_experiment(c, "habits-sweep", create=True).experiment_id
    sweep = c.create_run(exp, tags={"zoo.kind": "sweep", "zoo.sweep.metric": "val.genre.accuracy",
                                    "zoo.sweep.mode": "max"})
    c.log_param(sweep.info.run_id, "sweep.param.train.lr", "loguniform:1e-4:1e-2")
    trial = c.create_run(exp, tags={"mlflow.parentRunId": sweep.info.run_id, "zoo.sweep": sweep.info.run_id,
                                    "zoo.sweep.trial": "0"})
    c.log_metric(trial.info.run_id, "final.val.genre.accuracy", 0.75)
    c.set_terminated(trial.info.run_id)
    c.set_terminated(sweep.info.run_id)
    capsys.readouterr()
    assert main(["compare", "--sweep", sweep.info.run_id[:8]]) == 0, capsys.readouterr().err
    assert "0.75" in capsys.readouterr().out
    assert main(["compare", "--sweep", "0" * 31]) == 2
    assert "not a sweep" in capsys.readouterr().err


@pytest.mark.parametrize("check, code", [(False, 0), (True, 1)])
def test_a_listing_that_shows_a_broken_plugin_exits_0_and_check_fails(monkeypatch, capsys, check, code):
    from zoo.errors import PluginError
    from zoo.registry import Registry
    real = Registry.load

    def load(self, kind, name):
        if (kind, name) == ("feature", "chroma"):
            raise PluginError("plugin music-zoo-features[chroma] failed to import: ImportError: planted")
        return real(self, kind, name)

    monkeypatch.setattr(Registry, "load", load)
    assert main(["list", "feature", *(["--check"] if check else [])]) == code
    assert "BROKEN: plugin music-zoo-features[chroma]" in capsys.readouterr().out
