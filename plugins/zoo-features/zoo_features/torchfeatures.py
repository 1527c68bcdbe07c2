"""Mel and CQT chroma kernels in torch, batched: librosa's numbers, on the GPU when there is one, else on the CPU.

The kernels only (of this package it imports :mod:`zoo_features.configs` alone): the feature
objects of :mod:`zoo_features.features` call them, one clip or a batch at a time. The ``torch`` backend of the ``mel`` and ``chroma`` features (``--set mel.backend=torch``). Every
filter is librosa's own, built once per setting with librosa's public functions and kept on the
device; the transforms and products run in torch, over a whole batch of clips at once:

- mel: centred STFT with a periodic Hann window (``torch.stft``), power, the Slaney mel filter
  bank of ``librosa.filters.mel`` as one matrix product, then dB relative to each clip's maximum
  (``power_to_db(ref=np.max, top_db)``).
- chroma: ``chroma_cqt``'s steps. Each clip's tuning is estimated as ``estimate_tuning`` does
  (``piptrack``'s peak picking on a 2048-point STFT, the mel's own at the lab's settings, so it
  is shared); the constant-Q transform runs octave by octave on audio halved in rate each time
  (librosa's soxr resampler, on the host), each octave's rectangular-window STFT and librosa's
  sparsified filter basis for that tuning folded into one matrix product (:class:`_Octave`);
  then the filter-length scaling, ``cq_to_chroma`` and each frame scaled to a maximum of 1.

Librosa builds the constant-Q filters anew for every clip (a third of its chroma time here);
they are built once per tuning here (``pitch_tuning`` gives one of 101 values).

Shapes: ``waves`` are mono float waveforms ``[N_b]`` already at the feature's ``sr`` (see
:func:`zoo.data.audio.prepare_waveform`); outputs per clip ``[bins, T_b]`` float32 with the
frame counts librosa gives (mel ``1 + N_b // hop``; chroma the CQT's shortest octave).

Agreement with the librosa path (float32 here, librosa's FFTs in float64; tests/test_torchfeatures.py):
mel within 0.05 dB (measured: at most about 1e-3 dB, in the quietest bins), chroma within 1e-3
on values in [0, 1] (measured: about 1e-6), and the same tuning estimates.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from zoo.errors import ConfigError, DataError

from .configs import ChromaConfig, MelConfig

AMIN = 1e-10
"""``power_to_db``'s floor: powers below it count as it."""
TUNING_N_FFT = 2048
"""``estimate_tuning``'s STFT: 2048 points, hop 512 (``n_fft // 4``), Hann window."""
BATCH = 16
"""Clips per batch on a GPU: 30 s clips take about 0.1 GB of float32 working memory each."""


def default_device() -> Any:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


_THREADS = threading.Lock()
_users = 0
_saved_threads = 0


@contextlib.contextmanager
def one_cpu_thread(device: Any):
    """On the CPU, torch runs on one thread inside this block (restored after the last block ends).

    Measured on a busy 2-core machine (docs/benchmarks.md): mel + chroma of a clip ran 18x slower
    on 2 torch threads than on 1, whose threads wait for each other at every operation; cores are
    better used by computing different clips in different processes (the zoo's extractor's workers).
    Nested and concurrent blocks share one setting.
    """
    global _users, _saved_threads
    if getattr(device, "type", str(device)) != "cpu":
        yield
        return
    import torch
    with _THREADS:
        if _users == 0:
            _saved_threads = torch.get_num_threads()
            torch.set_num_threads(1)
        _users += 1
    try:
        yield
    finally:
        with _THREADS:
            _users -= 1
            if _users == 0:
                torch.set_num_threads(_saved_threads)


def _stack(waves: Sequence[np.ndarray], device: Any):
    """``waves`` zero-padded at the end into ``Tensor[B, max N]`` float32 on ``device``, and their lengths."""
    import torch
    lengths = [int(w.shape[-1]) for w in waves]
    batch = np.zeros((len(waves), max(lengths)), dtype=np.float32)
    for i, w in enumerate(waves):
        batch[i, :lengths[i]] = w
    return torch.from_numpy(batch).to(device), lengths


