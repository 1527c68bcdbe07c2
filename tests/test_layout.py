"""open_dataset(): layout detection for every layout, the folder fallback, overrides and errors."""
from __future__ import annotations

import json

import pytest

from datafixtures import lab_array, music, write_audio, write_fma, write_kaggle, write_lab, write_label_folders, write_manifest
from zoo.data.layout import detection_order, open_dataset
from zoo.errors import ConfigError, DataError, UnknownComponentError
from zoo.registry import EntryInfo, Registry, installed_entries

GENRE = "fma_genre_spectrograms"


@pytest.fixture(scope="module")
def registry():
    return Registry()


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    write_kaggle(root / "kaggle", genres=("Jazz",), train_per_genre=2, test_per_genre=1, multitask_train=3)
    write_fma(root / "fma", audio_dirs=())
    (root / "fma" / "fma_small").mkdir()
    write_label_folders(root / "gtzan", ("a", "b"), per_label=1, seconds=1.0)
    write_manifest(root / "listed", [{"path": "x.wav", "label": "a"}], seconds=1.0)
    return root


@pytest.mark.parametrize("sub, name", [("kaggle", "kaggle"), ("kaggle/" + GENRE, "kaggle"), ("fma", "fma"),
                                       ("fma/fma_metadata", "fma"), ("gtzan", "folder"), ("listed", "folder"),
                                       ("listed/manifest.csv", "folder")])
def test_each_layout_is_detected(trees, registry, sub, name):
    assert open_dataset(trees / sub, registry=registry).name == name


def test_folder_is_only_the_fallback_and_layout_overrides(trees, registry, tmp_path):
    write_fma(tmp_path, audio_dirs=())
    (tmp_path / "fma_small").mkdir()
    write_label_folders(tmp_path, ("extras",), per_label=1, seconds=1.0)  # the folder layout matches too
    assert open_dataset(tmp_path, registry=registry).name == "fma"
    forced = open_dataset(tmp_path, layout="folder", registry=registry)
    assert forced.name == "folder" and {c.label for c in forced.clips("frames")} == {"extras"}


def test_ambiguous_layouts_ask_for_layout(trees, registry, tmp_path):
    write_kaggle(tmp_path, genres=("Jazz",), train_per_genre=1, test_per_genre=1, parts=(GENRE,))
    write_fma(tmp_path, audio_dirs=())
    with pytest.raises(DataError) as err:
        open_dataset(tmp_path, registry=registry)
    msg = str(err.value)
    assert "kaggle, fma" in msg and "--layout NAME" in msg and str(tmp_path) in msg
    assert open_dataset(tmp_path, layout="kaggle", registry=registry).name == "kaggle"


def test_unrecognised_missing_and_unknown(registry, tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(DataError) as err:
        open_dataset(tmp_path, registry=registry)
    msg = str(err.value)
    assert "no installed layout recognises it" in msg and "--layout NAME" in msg
    assert all(n in msg for n in ("kaggle (", "fma (", "folder ("))
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "gone", registry=registry)
    with pytest.raises(UnknownComponentError, match="did you mean 'kaggle'"):
        open_dataset(tmp_path, layout="kagle", registry=registry)
    with pytest.raises(DataError, match="--layout fma needs --data"):
        open_dataset(None, layout="fma", registry=registry)


def test_settings_reach_the_layout_config(trees, registry):
    ds = open_dataset(trees / "kaggle", registry=registry, settings={"mapping": "none", "seed": "4"})
    assert ds.config.mapping == "none" and ds.config.seed == 4
    with pytest.raises(ConfigError, match="unknown setting 'subset'"):
        open_dataset(trees / "kaggle", registry=registry, settings={"subset": "small"})


def test_default_is_the_embedded_set_under_data_dir(registry, workspace):
    ds = open_dataset(None, registry=registry, settings={"size": "tiny"}, data_dir=workspace.data_dir)
    assert ds.name == "embedded"
    assert str(workspace.data_dir) in ds.describe()
    with pytest.raises(ConfigError, match="the embedded set needs a folder to live in: pass data_dir"):
        open_dataset(None, registry=registry)


def test_an_embedded_set_folder_is_not_taken_for_a_plain_folder(registry, tmp_path):
    from zoo.data.readers.embedded import FORMAT, MANIFEST

    write_audio(tmp_path / "audio" / "x-0000.wav", music(1.0))
    (tmp_path / MANIFEST).write_text(json.dumps({"format": FORMAT, "version": 1}))
    assert open_dataset(tmp_path, registry=registry).name == "embedded"


def test_third_party_layouts_are_asked_after_the_built_ins(tmp_path):
    extra = (EntryInfo("dataset", "notes", "zoo-notes", "0.1", "datafixtures:NOTES_SPEC"),
             EntryInfo("dataset", "wrecked", "zoo-wrecked", "0.1", "no_such_module_here:spec"))
    reg = Registry(entries=tuple(installed_entries()) + extra)
    order = detection_order(reg)
    assert order[:3] == ["kaggle", "fma", "folder"] and {"notes", "wrecked"} <= set(order[3:])
    write_lab(tmp_path / "n" / "a.npy", lab_array(4))
    (tmp_path / "n" / "NOTES.txt").write_text("a.npy jazz\n")
    ds = open_dataset(tmp_path / "n", registry=reg)  # the broken plugin does not stop detection
    assert ds.name == "notes" and ds.clips("frames")[0].label == "jazz"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"not asked: wrecked: plugin zoo-wrecked\[wrecked\]"):
        open_dataset(tmp_path / "empty", registry=reg)


def test_no_progress_reaches_the_data_sets_own_bars(workspace):
    from zoo.data.layout import open_dataset

    quiet = open_dataset(None, settings={"size": "tiny"}, progress=False, data_dir=workspace.data_dir)
    assert quiet.progress is False  # the embedded set then synthesises without a bar
    assert open_dataset(None, settings={"size": "tiny"}, data_dir=workspace.data_dir).progress is True
