"""zoo.bounds: a config's ranges declared beside its fields, checked by one function, each error naming the
component, the field, the value, the range and the fix; and the configs of the core and plugins that use it."""
from __future__ import annotations

import dataclasses
import math

import pytest

from zoo.bounds import Bounds, bounded, bounds, check_bounds, whole_fields
from zoo.config import make_config
from zoo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Toy:
    hidden: int = bounded(128, ge=1)
    dropout: float = bounded(0.2, ge=0.0, lt=1.0)
    kernel: int = bounded(3, ge=1, odd=True, why="so a frame's window is centred on it")
    depth: int = bounded(4, ge=1)
    freeze: int = bounded(0, ge=0, le="depth")
    rate: float = bounded(1.0, gt=0)
    channels: tuple[int, ...] = bounded((8, 16), ge=1)
    seconds: float | None = bounded(None, ge=2.0, le=60.0)
    name: str = "free"

    def __post_init__(self) -> None:
        check_bounds(self, "backbone 'toy'")


@pytest.mark.parametrize("settings,message", [
    ({"hidden": 0}, "backbone 'toy': hidden=0 must be at least 1; e.g. --set backbone.hidden=128"),
    ({"dropout": 1.0}, "backbone 'toy': dropout=1.0 must be in [0, 1); e.g. --set backbone.dropout=0.2"),
    ({"dropout": -0.1}, "backbone 'toy': dropout=-0.1 must be in [0, 1); e.g. --set backbone.dropout=0.2"),
    ({"kernel": 4}, "backbone 'toy': kernel=4 must be odd and at least 1 (so a frame's window is centred on it); "
                    "e.g. --set backbone.kernel=3"),
    ({"freeze": 5}, "backbone 'toy': freeze=5 must be in 0..depth (4); e.g. --set backbone.freeze=0"),
    ({"rate": 0.0}, "backbone 'toy': rate=0.0 must be positive; e.g. --set backbone.rate=1.0"),
    ({"channels": (8, 0)}, "backbone 'toy': channels (8, 0) must all be at least 1; e.g. --set backbone.channels=8,16"),
    ({"seconds": 1.0}, "backbone 'toy': seconds=1.0 must be in [2, 60]"),
])
def test_a_value_out_of_range_names_the_component_the_field_the_value_the_range_and_the_fix(settings, message):
    with pytest.raises(ConfigError) as err:
        Toy(**settings)
    assert str(err.value) == message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_number_that_is_not_finite_is_out_of_every_range(value):
    with pytest.raises(ConfigError, match=rf"rate={value} must be finite and positive"):
        Toy(rate=value)


def test_values_in_range_and_unset_optional_ones_pass_and_the_bound_may_name_another_field():
    assert Toy(hidden=1, dropout=0.0, kernel=1, depth=12, freeze=12, channels=(1,), seconds=60.0).freeze == 12
    assert Toy().seconds is None


def test_the_check_runs_on_configs_made_from_command_line_text():
    with pytest.raises(ConfigError, match=r"backbone 'toy': hidden=0 must be at least 1"):
        make_config(Toy, {"hidden": "0"}, where="backbone 'toy'")


def test_bounds_lists_the_declared_fields_only():
    assert list(bounds(Toy)) == ["hidden", "dropout", "kernel", "depth", "freeze", "rate", "channels", "seconds"]
    assert bounds(Toy)["freeze"] == Bounds(ge=0, le="depth")
    assert whole_fields(Toy) == {"hidden", "kernel", "depth", "freeze", "channels"}  # typed int


@pytest.mark.parametrize("settings,said", [
    ({"hidden": 2.5}, "hidden=2.5 must be a whole number at least 1"),
    ({"hidden": True}, "hidden=True must be a whole number at least 1"),
    ({"channels": (8, 16.0)}, "channels (8, 16.0) must all be whole numbers at least 1"),
    ({"channels": (8, float("inf"))}, "channels (8, inf) must all be finite and whole numbers at least 1"),
    ({"freeze": 1.5}, "freeze=1.5 must be a whole number in 0..depth (4)"),
])
def test_a_field_typed_int_refuses_what_is_no_whole_number_when_the_config_is_made_by_hand(settings, said):
    """Not only text: ``TrainConfig(epochs=2.5)`` in Python is refused as ``--epochs 2.5`` is, without a
    ``whole=True`` beside each field; a whole number out of range is told its range alone."""
    with pytest.raises(ConfigError) as err:
        Toy(**settings)
    assert said in str(err.value)
    assert Toy(hidden=3, rate=2).rate == 2  # an int where a float is asked is a number


def test_an_int_field_of_a_class_whose_annotations_do_not_resolve_is_read_from_their_text():
    namespace: dict = {}
    exec("from __future__ import annotations\nimport dataclasses\nfrom zoo.bounds import bounded\n"
         "@dataclasses.dataclass\nclass Later:\n    n: int = bounded(1, ge=1)\n    x: Unknown = bounded(1, ge=0)\n",
         namespace)
    assert whole_fields(namespace["Later"]) == {"n"}


def test_a_feature_or_a_task_is_fixed_by_its_own_name_a_dataset_by_its_kind():
    @dataclasses.dataclass(frozen=True)
    class Feature:
        n_mels: int = bounded(128, gt=0)

    for where, fix in [("feature 'mel'", "--set mel.n_mels=128"), ("dataset 'folder'", "--set dataset.n_mels=128"),
                       ("task 'genre'", "--set genre.n_mels=128")]:
        with pytest.raises(ConfigError, match=rf"^{where}: n_mels=0 must be positive; e.g. {fix}$"):
            check_bounds(Feature(n_mels=0), where)


