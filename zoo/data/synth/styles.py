"""The genres of the embedded set: what each tends to play, and one clip's concrete choices.

A :class:`Style` holds *distributions* (tempo mean and spread, probabilities of drum patterns,
modes, instruments, ranges of brightness, distortion, loudness ...). :func:`sample_recipe` draws
one :class:`Recipe` from it: the concrete choices for one clip. Neighbouring genres share
instruments and overlapping ranges on purpose (rock and metal both distort guitars, hip-hop and
trip-hop share slow swung beats, jazz and blues both swing and use seventh chords, folk and pop
both strum major chords) so that telling them apart is learnable but not trivial.

The genre names are the ten classes the lab keeps after its class mapping, so that a model
trained here speaks the same labels as one trained on the lab's data.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

GENRES = ("Blues", "Classical", "Electronic", "Folk", "Hip-Hop", "Jazz", "Metal", "Pop", "Rock", "Trip-Hop")

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic": (0, 2, 3, 5, 7, 8, 11),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "blues": (0, 2, 4, 5, 7, 9, 10),  # chords from mixolydian; melodies add the blue notes
}
MAJOR_LIKE = ("major", "mixolydian", "blues")

# Degrees (0 = tonic) of the chord of each bar, by family and by major/minor flavour.
PROGRESSIONS = {
    "pop": {"major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 5, 4)),
            "minor": ((0, 5, 2, 6), (0, 6, 5, 6), (5, 6, 0, 0))},
    "rock": {"major": ((0, 3, 4, 3), (0, 6, 3, 0), (0, 4, 3, 0), (0, 3, 0, 4)),
             "minor": ((0, 6, 5, 6), (0, 5, 6, 0), (0, 2, 6, 3))},
    "folk": {"major": ((0, 3, 0, 4), (0, 0, 3, 4), (0, 4, 5, 3), (0, 3, 4, 0)),
             "minor": ((0, 6, 0, 4), (0, 2, 6, 0), (0, 3, 0, 6))},
    "classical": {"major": ((0, 3, 4, 0), (0, 5, 1, 4), (0, 1, 4, 0), (0, 3, 1, 4)),
                  "minor": ((0, 3, 4, 0), (0, 5, 1, 4), (0, 2, 3, 4))},
    "vamp": {"major": ((0, 3), (0, 5), (0, 0)), "minor": ((0, 5), (0, 6), (0, 0), (0, 3))},
    "jazz": {"major": ((1, 4, 0, 0), (1, 4, 0, 5), (0, 5, 1, 4), (2, 5, 1, 4)),
             "minor": ((1, 4, 0, 0), (0, 3, 1, 4), (0, 5, 1, 4))},
    # the 12-bar blues in roots (semitones above the key), always dominant sevenths
    "blues12": {"major": ((0, 5, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7),), "minor": ((0, 5, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7),)},
}

# How regular and "danceable" each drum pattern is (used by the danceability formula).
GROOVE = {"four": 1.0, "boombap": 0.85, "backbeat": 0.8, "shuffle": 0.7, "breakbeat": 0.65,
          "halftime": 0.6, "double": 0.45, "jazzride": 0.45, "blast": 0.3, "sparse": 0.3, "none": 0.0}

Dist = dict  # name -> probability


@dataclass(frozen=True)
class Style:
    """The distributions one genre draws its clips from. Ranges are (low, high), uniform;
    ``tempo`` is (mean, sd, low, high) of a clipped normal."""

    tempo: tuple[float, float, float, float]
    swing: tuple[float, float]          # delay of the off-beat, 0 straight .. 0.33 triplet feel
    swing_unit: float                   # 0.5: swung eighths, 0.25: swung sixteenths
    jitter_ms: tuple[float, float]      # human timing spread
    rubato: tuple[float, float]         # slow tempo wander (fraction)
    drums: Dist
    modes: Dist
    progressions: Dist
    chord_size: Dist                    # 3 triads, 4 sevenths, 5 ninths
    harmony: Dist                       # instrument of the chords
    comp: Dist                          # how the chords are played
    bass: Dist                          # bass instrument ("none" allowed)
    bass_line: Dist
    lead: Dist                          # melody instrument ("none" allowed)
    density: tuple[float, float]        # melody notes per beat
    bright: tuple[float, float]
    drive: tuple[float, float]          # distortion of guitars / synths (0 clean)
    level_db: tuple[float, float]       # loudness (RMS dBFS)
    squash: tuple[float, float]         # compression amount 0..1
    dyn_db: tuple[float, float]         # depth of crescendos / swells
    reverb: tuple[float, float]         # wet share
    room: tuple[float, float]           # reverb time T60 (s)
    snr_db: tuple[float, float]         # signal to background-noise ratio
    crackle: float                      # probability of vinyl crackle
    kit: dict = field(default_factory=dict)   # drum-sound ranges: name -> (low, high)
    mix: dict = field(default_factory=dict)   # level (dB) of drums / bass / harmony / lead


STYLES: dict[str, Style] = {
    "Blues": Style(
        tempo=(92, 18, 60, 140), swing=(0.22, 0.33), swing_unit=0.5, jitter_ms=(6, 14), rubato=(0, 0.01),
        drums={"shuffle": 0.65, "backbeat": 0.15, "jazzride": 0.1, "none": 0.1},
        modes={"blues": 0.75, "dorian": 0.15, "minor": 0.1},
        progressions={"blues12": 0.75, "rock": 0.15, "vamp": 0.1}, chord_size={3: 0.2, 4: 0.7, 5: 0.1},
        harmony={"piano": 0.35, "organ": 0.3, "guitar": 0.25, "epiano": 0.1},
        comp={"shuffle": 0.55, "comp": 0.25, "half": 0.2},
        bass={"upright": 0.4, "pick_bass": 0.4, "bass_synth": 0.1, "none": 0.1},
        bass_line={"boogie": 0.55, "walk": 0.3, "root4": 0.15},
        lead={"guitar": 0.45, "reed": 0.35, "piano": 0.1, "none": 0.1},
        density=(0.6, 2.2), bright=(0.3, 0.65), drive=(0.0, 2.5), level_db=(-22, -15), squash=(0.1, 0.45),
        dyn_db=(2, 7), reverb=(0.1, 0.35), room=(0.5, 1.6), snr_db=(24, 42), crackle=0.25,
        kit={"kick_pitch": (48, 62), "kick_decay": (0.2, 0.35), "snare_decay": (0.12, 0.22), "bright": (0.3, 0.6)},
        mix={"drums": -4, "bass": -3, "harmony": -3, "lead": 0}),
    "Classical": Style(
        tempo=(84, 20, 50, 140), swing=(0.0, 0.03), swing_unit=0.5, jitter_ms=(10, 28), rubato=(0.02, 0.09),
        drums={"none": 0.95, "sparse": 0.05},
        modes={"major": 0.45, "minor": 0.35, "harmonic": 0.15, "dorian": 0.05},
        progressions={"classical": 0.8, "folk": 0.2}, chord_size={3: 0.75, 4: 0.25},
        harmony={"piano": 0.45, "strings": 0.4, "nylon": 0.1, "organ": 0.05},
        comp={"arp": 0.5, "sustain": 0.3, "half": 0.2},
        bass={"cello": 0.45, "piano": 0.3, "none": 0.25}, bass_line={"hold": 0.6, "rootfifth": 0.4},
        lead={"strings": 0.3, "flute": 0.3, "piano": 0.25, "reed": 0.05, "none": 0.1},
        density=(0.5, 2.5), bright=(0.25, 0.6), drive=(0, 0), level_db=(-30, -19), squash=(0.0, 0.1),
        dyn_db=(6, 16), reverb=(0.3, 0.55), room=(1.4, 3.0), snr_db=(30, 50), crackle=0.05,
        kit={"kick_pitch": (50, 60), "kick_decay": (0.3, 0.5)},
        mix={"drums": -8, "bass": -3, "harmony": -1, "lead": 0}),
    "Electronic": Style(
        tempo=(125, 4, 116, 136), swing=(0.0, 0.06), swing_unit=0.25, jitter_ms=(0, 1), rubato=(0, 0),
        drums={"four": 0.8, "breakbeat": 0.1, "backbeat": 0.1},
        modes={"minor": 0.55, "dorian": 0.2, "major": 0.15, "phrygian": 0.1},
        progressions={"vamp": 0.5, "pop": 0.5}, chord_size={3: 0.5, 4: 0.35, 5: 0.15},
        harmony={"pad": 0.45, "synth": 0.4, "epiano": 0.1, "piano": 0.05},
        comp={"stab": 0.45, "sustain": 0.35, "arp": 0.2},
        bass={"bass_synth": 0.7, "sub": 0.3}, bass_line={"offbeat": 0.55, "root8": 0.3, "sub": 0.15},
        lead={"synth": 0.35, "bell": 0.25, "square": 0.25, "none": 0.15},
        density=(1.0, 4.0), bright=(0.55, 1.0), drive=(0.0, 1.5), level_db=(-14, -9), squash=(0.5, 0.9),
        dyn_db=(1, 6), reverb=(0.1, 0.3), room=(0.6, 2.0), snr_db=(40, 60), crackle=0.02,
        kit={"kick_pitch": (48, 58), "kick_decay": (0.25, 0.45), "kick_click": (0.2, 0.6), "bright": (0.6, 1.0),
             "hat_decay": (0.03, 0.06)},
        mix={"drums": 0, "bass": -1, "harmony": -5, "lead": -4}),
    "Folk": Style(
        tempo=(102, 14, 70, 140), swing=(0.0, 0.12), swing_unit=0.5, jitter_ms=(6, 16), rubato=(0, 0.02),
        drums={"none": 0.45, "sparse": 0.4, "backbeat": 0.15},
        modes={"major": 0.7, "mixolydian": 0.15, "minor": 0.1, "dorian": 0.05},
        progressions={"folk": 0.7, "pop": 0.3}, chord_size={3: 0.85, 4: 0.15},
        harmony={"guitar": 0.55, "nylon": 0.3, "piano": 0.15},
        comp={"strum": 0.55, "arp": 0.45},
        bass={"upright": 0.4, "pick_bass": 0.2, "none": 0.4}, bass_line={"rootfifth": 0.7, "root4": 0.3},
        lead={"flute": 0.3, "strings": 0.2, "reed": 0.15, "guitar": 0.15, "none": 0.2},
        density=(0.5, 2.0), bright=(0.4, 0.75), drive=(0, 0), level_db=(-24, -16), squash=(0.05, 0.3),
        dyn_db=(2, 8), reverb=(0.1, 0.35), room=(0.5, 1.5), snr_db=(30, 50), crackle=0.05,
        kit={"kick_pitch": (50, 65), "kick_decay": (0.2, 0.35), "bright": (0.3, 0.6)},
        mix={"drums": -8, "bass": -4, "harmony": 0, "lead": -1}),
    "Hip-Hop": Style(
        tempo=(90, 6, 78, 104), swing=(0.08, 0.3), swing_unit=0.25, jitter_ms=(2, 8), rubato=(0, 0),
        drums={"boombap": 0.75, "halftime": 0.15, "breakbeat": 0.1},
        modes={"minor": 0.55, "dorian": 0.25, "major": 0.15, "harmonic": 0.05},
        progressions={"vamp": 0.6, "jazz": 0.2, "pop": 0.2}, chord_size={3: 0.3, 4: 0.5, 5: 0.2},
        harmony={"epiano": 0.4, "piano": 0.25, "pad": 0.2, "strings": 0.15},
        comp={"rhodes": 0.6, "sustain": 0.25, "stab": 0.15},
        bass={"sub": 0.7, "bass_synth": 0.2, "upright": 0.1}, bass_line={"sub": 0.8, "root4": 0.2},
        lead={"none": 0.4, "bell": 0.25, "flute": 0.15, "synth": 0.1, "square": 0.1},
        density=(0.25, 1.2), bright=(0.25, 0.6), drive=(0, 0.5), level_db=(-15, -10), squash=(0.4, 0.8),
        dyn_db=(1, 4), reverb=(0.05, 0.25), room=(0.4, 1.2), snr_db=(28, 45), crackle=0.45,
        kit={"kick_pitch": (42, 55), "kick_decay": (0.35, 0.9), "kick_click": (0.1, 0.4), "snare_decay": (0.12, 0.25),
             "bright": (0.3, 0.7)},
        mix={"drums": 0, "bass": -1, "harmony": -6, "lead": -6}),
    "Jazz": Style(
        tempo=(150, 40, 80, 240), swing=(0.2, 0.33), swing_unit=0.5, jitter_ms=(6, 18), rubato=(0, 0.02),
        drums={"jazzride": 0.8, "shuffle": 0.1, "none": 0.1},
        modes={"major": 0.5, "dorian": 0.25, "minor": 0.15, "mixolydian": 0.1},
        progressions={"jazz": 0.85, "vamp": 0.15}, chord_size={4: 0.5, 5: 0.5},
        harmony={"piano": 0.6, "epiano": 0.2, "guitar": 0.1, "organ": 0.1},
        comp={"comp": 0.75, "half": 0.25},
        bass={"upright": 0.85, "pick_bass": 0.1, "none": 0.05}, bass_line={"walk": 0.85, "root4": 0.15},
        lead={"reed": 0.5, "piano": 0.15, "square": 0.05, "flute": 0.1, "none": 0.2},
        density=(1.0, 3.0), bright=(0.3, 0.6), drive=(0, 0), level_db=(-24, -16), squash=(0.0, 0.25),
        dyn_db=(3, 9), reverb=(0.15, 0.35), room=(0.6, 1.6), snr_db=(28, 45), crackle=0.15,
        kit={"ride_decay": (0.9, 1.6), "ride_pitch": (380, 520), "kick_pitch": (50, 62), "kick_decay": (0.15, 0.3)},
        mix={"drums": -3, "bass": -2, "harmony": -3, "lead": 0}),
    "Metal": Style(
        tempo=(165, 25, 110, 220), swing=(0.0, 0.02), swing_unit=0.25, jitter_ms=(1, 4), rubato=(0, 0),
        drums={"double": 0.6, "blast": 0.2, "backbeat": 0.15, "halftime": 0.05},
        modes={"minor": 0.4, "phrygian": 0.35, "harmonic": 0.25},
        progressions={"rock": 0.7, "vamp": 0.3}, chord_size={3: 1.0},
        harmony={"guitar": 0.8, "synth": 0.2}, comp={"chug": 0.6, "power8": 0.3, "powerhold": 0.1},
        bass={"pick_bass": 0.6, "bass_synth": 0.3, "none": 0.1}, bass_line={"chug16": 0.5, "root8": 0.5},
        lead={"guitar": 0.45, "synth": 0.2, "none": 0.35},
        density=(2.0, 4.0), bright=(0.55, 0.95), drive=(6, 18), level_db=(-12, -8), squash=(0.6, 0.95),
        dyn_db=(0, 3), reverb=(0.05, 0.2), room=(0.5, 1.5), snr_db=(35, 55), crackle=0.0,
        kit={"kick_pitch": (55, 70), "kick_decay": (0.1, 0.2), "kick_click": (0.5, 1.0), "snare_decay": (0.1, 0.18),
             "bright": (0.6, 1.0), "ride_pitch": (450, 600)},
        mix={"drums": -1, "bass": -4, "harmony": 0, "lead": -3}),
    "Pop": Style(
        tempo=(112, 14, 80, 140), swing=(0.0, 0.08), swing_unit=0.25, jitter_ms=(1, 5), rubato=(0, 0),
        drums={"backbeat": 0.6, "four": 0.3, "halftime": 0.1},
        modes={"major": 0.7, "minor": 0.25, "mixolydian": 0.05},
        progressions={"pop": 0.85, "folk": 0.15}, chord_size={3: 0.6, 4: 0.3, 5: 0.1},
        harmony={"piano": 0.3, "synth": 0.25, "guitar": 0.25, "pad": 0.2},
        comp={"half": 0.3, "strum": 0.25, "stab": 0.25, "sustain": 0.2},
        bass={"bass_synth": 0.5, "pick_bass": 0.4, "sub": 0.1}, bass_line={"pop8": 0.6, "root8": 0.3, "root4": 0.1},
        lead={"synth": 0.25, "bell": 0.2, "square": 0.15, "guitar": 0.15, "flute": 0.1, "none": 0.15},
        density=(1.0, 2.5), bright=(0.5, 0.85), drive=(0, 1.0), level_db=(-15, -10), squash=(0.4, 0.8),
        dyn_db=(1, 5), reverb=(0.1, 0.3), room=(0.6, 1.8), snr_db=(38, 58), crackle=0.02,
        kit={"kick_pitch": (48, 60), "kick_decay": (0.2, 0.4), "bright": (0.5, 0.9)},
        mix={"drums": -1, "bass": -2, "harmony": -3, "lead": -2}),
    "Rock": Style(
        tempo=(122, 16, 85, 165), swing=(0.0, 0.05), swing_unit=0.5, jitter_ms=(3, 9), rubato=(0, 0.01),
        drums={"backbeat": 0.8, "halftime": 0.1, "double": 0.1},
        modes={"major": 0.45, "mixolydian": 0.25, "minor": 0.25, "dorian": 0.05},
        progressions={"rock": 0.7, "pop": 0.3}, chord_size={3: 1.0},
        harmony={"guitar": 0.75, "organ": 0.1, "piano": 0.15}, comp={"power8": 0.55, "strum": 0.25, "powerhold": 0.2},
        bass={"pick_bass": 0.75, "bass_synth": 0.15, "upright": 0.1}, bass_line={"root8": 0.7, "pop8": 0.3},
        lead={"guitar": 0.5, "reed": 0.05, "synth": 0.1, "none": 0.35},
        density=(1.0, 3.0), bright=(0.45, 0.85), drive=(2.5, 9), level_db=(-16, -10), squash=(0.35, 0.75),
        dyn_db=(1, 6), reverb=(0.08, 0.3), room=(0.6, 1.8), snr_db=(32, 52), crackle=0.03,
        kit={"kick_pitch": (50, 62), "kick_decay": (0.15, 0.3), "kick_click": (0.3, 0.7), "snare_decay": (0.14, 0.25),
             "bright": (0.45, 0.85), "ride_pitch": (420, 560)},
        mix={"drums": -1, "bass": -3, "harmony": 0, "lead": -2}),
    "Trip-Hop": Style(
        tempo=(84, 8, 66, 100), swing=(0.0, 0.2), swing_unit=0.25, jitter_ms=(2, 8), rubato=(0, 0.01),
        drums={"breakbeat": 0.6, "halftime": 0.25, "boombap": 0.15},
        modes={"minor": 0.55, "harmonic": 0.2, "dorian": 0.2, "phrygian": 0.05},
        progressions={"vamp": 0.6, "pop": 0.25, "classical": 0.15}, chord_size={3: 0.4, 4: 0.45, 5: 0.15},
        harmony={"pad": 0.35, "strings": 0.3, "epiano": 0.25, "piano": 0.1},
        comp={"sustain": 0.6, "rhodes": 0.3, "arp": 0.1},
        bass={"sub": 0.6, "bass_synth": 0.25, "upright": 0.15}, bass_line={"sub": 0.55, "hold": 0.25, "root4": 0.2},
        lead={"bell": 0.3, "strings": 0.15, "flute": 0.15, "square": 0.1, "none": 0.3},
        density=(0.25, 1.2), bright=(0.15, 0.5), drive=(0, 1.0), level_db=(-19, -12), squash=(0.3, 0.7),
        dyn_db=(2, 7), reverb=(0.3, 0.55), room=(1.2, 3.0), snr_db=(24, 40), crackle=0.6,
        kit={"kick_pitch": (42, 55), "kick_decay": (0.3, 0.8), "snare_decay": (0.15, 0.3), "bright": (0.2, 0.5)},
        mix={"drums": -1, "bass": -2, "harmony": -3, "lead": -5}),
}

KIT_DEFAULTS = {"kick_pitch": (50, 60), "kick_decay": (0.2, 0.4), "kick_click": (0.2, 0.5),
                "snare_tone": (170, 230), "snare_decay": (0.12, 0.22), "hat_decay": (0.03, 0.06),
                "ride_decay": (1.0, 1.4), "ride_pitch": (400, 520), "bright": (0.4, 0.8)}


@dataclass(frozen=True)
class Recipe:
    """One clip's concrete choices, drawn from a :class:`Style` (every field is recorded in the
    manifest and the targets are computed from them)."""

    genre: str
    intensity: float         # quiet intro (0) .. full chorus (1)
    tempo: float
    swing: float
    swing_unit: float
    jitter_ms: float
    rubato: float
    drums: str
    key: int                 # tonic, semitones above C
    mode: str
    progression: tuple[int, ...]
    roots_are_semitones: bool
    chord_size: int
    harmony: str
    comp: str
    bass: str
    bass_line: str
    lead: str
    density: float
    bright: float
    drive: float
    level_db: float
    squash: float
    dyn_shape: str
    dyn_db: float
    reverb: float
    room: float
    snr_db: float
    crackle: bool
    eq_low: float            # bass shelf: added share of the low band (-0.5 cut .. +1 boost)
    eq_high: float           # treble shelf, likewise
    kit: dict
    mix: dict

    def record(self) -> dict:
        """The recipe as flat JSON-ready values (for the manifest)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, dict):
                out.update({f"{f.name}_{k}": round(float(x), 4) for k, x in v.items()})
            elif isinstance(v, tuple):
                out[f.name] = "-".join(str(x) for x in v)
            elif isinstance(v, float):
                out[f.name] = round(v, 4)
            else:
                out[f.name] = v
        return out


