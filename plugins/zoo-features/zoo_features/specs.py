"""The entry points: one zoo.protocols.ComponentSpec per feature (importing this loads no librosa)."""
from __future__ import annotations

from zoo.protocols import ComponentSpec

from .configs import BeatChromaConfig, BeatMelConfig, ChromaConfig, MelConfig
from .features import BeatChroma, BeatMel, Chroma, Mel

mel = ComponentSpec(
    kind="feature", name="mel", config=MelConfig, build=Mel,
    summary="mel spectrogram in dB (128 bands, n_fft 2048, hop 512 at 22050 Hz), one column per frame",
)
chroma = ComponentSpec(
    kind="feature", name="chroma", config=ChromaConfig, build=Chroma,
    summary="chromagram from the constant-Q transform (12 pitch classes, hop 512), one column per frame",
)
beat = ComponentSpec(
    kind="feature", name="beat", config=BeatMelConfig, build=BeatMel,
    summary="beat-synchronous mel in dB: median of the power mel between beats found on the percussive part",
)
beat_chroma = ComponentSpec(
    kind="feature", name="beat-chroma", config=BeatChromaConfig, build=BeatChroma,
    summary="beat-synchronous chromagram: median of the chroma between beats found on the percussive part",
)
