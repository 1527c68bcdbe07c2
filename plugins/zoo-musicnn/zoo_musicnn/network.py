"""The musicnn and VGG taggers of Pons and Serra (musicnn, ISMIR 2019 LBD) as torch modules, and their TF weights' names.

Both take log-mel patches ``x: Tensor[B, T, 96]`` (time first, as the original's placeholder) and
return every intermediate output the original's extractor exposes, so the port can be checked
output by output. Written from the architecture (``musicnn/models.py`` of the ``musicnn`` package):

musicnn (``MSD_musicnn``, ``MTT_musicnn``)
    front end: one batch norm over the input, then five convolutions over the ``[T, 96]`` patch,
    each ReLU -> batch norm -> max over frequency: two "timbral" ones (204 filters of 7 frames x
    38 and x 67 bins, the input padded by 3 frames at each end) and three "temporal" ones (51
    filters of 128, 64 and 32 frames x 1 bin, TensorFlow's "same" padding: ``(k - 1) // 2``
    before, the rest after). Concatenated: 561 channels per frame.
    mid end: three 1-D convolutions of 64 filters over 7 frames (padded by 3), each ReLU -> batch
    norm, the second and third with a residual connection. The front end's and mid end's outputs
    concatenated: 753 channels per frame.
    back end: max and mean over time of each channel, interleaved channel by channel
    (``[max_0, mean_0, max_1, ...]``: TensorFlow's flatten of ``[753, 2]``) -> batch norm ->
    dropout 0.5 -> dense 200 ReLU -> batch norm (``penultimate``) -> dropout 0.5 -> dense 50 (logits;
    the taggram is their sigmoid).
VGG (``MSD_vgg``, ``MTT_vgg``)
    batch norm over the input, then five 3x3 convolutions of 128 filters ("same" padding), each
    ReLU -> batch norm -> max pool (4x1 stride 2x2, then 2x2, 2x2, 2x2, 4x4 stride 4) -> dropout
    0.25 (none after the fifth); ``pool5`` flattened (time, frequency, channel order: 2 x 1 x 128
    = 256 for 187 frames) -> dropout 0.5 -> dense 50. Only 187-frame patches fit its dense layer.

Every batch norm uses TensorFlow's epsilon, 1e-3.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

N_MELS = 96
BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default


def _bn2(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


def _bn1(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=BN_EPS)


class FreqConvBlock(nn.Module):
    """conv2d over ``[T, 96]`` -> ReLU -> batch norm -> max over frequency: ``[B, 1, T', 96] -> [B, C, T]``.

    ``pad``: frames of zeros before and after (the timbral blocks pad 3 and 3 then convolve
    "valid"; the temporal ones use TensorFlow's "same": ``(k - 1) // 2`` before, ``k // 2`` after).
    """

    def __init__(self, filters: int, time: int, freq: int, pad: tuple[int, int]):
        super().__init__()
        self.pad = pad
        self.conv = nn.Conv2d(1, filters, (time, freq))
        self.bn = _bn2(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(F.relu(self.conv(F.pad(x, (0, 0, *self.pad)))))
        return h.amax(dim=3)


class MidConv(nn.Module):
    """1-D convolution over 7 frames (3 padded each side) -> ReLU -> batch norm: ``[B, C, T] -> [B, 64, T]``."""

    def __init__(self, channels: int, filters: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, filters, 7, padding=3)
        self.bn = _bn1(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class Musicnn(nn.Module):
    """The musicnn tagger: ``forward(x[B, T, 96]) -> dict`` of its outputs.

    Outputs (shapes for ``B`` patches of ``T`` frames): ``frontend [B, 561, T]``, ``midend [B, 753, T]``
    (front end + the three mid-end layers), ``max_pool`` and ``mean_pool`` ``[B, 753]``, ``pool [B, 1506]``
    (both, interleaved: the back end's input),
    ``penultimate [B, 200]``, ``logits [B, 50]``, ``taggram [B, 50]`` (sigmoid). ``tagger=False``
    leaves the 50-tag output layer out (a backbone that stops at ``penultimate``).
    """

    def __init__(self, n_classes: int = 50, midend: int = 64, backend: int = 200, filters: float = 1.6,
                 tagger: bool = True):
        super().__init__()
        timbral, temporal = int(filters * 128), int(filters * 32)
        self.input_bn = _bn2(1)
        self.timbral = nn.ModuleList([FreqConvBlock(timbral, 7, int(share * N_MELS), (3, 3)) for share in (0.4, 0.7)])
        self.temporal = nn.ModuleList([FreqConvBlock(temporal, k, 1, ((k - 1) // 2, k // 2)) for k in (128, 64, 32)])
        front = 2 * timbral + 3 * temporal
        self.midend = nn.ModuleList([MidConv(front, midend), MidConv(midend, midend), MidConv(midend, midend)])
        self.width = front + 3 * midend
        self.pool_bn = _bn1(2 * self.width)
        self.drop = nn.Dropout(0.5)
        self.dense = nn.Linear(2 * self.width, backend)
        self.dense_bn = _bn1(backend)
        self.output = nn.Linear(backend, n_classes) if tagger else None

    def forward(self, x: torch.Tensor, upto: str = "taggram") -> dict[str, torch.Tensor]:
        """``x[B, T, 96]`` -> outputs up to ``upto`` (``midend``, ``penultimate`` or ``taggram``)."""
        h = self.input_bn(x.unsqueeze(1))  # [B, 1, T, 96]
        front = torch.cat([b(h) for b in self.timbral] + [b(h) for b in self.temporal], dim=1)  # [B, 561, T]
        c1 = self.midend[0](front)
        c2 = self.midend[1](c1) + c1
        c3 = self.midend[2](c2) + c2
        mid = torch.cat([front, c1, c2, c3], dim=1)  # [B, 753, T]
        out = {"frontend": front, "midend": mid}
        if upto == "midend":
            return out
        mx, mean = mid.amax(dim=2), mid.mean(dim=2)
        pooled = torch.stack([mx, mean], dim=2).flatten(1)  # [B, 1506]: max_0, mean_0, max_1, ...
        pen = self.dense_bn(F.relu(self.dense(self.drop(self.pool_bn(pooled)))))
        out.update(max_pool=mx, mean_pool=mean, pool=pooled, penultimate=pen)
        if upto == "taggram" and self.output is not None:
            logits = self.output(self.drop(pen))
            out.update(logits=logits, taggram=torch.sigmoid(logits))
        return out

    def tf_names(self) -> dict[str, str]:
        """``{torch state-dict name: TensorFlow variable name}``: the variables in the order the original creates them."""
        bns = ["input_bn"] + [f"{g}.{i}.bn" for g, n in (("timbral", 2), ("temporal", 3)) for i in range(n)] \
              + [f"midend.{i}.bn" for i in range(3)] + ["pool_bn", "dense_bn"]
        convs = [f"{g}.{i}.conv" for g, n in (("timbral", 2), ("temporal", 3), ("midend", 3)) for i in range(n)]
        denses = ["dense"] + (["output"] if self.output is not None else [])
        return _names(bns, convs, denses)


class VGG(nn.Module):
    """The VGG-like tagger: ``forward(x[B, 187, 96]) -> dict`` with ``pool5 [B, 256]``, ``logits``, ``taggram [B, 50]``."""

    POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))

    def __init__(self, n_classes: int = 50, filters: int = 128, tagger: bool = True):
        super().__init__()
        self.input_bn = _bn2(1)
        self.convs = nn.ModuleList([nn.Conv2d(1 if i == 0 else filters, filters, 3, padding=1) for i in range(5)])
        self.bns = nn.ModuleList([_bn2(filters) for _ in range(5)])
        self.drop_conv = nn.Dropout(0.25)
        self.drop = nn.Dropout(0.5)
        self.width = filters * 2  # pool5 of a 187 x 96 patch: 2 x 1 x filters
        self.output = nn.Linear(self.width, n_classes) if tagger else None

    def forward(self, x: torch.Tensor, upto: str = "taggram") -> dict[str, torch.Tensor]:
        h = self.input_bn(x.unsqueeze(1))
        out = {}
        for i, (conv, bn, (size, stride)) in enumerate(zip(self.convs, self.bns, self.POOLS)):
            if i:
                h = self.drop_conv(h)
            h = F.max_pool2d(bn(F.relu(conv(h))), size, stride)
            out[f"pool{i + 1}"] = h
        flat = h.permute(0, 2, 3, 1).flatten(1)  # TensorFlow's NHWC flatten order
        out["pool5"] = flat
        out["penultimate"] = flat
        if upto == "taggram" and self.output is not None:
            logits = self.output(self.drop(flat))
            out.update(logits=logits, taggram=torch.sigmoid(logits))
        return out

    def tf_names(self) -> dict[str, str]:
        bns = ["input_bn"] + [f"bns.{i}" for i in range(5)]
        names = _names(bns, [], ["output"] if self.output is not None else [])
        for i in range(5):
            names[f"convs.{i}.weight"], names[f"convs.{i}.bias"] = f"{i + 1}CNN/kernel", f"{i + 1}CNN/bias"
        return names


def _names(bns: list[str], convs: list[str], denses: list[str]) -> dict[str, str]:
    """tf.compat.v1.layers numbers each kind of layer in creation order: ``batch_normalization_3``, ``conv2d_1``, ``dense``."""
    def nth(kind: str, i: int) -> str:
        return kind if i == 0 else f"{kind}_{i}"

    names = {}
    for i, bn in enumerate(bns):
        tf = nth("batch_normalization", i)
        names.update({f"{bn}.weight": f"{tf}/gamma", f"{bn}.bias": f"{tf}/beta",
                      f"{bn}.running_mean": f"{tf}/moving_mean", f"{bn}.running_var": f"{tf}/moving_variance"})
    for kind, modules in (("conv2d", convs), ("dense", denses)):
        for i, m in enumerate(modules):
            names.update({f"{m}.weight": f"{nth(kind, i)}/kernel", f"{m}.bias": f"{nth(kind, i)}/bias"})
    return names


def tf_to_torch(name: str, value, target_shape: tuple[int, ...]):
    """A TensorFlow variable as the torch parameter of ``target_shape``: kernels transposed, the rest as they are.

    conv2d kernels ``[kh, kw, in, out]`` -> ``[out, in, kh, kw]``; the mid end's ``[7, C, 1, out]``
    (a 2-D convolution spanning all C rows) -> Conv1d ``[out, C, 7]``; dense ``[in, out]`` -> ``[out, in]``.
    """
    import numpy as np

    v = np.asarray(value, dtype=np.float32)
    if v.ndim == 4:
        v = v.transpose(3, 2, 0, 1) if len(target_shape) == 4 else v[:, :, 0, :].transpose(2, 1, 0)
    elif v.ndim == 2:
        v = v.T
    if tuple(v.shape) != tuple(target_shape):
        raise ValueError(f"{name}: shape {v.shape} after transposing, the torch module wants {tuple(target_shape)}")
    return np.ascontiguousarray(v)
