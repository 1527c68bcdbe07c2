"""The synthesiser: sounds have the right pitch, clips are real and deterministic, genres and
targets behave as documented."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from zoo.data.synth import sounds as sy
from zoo.data.synth.score import PATTERNS, Clock, chord_tones, compose, render_clip
from zoo.data.synth.styles import GENRES, GROOVE, MODE_VALENCE, PROGRESSIONS, SCALES, STYLES, sample_recipe, targets

SR = sy.SR


def peak_hz(y: np.ndarray, sr: int = SR) -> float:
    """Frequency of the strongest FFT bin of ``y`` (Hann-windowed, zero-padded)."""
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)), n=8 * len(y)))
    return float(np.argmax(spec) * sr / (8 * len(y)))


def pitch_hz(y: np.ndarray, sr: int = SR) -> float:
    """Fundamental from the autocorrelation peak (a plucked string's loudest partial may be a
    harmonic, but its period is the fundamental's)."""
    y = y - y.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(y, n=2 * len(y))) ** 2)[: len(y)]
    lo, hi = sr // 1000, sr // 50
    lag = lo + int(np.argmax(ac[lo:hi]))
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]  # parabolic refinement of the peak
    return sr / (lag + 0.5 * (a - c) / (a - 2 * b + c))


@pytest.mark.parametrize("kind", ["guitar", "piano", "organ", "flute", "cello"])
def test_pitched_instruments_sound_their_note(kind):
    rng = np.random.default_rng(0)
    y = sy.voice(kind, 57.0, 0.5, SR, rng, bright=0.3)  # A3 = 220 Hz
    assert np.isfinite(y).all() and np.abs(y).max() > 0.1
    assert abs(pitch_hz(y[: int(0.4 * SR)]) - 220.0) < 220.0 * 0.02


