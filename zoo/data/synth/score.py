"""Compose and render one clip: a :class:`~zoo.data.synth.styles.Recipe` becomes notes, then audio.

:func:`render_clip` is the whole path from a genre and a seed to a waveform, its recipe and its
targets. Composition happens on a grid of beats (4/4, sixteenth steps); timing then gets swing,
slow tempo wander (rubato) and human jitter. Each track is rendered note by note with
:mod:`zoo.data.synth.sounds`, levelled, and the mix goes through dynamics, compression, reverb, a tone
filter, background noise and a limiter.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import sounds as sy
from .styles import GENRES, SCALES, Recipe, sample_recipe, targets

# Sixteen steps per bar; "x" a hit, "o" a ghost (soft) hit. Each drum lists variants; "" = absent.
PATTERNS: dict[str, dict[str, tuple[str, ...]]] = {
    "four": {"kick": ("x...x...x...x...",), "clap": ("....x.......x...", "", "....x.......x..."),
             "hat": ("..x...x...x...x.", "xoxoxoxoxoxoxoxo", "xxxxxxxxxxxxxxxx"), "open_hat": ("", "..x...x...x...x.")},
    "backbeat": {"kick": ("x.......x.......", "x.......x.x.....", "x..x....x.......", "x.....x.x.......", "x.......xx......"),
                 "snare": ("....x.......x...", "....x.......x..o"),
                 "hat": ("x.x.x.x.x.x.x.x.", "xxxxxxxxxxxxxxxx", "x.x.x.x.x.x.x.xo", ""),
                 "ride": ("", "", "x.x.x.x.x.x.x.x.")},
    "halftime": {"kick": ("x.........x.....", "x......x..x....."), "snare": ("........x.......",),
                 "hat": ("x.x.x.x.x.x.x.x.", "xoxoxoxoxoxoxoxo")},
    "boombap": {"kick": ("x.........x.....", "x..x......x..x..", "x......x.x......", "x.x.......x....."),
                "snare": ("....x.......x...", "....x..o....x..o"),
                "hat": ("x.x.x.x.x.x.x.x.", "xoxoxoxoxoxoxoxo", "x.xxx.xxx.xxx.xx")},
    "breakbeat": {"kick": ("x.........x.x...", "x......x..x.....", "x.x.......x....."),
                  "snare": ("....x..o.o..x...", "....x.......x..o", "....x.....o.x..."),
                  "hat": ("x.x.x.x.x.x.x.x.", "xxxxxxxxxxxxxxxx", "xoxoxoxoxoxoxoxo"), "rim": ("", "..o.......o.....")},
    "shuffle": {"kick": ("x.......x.......", "x.....x.x......."), "snare": ("....x.......x...",),
                "hat": ("x.x.x.x.x.x.x.x.", ""), "ride": ("", "x.x.x.x.x.x.x.x.")},
    "jazzride": {"ride": ("x...x.x.x...x.x.",), "hat": ("....x.......x...",),
                 "kick": ("o...o...o...o...", "o.........o.....", ""), "snare": ("......o.......o.", "..o.......o..o..", "")},
    "double": {"kick": ("xxxxxxxxxxxxxxxx", "x.x.x.x.x.x.x.x."), "snare": ("....x.......x...",),
               "ride": ("x...x...x...x...", "x.x.x.x.x.x.x.x."), "crash": ("x...............", "")},
    "blast": {"kick": ("x.x.x.x.x.x.x.x.", "xxxxxxxxxxxxxxxx"), "snare": (".x.x.x.x.x.x.x.x", "x.x.x.x.x.x.x.x."),
              "ride": ("x.x.x.x.x.x.x.x.",), "crash": ("x...............",)},
    "sparse": {"kick": ("x.......x.......", "x...............", "x.......x...x..."),
               "shaker": ("x.x.x.x.x.x.x.x.", "..x...x...x...x.", ""), "rim": ("....x.......x...", "")},
    "none": {},
}
DRUM_LEVEL_DB = {"kick": 0.0, "snare": -2.0, "clap": -3.0, "hat": -13.0, "open_hat": -14.0, "ride": -11.0,
                 "crash": -15.0, "shaker": -15.0, "rim": -9.0}
LEAD_RANGE = {"guitar": (57, 81), "reed": (55, 79), "piano": (62, 86), "strings": (62, 86)}


@dataclass
class Track:
    """The notes of one instrument (a drum track's ``instrument`` is the drum's name).

    While composing, ``notes`` holds ``(beat, beats held, velocity)`` (drums) or
    ``(beat, pitch, beats held, velocity)``; :func:`compose` turns them into timed :class:`Note`.
    """

    name: str
    instrument: str
    notes: list


class Clock:
    """Beat positions -> seconds: swing of the off-beat steps, rubato and the clip's start offset."""

    def __init__(self, r: Recipe, rng: np.random.Generator):
        self.r = r
        self.beat = 60.0 / r.tempo
        self.phi = rng.uniform(0, 2 * np.pi)
        self.offset = rng.uniform(0.0, 4.0) * self.beat  # clips do not all start on a downbeat

    def __call__(self, pos: float) -> float:
        r = self.r
        q = pos / r.swing_unit
        if abs(q - round(q)) < 1e-6 and int(round(q)) % 2 == 1:
            pos += r.swing * r.swing_unit
        span = 8.0  # beats per tempo-wander cycle
        wander = r.rubato * span / (2 * np.pi) * (np.cos(self.phi) - np.cos(2 * np.pi * pos / span + self.phi))
        return self.beat * (pos + wander) - self.offset


