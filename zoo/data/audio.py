r"""Audio decoding: any file the zoo reads becomes a checked float32 mono waveform, or a DataError.

Decoding goes through libsndfile (the ``soundfile`` package: WAV, FLAC, OGG/Vorbis, MP3, AIFF),
falling back to ``audioread`` for anything libsndfile cannot open. Mixing down to mono and
resampling (soxr, high quality) follow ``librosa.load``, so a waveform loaded here equals the
one the lab's extractor worked on.

Any name a file system allows is opened, bytes that are not UTF-8 included (the path goes to
the decoders as bytes), and named in messages with ``\xNN`` escapes (:func:`zoo.fsio.shown`).
``max_seconds`` keeps the middle of a long file: training on a 20-minute file among 2-second
clips would otherwise pad every batch to 20 minutes.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, DataError
from ..fsio import shown

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
"""File name endings the zoo treats as audio (lower case)."""

# A header's frame count is exact for PCM and lossless formats; for MP3 it may be an estimate
# from the bit rate, so only a gross shortfall there means the file is cut off.
_SHORTFALL = {"MP3": 0.25}
_DEFAULT_SHORTFALL = 0.02


class AudioInfo(NamedTuple):
    """What a file's header says: ``duration`` in seconds, ``sample_rate`` in Hz, ``channels``,
    ``frames`` (samples per channel) and ``format`` (libsndfile's name, e.g. "WAV", "MP3")."""

    duration: float
    sample_rate: int
    channels: int
    frames: int
    format: str


def is_audio(path: Path | str) -> bool:
    """Whether ``path``'s ending is one of :data:`AUDIO_EXTENSIONS`."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def audio_info(path: Path | str) -> AudioInfo:
    """Read the header of ``path`` (cheap: no decoding); DataError if it is missing or unreadable."""
    import soundfile as sf

    path = _existing(path)
    try:
        info = sf.info(os.fsencode(path))
    except (RuntimeError, sf.SoundFileError) as exc:
        raise DataError(f"audio file {shown(path)}: cannot read its header ({_reason(exc)})") from exc
    return AudioInfo(float(info.duration), int(info.samplerate), int(info.channels), int(info.frames), str(info.format))


MIN_SECONDS = 1.0
"""The shortest audio a clip may have (shorter: nothing for a model to learn from)."""


def load_audio(path: Path | str, sr: int | None = 22050, *, min_seconds: float = MIN_SECONDS,
               offset: float = 0.0, duration: float | None = None, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``path`` to a mono float32 waveform ``[N]`` at ``sr`` Hz (None: the file's own rate).

    ``offset`` and ``duration`` (seconds) select a part of the file. ``max_seconds`` (None or 0:
    no limit): of a longer part, only its middle ``max_seconds`` are decoded. Raises DataError
    naming the file when it is missing, empty, unreadable, corrupt or truncated, shorter than
    ``min_seconds``, digital silence, or holds NaN/inf samples.
    """
    if offset < 0 or (duration is not None and duration <= 0):
        raise ConfigError(
            f"load_audio: offset must be >= 0 and duration > 0 (or None), got offset={offset}, duration={duration}"
        )
    if max_seconds is not None and not max_seconds >= 0:
        raise ConfigError(f"load_audio: max_seconds must be >= 0 (0 or None: no limit), got {max_seconds!r}")
    if sr is not None and sr <= 0:
        raise ConfigError(f"load_audio: sr must be a positive number of Hz or None, got {sr!r}")
    path = _existing(path)
    y, native = _decode(path, offset, duration, max_seconds or None)
    _check_samples(path, y, native, min_seconds, offset)
    if sr is not None and native != sr:
        import librosa

        y = librosa.resample(y, orig_sr=native, target_sr=sr)
    return np.ascontiguousarray(y, dtype=np.float32)


def not_a_file(path: Path | str) -> str:
    """What stands at ``path`` instead of a regular file ("" when one is there): "missing", "a dangling
    symbolic link to X", "a FIFO, a named pipe", "a folder", "a socket", "a device"."""
    import stat
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            try:
                return f"a dangling symbolic link to {shown(os.readlink(path))}"
            except OSError:
                return "a dangling symbolic link"
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return ""
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO, a named pipe" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")


