"""The built-in tasks: heads, losses and metrics on small tensors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.config import make_config
from zoo.protocols import BackboneOutput
from zoo.registry import Registry
from zoo.tasks import RegressionConfig


@pytest.mark.parametrize("bounded", [True, False])
def test_regression_outputs_stay_in_the_targets_range_when_bounded(bounded):
    task = Registry().create("task", "energy", {"bounded": bounded})
    head = task.make_head(4, task.schema(()))
    with torch.no_grad():
        head.out.bias.fill_(25.0)  # a head that would predict far above 1
        out = head(BackboneOutput(torch.randn(5, 4)))
    assert out.shape == (5,)
    assert (bool((out <= 1).all()) and bool((out >= 0).all())) is bounded


def test_classification_loss_ignores_missing_labels_without_nan():
    task = Registry().create("task", "genre")
    logits = torch.randn(3, 4, requires_grad=True)
    assert task.loss(logits, torch.tensor([-1, -1, -1])).item() == 0.0
    loss = task.loss(logits, torch.tensor([2, -1, 0]))
    loss.backward()
    assert torch.isfinite(loss) and logits.grad[1].abs().sum() == 0


def test_regression_metrics_and_missing_targets():
    task = Registry().create("task", "valence", {"loss": "mse"})
    y = np.array([0.1, 0.4, np.nan, 0.9], dtype=np.float32)
    m = task.metrics(np.array([0.2, 0.3, 0.5, 0.8], dtype=np.float32), y, task.schema(()))
    assert m["spearman"] == pytest.approx(1.0) and m["mae"] == pytest.approx(0.1, abs=1e-6)
    loss = task.loss(torch.tensor([0.2, 0.3, 0.5, 0.8]), torch.tensor(y))
    assert loss.item() == pytest.approx(0.01, abs=1e-6)


def test_regression_config_is_typed():
    with pytest.raises(Exception, match="loss"):
        make_config(RegressionConfig, {"loss": "mae"}, where="task 'valence'")
