"""Contract checks for plugin authors: call them from your plugin's own tests.

Each ``check_*`` runs a component through what the zoo relies on and raises ``AssertionError``
with a message naming the broken promise; it returns nothing when the component conforms::

    from zoo.testing import check_backbone, check_feature, check_task, installed
    import my_plugin

    def test_my_backbone():
        check_backbone(my_plugin.spec, n_bins=12)

    @pytest.mark.parametrize("name", installed("backbone"))
    def test_every_backbone(name):
        check_backbone(Registry().load("backbone", name))

Every check takes a component's :class:`~zoo.protocols.ComponentSpec` (built here, its config
from ``settings``) or the built object (a feature, a ``torch.nn.Module`` backbone, a task, a
head); ``check_backbone*`` also take a ``factory(n_bins)``. Given anything else, or a spec of
another kind, a check fails saying what it got (``check_feature needs a feature spec or a built
feature, got a backbone spec 'lstm'``).

Optional members (:mod:`zoo.protocols`: a head's ``embed``, a backbone's ``named_blocks``, a
config's ``train_defaults`` and ``freeze``) are checked when the component has them.

torch and librosa-backed features are only touched inside the checks, so importing this
module is cheap. The checks use small random tensors and a few seconds of generated audio:
they take seconds, not minutes.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .config import make_config
from .errors import ZooError
from .protocols import (TASK_KINDS, BackboneOutput, ComponentSpec, Feature, OwnsClasses, ReadsLab,
                        takes_loss_weight)
from .registry import Registry

__all__ = [
    "installed",
    "check_backbone",
    "check_backbone_forward",
    "check_backbone_backward",
    "check_backbone_lengths",
    "check_backbone_determinism",
    "check_backbone_short",
    "check_backbone_blocks",
    "check_backbone_config",
    "check_composition",
    "check_feature",
    "check_former_defaults",
    "check_resolved",
    "check_dataset",
    "check_task",
    "check_head_embed",
    "chord_and_clicks",
    "fake_lab_array",
]

TASK_MEMBERS = ("name", "kind", "target", "primary_metric", "greater_is_better", "schema", "make_head", "loss",
                "predict", "metrics")
BackboneFactory = Callable[[int], Any]
"""``factory(n_bins) -> nn.Module``: builds a fresh backbone for ``n_bins`` feature rows."""


def installed(kind: str, registry: Registry | None = None, *, variants: bool = True) -> list[str]:
    """Names of every installed component of ``kind``, for ``pytest.mark.parametrize``, sorted.

    The cheap variants of those components (``ComponentSpec.variants``, such as the CNN's ``cnn-wide``)
    are listed too, so a contract test parametrized over this runs on each variant: a variant may build a
    different network from its component's (other widths, depths), and what ``zoo run`` accepts by name the
    checks should see. Listing them imports the specs of ``kind`` (:meth:`Registry.variants`; the entry
    points alone do not name variants); ``variants=False`` reads the entry points' metadata only.
    """
    registry = registry or Registry()
    names = registry.names(kind)
    return sorted({*names, *registry.variants(kind)}) if variants else names


def _fail(message: str) -> None:
    # Explicit raise rather than assert: these checks must still fire under ``python -O``.
    raise AssertionError(message)


def _has(obj: Any, protocol: type) -> bool:
    """``isinstance(obj, protocol)`` for a runtime-checkable Protocol, keeping ``obj`` typed as it was (the
    checks go on to use members of the module or task beyond the Protocol's)."""
    return isinstance(obj, protocol)


def _what(obj: Any) -> str:
    """What a check was given, in words: "a backbone spec 'lstm'", "a built MelFeature", "None"."""
    if isinstance(obj, ComponentSpec):
        return f"a {obj.kind} spec '{obj.name}'"
    if obj is None:
        return "None"
    if isinstance(obj, type):
        return f"the class {obj.__name__} (pass its spec, or an instance)"
    name = getattr(obj, "name", None)
    return f"a built {type(obj).__name__}" + (f" named '{name}'" if isinstance(name, str) else "")


def _built(kind: str, spec_or_object: Any, settings: Mapping[str, Any] | None, check: str, *args: Any) -> Any:
    """The component to check: a ``kind`` spec built with its config from ``settings``, or the object itself."""
    if isinstance(spec_or_object, ComponentSpec):
        spec = spec_or_object
        if spec.kind != kind:
            _fail(f"{check} needs a {kind} spec or a built {kind}, got {_what(spec)}")
        config = make_config(spec.config, settings, where=f"{kind} '{spec.name}'")
        return spec.build(config, *args)
    if settings:
        _fail(f"{check}: settings only apply to a spec, got {_what(spec_or_object)}; build it with those settings instead")
    return spec_or_object


def _lacks(obj: Any, members: Iterable[str]) -> list[str]:
    return [m for m in members if not hasattr(obj, m)]


def _factory(spec_or_factory: Any, settings: Mapping[str, Any] | None, check: str = "check_backbone") -> BackboneFactory:
    """A ``factory(n_bins)`` from a backbone spec (its config built from ``settings``), a built
    backbone (a fresh copy each time; built for the ``n_bins`` the check is given) or a callable."""
    from torch import nn

    if isinstance(spec_or_factory, ComponentSpec):
        spec = spec_or_factory
        if spec.kind != "backbone":
            _fail(f"{check} needs a backbone spec, a built backbone or a factory(n_bins), got {_what(spec)}")
        config = make_config(spec.config, settings, where=f"backbone '{spec.name}'")
        return lambda n_bins: spec.build(config, n_bins)
    if settings:
        _fail(f"{check}: settings only apply to a spec, got {_what(spec_or_factory)}; bake them into it instead")
    if isinstance(spec_or_factory, nn.Module):
        module = spec_or_factory
        return lambda n_bins: copy.deepcopy(module)
    if not callable(spec_or_factory):
        _fail(f"{check} needs a backbone spec, a built backbone (torch.nn.Module) or a factory(n_bins), "
              f"got {_what(spec_or_factory)}")
    return spec_or_factory


def _label(spec_or_factory: Any) -> str:
    name = getattr(spec_or_factory, "name", None) or getattr(spec_or_factory, "__name__", None)
    if not isinstance(name, str):
        name = type(spec_or_factory).__name__
    return f"backbone '{name}'" if name else "backbone"


def _batch(n_bins: int, lengths: Sequence[int], seed: int = 0, pad: float = 0.0):
    """A padded batch ``x[B, n_bins, max(lengths)]`` (``pad`` past each length) and its lengths."""
    import torch

    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    x = torch.randn(len(lengths), n_bins, T, generator=g)
    for i, n in enumerate(lengths):
        x[i, :, n:] = pad
    return x, torch.tensor(list(lengths), dtype=torch.int64)


def _run(model: Any, x: Any, lengths: Any, who: str) -> BackboneOutput:
    """Call the backbone and check the type and basic shape of what it returns."""
    out = model(x, lengths)
    if not isinstance(out, BackboneOutput):
        _fail(f"{who}: forward must return zoo.protocols.BackboneOutput, got {type(out).__name__}")
    h = out.hidden
    B = x.shape[0]
    from .model.model import width_error
    if not hasattr(h, "dim") or h.dim() not in (2, 3) or h.shape[0] != B:
        _fail(f"{who}: output of shape {list(getattr(h, 'shape', ()))}; expected [{B}, {model.out_dim}] or "
              f"[{B}, T', {model.out_dim}] (out_dim={model.out_dim})")
    if width_error(model, h):
        _fail(width_error(model, h))
    if h.dim() == 3:
        if out.lengths is None:
            _fail(f"{who}: a sequence output [B, T', D] must come with its lengths [B]")
        ol = out.lengths
        if tuple(ol.shape) != (B,) or ol.dtype.is_floating_point:
            _fail(f"{who}: output lengths must be an integer Tensor[{B}], got {ol.dtype} {list(ol.shape)}")
        if int(ol.min()) < 1 or int(ol.max()) > h.shape[1]:
            _fail(f"{who}: output lengths {ol.tolist()} must lie in 1..T' = 1..{h.shape[1]}")
    return out


def _valid(out: BackboneOutput, i: int):
    """Clip ``i``'s part of an output: ``[D]`` or its valid steps ``[T'_i, D]``."""
    h = out.hidden[i]
    return h if h.dim() == 1 else h[: int(out.lengths[i])]


def _check_module(model: Any, who: str) -> None:
    from torch import nn

    if not isinstance(model, nn.Module):
        _fail(f"{who}: build must return a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(getattr(model, "out_dim", None), int) or model.out_dim < 1:
        _fail(f"{who}: needs an integer attribute out_dim >= 1 (the width D of its output), got {getattr(model, 'out_dim', None)!r}")
    devices = {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}
    if devices - {"cpu"}:
        _fail(f"{who}: parameters on {sorted(devices)} after build; backbones must not move themselves (the engine picks the device)")


def check_backbone_forward(spec_or_factory: ComponentSpec | BackboneFactory, n_bins: int = 20, *,
                           settings: Mapping[str, Any] | None = None, lengths: Sequence[int] = (37, 25, 11)) -> None:
    """Build, then forward a padded batch in train and eval mode: type, shape, ``out_dim``, finite."""
    import torch

    who = _label(spec_or_factory)
    model = _factory(spec_or_factory, settings)(n_bins)
    _check_module(model, who)
    x, lens = _batch(n_bins, lengths)
    for mode in (True, False):
        model.train(mode)
        with torch.no_grad():
            out = _run(model, x, lens, who)
        if not torch.isfinite(out.hidden).all():
            _fail(f"{who}: non-finite output in {'train' if mode else 'eval'} mode for lengths {list(lengths)}")
        if out.hidden.dim() == 3:
            order = np.argsort(lens.numpy(), kind="stable")
            if np.any(np.diff(out.lengths.cpu().numpy()[order]) < 0):
                _fail(f"{who}: output lengths {out.lengths.tolist()} do not grow with input lengths {list(lengths)}")


def check_composition(backbone: Any, tasks: Mapping[str, Any], n_bins: int, *,
                      lengths: Sequence[int] = (37, 25, 11), features: Mapping[str, Any] | None = None) -> None:
    """What ``zoo run`` checks before any data work, failing with these checks' own messages (it
    raises them as a ``PluginError``): the built ``backbone`` as :func:`check_backbone_forward` checks
    it, in eval mode and without gradients (nothing of it changes: its mode is restored), every
    task of ``tasks`` as :func:`check_task` checks it, and every feature of ``features`` as
    :func:`check_feature` checks its members and ``settings()`` (not its output: that needs audio)."""
    import torch

    for name, feature in (features or {}).items():
        _check_feature_members(feature, f"feature '{getattr(feature, 'name', name)}'")

    who = getattr(backbone, "zoo_origin", f"backbone {type(backbone).__name__}")
    _check_module(backbone, who)
    x, lens = _batch(n_bins, lengths)
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            out = _run(backbone, x, lens, who)
    finally:
        backbone.train(was_training)
    if not torch.isfinite(out.hidden).all():
        _fail(f"{who}: non-finite output in eval mode for lengths {list(lengths)}")
    for task in tasks.values():
        check_task(task)


def check_backbone_backward(spec_or_factory: ComponentSpec | BackboneFactory, n_bins: int = 20, *,
                            settings: Mapping[str, Any] | None = None, lengths: Sequence[int] = (37, 25, 11)) -> None:
    """One backward pass in train mode: every trainable parameter gets a finite gradient."""
    import torch

    who = _label(spec_or_factory)
    model = _factory(spec_or_factory, settings)(n_bins)
    model.train()
    x, lens = _batch(n_bins, lengths, seed=1)
    out = _run(model, x, lens, who)
    # Random weights so no parameter's gradient cancels out by symmetry of a plain sum.
    w = torch.randn(out.hidden.shape, generator=torch.Generator().manual_seed(2))
    (out.hidden * w).sum().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        _fail(f"{who}: has no trainable parameters")
    none = [n for n, p in trainable if p.grad is None]
    if none:
        _fail(f"{who}: no gradient reaches {none[:5]}; every trainable parameter must take part in forward")
    bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
    if bad:
        _fail(f"{who}: non-finite gradients in {bad[:5]}")
    if all(float(p.grad.abs().sum()) == 0.0 for _, p in trainable):
        _fail(f"{who}: every gradient is zero; the output does not depend on the parameters")


def check_backbone_lengths(spec_or_factory: ComponentSpec | BackboneFactory, n_bins: int = 20, *,
                           settings: Mapping[str, Any] | None = None, lengths: Sequence[int] = (41, 29, 16, 7),
                           tolerance: float = 1e-5, pad: float = 0.0) -> None:
    """Eval mode: each clip's output inside a padded batch equals its output alone.

    Pooled outputs must match within ``tolerance`` (absolute, plus the same relative); sequence
    outputs must have the same length and match on the valid steps. ``pad`` is the value
    written past each length (the zoo pads with zeros; a non-zero value tests that padding is
    masked rather than merely zero).
    """
    import torch

    who = _label(spec_or_factory)
    model = _factory(spec_or_factory, settings)(n_bins)
    model.eval()
    x, lens = _batch(n_bins, lengths, seed=3, pad=pad)
    with torch.no_grad():
        batch = _run(model, x, lens, who)
        for i, n in enumerate(lengths):
            alone = _run(model, x[i: i + 1, :, :n].clone(), lens[i: i + 1].clone(), who)
            a, b = _valid(alone, 0), _valid(batch, i)
            if a.shape != b.shape:
                _fail(f"{who}: clip of length {n} gives output {list(a.shape)} alone but {list(b.shape)} in a batch padded to {max(lengths)}")
            err = float((a - b).abs().max()) if a.numel() else 0.0
            if not torch.allclose(a, b, atol=tolerance, rtol=tolerance):
                _fail(f"{who}: clip of length {n} differs alone vs. in a batch padded to {max(lengths)} "
                      f"(max abs difference {err:.3g} > tolerance {tolerance}); padding leaks into valid outputs")


def check_backbone_determinism(spec_or_factory: ComponentSpec | BackboneFactory, n_bins: int = 20, *,
                               settings: Mapping[str, Any] | None = None, seed: int = 1234) -> None:
    """The same torch seed gives the same initial weights and the same eval output, twice."""
    import torch

    who = _label(spec_or_factory)
    factory = _factory(spec_or_factory, settings)
    x, lens = _batch(n_bins, (30, 18), seed=4)
    results = []
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        for _ in range(2):
            torch.manual_seed(seed)
            model = factory(n_bins).eval()
            with torch.no_grad():
                results.append((model.state_dict(), _run(model, x, lens, who).hidden, _run(model, x, lens, who).hidden))
    (s1, o1, o1b), (s2, o2, _) = results
    differ = [k for k in s1 if k not in s2 or not torch.equal(s1[k], s2[k])]
    if differ or set(s1) != set(s2):
        _fail(f"{who}: two builds under torch seed {seed} differ in {differ[:5] or sorted(set(s1) ^ set(s2))[:5]}; initialise only from torch's generator")
    if not torch.equal(o1, o1b):
        _fail(f"{who}: two eval forwards of the same input differ; eval mode must be deterministic")
    if not torch.equal(o1, o2):
        _fail(f"{who}: two builds under torch seed {seed} give different outputs for the same input")


def check_backbone_short(spec_or_factory: ComponentSpec | BackboneFactory, n_bins: int = 20, *,
                         settings: Mapping[str, Any] | None = None, sizes: Iterable[int] = (1, 2, 3, 4)) -> None:
    """Very short clips (T = 1..4, alone and mixed): finite outputs and gradients, no crash."""
    import torch

    who = _label(spec_or_factory)
    model = _factory(spec_or_factory, settings)(n_bins)
    sizes = list(sizes)
    cases = [[t, t] for t in sizes] + [sorted(sizes, reverse=True)]
    for lengths in cases:
        x, lens = _batch(n_bins, lengths, seed=5)
        model.eval()
        with torch.no_grad():
            out = _run(model, x, lens, who)
        if not torch.isfinite(out.hidden).all():
            _fail(f"{who}: non-finite eval output for lengths {lengths}")
        model.train()
        model.zero_grad(set_to_none=True)
        out = _run(model, x, lens, who)
        out.hidden.float().pow(2).mean().backward()
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        if not torch.isfinite(out.hidden).all() or bad:
            _fail(f"{who}: non-finite train output or gradients ({bad[:3]}) for lengths {lengths}")


def _block_members(members: Any, who: str, name: str) -> tuple[list[Any], list[Any]]:
    """The (parameters, modules) of one declared block's ``members``, read as the engine reads them."""
    from .engine.freezing import declared_block

    try:
        block = declared_block(name, members)
    except ZooError as exc:
        _fail(f"{who}: {exc}")
    return block.params, block.modules


def check_backbone_blocks(spec_or_factory: ComponentSpec | BackboneFactory, n_bins: int = 20, *,
                          settings: Mapping[str, Any] | None = None) -> None:
    """A backbone's declared blocks (``named_blocks()``, optional): its own weights, in order, no overlap.

    Each block is a named, non-empty list of the backbone's own modules and parameters; no
    parameter is in two blocks; names are unique; and the blocks' modules first run in the
    declared order in a forward pass (blocks of bare parameters are not ordered by this check).
    A backbone without ``named_blocks`` passes: the engine then guesses its blocks.
    """
    import torch

    who = _label(spec_or_factory)
    model = _factory(spec_or_factory, settings)(n_bins)
    from .protocols import DeclaresBlocks
    if not _has(model, DeclaresBlocks) or model.named_blocks is None:
        return
    declare = model.named_blocks
    if not callable(declare):
        _fail(f"{who}: named_blocks must be a method returning [(name, [modules and parameters]), ...], got {type(declare).__name__}")
    blocks = declare()
    if not isinstance(blocks, (list, tuple)) or not blocks:
        _fail(f"{who}: named_blocks() gave {'an empty ' if not blocks else 'a '}{type(blocks).__name__}; give a non-empty list of (name, [modules and parameters]) in input-to-output order")
    own_params = {id(p): n for n, p in model.named_parameters()}
    own_modules = {id(m) for m in model.modules()}
    seen: dict[int, str] = {}
    names: list[str] = []
    hooked: list[tuple[str, list[Any]]] = []
    for block in blocks:
        if not (isinstance(block, tuple) and len(block) == 2 and isinstance(block[0], str) and block[0]):
            _fail(f"{who}: named_blocks() item of type {type(block).__name__} must be a (name, members) tuple with a non-empty name")
        name, members = block
        if name in names:
            _fail(f"{who}: named_blocks() names '{name}' twice; give every block its own name")
        names.append(name)
        params, modules = _block_members(members, who, name)
        if not params:
            _fail(f"{who}: named_blocks() block '{name}' holds no parameters; leave weightless parts out")
        alien = [m for m in modules if id(m) not in own_modules]
        if alien or any(id(p) not in own_params for p in params):
            _fail(f"{who}: named_blocks() block '{name}' holds modules or parameters that are not the backbone's own")
        for p in params:
            if id(p) in seen:
                _fail(f"{who}: parameter '{own_params[id(p)]}' is in blocks '{seen[id(p)]}' and '{name}'; a parameter belongs to one block")
            seen[id(p)] = name
        if modules:
            hooked.append((name, modules))

    # Order: the block whose modules run first must be declared first.
    first: dict[str, int] = {}
    calls = [0]

    def hook_for(name: str):
        def hook(module: Any, inputs: Any) -> None:
            calls[0] += 1
            first.setdefault(name, calls[0])
        return hook

    handles = [m.register_forward_pre_hook(hook_for(name)) for name, modules in hooked for m in modules]
    try:
        x, lens = _batch(n_bins, (23, 15), seed=6)
        model.eval()
        with torch.no_grad():
            _run(model, x, lens, who)
    finally:
        for h in handles:
            h.remove()
    ran = [name for name, _ in hooked if name in first]
    if ran != sorted(ran, key=first.__getitem__):
        _fail(f"{who}: named_blocks() declares {ran} but forward runs them as {sorted(ran, key=first.__getitem__)}; "
              f"declare the blocks in input-to-output order")


def check_backbone_config(spec: ComponentSpec, n_bins: int = 20, *, settings: Mapping[str, Any] | None = None) -> None:
    """A backbone config's optional members: ``train_defaults``, ``head_defaults`` and the ``freeze`` field.

    ``train_defaults`` must be a class attribute (not a field) mapping ``TrainConfig`` fields to
    valid values. ``freeze`` must be an integer field defaulting to 0; building with
    ``freeze=1`` must fix some weights, and with ``named_blocks()`` exactly its first block's.
    """
    from .engine.trainconfig import TrainConfig

    who = _label(spec)
    if not isinstance(spec, ComponentSpec) or spec.kind != "backbone":
        _fail(f"check_backbone_config reads a backbone's config class: it needs the backbone spec, got {_what(spec)}")
    from .tasks import ClassificationConfig

    fields = {f.name: f for f in dataclasses.fields(spec.config)}
    known = {f.name for f in dataclasses.fields(ClassificationConfig)}
    # train_defaults: TrainConfig fields; head_defaults: task settings, of which the built-in
    # tasks' heads must accept those their config has.
    for attr, target, what, keep in (("train_defaults", TrainConfig, "TrainConfig fields", None),
                                     ("head_defaults", ClassificationConfig, "task settings", known)):
        if attr in fields:
            _fail(f"{who}: {attr} is a field of {spec.config.__name__}; make it a class attribute, "
                  f"{attr}: ClassVar[dict] = {{...}}")
        defaults = getattr(spec.config, attr, None)
        if defaults is None:
            continue
        if not isinstance(defaults, Mapping):
            _fail(f"{who}: {attr} must be a mapping of {what}, got {type(defaults).__name__}")
        try:
            make_config(target, {k: v for k, v in defaults.items() if keep is None or k in keep},
                        where=f"{attr} of {who}")
        except ZooError as exc:
            _fail(str(exc))
    check_former_defaults(spec)
    check_resolved(spec, settings)
    if "freeze" not in fields:
        return
    default = make_config(spec.config, settings, where=who).freeze
    if not isinstance(default, int) or isinstance(default, bool) or default != 0:
        _fail(f"{who}: the freeze field must be an int that defaults to 0 (train every block), got {default!r}")
    model = spec.build(make_config(spec.config, {**(settings or {}), "freeze": 1}, where=who), n_bins)
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    if not frozen:
        _fail(f"{who}: built with freeze=1, it keeps no weights fixed; freeze N must fix its first N blocks")
    from .protocols import DeclaresBlocks
    if isinstance(model, DeclaresBlocks) and callable(model.named_blocks):
        name, members = model.named_blocks()[0]
        first = {id(p) for p in _block_members(members, who, name)[0]}
        if frozen != first:
            _fail(f"{who}: built with freeze=1, it fixes {len(frozen)} parameters, not the {len(first)} of its first "
                  f"declared block '{name}'; freeze N must fix exactly its first N named_blocks()")


def check_resolved(spec: ComponentSpec, settings: Mapping[str, Any] | None = None) -> None:
    """A config's optional ``resolved()`` (:class:`~zoo.protocols.FindsItsFiles`), made from ``settings``:
    it returns a config of the same class, and resolving that again changes nothing (what the files
    decide is filled in once; the engine records it and a rebuild reads it back)."""
    from .protocols import FindsItsFiles
    who = _label(spec)
    config = make_config(spec.config, settings, where=who)
    if not isinstance(config, FindsItsFiles):
        return
    found = config.resolved()
    if type(found) is not type(config):
        _fail(f"{who}: resolved() returned {_what(found)}, not a {type(config).__name__}; return the config "
              f"with what its files decide filled in (dataclasses.replace)")
    again = found.resolved()
    if again != found:
        changed = [f.name for f in dataclasses.fields(found) if getattr(found, f.name) != getattr(again, f.name)]
        _fail(f"{who}: resolving the resolved config changed {', '.join(changed)}; resolved() must fill in what "
              f"the files decide once, so that a recorded config rebuilds the same component")


def check_former_defaults(spec: ComponentSpec) -> None:
    """A config's optional ``former_defaults`` (:class:`~zoo.protocols.RemembersDefaults`): a class
    attribute, not a field, mapping fields of the config to values it accepts. ``check_backbone``,
    ``check_feature`` and ``check_task`` call it when given a spec; a data set's spec may be checked so."""
    from .protocols import RemembersDefaults
    if not isinstance(spec, ComponentSpec):
        _fail(f"check_former_defaults reads a config class: it needs a component spec, got {_what(spec)}")
    who = _label(spec)
    fields = {f.name for f in dataclasses.fields(spec.config)}
    if "former_defaults" in fields:
        _fail(f"{who}: former_defaults is a field of {spec.config.__name__}; make it a class attribute, "
              f"former_defaults: ClassVar[dict] = {{...}}")
    if not isinstance(spec.config, RemembersDefaults):
        return
    former = spec.config.former_defaults
    if not isinstance(former, Mapping):
        _fail(f"{who}: former_defaults must be a mapping of config fields, got {type(former).__name__}")
    unknown = sorted(set(former) - fields)
    if unknown:
        _fail(f"{who}: former_defaults names {', '.join(unknown)}, not fields of {spec.config.__name__} "
              f"({', '.join(sorted(fields)) or 'none'})")
    try:
        make_config(spec.config, dict(former), where=f"former_defaults of {who}")
    except ZooError as exc:
        _fail(str(exc))


def check_dataset(dataset: Any, *, rate: str = "frames") -> None:
    """A built data set: ``name``, ``describe()``, ``clips(rate)`` giving :class:`~zoo.protocols.Clip`s
    with exactly one of ``audio`` and ``array``, and its optional members when it has them:
    ``progress`` a bool (:class:`~zoo.protocols.ShowsProgress`), ``restrict``, ``only`` and
    ``mapping_report`` callable, the last giving ``before``, ``after`` and ``dropped`` counters."""
    from collections import Counter

    from .protocols import Clip, Dataset, MapsLabels, Restricts, SelectsClips, ShowsProgress
    if not isinstance(dataset, Dataset):
        _fail(f"check_dataset needs a built data set, got {_what(dataset)} "
              f"(it lacks {', '.join(_lacks(dataset, ('name', 'clips', 'describe')))})")
    who = f"data set '{dataset.name}'"
    if not isinstance(dataset.describe(), str):
        _fail(f"{who}: describe() must return one line of text")
    if isinstance(dataset, ShowsProgress) and not isinstance(dataset.progress, bool):
        _fail(f"{who}: progress must be a bool the zoo may set, got {dataset.progress!r}")
    for protocol, member in ((Restricts, "restrict"), (SelectsClips, "only"), (MapsLabels, "mapping_report")):
        if isinstance(dataset, protocol) and not callable(getattr(dataset, member)):
            _fail(f"{who}: {member} must be a method (zoo.protocols.{protocol.__name__})")
    clips = dataset.clips(rate)
    for c in clips:
        if not isinstance(c, Clip) or (c.audio is None) == (c.array is None):
            _fail(f"{who}: clips({rate!r}) must give Clips with exactly one of audio and array, got {c!r}")
    if isinstance(dataset, MapsLabels):
        report = dataset.mapping_report(rate)
        if not all(isinstance(getattr(report, k, None), Counter) for k in ("before", "after", "dropped")):
            _fail(f"{who}: mapping_report({rate!r}) must have before, after and dropped Counters, got {report!r}")


def check_backbone_fixed_statistics(spec_or_factory: ComponentSpec | BackboneFactory, n_bins: int = 20, *,
                                    settings: Mapping[str, Any] | None = None, tolerance: float = 1e-4) -> None:
    """A backbone that declares :class:`~zoo.protocols.FixedStatistics` (nothing to check otherwise):
    ``fixed_pool`` gives ``[B, out_dim]`` the same in train and eval mode, a clip's row does not change
    in a padded batch, and after ``set_standardisation`` with a batch's mean and variance the eval
    output is ``standardise(fixed_pool(x))``, standardised (mean 0, variance 1 over the batch) or, for
    a backbone configured not to standardise, the statistics themselves."""
    import torch

    from .protocols import FixedStatistics
    who = _label(spec_or_factory)
    model = _factory(spec_or_factory, settings)(n_bins)
    if not _has(model, FixedStatistics):
        return
    lengths = (41, 29, 16, 7, 33, 20)
    x, lens = _batch(n_bins, lengths, seed=5)
    with torch.no_grad():
        model.train()
        z_train = model.fixed_pool(x, lens)
        model.eval()
        z = model.fixed_pool(x, lens)
        if tuple(z.shape) != (len(lengths), model.out_dim):
            _fail(f"{who}: fixed_pool gives {list(z.shape)}, expected [batch, out_dim] = [{len(lengths)}, {model.out_dim}]")
        if not torch.allclose(z, z_train, atol=tolerance, rtol=tolerance):
            _fail(f"{who}: fixed_pool differs between train and eval mode; it must be a fixed function of the input")
        alone = model.fixed_pool(x[1:2, :, : lengths[1]].clone(), lens[1:2].clone())
        if not torch.allclose(alone[0], z[1], atol=tolerance, rtol=tolerance):
            _fail(f"{who}: fixed_pool of a clip differs alone vs. in a padded batch")
        z64 = z.double()
        model.set_standardisation(z64.mean(0), z64.var(0, unbiased=False))
        out = _run(model, x, lens, who).hidden
        if not torch.allclose(out, model.standardise(z), atol=tolerance, rtol=tolerance):
            _fail(f"{who}: in eval mode forward(x).hidden differs from standardise(fixed_pool(x))")
        varies = z64.var(0, unbiased=False) > 1e-6
        standardised = (out.double()[:, varies].mean(0).abs().max() < 1e-3
                        and (out.double()[:, varies].var(0, unbiased=False) - 1).abs().max() < 1e-2)
        if not standardised and not torch.allclose(out, z, atol=tolerance, rtol=tolerance):
            _fail(f"{who}: after set_standardisation(mean, var) of a batch, its eval output is neither standardised "
                  f"(mean 0, variance 1) nor the raw statistics")


def check_backbone(spec_or_factory: ComponentSpec | BackboneFactory, n_bins: int = 20, *,
                   settings: Mapping[str, Any] | None = None, tolerance: float = 1e-5) -> None:
    """Every backbone check: forward, backward, variable lengths, determinism, short inputs,
    declared blocks, declared fixed statistics and (for a spec) the config's optional members.

    ``spec_or_factory`` is a backbone :class:`~zoo.protocols.ComponentSpec` (built with its
    config from ``settings``) or a callable ``factory(n_bins) -> nn.Module``.
    """
    check_backbone_forward(spec_or_factory, n_bins, settings=settings)
    check_backbone_backward(spec_or_factory, n_bins, settings=settings)
    check_backbone_lengths(spec_or_factory, n_bins, settings=settings, tolerance=tolerance)
    check_backbone_determinism(spec_or_factory, n_bins, settings=settings)
    check_backbone_short(spec_or_factory, n_bins, settings=settings)
    check_backbone_blocks(spec_or_factory, n_bins, settings=settings)
    check_backbone_fixed_statistics(spec_or_factory, n_bins, settings=settings)
    if isinstance(spec_or_factory, ComponentSpec):
        check_backbone_config(spec_or_factory, n_bins, settings=settings)


# -- features ------------------------------------------------------------------------------

def chord_and_clicks(sr: int = 22050, seconds: float = 5.0, bpm: float = 120.0) -> np.ndarray:
    """A mono float32 waveform ``[N]``: a sustained A-minor chord plus a click on every beat."""
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    y = np.zeros(n)
    for f0 in (220.0, 261.63, 329.63):  # A3, C4, E4
        for h in (1, 2, 3):
            y += 0.15 / h * np.sin(2 * np.pi * f0 * h * t)
    rng = np.random.default_rng(0)
    click = rng.standard_normal(int(0.03 * sr)) * np.exp(-np.linspace(0, 8, int(0.03 * sr)))
    for start in np.arange(0.25, seconds - 0.05, 60.0 / bpm):
        i = int(start * sr)
        y[i: i + len(click)] += 0.8 * click[: n - i]
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def fake_lab_array(T: int = 50, seed: int = 0) -> np.ndarray:
    """A lab-style fused array ``[140, T]`` float64: mel dB in [-80, 0] over chroma in [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.vstack([rng.uniform(-80.0, 0.0, (128, T)), rng.uniform(0.0, 1.0, (12, T))])


def check_feature(feature: Any, *, seconds: float = 4.0, frame_slack: int = 1, lab: bool | None = None,
                  settings: Mapping[str, Any] | None = None) -> None:
    """A feature object: attributes, ``from_audio`` on generated audio, ``from_lab``, ``settings``.

    Frame-rate features must give ``1 + N // hop_length`` columns (within ``frame_slack``);
    beat-rate ones at least one and no more than that. ``lab=False`` says the feature cannot be
    derived from the lab's arrays: ``from_lab`` must then raise a ``ZooError`` that says so.
    ``lab=None`` reads the feature's optional ``reads_lab`` attribute (True when it has none).
    ``feature``: a feature spec (built with its config from ``settings``) or a built feature.
    """
    given = feature
    feature = _built("feature", feature, settings, "check_feature")
    who = f"feature '{getattr(feature, 'name', '?')}'"
    if not isinstance(feature, Feature):
        missing = _lacks(feature, ("name", "n_bins", "rate", "sample_rate", "hop_length", "settings", "from_audio", "from_lab"))
        _fail(f"check_feature needs a feature spec or a built feature, got {_what(given)}"
              + (f" (it lacks {', '.join(missing)})" if missing and not isinstance(given, ComponentSpec) else
                 f", whose build returned {_what(feature)} lacking {', '.join(missing)}"))
    if isinstance(given, ComponentSpec):
        check_former_defaults(given)
    _check_feature_members(feature, who)
    if lab is None:
        lab = feature.reads_lab if isinstance(feature, ReadsLab) else True

    y = chord_and_clicks(feature.sample_rate, seconds)
    out = feature.from_audio(y, feature.sample_rate)
    _check_array(out, feature, who, "from_audio")
    frames = 1 + len(y) // feature.hop_length
    T = out.shape[1]
    if feature.rate == "frames" and abs(T - frames) > frame_slack:
        _fail(f"{who}: from_audio gave {T} frames for {len(y)} samples; expected 1 + N // hop_length = {frames} (± {frame_slack})")
    if feature.rate == "beats" and not 1 <= T <= frames:
        _fail(f"{who}: from_audio gave {T} beats for {len(y)} samples; expected 1..{frames}")
    again = feature.from_audio(y, feature.sample_rate)
    if again.shape != out.shape or not np.allclose(again, out, atol=1e-5):
        _fail(f"{who}: from_audio gives different results for the same audio")
    _check_batch(feature, who, y, out)

    fused = fake_lab_array()
    if lab:
        got = feature.from_lab(fused)
        _check_array(got, feature, who, "from_lab")
        if got.shape[1] != fused.shape[1]:
            _fail(f"{who}: from_lab turned [140, {fused.shape[1]}] into {list(got.shape)}; the time axis must be kept")
    else:
        try:
            feature.from_lab(fused)
        except ZooError as exc:
            if not str(exc):
                _fail(f"{who}: from_lab raised {type(exc).__name__} without a message")
        else:
            _fail(f"{who}: declared unable to read lab arrays, yet from_lab returned without a ZooError")


def _check_feature_members(feature: Any, who: str) -> None:
    """A feature's attributes, optional members and ``settings()`` (no audio: what ``zoo run`` checks too)."""
    from .protocols import BatchesAudio, KeepsScale, NeedsSamples
    for protocol, attr, kind in ((ReadsLab, "reads_lab", bool), (KeepsScale, "standardise", bool),
                                 (NeedsSamples, "min_samples", int), (BatchesAudio, "batch_size", int)):
        if isinstance(feature, protocol) and (not isinstance(getattr(feature, attr), kind)
                                              or (kind is int and getattr(feature, attr) < 1)):
            _fail(f"{who}: {attr} must be a {'positive int' if kind is int else kind.__name__} "
                  f"(zoo.protocols.{protocol.__name__}), got {getattr(feature, attr)!r}")
    for attr in ("n_bins", "sample_rate", "hop_length"):
        value = getattr(feature, attr)
        if not isinstance(value, (int, np.integer)) or value < 1:
            _fail(f"{who}: {attr} must be a positive integer, got {value!r}")
    if feature.rate not in ("frames", "beats"):
        _fail(f"{who}: rate must be 'frames' or 'beats', got {feature.rate!r}")
    _check_picture(feature, who)
    try:
        text = json.dumps(dict(feature.settings()), sort_keys=True)
    except (TypeError, ValueError) as exc:
        _fail(f"{who}: settings() must be a JSON-able mapping (it keys the cache): {exc}")
    if json.dumps(dict(feature.settings()), sort_keys=True) != text:
        _fail(f"{who}: settings() changes between calls")


def _check_picture(feature: Any, who: str) -> None:
    """The optional ``picture`` (zoo.protocols.Drawable): a Picture whose beat twin is named by a beat feature only."""
    from .protocols import Drawable, Picture
    drawable = isinstance(feature, Drawable)
    if not drawable:
        return
    p = feature.picture
    if not isinstance(p, Picture) or not isinstance(p.title, str) or not p.title or not isinstance(p.scale, str):
        _fail(f"{who}: picture must be a zoo.protocols.Picture(title, scale, ...) with a title, got {p!r}")
    if p.fmax is not None and not p.fmin < p.fmax:
        _fail(f"{who}: picture's frequency range must have fmin < fmax, got {p.fmin!r}..{p.fmax!r}")
    if p.beat_of and feature.rate != "beats":
        _fail(f"{who}: picture.beat_of={p.beat_of!r} names the feature it aggregates between beats, but its rate is "
              f"{feature.rate!r}; only a beat-rate feature has a beat_of")


def _check_batch(feature: Any, who: str, y: np.ndarray, out: np.ndarray) -> None:
    """The optional ``from_audio_batch`` (zoo.protocols.BatchesAudio): two clips of unequal lengths,
    each what ``from_audio`` gives (within 1e-3 of the larger of 1 and the values' range)."""
    from .protocols import BatchesAudio
    batches = isinstance(feature, BatchesAudio)
    if not batches:
        return
    shorter = y[: len(y) * 3 // 4]
    got = feature.from_audio_batch([y, shorter], feature.sample_rate)
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        _fail(f"{who}: from_audio_batch of 2 clips must return a list of 2 arrays, got {_what(got)}")
    for a, single in zip(got, (out, feature.from_audio(shorter, feature.sample_rate))):
        _check_array(a, feature, who, "from_audio_batch")
        scale = max(1.0, float(np.ptp(single)))
        if a.shape != single.shape or not np.allclose(a, single, atol=1e-3 * scale):
            _fail(f"{who}: from_audio_batch gave a clip {list(a.shape)} that differs from what from_audio gives "
                  f"for it {list(single.shape)}; a batch must hold each clip's own from_audio")


def _check_array(a: Any, feature: Any, who: str, method: str) -> None:
    if not isinstance(a, np.ndarray):
        _fail(f"{who}: {method} must return a numpy array, got {type(a).__name__}")
    if a.dtype != np.float32:
        _fail(f"{who}: {method} returned {a.dtype}; it must be float32")
    if a.ndim != 2 or a.shape[0] != feature.n_bins or a.shape[1] < 1:
        _fail(f"{who}: {method} returned shape {list(a.shape)}; expected [n_bins={feature.n_bins}, T >= 1]")
    if not np.isfinite(a).all():
        _fail(f"{who}: {method} returned non-finite values")


# -- tasks ---------------------------------------------------------------------------------

def check_task(task: Any, *, in_dim: int = 8, classes: tuple[str, ...] = ("a", "b", "c"), batch: int = 6,
               settings: Mapping[str, Any] | None = None) -> None:
    """A task: its head on a pooled and on a sequence output, loss, predict and metrics.

    Labels include a missing one (-1 for classification, NaN for regression and for a tag of a
    multi-label task), which the loss and metrics must skip. A multi-label task gets ``classes`` as
    its tag columns, and its ``columns``, ``resolve`` and ``encode`` are checked too (targets
    ``[B, K]`` of 0/1, probabilities ``[B, K]``). The head must ignore the padded steps of a sequence. A head with
    ``embed`` (optional) is checked by :func:`check_head_embed`. ``task``: a task spec (built
    with its config from ``settings``) or a built task.
    """
    import torch

    given = task
    task = _built("task", task, settings, "check_task")
    missing = _lacks(task, TASK_MEMBERS)
    if missing:
        _fail(f"check_task needs a task spec or a built task, got {_what(given)}"
              + (f", whose build returned {_what(task)}" if isinstance(given, ComponentSpec) else "")
              + f" (it lacks {', '.join(missing)})")
    who = f"task '{getattr(task, 'name', '?')}'"
    if task.kind not in TASK_KINDS:
        _fail(f"{who}: kind must be one of {', '.join(TASK_KINDS)}, got {task.kind!r}")
    if isinstance(given, ComponentSpec):
        check_former_defaults(given)
    if task.kind == "multilabel":
        _check_multilabel(task, classes, who)
    if task.kind == "classification" and isinstance(task, OwnsClasses):
        classes = _check_own_classes(task, classes, who)
    weighted = takes_loss_weight(task)
    if not weighted:
        import warnings
        warnings.warn(f"{who}: loss(output, y) takes no weight; declare loss(output, y, weight=None) "
                      f"(zoo.protocols.Task.loss), or train.balance cannot weigh it (deprecated; API 2 requires it)",
                      FutureWarning, stacklevel=2)
    schema = task.schema(classes)
    if schema.kind != task.kind:
        _fail(f"{who}: schema kind {schema.kind!r} differs from the task's kind {task.kind!r}")
    C = schema.out_dim
    head = task.make_head(in_dim, schema)
    g = torch.Generator().manual_seed(0)
    T = 9
    lengths = torch.tensor([T, 5, 1, 7, 3, 9][:batch] + [T] * max(0, batch - 6))
    seq = torch.randn(batch, T, in_dim, generator=g)
    seq = seq * (torch.arange(T)[None, :] < lengths[:, None])[..., None]
    if task.kind == "classification":
        y = torch.randint(0, C, (batch,), generator=g)
        y[1] = -1
    elif task.kind == "multilabel":
        # every tag on for some clips and off for others, one clip with no values, one value missing
        y = (torch.arange(batch)[:, None] + torch.arange(C)[None, :]) % 2 == 0
        y = y.float()
        y[1] = float("nan")
        y[0, 0] = float("nan")
    else:
        y = torch.rand(batch, generator=g)
        y[1] = float("nan")

    for label, out in (("pooled", BackboneOutput(torch.randn(batch, in_dim, generator=g))),
                       ("sequence", BackboneOutput(seq, lengths))):
        head.train()
        head.zero_grad(set_to_none=True)
        pred = head(out)
        if pred.shape[0] != batch or pred.numel() != batch * C:
            _fail(f"{who}: head output {list(pred.shape)} on a {label} input; expected {batch} rows of {C}")
        loss = task.loss(pred, y)
        if loss.dim() != 0 or not torch.isfinite(loss):
            _fail(f"{who}: loss on a {label} input must be a finite scalar, got {loss}")
        if weighted:
            _check_loss_weight(task, pred, y, loss, C, who, label)
        loss.backward()
        grads = [p.grad for p in head.parameters() if p.requires_grad]
        if not grads or all(gr is None for gr in grads) or any(gr is not None and not torch.isfinite(gr).all() for gr in grads):
            _fail(f"{who}: the loss does not give finite gradients to the head on a {label} input")
        p = task.predict(pred)
        if not isinstance(p, np.ndarray):
            _fail(f"{who}: predict must return a numpy array, got {type(p).__name__}")
        want = (batch, C) if task.kind in ("classification", "multilabel") else (batch,)
        if p.shape != want:
            _fail(f"{who}: predict gave shape {list(p.shape)}; expected {list(want)}")
        if task.kind == "classification" and not np.allclose(p.sum(-1), 1.0, atol=1e-4):
            _fail(f"{who}: predict must give class probabilities that sum to 1 per clip")
        if task.kind == "multilabel" and not ((p >= 0) & (p <= 1)).all():
            _fail(f"{who}: predict must give a probability in [0, 1] per tag")
        metrics = task.metrics(p, y.numpy(), schema)
        if not isinstance(metrics, dict) or task.primary_metric not in metrics:
            _fail(f"{who}: metrics {sorted(metrics) if isinstance(metrics, dict) else metrics!r} lack the primary metric {task.primary_metric!r}")
        if not all(isinstance(k, str) and isinstance(v, float) for k, v in metrics.items()):
            _fail(f"{who}: metrics must map names to Python floats, got {metrics!r}")
        if math.isnan(metrics[task.primary_metric]):
            _fail(f"{who}: primary metric {task.primary_metric!r} is NaN on a batch with valid labels")
        _check_directions(task, metrics, who)

    head.eval()
    with torch.no_grad():
        noisy = seq + 1e3 * (torch.arange(T)[None, :] >= lengths[:, None])[..., None]
        a, b = head(BackboneOutput(seq, lengths)), head(BackboneOutput(noisy, lengths))
    if not torch.allclose(a, b, atol=1e-5):
        _fail(f"{who}: head output changes when only padded steps (past the lengths) change; pooling must mask them")
    check_head_embed(head, in_dim=in_dim, batch=batch, who=who)


def _check_directions(task: Any, metrics: Mapping[str, float], who: str) -> None:
    """A task's ``higher_is_better`` (:class:`~zoo.protocols.DeclaresMetrics`): a mapping of names to bools,
    agreeing with ``greater_is_better`` on the primary metric, with a direction for every metric reported."""
    from .protocols import DeclaresMetrics, metric_direction
    if not _has(task, DeclaresMetrics):
        return
    declared = task.higher_is_better
    if not isinstance(declared, Mapping) or not all(isinstance(k, str) and isinstance(v, bool) for k, v in declared.items()):
        _fail(f"{who}: higher_is_better must map metric names to True or False, got {declared!r}")
    if task.primary_metric in declared and declared[task.primary_metric] != bool(task.greater_is_better):
        _fail(f"{who}: higher_is_better[{task.primary_metric!r}] is {declared[task.primary_metric]} but "
              f"greater_is_better is {task.greater_is_better}; they must agree")
    missing = sorted(k for k in metrics if metric_direction(task, k) is None)
    if missing:
        _fail(f"{who}: metrics() reports {', '.join(missing)} without a direction in higher_is_better "
              f"({', '.join(declared) or 'none'}); declare each (True when higher is better)")


def _check_loss_weight(task: Any, pred: Any, y: Any, loss: Any, C: int, who: str, label: str) -> None:
    """``loss(output, y, weight=...)``: None and weights of 1 give the plain loss; other weights a finite one."""
    import torch
    if task.kind == "regression":
        return
    with torch.no_grad():
        plain = task.loss(pred, y, weight=None)
        ones = task.loss(pred, y, weight=torch.ones(C))
        other = task.loss(pred, y, weight=torch.linspace(0.5, 2.0, C))
    if not torch.allclose(plain.detach(), loss.detach(), atol=1e-5) or not torch.allclose(ones, plain, atol=1e-5):
        _fail(f"{who}: loss(output, y, weight=None) and weight=ones({C}) on a {label} input must equal loss(output, y) "
              f"({float(plain):.6g}, {float(ones):.6g} vs {float(loss.detach()):.6g})")
    if other.dim() != 0 or not torch.isfinite(other):
        _fail(f"{who}: loss with per-{'tag' if task.kind == 'multilabel' else 'class'} weights [{C}] on a {label} "
              f"input must be a finite scalar, got {other}")


def _check_own_classes(task: Any, classes: tuple[str, ...], who: str) -> tuple[str, ...]:
    """A classification's own ``classes`` and ``map_label`` (:class:`~zoo.protocols.OwnsClasses`);
    returns its classes, what the engine gives its ``schema``."""
    own = task.classes
    if (not isinstance(own, tuple) or len(own) < 2 or not all(isinstance(c, str) and c for c in own)
            or len(set(own)) != len(own)):
        _fail(f"{who}: classes must be a tuple of at least 2 distinct class names, got {own!r}")
    for label in (*own, *classes, "a label no task knows"):
        try:
            got = task.map_label(label)
        except Exception as exc:  # noqa: BLE001 - what a plugin raises is the finding
            _fail(f"{who}: map_label({label!r}) raised {exc!r}; return one of its classes, or None to leave the clip out")
        if got is not None and got not in own:
            _fail(f"{who}: map_label({label!r}) gave {got!r}, not one of its classes {own!r} nor None")
    schema = task.schema(own)
    if tuple(schema.classes) != own:
        _fail(f"{who}: schema(classes) must name its own classes {own!r}, got {tuple(schema.classes)!r}")
    return own


def _check_multilabel(task: Any, columns: tuple[str, ...], who: str) -> None:
    """A multi-label task's ``columns``, ``resolve`` and ``encode`` (:class:`~zoo.protocols.MultiLabel`)."""
    missing = _lacks(task, ("columns", "resolve", "encode"))
    missing += [m for m in ("resolve", "encode") if m not in missing and not callable(getattr(task, m))]
    if missing:
        _fail(f"{who}: a multilabel task needs {', '.join(missing)} (zoo.protocols.MultiLabel)")
    from .protocols import HasThreshold
    if isinstance(task, HasThreshold) and (isinstance(task.threshold, bool) or not isinstance(task.threshold, (int, float))
                                           or not math.isfinite(task.threshold)):
        _fail(f"{who}: threshold must be a finite number (zoo.protocols.HasThreshold), got {task.threshold!r}")
    from .errors import DataError
    try:
        task.resolve(tuple(columns) + ("other",), "a test data set")
    except DataError:
        pass  # a task told to read other columns may refuse these; it must say so as a DataError
    except Exception as exc:
        _fail(f"{who}: resolve must return the columns or raise zoo.errors.DataError, raised {exc!r}")
    values = np.array([[0.0, 1.0], [np.nan, 0.2]], dtype=np.float32)
    y = np.asarray(task.encode(values))
    if y.shape != values.shape or not np.isnan(y[1, 0]) or not np.isin(y[~np.isnan(y)], (0.0, 1.0)).all():
        _fail(f"{who}: encode must map values [N, K] to 1 (on) / 0 (off) of the same shape, NaN kept; gave {y!r}")


def check_head_embed(head: Any, *, in_dim: int = 8, batch: int = 6, who: str = "head",
                     classes: tuple[str, ...] = ("a", "b", "c"), settings: Mapping[str, Any] | None = None) -> None:
    """A head's optional ``embed(out) -> Tensor[B, D']`` (the layer before its output layer).

    In eval mode, on a pooled and on a sequence output: a finite ``[B, D']`` tensor, with the
    same D' for both; when the head also has ``output(z)``, ``output(embed(out))`` equals
    ``head(out)``. A head without ``embed`` passes (it only cannot give embeddings).
    ``head``: a built head, or a task spec or built task whose ``make_head(in_dim, schema(classes))`` is checked.
    """
    import torch

    given = head
    head = _built("task", head, settings, "check_head_embed")
    if all(hasattr(head, m) for m in ("make_head", "schema")):
        who = f"task '{getattr(head, 'name', '?')}'" if who == "head" else who
        head = head.make_head(in_dim, head.schema(tuple(classes)))
    if not callable(head):
        _fail(f"check_head_embed needs a head (a torch.nn.Module), a task spec or a built task, got {_what(given)}")
    if getattr(head, "embed", None) is None:
        return
    g = torch.Generator().manual_seed(1)
    T = 7
    lengths = torch.tensor([T, 4, 1, 6, 2, 7][:batch] + [T] * max(0, batch - 6))
    seq = torch.randn(batch, T, in_dim, generator=g) * (torch.arange(T)[None, :] < lengths[:, None])[..., None]
    head.eval()
    widths = []
    with torch.no_grad():
        for label, out in (("pooled", BackboneOutput(torch.randn(batch, in_dim, generator=g))),
                           ("sequence", BackboneOutput(seq, lengths))):
            z = head.embed(out)
            if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] != batch:
                shape = list(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
                _fail(f"{who}: embed() on a {label} input gave {shape}; expected a Tensor[{batch}, D'] (the layer before the output layer)")
            if not torch.isfinite(z).all():
                _fail(f"{who}: embed() gives non-finite values on a {label} input")
            widths.append(z.shape[1])
            output = getattr(head, "output", None)
            if callable(output) and not torch.allclose(output(z), head(out), atol=1e-5):
                _fail(f"{who}: output(embed(out)) differs from head(out) on a {label} input; embed must stop right before the output layer")
    if widths[0] != widths[1]:
        _fail(f"{who}: embed() is {widths[0]} wide on a pooled input but {widths[1]} on a sequence; D' must not depend on the input")
