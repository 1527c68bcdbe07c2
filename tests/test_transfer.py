"""Transfer learning (lab step 9): the backbone is copied, frozen parts stay fixed, the source run is linked."""
from __future__ import annotations

import json

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

import zoo
from datafixtures import write_kaggle
from enginefixtures import TINY_LSTM, separable
from zoo.cli import main
from zoo.engine.request import RunRequest
from zoo.engine.trainconfig import TrainConfig
from zoo.engine.runner import run
from zoo.engine.freezing import backbone_blocks, freeze_blocks, guess_blocks
from zoo.engine.transfer import TransferSource, adopt_settings, source_from_folder
from zoo.errors import ConfigError, SpecError
from zoo.registry import Registry

FAST = dict(batch_size=8, lr=0.05, patience=0, warmup=0.0)
TINY_CNN = {"backbone": {"channels": (4, 8, 8), "kernels": (3,), "dropout": 0.0}}
EXPERIMENT = "transfer-tests"


@pytest.fixture(scope="module")
def registry():
    return Registry()


@pytest.fixture(scope="module")
def prepared():
    return separable(8)


def train(spec, prepared, tmp_path, registry, *, settings=None, transfer=None, **config):
    return run(RunRequest(spec, settings=settings, train=TrainConfig(**{**FAST, **config}), data=prepared,
                          out_dir=tmp_path, transfer=transfer), registry=registry)


def source_state(model_dir):
    state = torch.load(model_dir / "weights.pt", weights_only=True)
    return {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}


def same(a, b) -> bool:
    return a.shape == b.shape and torch.equal(a.cpu(), b.cpu())


def test_weights_are_copied_and_the_source_run_is_linked_in_mlflow(prepared, tmp_path, workspace):
    settings = {**TINY_LSTM, "train": {**FAST, "lr": 1e-12}}  # lr 1e-12 (0 is refused): too small to move a float32 weight, so the backbone holds what it got
    src = zoo.train("lstm+chroma:genre", data=prepared, settings={**TINY_LSTM, "train": FAST}, epochs=2,
                    experiment=EXPERIMENT, progress=False, out_dir=tmp_path, workspace=workspace)
    res = zoo.train("lstm+chroma:valence", data=prepared, settings={"train": settings["train"]}, epochs=1,
                    init_from=src.run_id, freeze="none", experiment=EXPERIMENT, progress=False, out_dir=tmp_path,
                    workspace=workspace)
    copied = source_state(src.results[0].model_dir)
    got = res.model.backbone.state_dict()
    assert got.keys() == copied.keys() and all(same(got[k], copied[k]) for k in got)
    assert all(p.requires_grad for p in res.model.backbone.parameters())  # freeze none: all of it trains
    client = MlflowClient(workspace.tracking_uri)
    record = client.get_run(res.run_id).data
    assert record.tags["zoo.transfer.source_run"] == src.run_id == record.params["transfer.source_run"]
    assert record.params["transfer.freeze"] == "none"
    note = record.tags["mlflow.note.content"]
    assert src.run_id in note and "lstm+chroma:genre" in note and "freeze none" in note
    moved = zoo.train("lstm+chroma:valence", data=prepared, settings={"train": FAST}, epochs=2,
                      init_from=src, track=False, progress=False, out_dir=tmp_path, workspace=workspace)
    after = moved.model.backbone.state_dict()
    assert not all(same(after[k], copied[k]) for k in after)  # with a learning rate, fine-tuning moves it


def test_freezing_the_backbone_keeps_weights_and_batch_norm_statistics(prepared, tmp_path, registry):
    src = train("cnn+chroma:genre", prepared, tmp_path, registry, settings=TINY_CNN, epochs=2)
    source = source_from_folder(src.results[0].model_dir, "backbone", label="cnn genre")
    res = train("cnn+chroma:valence", prepared, tmp_path, registry, transfer=source, epochs=3)
    copied = source_state(source.folder)
    got = res.model.backbone.state_dict()
    assert any("running_mean" in k for k in got)
    assert all(same(got[k], copied[k]) for k in got), [k for k in got if not same(got[k], copied[k])]
    trainable = {n for n, p in res.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("heads.") for n in trainable)


