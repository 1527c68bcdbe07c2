"""Load a transformers audio encoder (pretrained or from scratch) and cut it down to the hidden layer asked for.

Shared by the two backbones and the embedding feature. ``layer`` (see
:data:`zoo_hf.configs.LAYER_HELP`) is applied to the module itself, so that what is not needed
is neither run nor trained:

- a number N keeps the first N transformer layers and replaces a final norm that follows them
  by an identity: the model's output is then layer N's output, as ``hidden_states[N]`` of the
  whole model (0: the input of the first layer);
- "mean" keeps every layer, drops the final norm and averages the layers' outputs (read with
  forward hooks);
- "last" keeps the whole model: its ``last_hidden_state``.

A final norm is the AST's ``layernorm`` and, in the "stable layer norm" variants of wav2vec2 and
HuBERT (the large models), ``encoder.layer_norm``; in the base variants that norm comes before the
layers and is always kept.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
from torch import nn

from zoo.errors import ConfigError, PluginError

from .configs import Pretrained

LAYER_LISTS = ("layers", "encoder.layers", "encoder.layer")
"""Where transformers keeps the list of transformer layers, in the versions and models seen."""


def load_model(config: Pretrained, family: str, scratch: Callable[[], Any]) -> nn.Module:
    """The transformers model of ``config`` in float32: from its checkpoint, else ``scratch()``'s config
    (random weights from torch's generator, so a seed reproduces them)."""
    import transformers

    ckpt = config.checkpoint
    if ckpt is None and not config.record:
        built: Any = transformers.ASTModel if family == "ast" else transformers.Wav2Vec2Model
        return built(scratch()).float()
    if ckpt is None:
        return _from_record(config, family, transformers).float()
    loader: Any = transformers.ASTModel if family == "ast" else transformers.AutoModel
    extra = {} if family == "ast" else {"trust_remote_code": config.trust_remote_code}
    try:
        with _quiet(transformers):
            model, info = loader.from_pretrained(str(ckpt.folder), output_loading_info=True, **extra)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(
            f"{config.component}: transformers {transformers.__version__} cannot load '{config.weights}' "
            f"({ckpt.folder}): {type(exc).__name__}: {exc}"
        ) from exc
    # Weights the checkpoint lacks would start random without a word; unused ones (a classifier,
    # pre-training heads) are expected and dropped.
    missing = sorted(info.get("missing_keys") or ()) + sorted(str(k) for k in info.get("mismatched_keys") or ())
    if missing:
        raise ConfigError(
            f"{config.component}: '{config.weights}' ({ckpt.folder}) does not fill {type(model).__name__}: "
            f"missing or mis-shaped {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; it is not a "
            f"complete checkpoint of this model"
        )
    return model.float()


def _from_record(config: Pretrained, family: str, transformers: Any) -> nn.Module:
    """The recorded architecture with fresh weights (a packaged model's own weights are loaded next)."""
    record = config.record
    hf = dict(record["config"])
    if record.get("code"):  # the model's own code lives beside its checkpoint: read the config there
        from zoo.hub import checkpoint_folder

        folder = checkpoint_folder(record["code"], config.component)
        hf_config = transformers.AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
        return transformers.AutoModel.from_config(hf_config, trust_remote_code=True)
    model_type = hf.pop("model_type", "")
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **hf)
    except ValueError as exc:
        raise ConfigError(f"{config.component}: transformers {transformers.__version__} does not know the recorded "
                          f"model type '{model_type}': {exc}") from exc
    with _quiet(transformers):
        if family == "ast":
            return transformers.ASTModel(hf_config)
        return transformers.AutoModel.from_config(hf_config)


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """No progress bar and no loading report while a checkpoint loads (its findings are checked here)."""
    log = transformers.utils.logging
    bar, level = log.is_progress_bar_enabled(), log.get_verbosity()
    log.disable_progress_bar()
    log.set_verbosity_error()
    try:
        yield
    finally:
        log.set_verbosity(level)
        if bar:
            log.enable_progress_bar()


