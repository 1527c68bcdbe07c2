"""train.precision: bf16 on a CPU with native bf16 for backbones that declare the gain, channels-last
weights where declared, fp32 elsewhere; evaluation and prediction follow what training ran in.

The processor's flags are replaced in most tests, so they mean the same on any machine (bf16
autocast runs on every CPU, emulated where the processor lacks it; only its speed differs)."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

import zoo
from zoo import api
from enginefixtures import separable
from zoo.engine import device as device_module
from zoo.engine.device import DeviceChoice, for_model, native_cpu_bf16, pick_device, resolve_precision
from zoo.engine.trainconfig import train_config
from zoo.errors import ConfigError

CPU = DeviceChoice(torch.device("cpu"))
SMALL_CNN = {"backbone": {"channels": (4, 8), "kernels": (3,)},
             "train": {"batch_size": 8, "lr": 0.01, "patience": 0, "warmup": 0.0, "crop_frames": 0,
                       "mixup": 0.0, "time_masks": 0, "freq_masks": 0}}


@pytest.fixture
def native(monkeypatch):
    """Set what the processor's flags say: ``native("AVX512-BF16")`` or ``native("")``."""
    def set_to(value: str) -> None:
        monkeypatch.setattr(device_module, "native_cpu_bf16", lambda: value)
    return set_to


def test_the_flags_decide_native_bf16(monkeypatch):
    for flags, expected in (({"avx512f", "avx512_bf16"}, "AVX512-BF16"), ({"amx_bf16", "amx_tile"}, "AMX-BF16"),
                            ({"fp", "asimd", "bf16"}, "ARM-BF16"), ({"avx2", "avx512f"}, "")):
        monkeypatch.setattr(device_module, "_cpu_flags", lambda flags=flags: flags)
        assert native_cpu_bf16() == expected, flags


def test_this_machines_flags_are_read():
    flags = device_module._cpu_flags()
    assert isinstance(flags, frozenset)
    if open("/proc/cpuinfo").read().count("flags"):  # Linux on x86: the flags line is there
        assert "fpu" in flags


def test_auto_on_a_cpu_is_bf16_only_with_native_bf16_and_a_declared_gain(native):
    native("AVX512-BF16")
    chosen = resolve_precision(CPU, "auto", cpu_bf16=True, channels_last=True)
    assert (chosen.precision, chosen.channels_last) == ("bf16", True)
    assert "AVX512-BF16" in chosen.describe() and "bf16 autocast, channels_last" in chosen.describe()
    undeclared = resolve_precision(CPU, "auto", cpu_bf16=False)
    assert undeclared.precision == "fp32" and "declares no bf16 speed-up" in undeclared.why
    native("")
    plain = resolve_precision(CPU, "auto", cpu_bf16=True, channels_last=True)
    assert (plain.precision, plain.channels_last) == ("fp32", True) and "no native bf16" in plain.why
    asked = resolve_precision(CPU, "bf16", cpu_bf16=False)
    assert asked.precision == "bf16" and "emulated" in asked.why
    assert resolve_precision(CPU, "fp32", cpu_bf16=True).precision == "fp32"


def test_fp16_on_a_cpu_and_unknown_precisions_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="fp16' on the CPU.*train.precision=bf16"):
        resolve_precision(CPU, "fp16")
    with pytest.raises(ConfigError, match="'half' is not one of auto, fp32, bf16, fp16"):
        resolve_precision(CPU, "half")
    with pytest.raises(ConfigError, match="'auto', 'fp32', 'bf16', 'fp16'"):
        train_config({"precision": "half"})


def test_amp_from_before_reads_as_precision_with_a_warning():
    with pytest.warns(FutureWarning, match="train.amp is now train.precision.*precision=fp32"):
        assert train_config({"amp": "false"}).precision == "fp32"
    with pytest.warns(FutureWarning):
        assert train_config({"amp": True}).precision == "auto"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train_config({}).precision == "auto"


def test_prediction_follows_the_precision_of_training(native):
    native("AVX512-BF16")
    assert for_model(CPU, {"precision": "bf16", "channels_last": True}).precision == "bf16"
    assert for_model(CPU, {"precision": "bf16"}).why == "as trained"
    assert for_model(CPU, {}).precision == "fp32"  # a model packaged before precisions were recorded
    native("")
    fallback = for_model(CPU, {"precision": "bf16", "channels_last": True})
    assert (fallback.precision, fallback.channels_last) == ("fp32", True) and "no native bf16" in fallback.why
    assert for_model(CPU, {"precision": "fp16"}).precision == "fp32"