def _existing(path: Path | str) -> Path:
    path = Path(path)
    what = not_a_file(path)
    if what == "missing":
        raise DataError(f"audio file {shown(path)} does not exist; check the path (and the data set's manifest)")
    if what:
        raise DataError(f"audio file {shown(path)} is {what}, not a regular file; give the path of one audio file")
    if path.stat().st_size == 0:
        raise DataError(f"audio file {shown(path)} is empty (0 bytes): an interrupted copy or download? replace it")
    return path


def _decode(path: Path, offset: float, duration: float | None,
            max_seconds: float | None) -> tuple[np.ndarray, int]:
    """``(mono float32 [N], native rate)``; libsndfile first, audioread if that cannot open it."""
    import soundfile as sf

    _check_wav_length(path)
    try:
        with sf.SoundFile(os.fsencode(path)) as f:
            native, declared, fmt = int(f.samplerate), int(f.frames), str(f.format)
            start = int(offset * native)
            if start >= declared > 0:
                raise DataError(
                    f"audio file {shown(path)}: offset {offset} s is at or past its end ({declared / native:.2f} s)"
                )
            frames = -1 if duration is None else int(duration * native)
            # Headers of streams of unknown length carry a huge sentinel instead of a frame count.
            known = 0 < declared < 2**62
            left = declared - start if frames < 0 else min(frames, declared - start)
            if max_seconds and known and left > int(max_seconds * native):
                start += (left - int(max_seconds * native)) // 2
                frames = left = int(max_seconds * native)
            if start:
                f.seek(start)
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.SoundFileError) as exc:
        return _decode_fallback(path, offset, duration, max_seconds, exc)
    if duration is None:
        expected = left
        if known and 0 < expected and len(data) < expected * (1 - _SHORTFALL.get(fmt, _DEFAULT_SHORTFALL)):
            raise DataError(
                f"audio file {shown(path)} is truncated or corrupt: its header promises {expected / native:.2f} s "
                f"but only {len(data) / native:.2f} s could be decoded; re-create or re-download it"
            )
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
    return _middle(y, native, max_seconds), native


def _middle(y: np.ndarray, native: int, max_seconds: float | None) -> np.ndarray:
    """The middle ``max_seconds`` of ``y`` (all of it when shorter or no limit)."""
    keep = int(max_seconds * native) if max_seconds else 0
    if not keep or y.size <= keep:
        return y
    start = (y.size - keep) // 2
    return y[start:start + keep]


def _check_wav_length(path: Path) -> None:
    """A WAV whose data chunk is cut short is read without complaint by libsndfile: catch it here."""
    try:
        _scan_wav(path)
    except OSError as exc:
        raise DataError(f"audio file {shown(path)} cannot be read: {exc.strerror or exc}; check its permissions") from exc


