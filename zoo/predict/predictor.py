"""Apply a packaged model to new music: decode, compute the model's own features, window, predict.

The features are rebuilt from the packaged ``zoo_model.json`` with exactly the settings the model
was trained with, and normalised with the stored training statistics. A file longer than one
window is cut into windows (computed separately, as the training clips were: a mel spectrogram's
0 dB is its clip's loudest bin), and the windows' predictions are averaged.

Shapes: a waveform ``y[N]`` at ``sample_rate``; a window's features ``x[F, T]`` (``F = n_bins``);
a batch ``x[B, F, T_max]`` zero-padded with ``lengths[B]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DataError, PluginError, ZooError
from ..fsio import shown
from .results import FilePrediction, SkippedWindow, TaskInfo, WindowPrediction, summarise
from .windows import MIN_SECONDS, default_window_seconds, window_spans

BATCH_SIZE = 16


class Predictor:
    """A packaged model ready to predict; build one with :meth:`load`.

    ``window_seconds`` / ``hop_seconds`` default to the model's median training clip and half
    of it. Every ``predict_*`` method returns a :class:`FilePrediction`; an input that cannot be
    predicted (corrupt, silent, too short) gives one with ``error`` set instead of raising, so
    the other inputs of a batch still get their predictions.
    """

    def __init__(self, model: Any, meta: Mapping[str, Any], features: Mapping[str, Any], *, device: Any,
                 window_seconds: float | None = None, hop_seconds: float | None = None):
        from ..engine.batches import Normaliser
        from ..engine.device import DeviceChoice
        self.model = model
        self.meta = meta
        self.features = dict(features)
        if not isinstance(device, DeviceChoice):  # a torch device (or its name): fp32 there
            import torch
            device = DeviceChoice(torch.device(device))
        self.choice = device
        """The device and the precision the model runs in (:func:`zoo.engine.device.for_model`)."""
        self.device = device.device
        self.tasks = TaskInfo.from_meta(meta)
        self.sample_rate = int(meta["sample_rate"])
        self.n_bins = int(meta["n_bins"])
        self.normaliser = Normaliser.from_json(meta["normalisation"])
        default, why = default_window_seconds(meta)
        self.window_seconds = float(window_seconds) if window_seconds is not None else default
        self.window_note = why if window_seconds is None else "--window-seconds"
        self.hop_seconds = float(hop_seconds) if hop_seconds is not None else self.window_seconds / 2
        _check_windows(self.window_seconds, self.hop_seconds)
        self.label = str(meta.get("spec", "model"))
        """Where the model came from, for people (set by :func:`zoo.api.open_model`)."""

    @classmethod
    def load(cls, folder: Path | str, *, registry: Any = None, device: str = "auto",
             window_seconds: float | None = None, hop_seconds: float | None = None) -> "Predictor":
        """Rebuild the packaged model in ``folder`` and its features through ``registry``.

        Raises PluginError naming the distribution to install when a component of the model (a
        feature plugin included) is not installed here; RunError when the folder is damaged.
        """
        from ..engine.device import for_model, pick_device
        from ..engine.package import features_from_meta, load_model
        from ..registry import Registry
        registry = registry or Registry()
        model, meta = load_model(Path(folder), registry)
        try:
            features = features_from_meta(meta, registry)
        except ConfigError as exc:
            raise PluginError(
                f"the model in {folder} records feature settings the installed feature plugins refuse ({exc}); "
                f"install the versions it was trained with: {_providers(meta, 'feature')}"
            ) from exc
        choice = for_model(pick_device(device), meta)
        choice.place(model)
        return cls(model, meta, features, device=choice, window_seconds=window_seconds,
                   hop_seconds=hop_seconds)

    # -- inputs ---------------------------------------------------------------------------------
    def predict_file(self, path: Path | str) -> FilePrediction:
        """Decode ``path`` (wav, flac, ogg, mp3, ...) at the model's rate and predict it."""
        from ..data.audio import load_audio
        source = shown(path)
        try:
            # The 1 s floor is checked below, with a message about predicting rather than training.
            y = load_audio(path, self.sample_rate, min_seconds=0.0)
        except DataError as exc:
            return FilePrediction(source, error=str(exc))
        return self.predict_waveform(y, self.sample_rate, source=source)

    def predict_waveform(self, y: np.ndarray, sr: int, *, source: str = "waveform") -> FilePrediction:
        """Predict a mono waveform ``y[N]`` sampled at ``sr`` Hz (resampled to the model's rate)."""
        source = shown(source)
        try:
            y = self._checked_waveform(y, sr, source)
        except DataError as exc:
            return FilePrediction(source, error=str(exc))
        duration = y.size / self.sample_rate
        spans = window_spans(duration, self.window_seconds, self.hop_seconds)
        arrays, kept, skipped = [], [], []
        for start, end in spans:
            segment = y[int(round(start * self.sample_rate)): int(round(end * self.sample_rate))]
            try:
                arrays.append(self._features(segment))
                kept.append((start, end))
            except DataError as exc:
                skipped.append(SkippedWindow(start, end, str(exc)))
        if not arrays:
            reasons = "; ".join(f"{s.start:.1f}-{s.end:.1f} s: {s.reason}" for s in skipped[:3])
            return FilePrediction(source, duration=duration, skipped=tuple(skipped),
                                  error=f"{source}: no window could be analysed ({reasons})")
        return self._predict(source, arrays, kept, skipped, duration)

    def predict_features(self, x: np.ndarray, *, source: str = "features") -> FilePrediction:
        """Predict from features already computed: ``x[F, T]``, the model's features stacked in its
        order, as the feature plugins return them (not normalised). Predicted whole, not windowed."""
        a = np.asarray(x)
        if a.ndim != 2 or a.shape[0] != self.n_bins or a.shape[1] == 0:
            return FilePrediction(source, error=(
                f"{source}: expected features [{self.n_bins}, T] ({' + '.join(self._slices())}), got shape {a.shape}"))
        if not np.all(np.isfinite(a)):
            return FilePrediction(source, error=f"{source}: the features hold NaN or infinite values")
        return self._predict(source, [self.normaliser.apply(a.astype(np.float32))], [(0.0, 0.0)], [], None)

    # -- steps ----------------------------------------------------------------------------------
    def _checked_waveform(self, y: Any, sr: int, source: str) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
            raise DataError(f"{source}: expected a mono float waveform [N], got shape {y.shape} dtype {y.dtype}")
        if sr is None or int(sr) <= 0:
            raise DataError(f"{source}: the sample rate must be a positive number of Hz, got {sr!r}")
        if not np.all(np.isfinite(y)):
            raise DataError(f"{source}: the audio holds NaN or infinite samples: corrupt data")
        seconds = y.size / int(sr)
        if seconds < MIN_SECONDS:
            raise DataError(f"{source}: {seconds:.2f} s of audio is too short to predict; give at least "
                            f"{MIN_SECONDS:g} s")
        if not np.any(y):
            raise DataError(f"{source}: digital silence (every sample is 0): there is no music to predict")
        y = y.astype(np.float32, copy=False)
        if int(sr) != self.sample_rate:
            import librosa
            y = librosa.resample(y, orig_sr=int(sr), target_sr=self.sample_rate)
        return y

    def _features(self, segment: np.ndarray) -> np.ndarray:
        """One window's features, stacked in the model's order and normalised: ``[F, T]``."""
        from ..data.extract import stack
        parts = {}
        for name, feature in self.features.items():
            try:
                a = feature.from_audio(segment, self.sample_rate)
            except ZooError:
                raise
            except Exception as exc:  # numerical libraries raise many types on odd audio: report, go on
                raise DataError(f"feature '{name}' failed: {type(exc).__name__}: {exc}") from exc
            a = np.asarray(a)
            if a.ndim != 2 or a.shape[0] != feature.n_bins:
                raise PluginError(f"feature '{name}' returned shape {a.shape}, but promises [{feature.n_bins}, T]; "
                                  f"its plugin ({_providers(self.meta, 'feature')}) is broken: upgrade or report it")
            if a.shape[1] == 0 or not np.all(np.isfinite(a)):
                raise DataError(f"feature '{name}' gave no frames or NaN/infinite values (shape {a.shape})")
            parts[name] = a
        x, _ = stack(parts, list(self.features))
        return self.normaliser.apply(x)

    def _predict(self, source: str, arrays: list[np.ndarray], spans: Sequence[tuple[float, float]],
                 skipped: list[SkippedWindow], duration: float | None) -> FilePrediction:
        try:
            outputs = self._forward(arrays)
        except RuntimeError as exc:  # e.g. an input shorter than the backbone's pooling can take
            lengths = sorted({a.shape[1] for a in arrays})
            return FilePrediction(source, duration=duration, error=(
                f"{source}: the model cannot take this input ({len(arrays)} window(s) of {lengths} "
                f"{self.meta.get('rate', 'frames')}): {type(exc).__name__}: {str(exc).splitlines()[0]}"))
        windows = tuple(WindowPrediction(s, e, o) for (s, e), o in zip(spans, outputs))
        return FilePrediction(source, summarise(list(windows), self.tasks), windows, tuple(skipped), duration)

    def _forward(self, arrays: list[np.ndarray]) -> list[dict[str, Any]]:
        """Per array ``[F, T_i]`` the model's output per task: probabilities ``[C]`` (or ``[K]``) or a float."""
        import torch
        out: list[dict[str, Any]] = []
        with torch.inference_mode():
            for i in range(0, len(arrays), BATCH_SIZE):
                chunk = arrays[i:i + BATCH_SIZE]
                x = np.zeros((len(chunk), self.n_bins, max(a.shape[1] for a in chunk)), dtype=np.float32)
                for j, a in enumerate(chunk):
                    x[j, :, :a.shape[1]] = a
                lengths = torch.tensor([a.shape[1] for a in chunk], dtype=torch.long, device=self.device)
                with self.choice.autocast():
                    result = self.model(torch.from_numpy(x).to(self.device), lengths)
                per_task = {t.name: self.model.tasks[t.name].predict(result[t.name]) for t in self.tasks}
                for j in range(len(chunk)):
                    out.append({t.name: (np.asarray(per_task[t.name][j], dtype=np.float64)
                                         if t.vector else float(per_task[t.name][j]))
                                for t in self.tasks})
        return out

    def _slices(self) -> list[str]:
        slices = self.meta.get("feature_slices") or {}
        return [f"{n} rows {slices[n][0]}-{slices[n][1] - 1}" if n in slices else n for n in self.features]

    def describe(self) -> dict[str, Any]:
        """The model and window settings, as printed with predictions."""
        return {"model": self.label, "spec": self.meta.get("spec"), "run_id": self.meta.get("run_id"), "sample_rate": self.sample_rate,
                "window_seconds": self.window_seconds, "hop_seconds": self.hop_seconds, "window_note": self.window_note}


def _check_windows(window: float, hop: float) -> None:
    if not window >= MIN_SECONDS:
        raise ConfigError(f"window of {window:g} s: give --window-seconds of at least {MIN_SECONDS:g} s "
                          f"(the shortest audio the zoo predicts)")
    if not 0 < hop <= window:
        raise ConfigError(f"hop of {hop:g} s: give --hop-seconds above 0 and at most the window ({window:g} s); "
                          f"a longer hop would leave audio between windows unheard")


def _providers(meta: Mapping[str, Any], kind: str) -> str:
    found = sorted({v for k, v in (meta.get("providers") or {}).items() if k.startswith(f"{kind}.")})
    return ", ".join(found) or "unknown versions"