def chord_tones(r: Recipe, bar: int) -> list[int]:
    """MIDI pitches of the chord of ``bar`` (root first, stacked thirds), root in 53..64."""
    step = r.progression[bar % len(r.progression)]
    if r.roots_are_semitones:  # blues: dominant seventh (and ninth) on each root
        tones = [r.key + step + i for i in (0, 4, 7, 10, 14)[: max(r.chord_size, 4)]]
    else:
        scale = SCALES[r.mode]
        tones = [r.key + scale[(step + 2 * k) % 7] + 12 * ((step + 2 * k) // 7) for k in range(r.chord_size)]
    shift = 53 + (tones[0] - 53) % 12 - tones[0]
    return [t + shift for t in tones]


def _scale_pitches(r: Recipe, lo: int, hi: int) -> np.ndarray:
    if r.mode == "blues":
        pcs = {0, 3, 5, 6, 7, 10}
    else:
        pcs = set(SCALES[r.mode])
    return np.array([m for m in range(lo, hi + 1) if (m - r.key) % 12 in pcs])


def _drums(r: Recipe, bars: int, rng: np.random.Generator) -> list[Track]:
    tracks = []
    for name, variants in PATTERNS[r.drums].items():
        pattern = variants[int(rng.integers(len(variants)))]
        if not pattern:
            continue
        notes = []
        for bar in range(bars):
            for step, ch in enumerate(pattern):
                if ch == "." or (name in ("hat", "shaker") and rng.uniform() < 0.04):
                    continue
                accent = 1.0 if step % 4 == 0 else 0.85
                vel = (0.35 if ch == "o" else accent) * float(np.clip(rng.normal(1.0, 0.08), 0.6, 1.2))
                notes.append((bar * 4 + step * 0.25, 0.25, vel))
        tracks.append(Track(name, name, notes))
    return tracks


def _comp(r: Recipe, bars: int, rng: np.random.Generator) -> list:
    """(beat, pitches, beats held, velocity) for the chord instrument."""
    out = []
    strum = ("x.x.xxx.", "x.xxx.x.", "x..x..x.", "xxxxxxxx")[int(rng.integers(4))]
    for bar in range(bars):
        tones, b0 = chord_tones(r, bar), bar * 4.0
        power = [tones[0] - 12, tones[0] - 5, tones[0]]  # a power chord: root, fifth, octave, low
        if r.comp == "sustain":
            out.append((b0, tones, 4.0, 0.8))
        elif r.comp == "half":
            out += [(b0, tones, 2.0, 0.9), (b0 + 2, tones, 2.0, 0.75)]
        elif r.comp == "strum":
            for i, ch in enumerate(strum):
                if ch == "x":
                    out.append((b0 + i * 0.5, tones if i % 2 == 0 else tones[::-1], 0.5, 0.9 if i % 2 == 0 else 0.65))
        elif r.comp == "arp":
            seq = tones + [tones[0] + 12] + tones[1:][::-1]
            step = 0.25 if r.tempo < 100 else 0.5
            for i in range(int(4 / step)):
                out.append((b0 + i * step, [seq[i % len(seq)]], step * 1.5, 0.7 + 0.2 * (i % 4 == 0)))
        elif r.comp == "stab":
            for i in range(4):
                out.append((b0 + i + 0.5, tones, 0.25, 0.85))
        elif r.comp == "comp":
            slots = rng.choice(8, size=int(rng.integers(2, 4)), replace=False)
            for s in sorted(slots):
                out.append((b0 + s * 0.5, tones, float(rng.uniform(0.3, 0.9)), float(rng.uniform(0.55, 0.9))))
        elif r.comp == "shuffle":
            for i in range(8):
                out.append((b0 + i * 0.5, tones, 0.35, 0.85 if i % 2 == 0 else 0.6))
        elif r.comp == "rhodes":
            hits = ((0.0, 1.5), (1.5, 2.5)) if rng.uniform() < 0.5 else ((0.0, 2.5), (2.5, 1.5))
            out += [(b0 + h, tones, d, 0.8) for h, d in hits]
        elif r.comp == "power8":
            out += [(b0 + i * 0.5, power, 0.45, 0.9 if i % 2 == 0 else 0.75) for i in range(8)]
        elif r.comp == "chug":
            for i in range(16):
                if rng.uniform() < 0.85:
                    out.append((b0 + i * 0.25, power, 0.18, 1.0 if i % 4 == 0 else 0.8))
        elif r.comp == "powerhold":
            out += [(b0, power, 2.0, 1.0), (b0 + 2, power, 2.0, 0.9)]
    return out


def _bass(r: Recipe, bars: int, kick: Track | None, rng: np.random.Generator) -> list:
    """(beat, pitch, beats held, velocity) for the bass."""
    out = []
    scale = SCALES[r.mode]
    for bar in range(bars):
        root = 33 + (chord_tones(r, bar)[0] - 33) % 12
        nxt = 33 + (chord_tones(r, bar + 1)[0] - 33) % 12
        b0 = bar * 4.0
        line = r.bass_line
        if line == "root8" or line == "chug16":
            step = 0.5 if line == "root8" else 0.25
            out += [(b0 + i * step, root, step * 0.9, 0.9) for i in range(int(4 / step))]
        elif line == "root4":
            out += [(b0 + i, root, 0.9, 0.9) for i in range(4)]
        elif line == "offbeat":
            out += [(b0 + i + 0.5, root + 12 * (i % 2 == 1 and rng.uniform() < 0.3), 0.4, 0.9) for i in range(4)]
        elif line == "pop8":
            for i in range(8):
                if i in (0, 3, 4, 6) or rng.uniform() < 0.3:
                    out.append((b0 + i * 0.5, root + (12 if i == 6 and rng.uniform() < 0.4 else 0), 0.45, 0.9))
        elif line == "walk":
            third = 3 if (chord_tones(r, bar)[1] - chord_tones(r, bar)[0]) % 12 == 3 else 4
            middle = [root + third, root + 7, root + 12, root + 5, root + 9]
            picks = [middle[int(rng.integers(len(middle)))] for _ in range(2)]
            approach = nxt + (1 if rng.uniform() < 0.5 else -1)
            out += [(b0 + i, p, 0.9, 0.85) for i, p in enumerate([root] + picks + [approach])]
        elif line == "boogie":
            for i, iv in enumerate((0, 4, 7, 9, 10, 9, 7, 4)):
                out.append((b0 + i * 0.5, root + iv, 0.45, 0.9 if i % 2 == 0 else 0.7))
        elif line == "sub":
            hits = [n[0] - b0 for n in (kick.notes if kick else []) if b0 <= n[0] < b0 + 4] or [0.0, 2.5]
            for j, h in enumerate(hits):
                end = hits[j + 1] if j + 1 < len(hits) else 4.0
                out.append((b0 + h, root - 12 * (r.bass == "sub" and root > 38), max(end - h, 0.25) * 0.95, 0.95))
        elif line == "hold":
            out.append((b0, root, 4.0, 0.85))
        elif line == "rootfifth":
            fifth = root + 7 if 7 in scale or r.roots_are_semitones else root + 6
            out += [(b0, root, 1.9, 0.9), (b0 + 2, fifth - 12 * (fifth > 45), 1.9, 0.8)]
    return out


def _melody(r: Recipe, bars: int, rng: np.random.Generator) -> list:
    """(beat, pitch, beats held, velocity) for the lead: a random walk on the scale, chord tones
    on strong beats, with rests at phrase ends."""
    lo, hi = LEAD_RANGE.get(r.lead, (62, 86))
    pitches = _scale_pitches(r, lo, hi)
    grid = 0.25 if r.density > 1.5 else 0.5
    p_on = min(0.95, r.density * grid)
    onsets = []
    for i in range(int(bars * 4 / grid)):
        pos = i * grid
        if pos % 8 >= 6 and rng.uniform() < 0.5:  # breathe at the end of a two-bar phrase
            continue
        boost = 1.4 if pos % 1 == 0 else 1.0
        if rng.uniform() < p_on * boost:
            onsets.append(pos)
    out = []
    idx = int(np.argmin(np.abs(pitches - (lo + hi) / 2)))
    for j, pos in enumerate(onsets):
        idx = int(np.clip(idx + rng.choice([-2, -1, 0, 1, 2, -3, 3], p=[.15, .25, .1, .25, .15, .05, .05]),
                          0, len(pitches) - 1))
        pitch = int(pitches[idx])
        if pos % 1 == 0 and rng.uniform() < 0.5:  # lean on a chord tone on the beat
            chord = [t % 12 for t in chord_tones(r, int(pos // 4))]
            near = [k for k in range(len(pitches)) if pitches[k] % 12 in chord]
            if near:
                idx = min(near, key=lambda k: abs(k - idx))
                pitch = int(pitches[idx])
        if r.mode == "blues" and rng.uniform() < 0.1:
            pitch += 1  # bend a minor third up towards the major third
        gap = (onsets[j + 1] if j + 1 < len(onsets) else pos + 1.0) - pos
        out.append((pos, pitch, min(gap, 2.0) * float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.65, 1.0))))
    return out


def compose(r: Recipe, seconds: float, rng: np.random.Generator) -> tuple[list[Track], int]:
    """Every track of the clip with onset times in seconds, and the number of events inside
    ``[0, seconds)``: each track's distinct onsets (a chord or a strum counts once)."""
    clock = Clock(r, rng)
    bars = int(np.ceil((seconds + clock.offset) / clock.beat / 4.0 * (1.0 + 2 * r.rubato))) + 1
    jitter = r.jitter_ms / 1000.0

    def timed(pos: float, drums: bool = False) -> float:
        spread = jitter * (0.5 if drums else 1.0)
        return clock(pos) + (rng.normal(0.0, spread) if spread > 0 else 0.0)

    tracks: list[Track] = []
    kick_beats = None
    for t in _drums(r, bars, rng):
        if t.name == "kick":
            kick_beats = Track("kick", "kick", list(t.notes))  # the sub bass follows the kick
        t.notes = [sy.Note(timed(p, True), 0.0, d * clock.beat, v) for p, d, v in t.notes]
        tracks.append(t)
    chords = Track("harmony", r.harmony, [])
    stagger = 0.012 if r.comp == "strum" else 0.0
    for pos, tones, dur, vel in _comp(r, bars, rng):
        t0 = timed(pos)
        chords.notes += [sy.Note(t0 + k * stagger, float(p), dur * clock.beat, vel) for k, p in enumerate(tones)]
    tracks.append(chords)
    if r.bass != "none":
        tracks.append(Track("bass", r.bass, [sy.Note(timed(p), float(m), d * clock.beat, v)
                                             for p, m, d, v in _bass(r, bars, kick_beats, rng)]))
    if r.lead != "none":
        tracks.append(Track("lead", r.lead, [sy.Note(timed(p), float(m), d * clock.beat, v)
                                             for p, m, d, v in _melody(r, bars, rng)]))
    # a chord's notes (and a strum's) are one event; each track's events count separately
    events = sum(len({round(n.time, 1 if t.name == "harmony" else 2) for n in t.notes if 0.0 <= n.time < seconds})
                 for t in tracks)
    return tracks, events


def _render_track(t: Track, r: Recipe, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    buf = np.zeros(n)
    notes = [x for x in t.notes if int(round(x.time * sr)) < n]
    if t.instrument in sy.DRUMS:
        hit = sy.drum(t.instrument, sr, rng, r.kit)
        hit /= np.max(np.abs(hit)) + 1e-9
        for x in notes:
            sy.place(buf, hit, int(round(x.time * sr)), x.vel)
        return buf
    # each pitch is rendered once, as long as its longest note; every note then only shapes it
    shapes: dict[float, np.ndarray] = {}
    for x in notes:
        d = round(x.dur, 2)
        if d not in shapes:
            shapes[d] = sy.note_envelope(t.instrument, d, sr, r.bright)
    longest: dict[float, int] = {}
    for x in notes:
        longest[x.midi] = max(longest.get(x.midi, 0), len(shapes[round(x.dur, 2)]))
    tones = {}
    for midi in sorted(longest):
        bright = float(np.clip(r.bright + rng.normal(0.0, 0.05), 0.0, 1.0))
        y = sy.tone(t.instrument, midi, longest[midi], sr, rng, bright)
        tones[midi] = y / (np.max(np.abs(y)) + 1e-9)
    for x in notes:
        env = shapes[round(x.dur, 2)]
        sy.place(buf, tones[x.midi][: len(env)] * env, int(round(x.time * sr)), x.vel)
    if t.name in ("harmony", "lead") and t.instrument in ("guitar", "synth") and r.drive > 0:
        buf = sy.lowpass(sy.drive(buf, r.drive), 2500.0 + 5000.0 * r.bright, sr)  # amp, then speaker
    elif t.name == "bass" and r.drive > 3:
        buf = sy.drive(buf, r.drive * 0.2)
    return buf


def render(r: Recipe, seconds: float, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The clip's waveform ``[round(seconds * sr)]`` float32 in [-1, 1] and what was measured:
    ``rms_db`` (dBFS) and ``events_per_s``."""
    n = int(round(seconds * sr))
    tracks, events = compose(r, seconds, rng)
    mix = np.zeros(n)
    drums = np.zeros(n)
    for t in tracks:
        if not t.notes:
            continue
        y = _render_track(t, r, n, sr, rng)
        if t.instrument in sy.DRUMS:
            drums += y * sy.db(DRUM_LEVEL_DB[t.instrument])
        elif np.any(y):
            mix += y / sy.rms(y) * sy.db(r.mix["harmony" if t.name == "harmony" else t.name])
    if np.any(drums):
        mix += drums / sy.rms(drums) * sy.db(r.mix["drums"])
    s = np.arange(n) / max(n - 1, 1)
    shape = {"flat": np.zeros(n), "crescendo": s - 1.0, "decrescendo": -s,
             "swell": -(1.0 - np.sin(np.pi * s))}[r.dyn_shape]
    mix *= sy.db(r.dyn_db * shape)
    mix = sy.compress(mix, sr, r.squash)
    mix = sy.reverb(mix, sr, rng, t60=r.room, wet=r.reverb)
    mix = sy.lowpass(mix, 2800.0 * 3.6 ** r.bright, sr)  # the clip's overall tone
    # a per-clip studio EQ, independent of the genre: shelves of bass and treble up or down
    mix = mix + r.eq_low * sy.lowpass(mix, 200.0, sr) + r.eq_high * sy.highpass(mix, 3500.0, sr)
    mix *= sy.db(r.level_db) / sy.rms(mix)
    mix += sy.pink(n, rng) * sy.db(r.level_db - r.snr_db)
    if r.crackle:
        mix += sy.crackle(n, sr, rng, rate=float(rng.uniform(5, 25))) * sy.db(r.level_db - 12.0)
    mix = 0.98 * np.tanh(mix / 0.98)  # limiter: peaks round off instead of clipping
    level = 20.0 * np.log10(sy.rms(mix))
    return mix.astype(np.float32), {"rms_db": round(float(level), 3), "events_per_s": round(events / seconds, 3)}


SOUNDS = ("genre", "shared")
"""Where a clip's sound comes from: "genre" (its own genre's style) or "shared" (the style of a
genre drawn at random per clip, the same for every genre: see :func:`sound_genre`)."""


def sound_genre(genre: str, seed: int, index: int, sound: str) -> str | None:
    """The genre whose sound clip ``index`` of ``genre`` takes: None for ``sound="genre"``; for
    "shared", one of the ten drawn uniformly from its own seed (so the clip's other choices are
    drawn exactly as with "genre")."""
    if sound not in SOUNDS:
        raise ValueError(f"sound={sound!r} is not one of {', '.join(SOUNDS)}")
    if sound == "genre":
        return None
    pick = np.random.default_rng(np.random.SeedSequence([seed, GENRES.index(genre), index, 2]))
    return GENRES[int(pick.integers(len(GENRES)))]


def render_clip(genre: str, seed: int, index: int, seconds: float, sr: int = sy.SR,
                sound: str = "genre") -> tuple[np.ndarray, dict]:
    """Clip ``index`` of ``genre`` for set seed ``seed``: waveform ``[N]`` float32 and a record
    (recipe, measurements, targets). The same arguments always give the same bits. ``sound``:
    see :data:`SOUNDS`; with "shared" the record names the genre the sound came from
    (``sound_from``)."""
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; known: {', '.join(GENRES)}")
    sound_from = sound_genre(genre, seed, index, sound)
    rng = np.random.default_rng(np.random.SeedSequence([seed, GENRES.index(genre), index, 1]))
    recipe = sample_recipe(genre, rng, sound_from)
    audio, measured = render(recipe, seconds, sr, rng)
    record = {**recipe.record(), **measured}
    if sound_from is not None:
        record["sound_from"] = sound_from
    record.update(targets(recipe, measured["rms_db"], measured["events_per_s"], rng))
    return audio, record

