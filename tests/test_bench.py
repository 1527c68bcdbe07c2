"""The benchmark harness (bench/): it runs, prints a table of ratios and records the machine.

No test here asserts a timing: on a shared machine any timing bound would fail at random. They
check that the harness measures what it says (the same shapes, both LSTM paths, real peaks).
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import common, memory, packing, report, threads  # noqa: E402


def _run_bench(tmp_path: Path, *args: str, timeout: int = 300) -> tuple[subprocess.CompletedProcess, dict, str]:
    out, raw = tmp_path / "bench.md", tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out),
                           "--json", str(raw), "--workdir", str(tmp_path / "work"), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(raw.read_text()), out.read_text()


def _check_rows(doc: dict, sections: set[str]) -> None:
    assert {s["name"] for s in doc["sections"]} == sections
    for s in doc["sections"]:
        assert s["rows"], f"section {s['name']} measured nothing"
        assert all(not n.startswith("FAILED") for n in s["notes"])
        for r in s["rows"]:
            assert r["zoo"] > 0 and r["base"] > 0 and math.isfinite(r["ratio"]), r
            assert len(r["ratios"]) >= 1


def test_quick_run_prints_ratios_and_records_the_machine(tmp_path):
    proc, doc, md = _run_bench(tmp_path, "--only", "training,packing,threads,loading", "--backbones", "lstm",
                               "--precision", "fp32")
    for key in ("cpu:", "cores:", "ram_gib:", "torch:", "torch_threads:", "device: cpu", "load_average:"):
        assert key in proc.stdout
    assert "ratio zoo/base" in proc.stdout
    _check_rows(doc, {"training", "lstm packing", "threads", "loading"})
    packed = next(s for s in doc["sections"] if s["name"] == "lstm packing")
    assert any("training throughput" in r["case"] for r in packed["rows"])
    training = next(s for s in doc["sections"] if s["name"] == "training")
    assert [r["case"].split(" ")[0] for r in training["rows"]] == ["lstm"]
    assert doc["machine"]["torch_threads"] >= 1 and doc["machine"]["cores"] >= 1
    assert md.startswith("# Benchmarks") and report.BEGIN in md and report.END in md
    assert "| torch_threads |" in md and "#### training" in md and "#### loading" in md


@pytest.mark.slow
def test_quick_run_of_every_section(tmp_path):
    # Every section, the threads one on 2 torch threads: minutes on a busy 2-core machine.
    proc, doc, md = _run_bench(tmp_path, timeout=900)
    _check_rows(doc, {"training", "precision", "lstm packing", "threads", "extraction", "loading", "memory"})
    extraction = next(s for s in doc["sections"] if s["name"] == "extraction")
    # The zoo and the plain loop compute the same features (the row's note gives the difference).
    diffs = dict(re.findall(r"(mel|chroma) ([0-9.e+-]+)", extraction["rows"][0]["note"]))
    assert set(diffs) == {"mel", "chroma"} and all(float(v) < 1e-3 for v in diffs.values())
    assert "#### memory" in md


def test_precision_measures_the_peaks_and_every_mode_of_a_backbone():
    import dataclasses

    import torch
    from bench import precision
    case = dataclasses.replace(precision.QUICK, reps=1, steps=1, warmup=0, matmul=64, conv=(1, 4, 8, 8))
    section = precision.run(case, torch.device("cpu"), echo=lambda *_: None)
    cases = [r.case for r in section.rows]
    assert cases[:2] == ["peak: matmul (64 x 64), bf16 vs fp32", "peak: conv (batch 1, 4 ch, 8x8), bf16 vs fp32"]
    assert [c.rsplit(": ", 1)[1] for c in cases[2:]] == ["fp32+channels_last", "bf16", "bf16+channels_last"]
    for r in section.rows:
        assert r.zoo > 0 and r.base > 0 and math.isfinite(r.ratio)
    assert any("GFLOP per step" in n for n in section.notes) and any("Native bf16" in n for n in section.notes)
    assert "% of the bf16 matmul peak" in section.rows[-1].note


def test_the_training_section_measures_each_precision_with_the_backbones_layout():
    import torch
    from bench import training
    from zoo.engine.device import DeviceChoice, native_cpu_bf16
    cases = [c for c in training._tiny(steps=1, warmup=1, probe=False) if c.backbone == "cnn"]
    section = training.run(cases, device=DeviceChoice(torch.device("cpu")), device_name="cpu", threads=0, reps=1,
                           precisions=["fp32", "bf16"], echo=lambda *_: None)
    labels = [r.case for r in section.rows]
    assert labels[0].endswith(", fp32, channels_last")  # the CNN declares channels_last
    if native_cpu_bf16():
        assert labels[1].endswith(", bf16, channels_last") and len(labels) == 2
    else:
        assert len(labels) == 1 and "Not measured on this cpu: bf16" in " ".join(section.notes)


def test_packing_check_compares_the_plugins_two_paths():
    import torch
    from zoo.registry import Registry
    torch.manual_seed(0)
    for settings in ({"hidden": 8, "layers": 2, "dropout": 0.3}, {"hidden": 6, "layers": 1, "bidirectional": False}):
        # the recurrence's two paths: without the conv front end, as bench/packing.py times them
        backbone = Registry().create("backbone", "lstm", {**settings, "conv_layers": 0}, 5)
        x = torch.randn(4, 5, 11)
        lengths = torch.tensor([11, 3, 7, 1])
        out_diff, grad_diff = packing.check(backbone, x, lengths)
        assert out_diff < 1e-5 and grad_diff < 1e-4, (settings, out_diff, grad_diff)
        # check() restores the mode and the path it found.
        assert backbone.training and backbone.packed_on_cpu is False


def test_set_packed_reaches_the_backbone_inside_a_model():
    import torch
    from zoo.registry import Registry
    backbone = Registry().create("backbone", "lstm", {"hidden": 4}, 3)
    model = torch.nn.Sequential(backbone)
    packing.set_packed(model, True)
    assert backbone.packed_on_cpu is True
    packing.set_packed(model, False)
    assert backbone.packed_on_cpu is False


def test_old_thread_choice_counts_idle_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 0.0, 0.0))
    assert threads.loadavg_threads() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert threads.loadavg_threads() == 4


def test_memory_child_sees_at_least_the_arrays_it_reads(tmp_path):
    arrays = [np.random.default_rng(i).standard_normal((140, 200)).astype(np.float32) for i in range(30)]
    files = []
    for i, a in enumerate(arrays):
        files.append(tmp_path / f"{i}.npy")
        np.save(files[-1], a)
    result = memory.child("load-npy", {"files": [str(f) for f in files]})
    size_mib = sum(a.nbytes for a in arrays) / memory.MIB
    assert result["traced_mib"] >= size_mib
    assert result["rss_mib"] >= 0 and result["method"]


def test_interleaved_alternates_which_goes_first():
    calls = []
    zoo, base = common.interleaved(lambda: calls.append("z") or 2.0, lambda: calls.append("b") or 4.0, 3)
    assert calls == ["z", "b", "b", "z", "z", "b"]
    r = common.row("s", "case", zoo, base, "x/s", goal=0.9)
    assert r.ratio == 0.5 and r.meets_goal is False and "BELOW GOAL" in report.goal_text(r)


def test_markdown_block_is_replaced_and_prose_kept(tmp_path):
    info = {"cpu": "test cpu", "date": "today"}
    section = common.Section("loading", rows=[common.row("loading", "c", [2.0], [1.0], "clips/s", goal=1.0)])
    fresh = tmp_path / "new.md"
    report.write_markdown(fresh, report.markdown(info, [section], quick=True))
    assert fresh.read_text().startswith("# Benchmarks") and "| cpu | test cpu |" in fresh.read_text()
    path = tmp_path / "benchmarks.md"
    path.write_text(f"# Mine\n\nIntro.\n\n{report.BEGIN}\nold numbers\n{report.END}\n\n## Findings\n\nKept.\n")
    for cpu in ("test cpu", "other cpu"):
        report.write_markdown(path, report.markdown(dict(info, cpu=cpu), [section], quick=True))
    text = path.read_text()
    assert text.startswith("# Mine\n\nIntro.") and text.rstrip().endswith("Kept.")
    assert text.count(report.BEGIN) == 1 and "other cpu" in text and "test cpu" not in text
    assert "old numbers" not in text and "| c | 2 clips/s |" in text


def test_unknown_section_is_refused_with_the_valid_ones(capsys):
    from bench import run
    with pytest.raises(SystemExit):
        run.parse_args(["--only", "trainig"])
    err = capsys.readouterr().err
    assert "trainig" in err and "training" in err and "extraction" in err


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


_HEAP_CHILD = """
import sys
import numpy as np
from pathlib import Path
from zoo.engine.train import steady_heap

