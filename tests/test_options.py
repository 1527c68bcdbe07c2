"""Every numeric option and ``train.*`` setting is checked when it is parsed, with a one-line error."""
from __future__ import annotations

import pytest

from zoo.cli import main
from zoo.engine.trainconfig import train_config
from zoo.errors import ConfigError

BAD_FLAGS = [
    (["run", "cnn+mel:genre", "--epochs", "0"], "--epochs"),
    (["run", "cnn+mel:genre", "--epochs", "-1"], "--epochs"),
    (["run", "cnn+mel:genre", "--batch-size", "0"], "--batch-size"),
    (["run", "cnn+mel:genre", "--lr", "0"], "--lr"),
    (["run", "cnn+mel:genre", "--lr", "-0.1"], "--lr"),
    (["run", "cnn+mel:genre", "--lr", "nan"], "--lr"),
    (["run", "cnn+mel:genre", "--lr", "inf"], "--lr"),
    (["run", "cnn+mel:genre", "--patience", "-1"], "--patience"),
    (["run", "cnn+mel:genre", "--limit", "0"], "--limit"),
    (["run", "cnn+mel:genre", "--seeds", "0"], "--seeds"),
    (["run", "cnn+mel:genre", "--seed", "-3"], "--seed"),
    (["run", "cnn+mel:genre", "--workers", "0"], "--workers"),
    (["run", "cnn+mel:genre", "--overfit-batches", "-2"], "--overfit-batches"),
    (["run", "cnn+mel:genre", "--epochs", "two"], "--epochs"),
    (["reproduce", "lab", "--seeds", "0"], "--seeds"),
    (["predict", "some-model", "x.wav", "--top-k", "0"], "--top-k"),
    (["predict", "some-model", "x.wav", "--window-seconds", "0"], "--window-seconds"),
    (["ui", "--port", "70000"], "--port"),
]


@pytest.mark.parametrize("argv, flag", BAD_FLAGS, ids=[" ".join(a[2:] or a) for a, _ in BAD_FLAGS])
def test_a_bad_numeric_flag_is_refused_at_parse_time_in_one_line(argv, flag, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert flag in err[-1] and "Traceback" not in "\n".join(err)


BAD_SETTINGS = [
    ({"epochs": 0}, "epochs=0"), ({"epochs": "-1"}, "epochs=-1"), ({"batch_size": "0"}, "batch_size=0"),
    ({"lr": "0"}, "lr=0.0"), ({"lr": "nan"}, "lr=nan"), ({"lr": "-1e-3"}, "lr=-0.001"),
    ({"patience": "-1"}, "patience=-1"), ({"weight_decay": "-0.1"}, "weight_decay=-0.1"),
    ({"grad_clip": "inf"}, "grad_clip=inf"), ({"warmup": "1"}, "warmup=1.0"),
    ({"eval_batch_size": "0"}, "eval_batch_size=0"), ({"threads": "-1"}, "threads=-1"),
    ({"overfit_epochs": "0"}, "overfit_epochs=0"), ({"refresh_steps": "0"}, "refresh_steps=0"),
]


@pytest.mark.parametrize("values, said", BAD_SETTINGS, ids=[str(v) for v, _ in BAD_SETTINGS])
def test_a_bad_train_setting_is_refused_when_the_config_is_made(values, said):
    with pytest.raises(ConfigError) as info:
        train_config(values)
    text = str(info.value)
    assert said in text and "\n" not in text and "--set train." in text


def test_good_train_settings_pass_unchanged():
    config = train_config({"epochs": "3", "lr": "0.01", "patience": "0", "warmup": "0"})
    assert (config.epochs, config.lr, config.patience, config.warmup) == (3, 0.01, 0, 0.0)


# -- one declaration drives the command line and the config file ------------------------------
def _zoo_run_parser():
    import argparse

    from zoo.cli import run_cmd
    root = argparse.ArgumentParser()
    run_cmd.register(root.add_subparsers())
    return root._subparsers._group_actions[0].choices["run"]


def test_every_declared_option_is_a_zoo_run_option_with_its_help_and_a_config_key():
    from zoo.config import options
    from zoo.engine.request import DataRequest, SeedPlan
    from zoo.engine.runconfig import DATA_FIELDS
    from zoo.engine.trainconfig import TrainConfig
    actions = {a.option_strings[0]: a for a in _zoo_run_parser()._actions if a.option_strings}
    declared = {**options(DataRequest), **options(TrainConfig), **options(SeedPlan)}
    for name, option in declared.items():
        if option.flag is None:
            continue
        assert option.flag in actions, f"{name}: {option.flag} is not a zoo run option"
        assert actions[option.flag].help == option.help and actions[option.flag].dest == option.dest
    assert set(DATA_FIELDS) == set(options(DataRequest))  # the data: keys are the declared fields, data.seed too
    assert actions["--precision"].choices == ("auto", "fp32", "bf16", "fp16")  # from the field's Literal


def test_zoo_sweep_takes_the_training_options_but_the_overfit_check_precision_and_seeds():
    import argparse

    from zoo.cli import sweep_cmd
    root = argparse.ArgumentParser()
    sweep_cmd.register(root.add_subparsers())
    flags = {s for a in root._subparsers._group_actions[0].choices["sweep"]._actions for s in a.option_strings}
    assert {"--epochs", "--lr", "--limit", "--data", "--device"} <= flags
    assert not {"--overfit-batches", "--precision", "--seeds"} & flags and "--seed" in flags


def test_a_field_declared_with_an_option_is_checked_alike_on_the_command_line_and_in_a_config_file(tmp_path, capsys):
    from zoo.engine.runconfig import checked_values
    with pytest.raises(ConfigError) as info:
        checked_values({"spec": "lstm+chroma:genre", "data": {"min_class_clips": "-1"}})
    assert str(info.value) == "data.min_class_clips: -1 is out of range: give a whole number >= 0 (as --min-class-clips)"
    assert main(["run", "lstm+chroma:genre", "--min-class-clips", "-1", "--print-config"]) == 2
    assert "-1 is out of range: give a whole number >= 0" in capsys.readouterr().err
    assert checked_values({"spec": "x:y", "data": {"skip_bad": "yes", "max_seconds": "12"}})["data"] == {
        "skip_bad": True, "max_seconds": 12.0}


def test_a_train_options_range_is_the_fields_declared_one_on_the_command_line_and_in_the_config():
    from zoo.bounds import bounds
    from zoo.config import options
    from zoo.engine.trainconfig import TrainConfig, option_check
    declared = bounds(TrainConfig)
    assert {"epochs", "batch_size", "lr", "patience", "overfit_batches", "warmup", "mixup",
            "crops_per_clip"} <= set(declared)
    flagged = {name for name, o in options(TrainConfig).items() if name in declared}
    assert flagged == {"epochs", "batch_size", "lr", "patience", "overfit_batches"}
    for name in flagged:
        b = declared[name]
        outside = b.ge - 1 if b.ge is not None else b.gt  # just below the lowest value allowed
        with pytest.raises(ConfigError, match="is out of range"):
            option_check(name)(str(outside))
        with pytest.raises(ConfigError, match=rf"^train: {name}={outside!r} must be .*--set train\.{name}="):
            TrainConfig(**{name: outside})
        inside = b.ge if b.ge is not None else b.gt + 1
        assert option_check(name)(str(inside)) == inside and getattr(TrainConfig(**{name: inside}), name) == inside
