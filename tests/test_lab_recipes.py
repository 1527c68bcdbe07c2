"""The lab's recipes train the lab's networks: ``lab-lstm-*`` is the plain LSTM (no convolutional front
end) with the lab's training, whatever the ``lstm`` backbone's defaults (a CRNN with the CNN's recipe);
the CRNN has recipes of its own (``crnn-*``), outside ``zoo reproduce lab``."""
from __future__ import annotations

import yaml

from zoo.cli import main
from zoo.lab.plan import make_plan
from zoo.recipes import load_recipes

PLAIN = {"conv_layers": 0, "hidden": 128, "layers": 2, "bidirectional": True}
LAB_TRAINING = {"crop_frames": 0, "mixup": 0.0, "time_masks": 0, "freq_masks": 0, "epochs": 30, "patience": 8,
                "batch_size": 32, "lr": 1e-3}


def _resolved(name: str, capsys) -> dict:
    assert main(["run", name, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_every_lab_lstm_recipe_resolves_to_the_plain_lstm_with_the_labs_training(capsys, workspace, zoo_env):
    names = sorted(n for n in load_recipes() if n.startswith("lab-lstm-"))
    assert len(names) == 7  # mel, beat, chroma, mel-chroma; danceability, valence, energy
    for name in names:
        doc = _resolved(name, capsys)
        backbone, train = doc["settings"]["backbone"], doc["settings"]["train"]
        assert {k: backbone[k] for k in PLAIN} == PLAIN, name
        assert {k: train[k] for k in LAB_TRAINING} == LAB_TRAINING, name
        task = doc["spec"].split(":")[1]
        assert doc["settings"][task]["pooling"] == "mean", name


def test_the_crnn_has_its_own_recipes_and_zoo_reproduce_lab_runs_the_labs_networks(capsys, workspace, zoo_env):
    recipes = load_recipes()
    crnn = sorted(n for n in recipes if n.startswith("crnn-"))
    assert crnn == ["crnn-beat", "crnn-chroma", "crnn-mel", "crnn-mel-chroma"]
    doc = _resolved("crnn-mel", capsys)
    assert doc["settings"]["backbone"]["conv_layers"] == 3 and doc["settings"]["train"]["crop_frames"] == 128
    planned = {s.name for s in make_plan(recipes)}
    assert not planned & set(crnn)
    lstm_steps = [s for s in make_plan(recipes) if s.recipe.composition.backbone == "lstm"]
    assert lstm_steps and all(s.recipe.settings["backbone"]["conv_layers"] == 0 for s in lstm_steps)
