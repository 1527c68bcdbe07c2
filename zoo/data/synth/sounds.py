"""The synthesiser's sounds: oscillators, plucked strings, drums and effects, as pure numpy/scipy functions.

Every function takes the sample rate ``sr`` explicitly, returns float64 mono ``np.ndarray [N]``
and draws randomness only from the ``rng`` (a ``numpy.random.Generator``) it is given, so that a
clip rendered from the same seed is the same to the last bit. Work is vectorised per note (or,
for the plucked string, per period of the string); nothing loops per sample in Python.

What to play (notes, drum hits, mix) is decided in :mod:`zoo.data.synth.styles`; this module only
knows how to make sounds.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

SR = 22050
"""Sample rate of every clip the zoo synthesises (the lab's rate)."""

TAU = 2.0 * np.pi


class Note(NamedTuple):
    """One event of a track: onset ``time`` (s), ``midi`` pitch (or a drum name's index), ``dur`` (s),
    ``vel`` (0-1)."""

    time: float
    midi: float
    dur: float
    vel: float


def midi_hz(midi: float | np.ndarray) -> float | np.ndarray:
    """Equal-tempered frequency of a MIDI pitch (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def db(gain_db: float | np.ndarray) -> float | np.ndarray:
    """Amplitude factor of a gain in decibels."""
    return 10.0 ** (np.asarray(gain_db, dtype=np.float64) / 20.0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


# -- envelopes and oscillators ---------------------------------------------------------------

def envelope(n: int, sr: int, attack: float, hold: float, release: float, *,
             decay: float = 0.0) -> np.ndarray:
    """Gain ``[n]``: linear attack (s), then hold for ``hold`` s (with exponential ``decay`` time
    constant, 0 = flat), then an exponential release of ``release`` s to silence."""
    t = np.arange(n) / sr
    env = np.minimum(1.0, t / max(attack, 1e-4))
    if decay > 0:
        env = env * np.exp(-np.maximum(t - attack, 0.0) / decay)
    end = attack + hold
    tail = t > end
    if release > 0:
        env[tail] *= np.exp(-(t[tail] - end) * (6.9 / release))
    else:
        env[tail] = 0.0
    return env


def phase(freq: float | np.ndarray, n: int, sr: int, start: float = 0.0) -> np.ndarray:
    """Running phase in cycles ``[n]`` of a (possibly time-varying) frequency in Hz."""
    step = np.broadcast_to(np.asarray(freq, dtype=np.float64) / sr, (n,))
    return start + np.cumsum(step) - step


def vibrato(freq: float, n: int, sr: int, rate: float, depth: float, delay: float = 0.2) -> np.ndarray:
    """Frequency ``[n]`` wobbling by ``depth`` (fraction) at ``rate`` Hz, fading in after ``delay`` s."""
    t = np.arange(n) / sr
    fade = np.clip((t - delay) / 0.3, 0.0, 1.0)
    return freq * (1.0 + depth * fade * np.sin(TAU * rate * t))


def saw(freq: float | np.ndarray, n: int, sr: int, start: float = 0.0) -> np.ndarray:
    """Band-limited sawtooth (polyBLEP) in [-1, 1]: the bright, buzzy raw material of synth tracks."""
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    dt = np.clip(f / sr, 1e-6, 0.5)
    ph = phase(f, n, sr, start) % 1.0
    y = 2.0 * ph - 1.0
    # polyBLEP smooths the jump at each wrap so high notes do not alias into noise.
    low = ph < dt
    t = ph[low] / dt[low]
    y[low] -= t + t - t * t - 1.0
    high = ph > 1.0 - dt
    t = (ph[high] - 1.0) / dt[high]
    y[high] -= t * t + t + t + 1.0
    return y


def pulse(freq: float | np.ndarray, n: int, sr: int, width: float = 0.5) -> np.ndarray:
    """Band-limited pulse wave: the difference of two sawtooths shifted by ``width`` of a cycle."""
    return 0.5 * (saw(freq, n, sr) - saw(freq, n, sr, start=width))


def additive(freq: float | np.ndarray, n: int, sr: int, amps: np.ndarray, *,
             decays: np.ndarray | None = None, stretch: float = 0.0, phases: np.ndarray | None = None) -> np.ndarray:
    """Sum of harmonics ``k = 1..len(amps)`` with amplitudes ``amps`` and optional per-harmonic
    exponential ``decays`` (time constants, s). ``stretch`` bends partial k to ``k * (1 + stretch
    * k^2)`` like a stiff piano string. Harmonics above 0.45 ``sr`` are left out."""
    f0 = float(np.mean(freq))
    k = np.arange(1, len(amps) + 1, dtype=np.float64)
    ratio = k * (1.0 + stretch * k * k)
    keep = ratio * f0 < 0.45 * sr
    ratio, amps = ratio[keep], np.asarray(amps, dtype=np.float64)[keep]
    if len(ratio) == 0:
        return np.zeros(n)
    ph = phase(freq, n, sr)
    p0 = np.zeros(len(ratio)) if phases is None else phases[: len(ratio)]
    cycles = ratio[:, None] * ph[None, :] + p0[:, None]
    cycles -= np.floor(cycles)
    # float32 from here: after wrapping to one cycle its precision is ample, and numpy's float32
    # sin/exp are vectorised (an order of magnitude faster than float64 on a [K, N] block)
    waves = np.sin(np.float32(TAU) * cycles.astype(np.float32))
    if decays is not None:
        t = (np.arange(n) / sr).astype(np.float32)
        rate = (1.0 / np.asarray(decays, dtype=np.float64)[keep]).astype(np.float32)
        waves *= np.exp(-rate[:, None] * t[None, :])
    # einsum, not "@": a BLAS call here spins up threads that only add overhead for one row
    return np.einsum("k,kn->n", amps.astype(np.float32), waves).astype(np.float64)


def fm(freq: float | np.ndarray, n: int, sr: int, ratio: float, index: float, index_decay: float) -> np.ndarray:
    """Two-operator FM: a sine carrier whose phase a sine at ``ratio`` x the pitch modulates, with
    an ``index`` that decays over ``index_decay`` s (bright attack, mellow tail: e-piano, bell)."""
    ph = phase(freq, n, sr)
    t = np.arange(n) / sr
    idx = index * np.exp(-t / max(index_decay, 1e-3))
    return np.sin(TAU * ph + idx * np.sin(TAU * ratio * ph))


def pluck(freq: float, n: int, sr: int, rng: np.random.Generator, *, bright: float = 0.5,
          decay: float = 1.5) -> np.ndarray:
    """Karplus-Strong plucked string: a burst of noise circulating in a delay line one period long,
    averaged between neighbours on every pass (a gentle lowpass, so highs die first).

    ``bright`` (0-1) colours the burst and the loop filter; ``decay`` is the time (s) to fall 60 dB.
    The recursion is evaluated one period at a time, each period being a vectorised slice.
    """
    bright = float(np.clip(bright, 0.0, 1.0))
    mix = 0.5 + 0.45 * bright  # weight of the newer sample in the loop average
    period = max(2, int(round(sr / freq - (1.0 - mix))))
    gain = 10.0 ** (-3.0 / max(decay * freq, 1.0))
    burst = rng.uniform(-1.0, 1.0, period)
    if bright < 1.0:  # a duller pick: smooth the burst with a one-pole average
        a = 0.15 + 0.8 * (1.0 - bright)
        from scipy.signal import lfilter
        burst = lfilter([1.0 - a], [1.0, -a], burst)
        burst -= burst.mean()
    buf = np.zeros(period + 1 + n)
    buf[1: period + 1] = burst
    start = period + 1
    for s in range(start, start + n, period):
        e = min(s + period, len(buf))
        buf[s:e] = gain * (mix * buf[s - period: e - period] + (1.0 - mix) * buf[s - period - 1: e - period - 1])
    out = buf[start:]
    return out / (np.max(np.abs(out[: max(period * 4, 1)])) + 1e-9)


# -- filters and effects ---------------------------------------------------------------------

def _sos(kind: str, cutoff, sr: int, order: int):
    from scipy.signal import butter
    nyq = 0.5 * sr
    if isinstance(cutoff, (tuple, list)):
        wn = [float(np.clip(c / nyq, 1e-4, 0.99)) for c in cutoff]
    else:
        wn = float(np.clip(cutoff / nyq, 1e-4, 0.99))
    return butter(order, wn, btype=kind, output="sos")


def lowpass(x: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    from scipy.signal import sosfilt
    if cutoff >= 0.49 * sr:
        return x
    return sosfilt(_sos("lowpass", cutoff, sr, order), x)


def highpass(x: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    from scipy.signal import sosfilt
    return sosfilt(_sos("highpass", cutoff, sr, order), x)


def bandpass(x: np.ndarray, low: float, high: float, sr: int, order: int = 2) -> np.ndarray:
    from scipy.signal import sosfilt
    return sosfilt(_sos("bandpass", (low, min(high, 0.49 * sr)), sr, order), x)


def drive(x: np.ndarray, amount: float) -> np.ndarray:
    """Tube-like saturation: ``tanh`` of the signal pushed ``amount`` times (0 = clean). Output
    peak stays near the input peak; the added odd harmonics are what make a guitar "distorted"."""
    if amount <= 0:
        return x
    peak = np.max(np.abs(x)) + 1e-9
    return np.tanh(amount * x / peak) / np.tanh(amount) * peak


def compress(x: np.ndarray, sr: int, amount: float) -> np.ndarray:
    """Squash loud passages: above a threshold ``amount``-dependent dB under the clip's peak level,
    gain falls with a ratio growing from 1 (amount 0) to about 8 (amount 1). Envelope: 15 ms RMS,
    smoothed with a 60 ms release so the gain does not flutter with every cycle."""
    if amount <= 0:
        return x
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import lfilter
    env = np.sqrt(uniform_filter1d(x * x, size=max(1, int(0.015 * sr))) + 1e-12)
    a = np.exp(-1.0 / (0.06 * sr))
    env = lfilter([1.0 - a], [1.0, -a], env)
    threshold = np.max(env) * db(-4.0 - 20.0 * amount)
    ratio = 1.0 + 7.0 * amount
    gain = np.where(env > threshold, (env / threshold) ** (1.0 / ratio - 1.0), 1.0)
    return x * gain


def reverb(x: np.ndarray, sr: int, rng: np.random.Generator, *, t60: float, wet: float,
           damping: float = 0.5, predelay: float = 0.01) -> np.ndarray:
    """Room sound: convolve with exponentially decaying noise (60 dB in ``t60`` s) whose highs die
    sooner with more ``damping``; ``wet`` is the share of reverberant sound (0-1)."""
    if wet <= 0 or t60 <= 0:
        return x
    from scipy.signal import fftconvolve
    m = int(t60 * sr)
    t = np.arange(m) / sr
    noise = rng.standard_normal(m)
    dark = lowpass(noise, 1500.0 + 6000.0 * (1.0 - damping), sr)
    # the tail grows darker over time: cross-fade from the bright to the dark noise
    fade = np.clip(t / max(t60 * 0.5, 1e-3), 0.0, 1.0)
    ir = ((1.0 - fade) * noise + fade * dark) * np.exp(-6.9 * t / t60)
    ir = np.concatenate([np.zeros(int(predelay * sr)), ir])
    ir /= np.sqrt(np.sum(ir * ir)) + 1e-12
    tail = fftconvolve(x, ir)[: len(x)]
    tail *= rms(x) / rms(tail)
    return np.sqrt(1.0 - wet) * x + np.sqrt(wet) * tail


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise ``[n]`` with unit RMS, shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return y / rms(y)


def crackle(n: int, sr: int, rng: np.random.Generator, rate: float) -> np.ndarray:
    """Vinyl-record crackle: about ``rate`` random clicks per second, brightened."""
    y = np.zeros(n)
    count = rng.poisson(rate * n / sr)
    where = rng.integers(0, n, count)
    y[where] = rng.standard_normal(count) * rng.uniform(0.2, 1.0, count)
    return highpass(y, 1500.0, sr)


def place(buf: np.ndarray, sound: np.ndarray, start: int, gain: float = 1.0) -> None:
    """Mix ``sound`` into ``buf`` from sample ``start`` (cut at either end)."""
    if start >= len(buf) or start + len(sound) <= 0:
        return
    lo = max(0, -start)
    hi = min(len(sound), len(buf) - start)
    buf[start + lo: start + hi] += gain * sound[lo:hi]


# -- instruments -----------------------------------------------------------------------------

TONAL = ("piano", "epiano", "organ", "strings", "pad", "synth", "square", "guitar", "nylon",
         "bell", "flute", "reed", "bass_synth", "sub", "upright", "pick_bass", "cello")
"""Pitched instruments :func:`voice` can play."""

DRUMS = ("kick", "snare", "clap", "hat", "open_hat", "ride", "crash", "shaker", "rim")
"""Drum sounds :func:`drum` can make."""


# Note envelope per instrument: attack (s), release (s), decay time constant while held (0 none).
PLUCKED = ("guitar", "nylon", "upright", "pick_bass")
_SHAPE = {"piano": (0.003, 0.35, 0.0), "epiano": (0.003, 0.3, 1.6), "organ": (0.01, 0.05, 0.0),
          "synth": (0.004, 0.12, None), "bass_synth": (0.004, 0.12, None), "square": (0.01, 0.12, 0.0),
          "sub": (0.003, 0.12, 1.2), "bell": (0.002, 1.0, 0.8), "flute": (0.06, 0.12, 0.0),
          "reed": (0.03, 0.1, 0.0), "strings": (None, 0.35, 0.0), "cello": (None, 0.3, 0.0), "pad": (None, 0.7, 0.0)}


def note_envelope(kind: str, dur: float, sr: int, bright: float = 0.5) -> np.ndarray:
    """Gain ``[N]`` of one note of ``kind`` held ``dur`` s, release included (N = its length)."""
    if kind in PLUCKED:
        return envelope(int((dur + 0.12) * sr), sr, 0.002, dur, 0.1)
    if kind not in _SHAPE:
        raise ValueError(f"unknown instrument {kind!r}; known: {', '.join(TONAL)}")
    attack, release, decay = _SHAPE[kind]
    if attack is None:  # bowed and swelling sounds: darker ones also start softer
        attack = (0.35 + 0.4 * (1.0 - bright)) if kind == "pad" else (0.1 + 0.25 * (1.0 - bright))
    if decay is None:
        decay = 0.25 + 0.5 * bright
    return envelope(int((dur + release) * sr), sr, attack, dur, release, decay=decay)


def tone(kind: str, midi: float, n: int, sr: int, rng: np.random.Generator, bright: float = 0.5) -> np.ndarray:
    """``n`` samples of instrument ``kind`` sounding ``midi`` with no note envelope (a plucked or
    struck sound rings down by itself; a bowed or blown one sustains). Peak level is about 1.

    ``bright`` (0-1) opens up the upper harmonics. A track renders each pitch once and shapes
    every note of that pitch with :func:`note_envelope`.
    """
    f = float(midi_hz(midi))
    bright = float(np.clip(bright, 0.0, 1.0))
    if kind in PLUCKED:
        ring = {"guitar": 2.5, "nylon": 1.6, "upright": 0.9, "pick_bass": 1.8}[kind]
        colour = {"guitar": 0.35 + 0.6 * bright, "nylon": 0.15 + 0.4 * bright,
                  "upright": 0.1 + 0.25 * bright, "pick_bass": 0.3 + 0.5 * bright}[kind]
        return pluck(f, n, sr, rng, bright=colour, decay=ring)
    if kind == "piano":
        k = np.arange(1, 11)
        amps = k ** -(2.4 - 1.4 * bright)
        base = 2.5 * (72.0 / max(midi, 30.0)) ** 1.5  # low strings ring longer
        return additive(f, n, sr, amps, decays=base / (1.0 + 0.5 * (k - 1)), stretch=1.5e-4,
                        phases=rng.uniform(0, 1, len(k)))
    if kind == "epiano":
        return fm(f, n, sr, 1.0, 1.0 + 2.5 * bright, 0.4) + 0.25 * bright * fm(f, n, sr, 14.0, 1.0, 0.02)
    if kind == "organ":
        bars = np.array([1.0, 0.7, 0.5 * bright + 0.1, 0.5, 0.0, 0.35 * bright, 0.0, 0.3 * bright])
        t = np.arange(n) / sr
        return additive(f, n, sr, bars) * (1.0 + 0.08 * np.sin(TAU * 6.2 * t))
    if kind in ("strings", "cello"):
        fv = vibrato(f, n, sr, rng.uniform(4.8, 6.2), 0.004, delay=0.15)
        cents = (-0.0025, 0.0, 0.0025) if kind == "strings" else (0.0,)
        y = sum(saw(fv * (1.0 + c), n, sr, start=rng.uniform()) for c in cents) / len(cents)
        return lowpass(y, f * (3.0 + 8.0 * bright), sr)
    if kind == "pad":
        y = saw(f * 0.997, n, sr, start=rng.uniform()) + saw(f * 1.003, n, sr, start=rng.uniform())
        y += 0.5 * pulse(f * 0.5, n, sr, 0.4)
        return lowpass(y, f * (2.0 + 6.0 * bright), sr)
    if kind in ("synth", "bass_synth"):
        y = saw(f, n, sr)
        if kind == "bass_synth":
            y = 0.7 * y + 0.5 * np.sin(TAU * phase(f, n, sr))
        return lowpass(y, f * (2.0 + 14.0 * bright), sr)
    if kind == "square":
        y = pulse(vibrato(f, n, sr, 5.0, 0.003, 0.25), n, sr, rng.uniform(0.25, 0.5))
        return lowpass(y, f * (3.0 + 10.0 * bright), sr)
    if kind == "sub":
        t = np.arange(n) / sr
        fv = f * (1.0 + 0.6 * np.exp(-t / 0.03))  # the 808-style pitch drop on the attack
        return drive(np.sin(TAU * phase(fv, n, sr)), 0.5 + 2.0 * bright)
    if kind == "bell":
        return fm(f, n, sr, 3.5, 2.0 + 3.0 * bright, 0.5)
    if kind == "flute":
        fv = vibrato(f, n, sr, rng.uniform(4.5, 5.5), 0.006, 0.2)
        y = additive(fv, n, sr, np.array([1.0, 0.25 * bright + 0.05, 0.12 * bright]))
        return y + 0.15 * bandpass(rng.standard_normal(n), f, 4.0 * f, sr)  # breath
    if kind == "reed":
        fv = vibrato(f, n, sr, rng.uniform(4.5, 6.0), 0.008, 0.25)
        k = np.arange(1, 11)
        return drive(additive(fv, n, sr, (0.6 + 0.4 * (k % 2)) * k ** -(1.6 - 0.8 * bright)), 1.5)
    raise ValueError(f"unknown instrument {kind!r}; known: {', '.join(TONAL)}")


def voice(kind: str, midi: float, dur: float, sr: int, rng: np.random.Generator, bright: float = 0.5) -> np.ndarray:
    """One note of instrument ``kind`` held for ``dur`` s, with its natural release after it."""
    env = note_envelope(kind, dur, sr, bright)
    return tone(kind, midi, len(env), sr, rng, bright) * env


def drum(kind: str, sr: int, rng: np.random.Generator, kit: dict[str, float]) -> np.ndarray:
    """One hit of drum ``kind`` shaped by the clip's ``kit`` (pitches, decays, brightness)."""
    bright = kit.get("bright", 0.5)
    if kind == "kick":
        dec = kit.get("kick_decay", 0.3)
        n = int(dec * 4 * sr)
        t = np.arange(n) / sr
        fv = kit.get("kick_pitch", 55.0) * (1.0 + 2.5 * np.exp(-t / 0.025))
        y = np.sin(TAU * phase(fv, n, sr)) * np.exp(-t / dec)
        click = highpass(rng.standard_normal(n), 2000.0, sr) * np.exp(-t / 0.004)
        return drive(y + kit.get("kick_click", 0.3) * click, 1.2)
    if kind == "snare":
        dec = kit.get("snare_decay", 0.15)
        n = int(dec * 5 * sr)
        t = np.arange(n) / sr
        tone_f = kit.get("snare_tone", 190.0)
        tone = (np.sin(TAU * tone_f * t) + 0.5 * np.sin(TAU * tone_f * 1.6 * t)) * np.exp(-t / 0.06)
        noise = bandpass(rng.standard_normal(n), 900.0, 3500.0 + 6000.0 * bright, sr) * np.exp(-t / dec)
        return 0.5 * tone + 1.2 * noise
    if kind == "clap":
        n = int(0.4 * sr)
        t = np.arange(n) / sr
        env = np.zeros(n)
        for lag in (0.0, 0.011, 0.023):
            env += (t >= lag) * np.exp(-np.maximum(t - lag, 0.0) / (0.008 if lag < 0.02 else 0.12))
        return bandpass(rng.standard_normal(n), 700.0, 2500.0 + 2500.0 * bright, sr) * env
    if kind in ("hat", "open_hat", "shaker"):
        dec = {"hat": kit.get("hat_decay", 0.045), "open_hat": 0.3, "shaker": 0.07}[kind]
        n = int(dec * 5 * sr)
        t = np.arange(n) / sr
        low = {"hat": 5000.0 + 3000.0 * bright, "open_hat": 5000.0 + 3000.0 * bright, "shaker": 3500.0}[kind]
        y = highpass(rng.standard_normal(n), low, sr, order=4)
        attack = np.minimum(1.0, t / (0.012 if kind == "shaker" else 0.001))
        return y * attack * np.exp(-t / dec)
    if kind in ("ride", "crash"):
        dec = kit.get("ride_decay", 1.2) if kind == "ride" else 1.6
        n = int(dec * 3 * sr)
        t = np.arange(n) / sr
        base = kit.get("ride_pitch", 450.0)
        ratios = np.array([1.0, 1.48, 1.93, 2.53, 3.31, 4.17])
        metal = sum(np.sign(np.sin(TAU * base * r * t + rng.uniform(0, TAU))) for r in ratios) / 6.0
        y = highpass(metal, 2500.0, sr) * (0.6 if kind == "ride" else 0.3)
        y += highpass(rng.standard_normal(n), 4000.0, sr) * (0.25 if kind == "ride" else 0.8)
        return y * np.exp(-t / (dec / 2.5)) * np.minimum(1.0, t / 0.001)
    if kind == "rim":
        n = int(0.12 * sr)
        t = np.arange(n) / sr
        return (np.sin(TAU * 520.0 * t) * np.exp(-t / 0.015)
                + 0.4 * highpass(rng.standard_normal(n), 3000.0, sr) * np.exp(-t / 0.005))
    raise ValueError(f"unknown drum {kind!r}; known: {', '.join(DRUMS)}")