def _pick(rng: np.random.Generator, dist: Dist):
    keys = list(dist)
    p = np.array([dist[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _uni(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _lean(rng: np.random.Generator, lo_hi: tuple[float, float], toward: float) -> float:
    """A value in the range, pulled towards the fraction ``toward`` of it (60 %) plus chance (40 %)."""
    return float(lo_hi[0] + (lo_hi[1] - lo_hi[0]) * (0.6 * toward + 0.4 * rng.uniform()))


SOUND_FIELDS = ("kit", "mix", "harmony", "bass", "lead", "bright", "drive", "level_db", "squash", "dyn_db",
                "reverb", "room", "snr_db", "crackle")
"""The choices of a :class:`Recipe` that make how a clip *sounds* rather than how it is *played*:
the instruments and drum kit, the mix, tone, distortion, loudness, compression, the depth of
its swells, the room and the noise. ``sample_recipe(..., sound_from=OTHER)`` draws these from
another genre's style; everything else (tempo, swing, timing, drum pattern, mode, progression,
chord size, comping, bass line, melody density, the shape of the dynamics) stays the genre's."""


def sample_recipe(genre: str, rng: np.random.Generator, sound_from: str | None = None) -> Recipe:
    """Draw one clip's choices for ``genre`` (one of :data:`GENRES`).

    A clip is a moment of a song: its ``intensity`` (0-1, uniform) says whether it is a quiet
    intro or breakdown or a full chorus, and pulls loudness, melody density and compression up
    or down within the genre's ranges; the quietest moments may drop the drums altogether.

    ``sound_from``: another genre whose style gives the :data:`SOUND_FIELDS` (None: ``genre``'s
    own). The draws happen in the same order either way, so the same ``rng`` gives the same
    rhythm, harmony and form with another genre's sound.
    """
    s = STYLES[genre]
    snd = STYLES[sound_from or genre]
    intensity = float(rng.uniform())
    mean, sd, lo, hi = s.tempo
    tempo = float(np.clip(rng.normal(mean, sd), lo, hi))
    mode = _pick(rng, s.modes)
    family = _pick(rng, s.progressions)
    if family == "blues12" and mode not in MAJOR_LIKE:
        family = "rock"
    flavour = "major" if mode in MAJOR_LIKE else "minor"
    options = PROGRESSIONS[family][flavour]
    progression = options[int(rng.integers(len(options)))]
    start = int(rng.integers(len(progression)))  # a clip may begin anywhere in the form
    progression = progression[start:] + progression[:start]
    kit = {k: _uni(rng, snd.kit.get(k, rng_range)) for k, rng_range in KIT_DEFAULTS.items()}
    # every clip gets its own mix: the style's levels plus a few dB either way
    mix = {k: float(v + rng.uniform(-4.0, 4.0)) for k, v in snd.mix.items()}
    drums = _pick(rng, s.drums)
    if intensity < 0.15 and drums != "none" and rng.uniform() < 0.5:
        drums = "sparse" if rng.uniform() < 0.5 else "none"  # an intro or a breakdown
    return Recipe(
        genre=genre, intensity=intensity, tempo=tempo, swing=_uni(rng, s.swing), swing_unit=s.swing_unit,
        jitter_ms=_uni(rng, s.jitter_ms), rubato=_uni(rng, s.rubato), drums=drums,
        key=int(rng.integers(12)), mode=mode, progression=tuple(progression),
        roots_are_semitones=family == "blues12", chord_size=int(_pick(rng, s.chord_size)),
        harmony=_pick(rng, snd.harmony), comp=_pick(rng, s.comp), bass=_pick(rng, snd.bass),
        bass_line=_pick(rng, s.bass_line), lead=_pick(rng, snd.lead), density=_lean(rng, s.density, intensity),
        bright=_uni(rng, snd.bright), drive=_lean(rng, snd.drive, intensity),
        level_db=_lean(rng, snd.level_db, intensity), squash=_lean(rng, snd.squash, intensity),
        dyn_shape=_pick(rng, {"flat": 0.3, "crescendo": 0.3, "decrescendo": 0.2, "swell": 0.2}),
        dyn_db=_uni(rng, snd.dyn_db), reverb=_uni(rng, snd.reverb), room=_uni(rng, snd.room),
        snr_db=_uni(rng, snd.snr_db), crackle=bool(rng.uniform() < snd.crackle),
        eq_low=float(rng.uniform(-0.5, 1.0)), eq_high=float(rng.uniform(-0.5, 1.0)), kit=kit, mix=mix,
    )


# -- targets ---------------------------------------------------------------------------------

MODE_VALENCE = {"major": 1.0, "mixolydian": 0.6, "blues": 0.2, "dorian": -0.1, "minor": -0.7,
                "harmonic": -1.0, "phrygian": -1.0}
TARGET_NOISE = 0.04


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


def targets(recipe: Recipe, rms_db: float, events_per_s: float, rng: np.random.Generator) -> dict[str, float]:
    """Valence, energy and danceability in [0, 1] from what generated the clip.

    With ``s(z) = 1 / (1 + exp(-z))`` and a per-clip ``N(0, 0.04)`` added before clipping to [0, 1]:

    - valence = s(1.3 m + 0.45 (bright - 0.55) / 0.2 + 0.45 (tempo - 110) / 35), where the mode
      gives m: major 1, mixolydian 0.6, blues 0.2, dorian -0.1, minor -0.7, harmonic minor and
      phrygian -1.
    - energy = s(0.35 (rms_db + 16) / 4 + 0.8 log2(events_per_s / 12) + 0.3 (tempo - 115) / 35
      + 0.5 min(drive, 12) / 12 + 0.2 (2 squash - 1) + 0.3): loudness as rendered (dBFS RMS),
      events per second (each track's distinct onsets: notes, chords, drum hits), tempo,
      distortion, compression.
    - danceability = s(3 g + 1.5 exp(-((tempo - 118) / 30)^2) - 0.6 jitter_ms / 15
      - 0.5 ((swing - 0.1) / 0.2)^2 - 0.8 rubato / 0.05 - 2), where g is the drum pattern's
      regularity (the table GROOVE: four-on-the-floor 1 ... no drums 0): a steady beat near
      100-130 bpm with tight timing and a moderate swing dances best.
    """
    tempo = recipe.tempo
    z_v = 1.3 * MODE_VALENCE[recipe.mode] + 0.45 * (recipe.bright - 0.55) / 0.2 + 0.45 * (tempo - 110.0) / 35.0
    z_e = (0.35 * (rms_db + 16.0) / 4.0 + 0.8 * np.log2(max(events_per_s, 0.1) / 12.0)
           + 0.3 * (tempo - 115.0) / 35.0 + 0.5 * min(recipe.drive, 12.0) / 12.0
           + 0.2 * (2.0 * recipe.squash - 1.0) + 0.3)
    z_d = (3.0 * GROOVE[recipe.drums] + 1.5 * np.exp(-(((tempo - 118.0) / 30.0) ** 2)) - 0.6 * recipe.jitter_ms / 15.0
           - 0.5 * ((recipe.swing - 0.1) / 0.2) ** 2 - 0.8 * recipe.rubato / 0.05 - 2.0)
    out = {}
    for name, z in (("valence", z_v), ("energy", z_e), ("danceability", z_d)):
        out[name] = round(float(np.clip(_sigmoid(float(z)) + rng.normal(0.0, TARGET_NOISE), 0.0, 1.0)), 4)
    return out