def _stft(y: Any, n_fft: int, hop: int, window: Any) -> Any:
    """Centred, zero-padded STFT of ``y[B, N]`` -> ``Tensor[B, n_fft // 2 + 1, 1 + N // hop]`` complex64.

    Frame ``t`` of a clip sees only its own samples and zeros, so padding a shorter clip at the
    end changes none of its first ``1 + N_b // hop`` frames.
    """
    import torch
    return torch.stft(y, n_fft, hop_length=hop, window=window, center=True, pad_mode="constant",
                      return_complex=True)


# -- mel ------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _hann(n_fft: int, device: Any) -> Any:
    import torch
    return torch.hann_window(n_fft, periodic=True, dtype=torch.float32, device=device)


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, device: Any) -> Any:
    """librosa's mel filter bank (Slaney scale and area norm) ``Tensor[n_mels, n_fft // 2 + 1]`` float32."""
    import librosa
    import torch
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return torch.from_numpy(np.ascontiguousarray(basis, dtype=np.float32)).to(device)


def power_spectrum(y: Any, n_fft: int, hop: int) -> Any:
    """``|STFT|**2`` with a periodic Hann window: ``Tensor[B, n_fft // 2 + 1, T]`` float32."""
    import torch
    z = _stft(y, n_fft, hop, _hann(n_fft, y.device))
    # re^2 + im^2 in one pass: ``abs().square()`` takes two passes over the largest tensor here and a sqrt.
    return torch.addcmul(z.real.square(), z.imag, z.imag)


def mel_from_power(power: Any, c: MelConfig) -> Any:
    """Power mel ``Tensor[B, n_mels, T]`` from ``|STFT|**2`` at ``c.n_fft`` (``melspectrogram``, power 2)."""
    return _mel_basis(c.sr, c.n_fft, c.n_mels, c.fmin, c.fmax, power.device) @ power


def to_db(power: Any, frames: Sequence[int], top_db: float | None) -> list[np.ndarray]:
    """``power[B, F, T]`` -> per clip ``[F, frames[b]]`` float32 in dB relative to that clip's maximum.

    As ``librosa.power_to_db(ref=np.max, amin=1e-10, top_db)``, each clip over its own frames only.
    """
    import torch
    log = 10.0 * torch.log10(power.clamp(min=AMIN))
    out = []
    for b, t in enumerate(frames):
        db = log[b, :, :t]
        db = db - db.max()
        if top_db is not None:
            db = db.clamp(min=float(db.max()) - top_db)
        out.append(db)
    return [a.cpu().numpy().astype(np.float32, copy=False) for a in out]