def _scan_wav(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = path.stat().st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            cid, length = chunk[:4], int.from_bytes(chunk[4:], "little")
            if cid == b"data":
                available = size - pos - 8
                # 0 and 0xFFFFFFFF are placeholders written by streaming recorders, not promises.
                if length not in (0, 0xFFFFFFFF) and length > available:
                    raise DataError(
                        f"audio file {shown(path)} is truncated: its WAV header announces {length} bytes of "
                        f"samples but only {available} are there (an interrupted copy or download?); "
                        f"re-create or re-download it"
                    )
                return
            pos += 8 + length + (length & 1)


def _decode_fallback(path: Path, offset: float, duration: float | None, max_seconds: float | None,
                     first: Exception) -> tuple[np.ndarray, int]:
    import audioread
    import librosa

    with warnings.catch_warnings():
        # librosa marks its audioread path deprecated, and audioread imports modules Python
        # deprecates: both are used on purpose here, as the fallback.
        warnings.simplefilter("ignore")
        backends = [b.__name__ for b in audioread.available_backends()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with audioread.audio_open(_for_audioread(path)) as reader:
                y, native = librosa.load(reader, sr=None, mono=True, offset=offset, duration=duration)
    except Exception as exc:  # audioread raises many unrelated types; all mean "cannot decode"
        raise DataError(
            f"audio file {shown(path)} cannot be decoded: libsndfile: {_reason(first)}; audioread "
            f"(backends: {', '.join(backends) or 'none'}): {_reason(exc)}. The file is "
            f"corrupt or in a format neither reads ({', '.join(AUDIO_EXTENSIONS)} are supported; "
            f"installing ffmpeg lets audioread read more); convert or replace it"
        ) from exc
    return _middle(np.asarray(y, dtype=np.float32), int(native), max_seconds), int(native)


def _for_audioread(path: Path) -> str | bytes:
    """The path as audioread's backends take it: text, or bytes for a name that is not UTF-8."""
    text = str(path)
    return text if shown(text) == text else os.fsencode(path)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().rstrip(".")
    if not text:
        return type(exc).__name__
    # libsndfile says this for any content it does not recognise, even for a file that exists.
    if "does not exist or is not a regular file" in text:
        return "unrecognised format or corrupt data"
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text


def _check_samples(path: Path, y: np.ndarray, native: int, min_seconds: float, offset: float) -> None:
    where = f" from {offset} s on" if offset else ""
    if y.size == 0:
        raise DataError(f"audio file {shown(path)} holds no samples{where} (0 s of audio); replace it or leave it out")
    if not np.all(np.isfinite(y)):
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise DataError(f"audio file {shown(path)} holds {bad} NaN or infinite samples: corrupt data; re-create it")
    seconds = y.size / native
    if seconds < min_seconds:
        raise DataError(
            f"audio file {shown(path)} is {seconds:.2f} s long{where}; the zoo needs at least {min_seconds:.2f} s "
            f"(leave the file out, e.g. with --skip-bad, or replace it)"
        )
    if not np.any(y):
        raise DataError(
            f"audio file {shown(path)} is digital silence (every sample{where} is 0): there is no music to analyse; "
            f"check the export or recording, then leave the file out or replace it"
        )


def prepare_waveform(y: np.ndarray, sr: int, target_sr: int, min_samples: int = 1, *, who: str = "",
                     silence_ok: bool = True) -> np.ndarray:
    """A feature's input made safe: ``y[N]`` mono float checked, then resampled to ``target_sr``.

    Raises ``DataError`` naming what is wrong (``who``, e.g. ``"feature 'mel'"``, starts the message):
    not 1-D, empty, not float, NaN or infinite samples, a sample rate <= 0, digital silence (unless
    ``silence_ok``: a spectrogram in dB relative to its maximum is undefined on it), or fewer than
    ``min_samples`` samples at ``target_sr``. Another rate is resampled with librosa's default (soxr,
    high quality), the resampler ``librosa.load`` and :func:`load_audio` use, so loading at the
    target rate and resampling later agree. Returns ``float32 [N']``.
    """
    lead = f"{who}: " if who else ""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{lead}expected a mono waveform [N], got an array of shape {y.shape}; mix the channels "
                        f"down first (zoo.data.audio.load_audio returns mono)")
    if y.size == 0:
        raise DataError(f"{lead}the waveform is empty (0 samples)")
    if not np.issubdtype(y.dtype, np.floating):
        raise DataError(f"{lead}expected float samples in [-1, 1], got dtype {y.dtype}; convert with y / 32768 for int16")
    if not np.all(np.isfinite(y)):
        raise DataError(f"{lead}the waveform holds NaN or infinite samples")
    if not silence_ok and not np.any(y):
        raise DataError(f"{lead}the audio is digital silence (every sample is 0): its spectrogram in dB relative "
                        f"to its maximum is undefined")
    if int(sr) <= 0:
        raise DataError(f"{lead}sample rate must be a positive number of Hz, got {sr!r}")
    y = y.astype(np.float32, copy=False)
    if int(sr) != int(target_sr):
        import librosa

        y = librosa.resample(y, orig_sr=int(sr), target_sr=int(target_sr)).astype(np.float32, copy=False)
    if y.size < min_samples:
        raise DataError(f"{lead}the audio is {y.size} samples ({y.size / target_sr:.3f} s) long at {target_sr} Hz; "
                        f"this feature needs at least {min_samples} samples")
    return y
