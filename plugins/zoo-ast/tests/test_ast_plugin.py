"""The ``ast`` backbone meets the zoo's backbone contract, small and as configured by default."""
from __future__ import annotations

import pytest

import zoo_ast
from zoo.registry import Registry
from zoo.testing import check_backbone

SMALL = {"embed_dim": "32", "depth": "2", "heads": "2"}


@pytest.mark.parametrize("settings", [SMALL, {**SMALL, "output": "sequence"}, {**SMALL, "grid": "floor"}, {}])
def test_the_ast_meets_the_backbone_contract(settings):
    check_backbone(zoo_ast.spec, n_bins=12, settings=settings)


def test_the_registered_ast_is_this_spec():
    assert Registry().load("backbone", "ast") is zoo_ast.spec