@pytest.mark.parametrize("kind,name,settings,message", [
    ("backbone", "lstm", {"conv_layers": "7"}, "backbone 'lstm': conv_layers=7 must be in 0..6 (0: no front end; each "
                                              "layer halves the sequence); e.g. --set backbone.conv_layers=3"),
    ("backbone", "cnn", {"kernels": "4,3"}, "backbone 'cnn': kernels (4, 3) must all be odd and at least 1 (so each "
                                           "output stays centred on its input); e.g. --set backbone.kernels=5,3"),
    ("backbone", "ast", {"tstride": "20"}, "backbone 'ast': tstride=20 must be in 1..patch_size (16) (a larger step "
                                          "would skip frames between patches); e.g. --set backbone.tstride=10"),
    ("dataset", "folder", {"val_fraction": "1"}, "dataset 'folder': val_fraction=1.0 must be in [0, 1); "
                                                "e.g. --set dataset.val_fraction=0.15"),
    ("dataset", "embedded", {"workers": "-1"}, "dataset 'embedded': workers=-1 must be at least 0 (0: one process "
                                              "for a few minutes of audio, else one per core); "
                                              "e.g. --set dataset.workers=0"),
])
def test_the_configs_of_the_core_and_the_plugins_say_their_ranges_through_it(kind, name, settings, message):
    from zoo.registry import Registry
    registry = Registry()
    if (kind, name) not in {(k, n) for k in ("backbone", "dataset") for n in registry.names(k)}:
        pytest.skip(f"{kind} '{name}' is not installed")
    spec = registry.load(kind, name)
    with pytest.raises(ConfigError) as err:
        make_config(spec.config, settings, where=f"{kind} '{name}'")
    assert str(err.value) == message


@dataclasses.dataclass(frozen=True)
class Counted:
    clips: int | None = bounded(None, ge=1, whole=True, why="or None for all")
    share: float = bounded(0.5, ge=0.0, lt=1.0)

    def __post_init__(self) -> None:
        check_bounds(self, "data", fix=lambda name: f"set it with --{name}")


@pytest.mark.parametrize("value,message", [
    (0, "data: clips=0 must be a whole number at least 1 (or None for all); set it with --clips"),
    (2.5, "data: clips=2.5 must be a whole number at least 1 (or None for all); set it with --clips"),
    ("3", "data: clips='3' must be a whole number at least 1 (or None for all); set it with --clips"),
    (True, "data: clips=True must be a whole number at least 1 (or None for all); set it with --clips"),
])
def test_a_whole_field_refuses_what_is_no_whole_number_and_fix_says_how_the_config_is_set(value, message):
    with pytest.raises(ConfigError) as err:
        Counted(clips=value)
    assert str(err.value) == message


def test_numbers_of_numpy_pass_and_text_in_a_number_field_is_named_a_number():
    import numpy as np
    assert Counted(clips=np.int64(3), share=np.float32(0.25)).clips == 3
    with pytest.raises(ConfigError, match=r"^data: share='x' must be a number in \[0, 1\); set it with --share$"):
        Counted(share="x")


def test_an_option_on_a_bounded_field_checks_its_text_with_the_declared_range():
    from zoo.config import field_check, option, options

    @dataclasses.dataclass(frozen=True)
    class Narrow:
        n: int = bounded(5, ge=2, le=9, metadata=option("how many", "--n"))
        share: float = bounded(0.5, gt=0.0, lt=1.0, metadata=option("a share", "--share"))
        odd: int = bounded(3, ge=1, odd=True, metadata=option("odd", "--odd"))
        depth: int = bounded(4, ge=1)
        freeze: int = bounded(0, ge=0, le="depth", metadata=option("frozen", "--freeze"))
        free: str = dataclasses.field(default="x", metadata=option("text", "--free"))

        def __post_init__(self) -> None:
            check_bounds(self, "toy")

    checks = {name: o.check for name, o in options(Narrow).items()}
    assert checks["free"] is None and field_check(Narrow, "free") is None
    assert (checks["n"]("2"), checks["n"]("9"), checks["share"]("0.25"), checks["odd"]("5")) == (2, 9, 0.25, 5)
    assert checks["freeze"]("12") == 12  # a bound naming another field is the config's to check
    for name, text, said in [("n", "10", "10 is out of range: give a whole number from 2 to 9"),
                             ("n", "2.5", "'2.5' is not a whole number"),
                             ("share", "0", "0.0 is out of range: give a number > 0.0"),
                             ("share", "1", "1.0 is out of range: give a number in (0, 1)"),
                             ("share", "nan", "nan is not a finite number"),
                             ("odd", "4", "4 is out of range: give an odd whole number at least 1"),
                             ("freeze", "-1", "-1 is out of range: give a whole number >= 0")]:
        with pytest.raises(ConfigError) as err:
            checks[name](text)
        assert str(err.value) == said, name
    with pytest.raises(ConfigError, match=r"^toy: n=10 must be in 2\.\.9; e\.g\. n=5$"):
        Narrow(n=10)


@pytest.mark.parametrize("seed,said", [(-1, "seed=-1 must be in 0..4294967295"),
                                       (2.5, "seed=2.5 must be a whole number in 0..4294967295")])
def test_a_latent_maps_layout_seed_is_checked_by_its_declared_range(seed, said):
    from zoo.lab.embed import LatentMapRequest
    with pytest.raises(ConfigError, match=rf"^latent map: {said} \(the t-SNE / UMAP layout's seed\); set it with --seed"):
        LatentMapRequest(model="a-model", seed=seed)
    assert LatentMapRequest(model="a-model", seed=7).seed == 7
