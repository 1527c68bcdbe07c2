"""Run requests and reporters: a request is checked when it is made; the runner reports through callbacks only."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import zoo
from zoo import api
from enginefixtures import TINY_LSTM, separable
from zoo.engine.reporting import ConsoleReporter, QuietReporter
from zoo.engine.request import DataRequest, RunRequest, SeedPlan
from zoo.engine.runner import run
from zoo.engine.trainconfig import TrainConfig
from zoo.errors import ConfigError
from zoo.registry import Registry

FAST = TrainConfig(epochs=2, batch_size=16, lr=1e-2, patience=0, warmup=0.0)
ENGINE = Path(__file__).resolve().parents[1] / "zoo" / "engine"


@pytest.mark.parametrize("make, message", [
    (lambda: SeedPlan(count=0), r"^seeds: count=0 must be a whole number at least 1 \(K trains K models with seeds "
                                r"seed\.\.seed\+K-1\); set it with --seeds K$"),
    (lambda: SeedPlan(first=-1), r"^seeds: first=-1 must be a whole number in 0\.\.4294967295; set it with --seed$"),
    (lambda: SeedPlan(count=True), "count=True must be a whole number at least 1"),
    (lambda: DataRequest(limit=0), r"^data: limit=0 must be a whole number at least 1 \(at most N clips, or None for "
                                   r"all\); set it with --limit N$"),
    (lambda: DataRequest(limit="3"), "limit='3' must be a whole number at least 1"),
    (lambda: DataRequest(workers=0), "workers=0 must be a whole number at least 1 .*; set it with --workers N"),
    (lambda: DataRequest(seed=-1), "seed=-1 must be a whole number in 0..4294967295 .*config file's data section"),
    (lambda: DataRequest(max_seconds=-1), r"max_seconds=-1 must be at least 0 \(the longest audio .*--max-seconds S"),
    (lambda: DataRequest(min_class_clips=-1), "min_class_clips=-1 must be a whole number at least 0"),
    (lambda: DataRequest(prepared=separable(3), limit=10, layout="kaggle"),
     "prepared data is used as it is, so layout, limit would be ignored"),
    (lambda: RunRequest(""), "an empty spec"),
    (lambda: RunRequest(3), "spec 3: give a spec string"),
    (lambda: RunRequest("lstm+chroma:genre", settings={"train": {"lr": 1}}), "train=TrainConfig"),
    (lambda: RunRequest("lstm+chroma:genre", settings={"dataset": {"size": "tiny"}}), "DataRequest\\(settings="),
    (lambda: RunRequest("lstm+chroma:genre", seeds=3), "give a SeedPlan"),
    (lambda: RunRequest("lstm+chroma:genre", train={"epochs": 3}), "give a zoo.engine.trainconfig.TrainConfig"),
    (lambda: RunRequest("lstm+chroma:genre", data=42), "data 42: give a DataRequest"),
])
def test_a_bad_request_is_refused_when_it_is_made(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_a_request_takes_a_folder_or_prepared_data_as_its_data_and_is_frozen(tmp_path):
    prepared = separable(3)
    assert RunRequest("lstm+chroma:genre", data=prepared).data == DataRequest(prepared=prepared)
    request = RunRequest("lstm+chroma:genre", data=str(tmp_path), seeds=SeedPlan(first=4, count=2))
    assert request.data.path == str(tmp_path) and request.seeds.seeds == [4, 5]
    assert request.data_seed == 4  # the first seed draws any limit subset, unless the data say otherwise
    assert request.replace(data=DataRequest(seed=9)).data_seed == 9
    with pytest.raises(AttributeError):
        request.spec = "cnn+mel:genre"
    built = api.compose("lstm+chroma:genre", settings=TINY_LSTM)
    with pytest.raises(ConfigError, match="apply to a spec string"):
        RunRequest(built, settings=TINY_LSTM)


def test_zoo_train_takes_a_request_and_refuses_its_options_given_twice(tmp_path):
    request = RunRequest("lstm+chroma:genre", settings=TINY_LSTM, train=FAST, data=separable(5), out_dir=tmp_path)
    res = zoo.train(request, track=False, progress=False)
    assert res.spec == "lstm+chroma:genre" and len(res.history) == 2
    with pytest.raises(ConfigError, match=r"zoo.train\(request, epochs=..., seeds=...\): a RunRequest already says"):
        zoo.train(request, epochs=3, seeds=2, track=False)


class Recorder:
    """A reporter that keeps every callback."""

    progress = False

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, *args))


def test_the_runner_reports_each_step_through_the_reporter_and_prints_nothing(tmp_path, capsys):
    reporter = Recorder()
    request = RunRequest("lstm+chroma:genre", settings=TINY_LSTM, train=FAST, data=separable(5), out_dir=tmp_path,
                         seeds=SeedPlan(count=2))
    res = run(request, registry=Registry(), reporter=reporter)
    names = [c[0] for c in reporter.calls]
    assert names == ["on_data", "on_device", "on_model", "on_seed_end", "on_model", "on_seed_end", "on_run_end"]
    assert reporter.calls[2][1:] == ("lstm+chroma:genre", 0, reporter.calls[2][3])
    assert [c[1] for c in reporter.calls if c[0] == "on_seed_end"] == res.results
    assert reporter.calls[-1][1] is res
    assert capsys.readouterr().out == ""


def test_the_console_reporter_says_what_zoo_run_says():
    lines = []
    prepared = separable(5)
    prepared.skipped = [(f"bad-{i}.wav", "digital silence") for i in range(12)]
    reporter = ConsoleReporter(lines.append, progress=False)
    reporter.on_data(prepared)
    reporter.on_device("cpu (fp32, 1 thread)")
    reporter.on_model("lstm+chroma:genre", 3, 12345)
    reporter.on_warning("the pyfunc model could not be logged")
    assert lines[0] == f"data: {prepared.description}"
    assert lines[1] == "clips: 15 (train 9, val 3, test 3); frames rate, 12 bins; 3 classes"
    assert lines[2] == "skipped 12 clip(s) (--skip-bad); listed in reports/skipped.txt:"
    assert lines[3] == "  bad-0.wav: digital silence" and lines[13] == "  ... and 2 more"
    assert lines[14:] == ["device: cpu (fp32, 1 thread)", "model: lstm+chroma:genre (seed 3), 12,345 trainable parameters",
                          "warning: the pyfunc model could not be logged"]


def test_the_quiet_reporter_turns_warnings_into_python_warnings():
    with pytest.warns(UserWarning, match="disk full"):
        QuietReporter().on_warning("disk full")


def test_the_engine_never_prints():
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        if path.name == "reporting.py":  # the console reporter is where printing lives
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