def mel_power(waves: Sequence[np.ndarray], c: MelConfig, device: Any = None) -> list[np.ndarray]:
    """Power mel spectrograms ``[n_mels, 1 + N_b // hop]`` float32, one per waveform (before dB)."""
    device = device or default_device()
    with one_cpu_thread(device):
        y, lengths = _stack(waves, device)
        power = mel_from_power(power_spectrum(y, c.n_fft, c.hop_length), c)
        return [power[b, :, :1 + n // c.hop_length].cpu().numpy() for b, n in enumerate(lengths)]


def mel_db(waves: Sequence[np.ndarray], c: MelConfig, device: Any = None) -> list[np.ndarray]:
    """Mel spectrograms in dB ``[n_mels, 1 + N_b // hop]`` float32, one per waveform, as the librosa path."""
    device = device or default_device()
    with one_cpu_thread(device):
        y, lengths = _stack(waves, device)
        power = mel_from_power(power_spectrum(y, c.n_fft, c.hop_length), c)
        return to_db(power, [1 + n // c.hop_length for n in lengths], c.top_db)


# -- tuning ---------------------------------------------------------------------------------------

PIPTRACK_BAND = (150.0, 4000.0)
"""``piptrack``'s default frequency range in Hz: peaks are looked for in ``[fmin, fmax)`` only."""


def tunings(power: Any, frames: Sequence[int], sr: int, bins_per_octave: int) -> list[float]:
    """Each clip's tuning in fractions of a bin, as ``librosa.estimate_tuning`` finds it.

    ``power: Tensor[B, 1025, T]`` is ``|STFT|**2`` at 2048 points, hop 512 (:data:`TUNING_N_FFT`);
    clip ``b`` uses its first ``frames[b]`` frames. ``piptrack``'s peak picking runs here, batched,
    on the bins of its band (and their neighbours) only; the median threshold and the histogram of
    ``pitch_tuning`` run on each clip's peaks on the host.
    """
    import librosa
    import torch
    n_fft = TUNING_N_FFT
    fmin, fmax = PIPTRACK_BAND[0], min(PIPTRACK_BAND[1], sr / 2)
    lo = int(np.ceil(fmin * n_fft / sr))  # first bin with frequency >= fmin
    hi = int(np.ceil(fmax * n_fft / sr))  # first bin with frequency >= fmax
    assert 1 <= lo < hi <= power.shape[1] - 1, (lo, hi)
    # Peaks are local maxima of the magnitude above a tenth of the frame's maximum (over every bin).
    ref = 0.1 * power.amax(dim=1, keepdim=True).sqrt()
    mag = power[:, lo - 1:hi + 1].sqrt()  # the band and one neighbour on each side
    x = mag * (mag > ref)
    peak = (x[:, 1:-1] > x[:, :-2]) & (x[:, 1:-1] >= x[:, 2:])
    # Parabolic interpolation against the neighbours (0 where the vertex lies more than a bin
    # away); np.gradient's central difference is the same ``half``.
    a = mag[:, 2:] + mag[:, :-2] - 2 * mag[:, 1:-1]
    half = (mag[:, 2:] - mag[:, :-2]) / 2
    ok = half.abs() < a.abs()
    shift = torch.where(ok, -half / torch.where(ok, a, torch.ones_like(a)), torch.zeros_like(a))
    bins = torch.arange(lo, hi, device=power.device, dtype=power.dtype)[None, :, None]
    pitch = (bins + shift) * (sr / n_fft)
    strength = mag[:, 1:-1] + 0.5 * half * shift
    out = []
    for b, t in enumerate(frames):
        where = peak[b, :, :t]
        p = pitch[b, :, :t][where].cpu().numpy()
        m = strength[b, :, :t][where].cpu().numpy()
        positive = p > 0
        threshold = np.median(m[positive]) if positive.any() else 0.0
        chosen = p[(m >= threshold) & positive]
        out.append(float(librosa.pitch_tuning(chosen, resolution=0.01, bins_per_octave=bins_per_octave))
                   if chosen.size else 0.0)
    return out


# -- constant-Q chroma ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Octave:
    """One octave of the transform, read every ``hop`` samples of the audio at this octave's rate.

    librosa takes a rectangular-window STFT of ``n_fft`` points and multiplies it by the filters'
    sparsified FFT basis. Both steps are linear, so here they are one: ``kernel[n_fft, 2 * filters]``
    holds, for each filter, the real then the imaginary part of ``sum_k basis[f, k] exp(-2 pi i k n / n_fft)``
    (computed once in float64), and a frame's responses are the frame times ``kernel``: a plain
    matrix product (a strided convolution), which BLAS and GPUs do fast.
    """

    kernel: Any
    n_fft: int
    hop: int


@dataclass(frozen=True)
class _CQT:
    """Everything ``chroma_cqt`` derives from its settings and one tuning: ``early`` halvings before
    the first octave, the octaves from the highest down (``halve[i]``: the audio is halved after
    octave i), ``scale[bins]`` (``1 / sqrt(filter length)``) and ``to_chroma[n_chroma, bins]``."""

    early: int
    octaves: tuple[_Octave, ...]
    halve: tuple[bool, ...]
    scale: Any
    to_chroma: Any


def _time_kernel(fft_basis: np.ndarray, n_fft: int) -> np.ndarray:
    """``fft_basis[filters, n_fft // 2 + 1]`` (complex) -> ``[n_fft, 2 * filters]`` float32, see :class:`_Octave`."""
    # sum over k <= n_fft / 2 of basis[f, k] exp(-2 pi i k n / n_fft): the FFT of the row zero-padded to n_fft.
    kernel = np.fft.fft(fft_basis.astype(np.complex128), n=n_fft, axis=1)
    return np.ascontiguousarray(np.concatenate([kernel.real, kernel.imag]).T, dtype=np.float32)


def _relative_bandwidth(freqs: np.ndarray) -> np.ndarray:
    """The relative bandwidth of each filter from the local spacing of ``freqs`` (as librosa's wavelets)."""
    logf = np.log2(freqs)
    bpo = np.empty_like(freqs)
    bpo[0] = 1 / (logf[1] - logf[0])
    bpo[-1] = 1 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    return (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)


def _early_halvings(nyquist: float, cutoff: float, hop: int, n_octaves: int) -> int:
    """How often ``cqt`` halves the audio before its first octave (when the filters leave room)."""
    count1 = max(0, int(np.ceil(np.log2(nyquist / cutoff)) - 1) - 1)
    twos = 0
    while hop > 0 and hop % 2 == 0:
        twos, hop = twos + 1, hop // 2
    return min(count1, max(0, twos - n_octaves + 1))


@functools.lru_cache(maxsize=256)
def _cqt_plan(c: ChromaConfig, tuning: float, device: Any) -> _CQT:
    """The transform of ``c`` at ``tuning`` (one of ``pitch_tuning``'s 101 values), filters on ``device``."""
    import librosa
    import torch
    bpo, n_octaves = c.bins_per_octave, c.n_octaves
    n_bins = n_octaves * bpo
    fmin = (c.fmin if c.fmin is not None else librosa.note_to_hz("C1")) * 2.0 ** (tuning / bpo)
    freqs = librosa.interval_frequencies(n_bins=n_bins, fmin=fmin, intervals="equal", bins_per_octave=bpo, sort=True)
    alpha = _relative_bandwidth(freqs)
    _, cutoff = librosa.filters.wavelet_lengths(freqs=freqs, sr=c.sr, window="hann", filter_scale=1, gamma=0,
                                                alpha=alpha)
    if cutoff > c.sr / 2:
        raise ConfigError(
            f"feature 'chroma': {n_octaves} octaves from {fmin:.1f} Hz reach past the Nyquist frequency "
            f"({c.sr / 2:g} Hz at sr={c.sr}); lower n_octaves or fmin"
        )
    early = _early_halvings(c.sr / 2, cutoff, c.hop_length, n_octaves)
    sr, hop = c.sr / 2 ** early, c.hop_length // 2 ** early
    fft = librosa.get_fftlib()
    octaves, halve = [], []
    my_sr, my_hop = sr, hop
    for i in range(n_octaves):
        sl = slice(n_bins - bpo * (i + 1), n_bins - bpo * i)
        # librosa's __vqt_filter_fft, from its public parts: wavelets padded to a power of 2,
        # scaled by length / n_fft, their FFT's non-negative half, each row sparsified (1 %).
        basis, lengths = librosa.filters.wavelet(freqs=freqs[sl], sr=my_sr, filter_scale=1, norm=1, pad_fft=True,
                                                 window="hann", gamma=0, alpha=alpha[sl])
        n_fft = basis.shape[1]
        basis *= lengths[:, np.newaxis] / float(n_fft)
        fft_basis = fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
        fft_basis = librosa.util.sparsify_rows(fft_basis, quantile=0.01, dtype=np.complex64)
        dense = fft_basis.toarray() * np.complex64(np.sqrt(sr / my_sr))
        octaves.append(_Octave(torch.from_numpy(_time_kernel(dense, n_fft)).to(device), n_fft, my_hop))
        halve.append(my_hop % 2 == 0)
        if halve[-1]:
            my_hop //= 2
            my_sr /= 2.0
    lengths, _ = librosa.filters.wavelet_lengths(freqs=freqs, sr=sr, window="hann", filter_scale=1, gamma=0,
                                                 alpha=alpha)
    to_chroma = librosa.filters.cq_to_chroma(n_bins, bins_per_octave=bpo, n_chroma=c.n_chroma, fmin=c.fmin)
    return _CQT(early, tuple(octaves), tuple(halve),
                torch.from_numpy((1.0 / np.sqrt(lengths)).astype(np.float32)).to(device),
                torch.from_numpy(np.ascontiguousarray(to_chroma, dtype=np.float32)).to(device))


def _pyramid(y: np.ndarray, plan: _CQT) -> list[np.ndarray]:
    """The audio each octave reads: ``y`` halved ``plan.early`` times, then after each octave that halves."""
    import librosa
    if plan.early:
        factor = 2 ** plan.early
        if y.shape[-1] < factor:
            raise DataError(f"the audio is {y.shape[-1]} samples long, too short for a {len(plan.octaves)}-octave CQT")
        y = librosa.resample(y, orig_sr=factor, target_sr=1, res_type="soxr_hq", scale=True)
    out = []
    for halve in plan.halve:
        out.append(y)
        if halve:
            y = librosa.resample(y, orig_sr=2, target_sr=1, res_type="soxr_hq", scale=True)
    return out


def chroma_from_tunings(waves: Sequence[np.ndarray], c: ChromaConfig, tuning: Sequence[float],
                        device: Any) -> list[np.ndarray]:
    """``chroma_cqt`` of each waveform at its given tuning -> per clip ``[n_chroma, T_b]`` float32."""
    import torch
    plans = [_cqt_plan(c, round(float(t), 2), device) for t in tuning]
    if len({(p.early, p.halve) for p in plans}) > 1:
        # Another halving schedule (tunings at the edge of a limit): one clip at a time.
        return [chroma_from_tunings([w], c, [t], device)[0] for w, t in zip(waves, tuning)]
    pyramids = [_pyramid(w, p) for w, p in zip(waves, plans)]
    responses, columns = [], [None] * len(waves)
    for i, octave in enumerate(plans[0].octaves):
        y, lengths = _stack([p[i] for p in pyramids], device)
        frames = [1 + n // octave.hop for n in lengths]
        columns = [f if m is None else min(m, f) for m, f in zip(columns, frames)]
        half = octave.n_fft // 2
        # Centred frames of the zero-padded audio (librosa's stft, center=True, pad_mode="constant").
        framed = torch.nn.functional.pad(y, (half, half)).unfold(-1, octave.n_fft, octave.hop)
        if len({round(float(t), 2) for t in tuning}) == 1:
            out = framed @ octave.kernel
        else:
            out = framed @ torch.stack([p.octaves[i].kernel for p in plans])
        n = out.shape[-1] // 2
        responses.append(torch.sqrt(out[..., :n].square() + out[..., n:].square()).transpose(1, 2))
    t = max(columns)
    # The highest octave fills the last rows (librosa's __trim_stack).
    cq = torch.cat([r[:, :, :t] for r in reversed(responses)], dim=1)
    cq = cq * torch.stack([p.scale for p in plans])[:, :, None]
    chroma = torch.stack([p.to_chroma for p in plans]) @ cq
    chroma = chroma.clamp(min=0.0)
    peak = chroma.abs().amax(dim=1, keepdim=True)
    chroma = chroma / torch.where(peak < np.finfo(np.float32).tiny, torch.ones_like(peak), peak)
    return [chroma[b, :, :n].cpu().numpy().astype(np.float32, copy=False) for b, n in enumerate(columns)]


def chroma(waves: Sequence[np.ndarray], c: ChromaConfig, device: Any = None, *,
           power: Any = None) -> list[np.ndarray]:
    """``chroma_cqt`` of each waveform -> per clip ``[n_chroma, T_b]`` float32, in [0, 1].

    ``power``: the batch's ``|STFT|**2`` at 2048 points, hop 512 (e.g. the mel's at the lab's
    settings), to estimate the tunings from without another STFT.
    """
    device = device or default_device()
    with one_cpu_thread(device):
        if power is None:
            y, lengths = _stack(waves, device)
            power = power_spectrum(y, TUNING_N_FFT, TUNING_N_FFT // 4)
        else:
            lengths = [int(w.shape[-1]) for w in waves]
        found = tunings(power, [1 + n // (TUNING_N_FFT // 4) for n in lengths], c.sr, c.bins_per_octave)
        return chroma_from_tunings(waves, c, found, power.device)
