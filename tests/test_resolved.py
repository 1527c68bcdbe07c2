"""zoo.testing.check_resolved: a config's resolved() (zoo.protocols.FindsItsFiles) gives a config of its own class
that resolving again leaves as it is; the AST's, from a checkpoint or without one, passes."""
from __future__ import annotations

import dataclasses

import pytest

from zoo.protocols import ComponentSpec
from zoo.testing import check_resolved


@dataclasses.dataclass(frozen=True)
class Counting:
    """Each resolve adds one: what a resolved() that reads its files anew every time looks like."""
    weights: str = ""
    seen: int = 0

    def resolved(self) -> "Counting":
        return dataclasses.replace(self, seen=self.seen + 1)


@dataclasses.dataclass(frozen=True)
class Once:
    weights: str = ""
    digest: str = ""

    def resolved(self) -> "Once":
        return dataclasses.replace(self, digest=f"sha256 of {self.weights}")


@dataclasses.dataclass(frozen=True)
class Elsewhere:
    weights: str = ""

    def resolved(self) -> dict:
        return {"weights": self.weights}


def spec_of(config: type) -> ComponentSpec:
    return ComponentSpec(kind="backbone", name="toy", build=lambda c, n: None, summary="", config=config)


def test_a_resolved_config_that_changes_when_resolved_again_fails_naming_the_field():
    with pytest.raises(AssertionError, match=r"resolving the resolved config changed seen; resolved\(\) must fill"):
        check_resolved(spec_of(Counting))


def test_resolved_must_return_the_configs_own_class():
    with pytest.raises(AssertionError, match=r"resolved\(\) returned .*dict.*not a Elsewhere"):
        check_resolved(spec_of(Elsewhere))


def test_a_resolved_that_fills_in_once_passes():
    check_resolved(spec_of(Once), {"weights": "w.bin"})


def test_the_asts_config_passes_with_or_without_a_checkpoint(tmp_path):
    zoo_ast = pytest.importorskip("zoo_ast", reason="needs the music-zoo-ast plugin")
    check_resolved(zoo_ast.spec)
    transformers = pytest.importorskip("transformers", reason="a tiny AST checkpoint needs transformers")
    config = transformers.ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    num_mel_bins=128, max_length=64)
    transformers.ASTModel(config).save_pretrained(tmp_path)
    check_resolved(zoo_ast.spec, {"weights": str(tmp_path)})
