"""Which parts of a backbone are its "blocks", and freezing the first N of them (transfer ``freeze: N``)."""
from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import ConfigError, PluginError
from ..protocols import DeclaresBlocks


class Block(NamedTuple):
    """One block: a name for messages, its parameters, and the modules whose batch norms it holds."""

    name: str
    params: list[Any]
    modules: list[Any]


def backbone_blocks(backbone: Any) -> list[Block]:
    """The backbone's blocks in input-to-output order: the ones it declares, else a guess.

    A backbone declares them with ``named_blocks()`` (see :class:`zoo.protocols.DeclaresBlocks`);
    the zoo's own do. For one that does not, :func:`guess_blocks` finds them in its children.
    """
    if isinstance(backbone, DeclaresBlocks):
        return [declared_block(name, members) for name, members in backbone.named_blocks()]
    return guess_blocks(backbone)


def declared_block(name: str, members: Any) -> Block:
    """A :class:`Block` from one ``(name, members)`` pair of ``named_blocks()``.

    ``members`` is a list of modules (all their weights; their batch norms keep their statistics
    when frozen) and parameters; a lone module or parameter stands for a list of one.
    """
    from torch import nn
    if isinstance(members, (nn.Module, nn.Parameter)):
        members = [members]
    if not isinstance(members, (list, tuple)):
        raise PluginError(
            f"named_blocks() block '{name}' gives a {type(members).__name__}; give a list of the backbone's "
            f"torch.nn.Modules and torch.nn.Parameters (see zoo.protocols.DeclaresBlocks)"
        )
    params: list[Any] = []
    modules: list[Any] = []
    for m in members:
        if isinstance(m, nn.Module):
            params += list(m.parameters())
            modules.append(m)
        elif isinstance(m, nn.Parameter):
            params.append(m)
        else:
            raise PluginError(
                f"named_blocks() block '{name}' holds a {type(m).__name__}; a block lists the backbone's "
                f"torch.nn.Modules and torch.nn.Parameters (see zoo.protocols.DeclaresBlocks)"
            )
    return Block(str(name), params, modules)


def guess_blocks(backbone: Any) -> list[Block]:
    """Blocks found in the children of a backbone that does not declare its own.

    A block is a top-level child module that holds weights; a container child (``ModuleList``,
    ``Sequential``) counts as its items, and a multi-layer recurrent child (``nn.LSTM``, ``GRU``,
    ``RNN``) as its layers (``"rnn layer 0"``: that layer's weights, both directions). Weights held
    by the backbone itself (e.g. position embeddings) join the first block: they meet the input.
    """
    from torch import nn

    from ..model.layers import rnn_layer_parameters
    blocks: list[Block] = []
    for name, child in backbone.named_children():
        items = list(child.named_children()) if isinstance(child, (nn.ModuleList, nn.Sequential)) else [("", child)]
        for sub, module in items:
            label = f"{name}.{sub}" if sub else name
            params = list(module.parameters())
            if not params:
                continue
            if isinstance(module, nn.RNNBase) and module.num_layers > 1:
                for layer in range(module.num_layers):
                    blocks.append(Block(f"{label} layer {layer}", rnn_layer_parameters(module, layer), []))
            else:
                blocks.append(Block(label, params, [module]))
    own = [p for _, p in backbone.named_parameters(recurse=False)]
    if own:
        first = blocks[0] if blocks else Block("parameters", [], [])
        blocks[:1] = [Block(first.name, own + first.params, first.modules)]
    return blocks


def _keep_eval(module: Any, inputs: Any) -> None:
    # A frozen batch norm normalises with the source's running statistics and never updates them.
    module.training = False


def freeze(params: list[Any], modules: list[Any]) -> None:
    """Stop ``params`` from training; batch norms inside ``modules`` keep their running statistics."""
    from torch import nn
    for p in params:
        p.requires_grad_(False)
    for top in modules:
        for m in top.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.register_forward_pre_hook(_keep_eval)


def freeze_blocks(backbone: Any, n: int, name: str = "") -> list[str]:
    """Freeze the first ``n`` of :func:`backbone_blocks`; return their names."""
    blocks = backbone_blocks(backbone)
    if n > len(blocks):
        names = ", ".join(b.name for b in blocks) or "none"
        raise ConfigError(
            f"transfer freeze {n}: backbone '{name}' has {len(blocks)} blocks ({names}); freeze 0..{len(blocks)} "
            f"of them, or the whole backbone (freeze: backbone)"
        )
    for b in blocks[:n]:
        freeze(b.params, b.modules)
    return [b.name for b in blocks[:n]]