def rss_kib():
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))

applied = steady_heap() if sys.argv[1] == "steady" else False
blocks = [np.ones((1 << 20) // 8) for _ in range(60)]  # 60 step-sized buffers of 1 MiB
held = rss_kib()
del blocks
print(applied, (held - rss_kib()) // 1024)
"""


@pytest.mark.skipif(not _glibc(), reason="the allocator settings are glibc's")
def test_steady_heap_keeps_freed_memory_for_the_next_step():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    returned = {}
    for mode in ("steady", "default"):
        proc = subprocess.run([sys.executable, "-c", _HEAP_CHILD, mode], capture_output=True, text=True, env=env,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        applied, mib = proc.stdout.split()
        assert applied == ("True" if mode == "steady" else "False")
        returned[mode] = int(mib)
    # glibc's defaults hand the freed buffers back to the OS (the next step faults them in again);
    # after steady_heap() they stay mapped for reuse.
    assert returned["default"] >= 40 and returned["steady"] <= 5, returned


def test_results_grid_quick_puts_the_baseline_first_and_keeps_the_page_around_its_block(tmp_path, workspace):
    from bench import results
    page = tmp_path / "results.md"
    page.write_text(f"# Results\n\nWhat was measured.\n\n{results.BEGIN}\nold\n{results.END}\n\n## Later\n\nKept.\n")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "results.py"), "--quick", "--home", str(workspace.home),
                           "--out", str(page), "--json", str(tmp_path / "r.json")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cells = json.loads((tmp_path / "r.json").read_text())["cells"]
    assert [c["spec"] for c in cells] == ["stats+mel+chroma:genre", "lstm+mel:genre", "cnn+mel:genre"]
    assert all(len(c["per_seed"]) == 2 and not c["error"] for c in cells)
    text = page.read_text()
    assert text.startswith("# Results\n\nWhat was measured.") and text.rstrip().endswith("Kept.") and "old" not in text
    assert "Quick mode" in text and "NOT results" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows[0].startswith("| `stats+mel+chroma:genre` |") and "(baseline)" in rows[0]
    assert all(re.search(r"\| 2 \| \d+ s \|$", r) for r in rows)


def test_tune_parses_variants_and_ranks_a_study_by_validation_only():
    from bench import tune

    assert tune.parse_variant("mix=train.mixup=0.2;task.pooling=meanstd") == (
        "mix", {"train": {"mixup": "0.2"}, "task": {"pooling": "meanstd"}})
    assert tune.parse_variant("base=") == ("base", {})
    for bad in ("=train.mixup=0.2", "x=mixup=0.2"):
        with pytest.raises(Exception, match="variant"):
            tune.parse_variant(bad)
    with pytest.raises(Exception, match=r"give the bare name \(e.g. bf16"):  # a row's label typed as the name
        tune.parse_variant("ast [bf16]=train.precision=bf16")

    def row(name, val, test):
        return {"spec": "cnn+mel:genre", "variant": name, "settings": {}, "seconds": 60.0, "best_epoch": [1, 2, 3],
                "val": [{"genre.accuracy": v, "genre.macro_f1": v} for v in val],
                "test": [{"genre.accuracy": t, "genre.macro_f1": t} for t in test]}

    # the better test score must not decide: "b" is better on validation and comes first
    table = tune.markdown([row("a", [0.5, 0.6, 0.7], [0.9, 0.9, 0.9]), row("b", [0.8, 0.8, 0.8], [0.1, 0.2, 0.3])])
    lines = table.splitlines()
    assert "`cnn+mel:genre` b: defaults" in lines[2] and "0.800 ± 0.000" in lines[2] and "0.200 ± 0.248" in lines[2]
    assert "`cnn+mel:genre` a: defaults" in lines[3] and "0.600 ± 0.248" in lines[3]
    assert tune.mean_ci([0.7]) == (0.7, 0.0)


def test_a_variant_with_transfer_settings_starts_from_that_model(monkeypatch):
    """``transfer.from`` / ``transfer.freeze`` in a variant reach ``zoo.train`` as ``init_from`` / ``freeze``
    (a study's row can start from a model trained elsewhere, as ``zoo run --from``), not as a settings scope."""
    import types

    import zoo
    from bench import tune

    seen = {}

    def fake_train(spec, **kw):
        seen.update(kw)
        result = types.SimpleNamespace(val={"genre.accuracy": 0.5}, test={"genre.accuracy": 0.4}, best_epoch=1,
                                       history=[{"epoch": 1.0}])
        return types.SimpleNamespace(results=[result])

    monkeypatch.setattr(zoo, "train", fake_train)
    name, settings = tune.parse_variant("from-emotify=train.precision=bf16;transfer.from=/m/model;transfer.freeze=2")
    row = tune.run_variant("ast+mel:genre", name, settings, seeds=1, size="default", workspace=None, data="/d")
    assert seen["init_from"] == "/m/model" and seen["freeze"] == "2"
    assert seen["settings"] == {"train": {"precision": "bf16"}}
    assert row["settings"]["transfer"] == {"from": "/m/model", "freeze": "2"} and row["test"] == [{"genre.accuracy": 0.4}]