def test_place_puts_conv_weights_channels_last():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten())
    resolve_precision(CPU, "fp32", channels_last=True).place(model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = nn.Sequential(nn.Conv2d(2, 4, 3))
    resolve_precision(CPU, "fp32").place(plain)
    assert not plain[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_a_cnn_run_trains_records_and_predicts_in_bf16_where_the_cpu_has_it(tmp_path, native):
    native("AVX512-BF16")
    prepared = separable(8)
    res = zoo.train("cnn+chroma:genre", data=prepared, settings=SMALL_CNN, epochs=2, track=False, progress=False,
                    out_dir=tmp_path)
    seed = res.results[0]
    meta = json.loads((seed.model_dir / "zoo_model.json").read_text())
    assert (meta["precision"], meta["channels_last"], meta["train"]["precision"]) == ("bf16", True, "auto")
    assert "bf16 autocast, channels_last" in res.device and "AVX512-BF16" in res.device
    assert res.test["genre.accuracy"] == res.test["genre.accuracy"]  # a number, not NaN
    from zoo.predict import Predictor
    predictor = Predictor.load(seed.model_dir, device="cpu")
    assert predictor.choice.precision == "bf16" and predictor.choice.channels_last
    # Scoring again gives the test metrics training reported: evaluation ran in the same precision.
    again = zoo.evaluate(res, data=prepared, out_dir=tmp_path / "eval")
    assert again.metrics["genre"]["accuracy"] == pytest.approx(res.test["genre.accuracy"])


def test_fp32_asked_for_and_a_backbone_that_declares_nothing_stay_fp32(tmp_path, native):
    native("AVX512-BF16")
    prepared = separable(8)
    settings = {**SMALL_CNN, "train": {**SMALL_CNN["train"], "precision": "fp32"}}
    res = zoo.train("cnn+chroma:genre", data=prepared, settings=settings, epochs=1, track=False, progress=False,
                    out_dir=tmp_path / "fp32")
    assert json.loads((res.results[0].model_dir / "zoo_model.json").read_text())["precision"] == "fp32"
    assert res.device.startswith("cpu (fp32, channels_last")

    class Plain(nn.Module):  # a backbone of someone's own, without cpu_bf16
        out_dim = 8

        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(12, 8)

        def forward(self, x, lengths):
            from zoo.protocols import BackboneOutput
            return BackboneOutput(self.proj(x.transpose(1, 2)), lengths)

    registry = zoo.Registry()
    built = api.compose([Plain(), registry.create("feature", "chroma"), registry.create("task", "genre")])
    res = zoo.train(built, data=prepared, epochs=1, track=False, progress=False, out_dir=tmp_path / "own",
                    settings={"train": SMALL_CNN["train"]})
    assert res.device.startswith("cpu (fp32,") and "declares no bf16 speed-up" in res.device


def test_the_cli_flag_sets_train_precision(tmp_path, workspace):
    import os
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "zoo", "run", "cnn+mel:genre", "--precision", "fp32",
                          "--print-config"], capture_output=True, text=True, env={**os.environ, **workspace.environ()},
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "precision: fp32" in out.stdout


def test_pick_device_keeps_fp32_unless_asked():
    assert pick_device("cpu").precision == "fp32"


def test_a_declaration_that_depends_on_the_settings_is_read_from_the_runs_config(native):
    """The LSTM declares bf16 with its conv front end (the CRNN, checked) and not without it (the
    plain LSTM, unchecked): the engine reads the declaration from the config made with the run's
    settings, not from the class, where a property would read as true."""
    from zoo.engine.runner import speed_declarations
    from zoo.model.building import build_components
    from zoo.spec import parse_spec
    native("AVX512-BF16")
    registry = zoo.Registry()

    def declared(settings):
        return speed_declarations(build_components(parse_spec("lstm+mel:genre", registry), registry, settings),
                                  registry)

    assert declared(None) == {"cpu_bf16": True, "channels_last": True}
    assert declared({"backbone": {"conv_layers": 0}})["cpu_bf16"] is False
    assert speed_declarations(build_components(parse_spec("ast+mel:genre", registry), registry),
                              registry)["cpu_bf16"] is False
    crnn = pick_device("cpu", precision="auto", **declared(None))
    plain = pick_device("cpu", precision="auto", **declared({"backbone": {"conv_layers": 0}}))
    assert crnn.precision == "bf16" and plain.precision == "fp32"
    assert "declares no bf16 speed-up" in plain.why