def test_freezing_n_blocks_fixes_exactly_the_first_n(prepared, tmp_path, registry):
    src = train("cnn+chroma:genre", prepared, tmp_path, registry, settings=TINY_CNN, epochs=1)
    names = [b.name for b in backbone_blocks(src.model.backbone)]
    assert names == ["blocks.0", "blocks.1", "blocks.2"]  # the CNN's conv blocks; its dropout holds no weights
    res = train("cnn+chroma:valence", prepared, tmp_path, registry, epochs=2,
                transfer=source_from_folder(src.results[0].model_dir, 2))
    copied, got = source_state(src.results[0].model_dir), res.model.backbone.state_dict()
    for key in got:  # parameters and batch-norm statistics alike
        assert same(got[key], copied[key]) == (not key.startswith("blocks.2.")), key
    # An LSTM's blocks are its layers: freeze 1 keeps layer 0 (both directions) and trains layer 1.
    two = {"backbone": {**TINY_LSTM["backbone"], "layers": 2, "bidirectional": True}}
    lstm = train("lstm+chroma:genre", prepared, tmp_path, registry, settings=two, epochs=1)
    assert [b.name for b in backbone_blocks(lstm.model.backbone)] == ["rnn layer 0", "rnn layer 1"]
    res = train("lstm+chroma:valence", prepared, tmp_path, registry, epochs=2,
                transfer=source_from_folder(lstm.results[0].model_dir, "1"))
    copied, got = source_state(lstm.results[0].model_dir), res.model.backbone.state_dict()
    assert {k for k in got if same(got[k], copied[k])} == {k for k in got if "_l0" in k}
    with pytest.raises(ConfigError, match="freeze 4: backbone 'cnn' has 3 blocks \\(blocks.0, blocks.1, blocks.2\\)"):
        train("cnn+chroma:valence", prepared, tmp_path, registry, epochs=1,
              transfer=source_from_folder(src.results[0].model_dir, 4))


def test_incompatible_sources_are_refused_and_feature_settings_are_adopted(prepared, tmp_path, registry):
    src = train("lstm+chroma:genre", prepared, tmp_path, registry, settings=TINY_LSTM, epochs=1)
    source = source_from_folder(src.results[0].model_dir, "none", label="the genre model")
    with pytest.raises(SpecError, match="its backbone is 'lstm'.*uses 'cnn'"):
        train("cnn+chroma:valence", prepared, tmp_path, registry, transfer=source, epochs=1)
    with pytest.raises(SpecError, match="trained on features chroma.*uses mel"):
        train("lstm+mel:valence", prepared, tmp_path, registry, transfer=source, epochs=1)
    with pytest.raises(SpecError, match="6 input bins.*12 bins"):
        train("lstm+chroma:valence", prepared, tmp_path, registry, settings={"chroma": {"n_chroma": 6}},
              transfer=source, epochs=1)
    with pytest.raises(ConfigError, match="transfer freeze 'some'"):
        source_from_folder(src.results[0].model_dir, "some")
    # Feature settings the source was trained with carry over unless given again.
    meta = json.loads((source.folder / "zoo_model.json").read_text())
    meta["configs"]["feature"]["chroma"]["n_octaves"] = 6
    odd = TransferSource(source.folder, meta, "none", "edited")
    comp = zoo.parse_spec("lstm+chroma:valence")
    config = registry.load("backbone", "lstm").config
    assert adopt_settings(odd, comp, {}, config)["chroma"]["n_octaves"] == 6
    assert adopt_settings(odd, comp, {"chroma": {"n_octaves": 5}}, config)["chroma"]["n_octaves"] == 5


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    root = tmp_path_factory.mktemp("kaggle-transfer")
    write_kaggle(root, train_per_genre=4, test_per_genre=2, multitask_train=16)
    return root


