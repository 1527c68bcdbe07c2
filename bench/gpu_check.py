"""The GPU-only paths in one script (< 5 minutes on one CUDA machine): precisions, device features, DDP on nccl.

    python -m bench.gpu_check          # on a machine without CUDA: says so and exits 0

What it runs, each step timed and reported as ok or FAILED with the reason (exit 1 if any failed):
1. per backbone (lstm, cnn, ast at tiny sizes) and precision (fp32, bf16 autocast, fp16 autocast with loss
   scaling): train samples/s of the engine's loop (``zoo run``'s ``fit`` on a split resident on the GPU)
   against a bare PyTorch loop in the same process (bench/training.py's harness);
2. mel and chroma computed on the GPU (plugins/zoo-features ``torchfeatures``, device cuda), and the features' batch
   member (``from_audio_batch``) against each clip alone;
3. ``zoo run --devices N`` with DistributedDataParallel over nccl on every visible GPU (N = the GPU count;
   skipped with one GPU), through the real command line;
4. bench/precision.py on the GPU: matmul and conv peaks, each backbone at its default size in fp32, fp32 +
   channels_last, bf16 and bf16 + channels_last;
5. ``torch.compile``: the engine has no such setting yet: listed as not offered.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Callable

CHECKS: list[tuple[str, str, float, str]] = []
"""(name, "ok" / "FAILED" / "skipped", seconds, detail)."""


def _check(name: str, fn: Callable[[], str]) -> None:
    t0 = time.perf_counter()
    try:
        detail, status = fn(), "ok"
    except Exception as exc:  # noqa: BLE001 - one failed path must not hide the others
        detail, status = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}", "FAILED"
    CHECKS.append((name, status, time.perf_counter() - t0, detail))
    print(f"[{status}] {name} ({time.perf_counter() - t0:.1f} s): {detail}", flush=True)


def _training(precision: str) -> str:
    import torch

    from bench import training
    from zoo.engine.device import DeviceChoice
    cases = training._tiny(steps=20, warmup=3, probe=False)
    section = training.run(cases, device=DeviceChoice(torch.device("cuda", 0)), device_name="cuda", threads=0,
                           reps=1, precisions=[precision], echo=lambda *_: None)
    lines = [f"{r.case}: zoo {r.zoo:.1f} samples/s, bare {r.base:.1f} samples/s, ratio {r.ratio:.2f}"
             for r in section.rows]
    return "\n    " + "\n    ".join(lines)


def _precision() -> str:
    import torch

    from bench import precision
    from dataclasses import replace
    case = replace(precision.FULL, frames=128, steps=5, reps=2)
    section = precision.run(case, torch.device("cuda", 0), echo=lambda *_: None)
    lines = [f"{r.case}: {r.zoo:.1f} vs {r.base:.1f} {r.unit}, ratio {r.ratio:.2f}; {r.note}" for r in section.rows]
    return "\n    " + "\n    ".join(lines)


def _features() -> str:
    import numpy as np
    import torch
    from zoo_features import torchfeatures
    from zoo.registry import Registry
    from zoo_features.configs import ChromaConfig, MelConfig
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(22050 * 30).astype(np.float32) * 0.1 for _ in range(64)]
    c = MelConfig()
    torchfeatures.mel_power(waves[:2], c, device=torch.device("cuda"))  # warm-up: kernels, filter basis
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = torchfeatures.mel_power(waves, c, device=torch.device("cuda"))
    torch.cuda.synchronize()
    mel = len(waves) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    torchfeatures.chroma(waves[:16], ChromaConfig(), device=torch.device("cuda"))
    chroma = f", chroma {16 / (time.perf_counter() - t0):.1f} clips/s"
    # The features' batch member (zoo.protocols.BatchesAudio), one batch on the GPU, against each clip alone.
    worst = {}
    for name in ("mel", "chroma"):
        f = Registry().create("feature", name)
        batch = f.from_audio_batch(waves[:4], 22050)
        worst[name] = max(float(np.abs(a - f.from_audio(w, 22050)).max()) for a, w in zip(batch, waves[:4]))
        if worst[name] > (0.05 if name == "mel" else 1e-3):
            raise RuntimeError(f"{name}: from_audio_batch differs from from_audio by {worst[name]:.3g}")
    return (f"mel {mel:.1f} clips/s of 30 s on the GPU ({out[0].shape[0]} bins){chroma}; batch size "
            f"{f.batch_size}, a batch against each clip alone: mel {worst['mel']:.2g} dB, chroma {worst['chroma']:.2g}")


def _ddp(n: int) -> str:
    with tempfile.TemporaryDirectory(prefix="zoo-gpu-check-") as home:
        env = dict(os.environ, ZOO_HOME=home)
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [sys.executable, "-m", "zoo", "run", "lstm+mel:genre", "--devices", str(n), "--device", "cuda",
               "--limit", "64", "--epochs", "2", "--set", "train.batch_size=16", "--no-progress", "--workers", "4"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {proc.stderr[-1500:]}")
        return f"{n} processes, nccl: {' '.join(cmd[2:])}"


def main() -> int:
    import torch
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}): "
              f"nothing to check; run it on a machine with one")
        return 0
    n = torch.cuda.device_count()
    print(f"gpu_check: {n} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    for amp in ("fp32", "bf16", "fp16"):
        _check(f"training, resident data on the GPU, {amp}", lambda amp=amp: _training(amp))
    _check("features on the GPU (torchfeatures, device cuda)", _features)
    if n > 1:
        _check(f"zoo run --devices {n} (DDP, nccl)", lambda: _ddp(n))
    else:
        CHECKS.append(("DDP over nccl", "skipped", 0.0, "one GPU visible"))
        print("[skipped] DDP over nccl: one GPU visible (zoo run --devices 2 needs two)")
    _check("precision and channels_last per backbone, default sizes (bench/precision.py)", _precision)
    CHECKS.append(("torch.compile", "skipped", 0.0, "the engine offers no such setting yet"))
    print("[skipped] torch.compile: the engine offers no such setting yet")
    failed = [c for c in CHECKS if c[1] == "FAILED"]
    print(f"gpu_check: {len(CHECKS) - len(failed)} of {len(CHECKS)} checks ok or skipped, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