def ast_scratch(config: Pretrained, n_mels: int) -> Any:
    """A small AST config for ``n_mels`` bins (at least one 16-bin patch), AudioSet's 1024-frame window."""
    from transformers import ASTConfig

    return ASTConfig(hidden_size=config.hidden_size, num_hidden_layers=config.layers,
                     num_attention_heads=config.heads, intermediate_size=4 * config.hidden_size,
                     num_mel_bins=max(n_mels, 16), max_length=1024)


def wav2vec2_scratch(config: Pretrained) -> Any:
    """A small wav2vec2 config: the usual convolutional front end (400-sample window, 320-sample hop,
    group norm) with narrow channels, and no layer drop or masking (so every weight trains every step)."""
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(hidden_size=config.hidden_size, num_hidden_layers=config.layers,
                          num_attention_heads=config.heads, intermediate_size=4 * config.hidden_size,
                          conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                          feat_extract_norm="group", do_stable_layer_norm=False, layerdrop=0.0,
                          mask_time_prob=0.0, mask_feature_prob=0.0, apply_spec_augment=False)


def layer_list(model: nn.Module) -> tuple[nn.Module, str]:
    """``(owner, attribute)`` of the model's ``nn.ModuleList`` of transformer layers."""
    for path in LAYER_LISTS:
        owner_path, _, attr = path.rpartition(".")
        try:
            owner = model.get_submodule(owner_path) if owner_path else model
        except AttributeError:
            continue
        if isinstance(getattr(owner, attr, None), nn.ModuleList):
            return owner, attr
    raise PluginError(
        f"{type(model).__name__} keeps its transformer layers in none of {', '.join(LAYER_LISTS)}; this "
        f"version of transformers is not supported by music-zoo-hf: report it"
    )


def final_norm(model: nn.Module, family: str) -> tuple[nn.Module, str] | None:
    """``(owner, attribute)`` of the norm that follows the last layer, or None when there is none."""
    if family == "ast":
        return (model, "layernorm") if isinstance(getattr(model, "layernorm", None), nn.Module) else None
    encoder = getattr(model, "encoder", None)
    if (getattr(model.config, "do_stable_layer_norm", False) and isinstance(encoder, nn.Module)
            and isinstance(getattr(encoder, "layer_norm", None), nn.Module)):
        return encoder, "layer_norm"
    return None


def select_layer(model: nn.Module, family: str, layer: str | int) -> None:
    """Cut ``model`` down (in place) to what ``layer`` needs; see the module's description."""
    owner, attr = layer_list(model)
    if isinstance(layer, int):
        setattr(owner, attr, nn.ModuleList(list(getattr(owner, attr))[:layer]))
    norm = final_norm(model, family)
    if layer != "last" and norm is not None:
        setattr(norm[0], norm[1], nn.Identity())


def layers_of(model: nn.Module) -> list[nn.Module]:
    owner, attr = layer_list(model)
    return list(getattr(owner, attr))


def encode(model: nn.Module, layer: str | int, inputs: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """The chosen hidden states ``[b, N, D]`` of a model cut by :func:`select_layer` (``kwargs`` go to its forward)."""
    if layer != "mean":
        return model(inputs, **kwargs).last_hidden_state
    outputs: list[torch.Tensor] = []

    def keep(module: nn.Module, args: Any, out: Any) -> None:
        outputs.append(out[0] if isinstance(out, tuple) else out)

    hooks = [m.register_forward_hook(keep) for m in layers_of(model)]
    try:
        last = model(inputs, **kwargs).last_hidden_state
    finally:
        for h in hooks:
            h.remove()
    # Layer drop (training only) may skip every layer: then the input of the first one stands in.
    return torch.stack(outputs).mean(0) if outputs else last


def freeze_first(blocks: list[tuple[str, list[Any]]], n: int, who: str) -> None:
    """Fix the parameters of the first ``n`` of ``blocks`` (a backbone's ``named_blocks()``)."""
    if n > len(blocks):
        names = ", ".join(name for name, _ in blocks)
        raise ConfigError(f"{who}: freeze={n}, but it has {len(blocks)} blocks ({names}); give 0..{len(blocks)}")
    for _, members in blocks[:n]:
        for member in members:
            for p in member.parameters() if isinstance(member, nn.Module) else [member]:
                p.requires_grad_(False)
