"""A frozen pretrained network inside a feature (an embedding for probes): built once, never pickled.

A feature that runs a pretrained network (``hf-embed``, ``musicnn-embed``) holds it here: built on
first use, with gradients off and in eval mode, on the device its config names, and left out when
the feature is pickled into extraction workers, which build their own copy.
"""
from __future__ import annotations

from typing import Any


def resolve_device(name: str) -> Any:
    """``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or ``"cuda"`` as a ``torch.device``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class FrozenNetworkFeature:
    """Mixin for a feature whose ``config.device`` names where its network runs.

    Subclasses implement :meth:`build_model` (a ``torch.nn.Module``); :meth:`model` returns it,
    built once per process, frozen, in eval mode, on :meth:`device`.
    """

    _model: Any = None

    def build_model(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement build_model()")

    def device(self) -> Any:
        return resolve_device(self.config.device)  # type: ignore[attr-defined]

    def model(self) -> Any:
        """The frozen network (built on first use)."""
        if self._model is None:
            model = self.build_model()
            model.requires_grad_(False)
            self._model = model.eval().to(self.device())
        return self._model

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # workers build their own copy
        return state