def run_json(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_cli_from_a_run_and_a_recipe_whose_transfer_names_another(kaggle, capsys, zoo_env, workspace):
    small = ["--set", "lstm.hidden=8", "--set", "lstm.layers=1", "--epochs", "1", "--no-progress", "--json",
             "--experiment", EXPERIMENT]
    genre = run_json(capsys, ["run", "lstm+chroma:genre", "--data", str(kaggle), *small])
    moved = run_json(capsys, ["run", "lstm+chroma:valence", "--data", str(kaggle), "--from", genre["run_id"],
                              "--freeze", "backbone", "--epochs", "1", "--no-progress", "--json",
                              "--experiment", EXPERIMENT])
    client = MlflowClient(workspace.tracking_uri)
    tags = client.get_run(moved["run_id"]).data.tags
    assert tags["zoo.transfer.source_run"] == genre["run_id"]
    # A recipe's transfer entry (lab-transfer-ast-valence: from lab-ast-mel, freeze none) and its
    # settings ({task: {loss: mse}}) are honoured by `zoo run RECIPE`.
    tiny_ast = ["--set", "ast.depth=1", "--set", "ast.embed_dim=32", "--set", "ast.heads=2", "--epochs", "1",
                "--no-progress", "--json", "--experiment", EXPERIMENT, "--data", str(kaggle)]
    ast = run_json(capsys, ["run", "lab-ast-mel", *tiny_ast])
    lab = run_json(capsys, ["run", "lab-transfer-ast-valence", *tiny_ast])
    record = client.get_run(lab["run_id"]).data
    assert record.tags["zoo.recipe"] == "lab-transfer-ast-valence"
    assert record.tags["zoo.transfer.source_run"] == ast["run_id"]
    assert record.params["transfer.freeze"] == "none" and record.params["task.valence.loss"] == "mse"


class _Declared(nn.Module):
    """Its first block joins a scale parameter and a linear + batch norm stem; the guess would split them."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))
        self.stem = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.top = nn.Linear(4, 2)

    def named_blocks(self):
        return [("stem", [self.scale, self.stem]), ("top", [self.top])]

    def forward(self, x):
        return self.top(self.stem(x * self.scale))


def test_a_backbone_that_declares_its_blocks_is_frozen_by_its_declaration():
    model = _Declared()
    assert [b.name for b in guess_blocks(model)] == ["stem.0", "stem.1", "top"]  # what a guess would make of it
    assert freeze_blocks(model, 1, "toy") == ["stem"]
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == {"scale", "stem.0.weight", "stem.0.bias",
                                                                                "stem.1.weight", "stem.1.bias"}
    before = model.stem[1].running_mean.clone()
    model.train()(torch.randn(8, 4) + 5)
    assert torch.equal(model.stem[1].running_mean, before)  # a frozen block's batch norm keeps its statistics
    with pytest.raises(ConfigError, match="freeze 3: backbone 'toy' has 2 blocks \\(stem, top\\)"):
        freeze_blocks(_Declared(), 3, "toy")


@pytest.mark.parametrize("name, settings", [
    ("cnn", TINY_CNN["backbone"]), ("lstm", {"layers": 1}), ("lstm", {"layers": 3, "bidirectional": True}),
])
def test_the_built_in_declarations_name_the_blocks_the_guess_found(registry, name, settings):
    model = registry.create("backbone", name, settings, 12)
    declared, guessed = backbone_blocks(model), guess_blocks(model)
    assert [(b.name, [id(p) for p in b.params], [id(m) for m in b.modules]) for b in declared] == \
           [(b.name, [id(p) for p in b.params], [id(m) for m in b.modules]) for b in guessed]