def test_karplus_strong_decays_and_is_in_tune():
    y = sy.pluck(330.0, SR, SR, np.random.default_rng(1), bright=0.5, decay=0.5)
    assert abs(pitch_hz(y[:4096]) - 330.0) < 330.0 * 0.02
    early, late = sy.rms(y[: SR // 10]), sy.rms(y[-SR // 10:])
    assert late < early * 0.05  # about 60 dB per 0.5 s: the last tenth is far quieter


def test_sawtooth_is_band_limited_and_in_range():
    y = sy.saw(1000.0, SR, SR)
    assert np.abs(y).max() <= 1.2 and abs(peak_hz(y) - 1000.0) < 10.0


@pytest.mark.parametrize("kind", sy.DRUMS)
def test_every_drum_makes_a_finite_hit(kind):
    y = sy.drum(kind, SR, np.random.default_rng(2), {})
    assert len(y) > 0.05 * SR and np.isfinite(y).all() and sy.rms(y) > 1e-3


def test_unknown_instrument_and_drum_name_the_valid_ones():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="piano"):
        sy.voice("theremin", 60, 0.2, SR, rng)
    with pytest.raises(ValueError, match="kick"):
        sy.drum("cowbell", SR, rng, {})


def test_effects_keep_length_and_compression_narrows_dynamics():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SR) * np.r_[np.full(SR // 2, 0.05), np.full(SR - SR // 2, 1.0)]
    y = sy.compress(x, SR, 1.0)
    assert len(y) == len(x)
    ratio_in = sy.rms(x[SR // 2:]) / sy.rms(x[: SR // 2])
    ratio_out = sy.rms(y[SR // 2 + 2000:]) / sy.rms(y[: SR // 2])
    assert ratio_out < ratio_in / 2
    wet = sy.reverb(x, SR, rng, t60=1.0, wet=0.5)
    assert len(wet) == len(x) and np.isfinite(wet).all()


def test_style_table_is_consistent():
    assert len(GENRES) >= 8 and set(STYLES) == set(GENRES)
    tonal = set(sy.TONAL) | {"none"}
    for name, s in STYLES.items():
        for dist, valid in ((s.drums, PATTERNS), (s.modes, SCALES), (s.progressions, PROGRESSIONS),
                            (s.harmony, sy.TONAL), (s.bass, tonal), (s.lead, tonal)):
            assert set(dist) <= set(valid), (name, set(dist) - set(valid))
            assert all(p > 0 for p in dist.values())
        assert set(s.drums) <= set(GROOVE) and set(s.modes) <= set(MODE_VALENCE)
        assert s.tempo[2] <= s.tempo[0] <= s.tempo[3]


def test_genres_differ_in_tempo_drums_and_distortion():
    rng = np.random.default_rng(4)
    draws = {g: [sample_recipe(g, rng) for _ in range(60)] for g in ("Electronic", "Classical", "Metal", "Folk")}
    tempo = {g: np.median([r.tempo for r in rs]) for g, rs in draws.items()}
    assert 118 <= tempo["Electronic"] <= 132 and tempo["Metal"] > tempo["Electronic"] > tempo["Classical"]
    assert np.mean([r.drums == "four" for r in draws["Electronic"]]) > 0.5
    assert np.mean([r.drums == "none" for r in draws["Classical"]]) > 0.8
    assert min(r.drive for r in draws["Metal"]) > max(r.drive for r in draws["Folk"])
    # overlap: the spreads are wide enough that genres share some values
    assert len({r.key for r in draws["Folk"]}) >= 8 and len({r.harmony for r in draws["Folk"]}) >= 2


def test_chords_follow_the_mode():
    rng = np.random.default_rng(5)
    r = dataclasses.replace(sample_recipe("Pop", rng), key=0, mode="major", progression=(0, 5),
                            roots_are_semitones=False, chord_size=4)
    assert [t % 12 for t in chord_tones(r, 0)] == [0, 4, 7, 11]   # C maj7
    assert [t % 12 for t in chord_tones(r, 1)] == [9, 0, 4, 7]    # A m7
    blues = dataclasses.replace(r, mode="blues", progression=(0, 5), roots_are_semitones=True)
    assert [t % 12 for t in chord_tones(blues, 1)] == [5, 9, 0, 3]  # F7: a dominant seventh


def test_four_on_the_floor_kicks_every_beat_and_swing_delays_offbeats():
    rng = np.random.default_rng(6)
    r = dataclasses.replace(sample_recipe("Electronic", rng), drums="four", jitter_ms=0.0, swing=0.0, rubato=0.0,
                            tempo=120.0)
    tracks, events = compose(r, 4.0, rng)
    kick = sorted(n.time for t in tracks if t.name == "kick" for n in t.notes)
    assert np.allclose(np.diff(kick), 0.5)
    assert events > 0
    swung = dataclasses.replace(r, swing=1 / 3, swing_unit=0.5)
    clock = Clock(swung, np.random.default_rng(0))
    beat = clock(1.0) - clock(0.0)
    assert clock(0.5) - clock(0.0) == pytest.approx(beat * 2 / 3)  # triplet feel


def test_render_clip_is_real_audio_and_deterministic():
    for genre in GENRES:
        y, record = render_clip(genre, 0, 0, 2.0)
        assert y.dtype == np.float32 and y.shape == (2 * SR,)
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
        assert 20 * np.log10(sy.rms(y)) > -40, genre  # not silent
        assert record["genre"] == genre and all(0.0 <= record[t] <= 1.0 for t in ("valence", "energy", "danceability"))
    a, ra = render_clip("Jazz", 3, 1, 2.0)
    b, rb = render_clip("Jazz", 3, 1, 2.0)
    c, _ = render_clip("Jazz", 3, 2, 2.0)
    assert a.tobytes() == b.tobytes() and ra == rb
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="Blues"):
        render_clip("Polka", 0, 0, 2.0)


def _score(recipe, rms_db=-15.0, events=10.0, seed=0):
    return targets(recipe, rms_db, events, np.random.default_rng(seed))


def test_targets_follow_their_formulas():
    base = sample_recipe("Pop", np.random.default_rng(7))
    major = dataclasses.replace(base, mode="major")
    minor = dataclasses.replace(base, mode="minor")
    # same noise draw (same seed), so only the formula's inputs differ
    assert _score(major)["valence"] > _score(minor)["valence"] + 0.2
    assert _score(base, rms_db=-10, events=25)["energy"] > _score(base, rms_db=-28, events=3)["energy"] + 0.3
    groove = dataclasses.replace(base, drums="four", tempo=120.0, jitter_ms=1.0, swing=0.1, rubato=0.0)
    rubato = dataclasses.replace(base, drums="none", tempo=60.0, jitter_ms=25.0, swing=0.0, rubato=0.08)
    assert _score(groove)["danceability"] > 0.8 > 0.2 > _score(rubato)["danceability"]
    # a little per-clip noise: the targets are not exact functions of the inputs
    draws = {_score(base, seed=s)["valence"] for s in range(5)}
    assert len(draws) > 1 and max(draws) - min(draws) < 0.3


def test_targets_vary_within_a_genre():
    rng = np.random.default_rng(8)
    recipes = [sample_recipe("Rock", rng) for _ in range(40)]
    for name in ("valence", "energy", "danceability"):
        values = [_score(r, rms_db=r.level_db, events=4 + 20 * r.intensity, seed=i)[name] for i, r in enumerate(recipes)]
        assert np.std(values) > 0.03, name


def test_shared_sound_keeps_how_a_clip_is_played_and_draws_its_sound_from_another_genre():
    """``sound="shared"``: the same clip, played the same (tempo, pattern, harmony ...), with the
    sound (instruments, kit, mix, tone, room ...) of a genre drawn per clip; deterministic."""
    from zoo.data.synth.score import sound_genre
    from zoo.data.synth.styles import SOUND_FIELDS

    sources = []
    for index in range(40):
        own = sample_recipe("Classical", np.random.default_rng(index))
        other = sound_genre("Classical", 0, index, "shared")
        assert other == sound_genre("Classical", 0, index, "shared") and other in GENRES
        sources.append(other)
        shared = sample_recipe("Classical", np.random.default_rng(index), other)
        for f in dataclasses.fields(own):
            if f.name not in SOUND_FIELDS:
                assert getattr(shared, f.name) == getattr(own, f.name), f.name
        lo, hi = STYLES[other].drive
        assert lo - 1e-9 <= shared.drive <= hi + 1e-9  # the other genre's range, not Classical's (0, 0)
        assert shared.harmony in STYLES[other].harmony
    assert len(set(sources)) >= 6  # drawn across the genres, not one fixed swap
    assert sound_genre("Classical", 0, 0, "genre") is None
    with pytest.raises(ValueError, match="genre, shared"):
        sound_genre("Classical", 0, 0, "mixed")

    metal = next(i for i, g in enumerate(sources) if g == "Metal")
    a, ra = render_clip("Classical", 0, metal, 2.0, sound="shared")
    b, rb = render_clip("Classical", 0, metal, 2.0, sound="shared")
    own_audio, own_record = render_clip("Classical", 0, metal, 2.0)
    assert a.tobytes() == b.tobytes() and ra == rb and ra["sound_from"] == "Metal"
    assert "sound_from" not in own_record and not np.array_equal(a, own_audio)
    assert ra["tempo"] == own_record["tempo"] and ra["progression"] == own_record["progression"]
