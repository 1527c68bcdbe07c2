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
    ({"epochs": 0}, "epochs 0"), ({"epochs": "-1"}, "epochs -1"), ({"batch_size": "0"}, "batch_size 0"),
    ({"lr": "0"}, "lr 0.0"), ({"lr": "nan"}, "lr nan"), ({"lr": "-1e-3"}, "lr -0.001"),
    ({"patience": "-1"}, "patience -1"), ({"weight_decay": "-0.1"}, "weight_decay -0.1"),
    ({"grad_clip": "inf"}, "grad_clip inf"), ({"warmup": "1"}, "warmup 1.0"),
    ({"eval_batch_size": "0"}, "eval_batch_size 0"), ({"threads": "-1"}, "threads -1"),
    ({"overfit_epochs": "0"}, "overfit_epochs 0"), ({"refresh_steps": "0"}, "refresh_steps 0"),
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
