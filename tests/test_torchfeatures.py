"""The torch backend of the mel and chroma features: librosa's numbers, batched, kept apart in the cache.

Tolerances (float32 on both sides, real-shaped audio: seconds of a chord plus noise at 22050 Hz):
mel within 0.05 dB (measured: about 5e-5), chroma within 1e-3 absolute on values in [0, 1]
(measured: about 5e-7), and the same tuning estimate as ``librosa.estimate_tuning``.
"""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from zoo.data.extract import feature_identity
from zoo.errors import ConfigError
from zoo.registry import Registry
from zoo_features import torchfeatures
from zoo_features.configs import ChromaConfig, MelConfig

SR = 22050
MEL_DB = 0.05
CHROMA = 1e-3
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def registry():
    return Registry()


def chord(seconds: float, seed: int) -> np.ndarray:
    """A major triad detuned by up to 40 cents (so the tunings differ), harmonics, and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    root = 220.0 * 2 ** (rng.integers(0, 12) / 12 + rng.uniform(-0.4, 0.4) / 12)
    y = sum(0.1 / h * np.sin(2 * np.pi * root * r * h * t) for r in (1, 2 ** (4 / 12), 2 ** (7 / 12))
            for h in (1, 2, 3))
    y = y + 0.03 * rng.standard_normal(t.size)
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    # Unequal lengths: every clip in the batch but the longest is zero-padded.
    return [chord(s, i) for i, s in enumerate((4.0, 3.3, 5.0))]


def librosa_mel(y, c=MelConfig()):
    power = librosa.feature.melspectrogram(y=y, sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels,
                                           fmin=c.fmin, fmax=c.fmax, power=2.0)
    return librosa.power_to_db(power, ref=np.max, top_db=c.top_db)


def librosa_chroma(y, c=ChromaConfig()):
    return librosa.feature.chroma_cqt(y=y, sr=c.sr, hop_length=c.hop_length, n_chroma=c.n_chroma,
                                      n_octaves=c.n_octaves, bins_per_octave=c.bins_per_octave, fmin=c.fmin)


def test_batched_mel_is_librosas_mel_within_tolerance(clips):
    got = torchfeatures.mel_db(clips, MelConfig(), CPU)
    for y, a in zip(clips, got):
        expected = librosa_mel(y)
        assert a.dtype == np.float32 and a.shape == expected.shape == (128, 1 + len(y) // 512)
        assert float(np.abs(a - expected).max()) < MEL_DB
        assert a.max() == 0.0 and a.min() >= -80.0


def test_batched_mel_at_other_settings(clips):
    c = MelConfig(n_mels=64, n_fft=1024, hop_length=256, fmin=30.0, fmax=8000.0, top_db=None)
    for y, a in zip(clips, torchfeatures.mel_db(clips, c, CPU)):
        assert float(np.abs(a - librosa_mel(y, c)).max()) < MEL_DB


def test_tunings_are_librosas_estimates(clips):
    y, _ = torchfeatures._stack(clips, CPU)
    power = torchfeatures.power_spectrum(y, 2048, 512)
    found = torchfeatures.tunings(power, [1 + len(w) // 512 for w in clips], SR, 36)
    expected = [librosa.estimate_tuning(y=w, sr=SR, bins_per_octave=36) for w in clips]
    np.testing.assert_allclose(found, expected, atol=1e-9)
    assert len(set(np.round(found, 2))) > 1, "the clips should be tuned differently"


def test_batched_chroma_is_librosas_chroma_within_tolerance(clips):
    got = torchfeatures.chroma(clips, ChromaConfig(), CPU)
    for y, a in zip(clips, got):
        expected = librosa_chroma(y)
        assert a.dtype == np.float32 and a.shape == expected.shape
        assert float(np.abs(a - expected).max()) < CHROMA


def test_chroma_at_other_settings(clips):
    c = ChromaConfig(hop_length=256, bins_per_octave=24, n_octaves=6, fmin=55.0)
    for y, a in zip(clips[:2], torchfeatures.chroma(clips[:2], c, CPU)):
        expected = librosa_chroma(y, c)
        assert a.shape == expected.shape and float(np.abs(a - expected).max()) < CHROMA


def test_features_with_the_torch_backend_match_the_librosa_backend(registry, clips):
    y = clips[0]
    for name in ("mel", "chroma", "beat", "beat-chroma"):
        ours = registry.create("feature", name, {"backend": "torch"}).from_audio(y, SR)
        theirs = registry.create("feature", name, {"backend": "librosa"}).from_audio(y, SR)
        tolerance = MEL_DB if name in ("mel", "beat") else CHROMA
        assert ours.dtype == np.float32 and ours.shape == theirs.shape, name
        assert float(np.abs(ours - theirs).max()) < tolerance, name


def test_from_audio_batch_gives_each_clip_what_from_audio_gives(registry, clips):
    """The optional batch member (zoo.protocols.BatchesAudio), every feature, clips of unequal lengths."""
    from zoo.protocols import BatchesAudio
    for name in ("mel", "chroma", "beat", "beat-chroma"):
        for backend in ("torch", "librosa"):
            f = registry.create("feature", name, {"backend": backend})
            assert isinstance(f, BatchesAudio) and f.batch_size == (1 if CPU == torchfeatures.default_device() else 16)
            got = f.from_audio_batch(clips, SR)
            assert len(got) == len(clips)
            for y, a in zip(clips, got):
                np.testing.assert_array_equal(a, f.from_audio(y, SR), err_msg=f"{name} {backend}")


def test_torch_is_the_default_backend_of_mel_and_chroma_and_the_beat_features(registry):
    for name in ("mel", "chroma", "beat", "beat-chroma"):
        assert registry.create("feature", name).settings()["backend"] == "torch", name


def test_the_cache_keeps_the_backends_apart_and_the_lab_rows_serve_both(registry):
    for name in ("mel", "chroma"):
        plain = registry.create("feature", name, {"backend": "librosa"})
        torchy = registry.create("feature", name)
        assert plain.settings()["backend"] == "librosa" and torchy.settings()["backend"] == "torch"
        assert feature_identity(plain) != feature_identity(torchy)
        fused = np.zeros((140, 9), np.float32)
        np.testing.assert_array_equal(torchy.from_lab(fused), plain.from_lab(fused))


def test_an_unknown_backend_is_refused_with_the_valid_ones(registry):
    with pytest.raises(ConfigError, match="'torh'.*'librosa', 'torch'.*did you mean 'torch'"):
        registry.create("feature", "mel", {"backend": "torh"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
def test_on_the_gpu_the_numbers_are_the_cpus(clips):
    gpu = torch.device("cuda")
    for a, b in zip(torchfeatures.mel_db(clips, MelConfig(), gpu), torchfeatures.mel_db(clips, MelConfig(), CPU)):
        assert float(np.abs(a - b).max()) < MEL_DB
    for a, b in zip(torchfeatures.chroma(clips, ChromaConfig(), gpu), torchfeatures.chroma(clips, ChromaConfig(), CPU)):
        assert float(np.abs(a - b).max()) < CHROMA


def test_the_zoos_extractor_batches_the_features_and_gets_librosas_numbers(registry, clips, tmp_path, monkeypatch):
    """zoo.data.extract gives a batching feature its files in one call; a file that fails is told apart."""
    import soundfile as sf
    from zoo.data.extract import extract_audio
    from zoo.errors import DataError
    from zoo_features import features as zf
    paths = []
    for i, y in enumerate(clips):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], y, SR, subtype="FLOAT")
    paths.insert(1, tmp_path / "missing.wav")
    calls = []
    batch = zf._Feature.from_audio_batch

    def counted(self, ys, sr):
        calls.append((self.name, len(ys)))
        return batch(self, ys, sr)

    monkeypatch.setattr(zf._Feature, "batch_size", 4)  # as on a GPU: the CPU's is 1
    monkeypatch.setattr(zf._Feature, "from_audio_batch", counted)
    feats = {"mel": registry.create("feature", "mel"), "chroma": registry.create("feature", "chroma")}
    out = extract_audio(paths, feats, cache_dir=tmp_path / "cache", workers=1, progress=False, skip_bad=True)
    assert sorted(calls) == [("chroma", 3), ("mel", 3)]
    assert isinstance(out[1], DataError) and "missing.wav" in str(out[1])
    for y, o in zip(clips, [out[0]] + out[2:]):
        assert list(o) == ["mel", "chroma"]
        assert float(np.abs(o["mel"] - librosa_mel(y)).max()) < MEL_DB
        assert float(np.abs(o["chroma"] - librosa_chroma(y)).max()) < CHROMA


def test_one_cpu_thread_nests_and_restores():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torchfeatures.one_cpu_thread(CPU):
            assert torch.get_num_threads() == 1
            with torchfeatures.one_cpu_thread("cpu"):
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
