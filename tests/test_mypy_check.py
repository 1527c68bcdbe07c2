""".ci/mypy_check.py: an error beyond the baseline fails CI naming it; a fixed one passes and asks for the update.

mypy itself is stubbed here (its cold run takes a minute); .ci/run runs the real one.
"""
from __future__ import annotations

import collections
import importlib.util
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[1] / ".ci" / "mypy_check.py"


@pytest.fixture
def check(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("mypy_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "BASELINE", tmp_path / "baseline.txt")
    module.BASELINE.write_text("zoo/a.py: old error  [arg-type]\nzoo/a.py: old error  [arg-type]\n")
    return module


def found(monkeypatch, check, *lines):
    monkeypatch.setattr(check, "errors", lambda: collections.Counter(lines))


def test_an_error_beyond_the_baseline_fails_naming_it(check, monkeypatch, capsys):
    found(monkeypatch, check, "zoo/a.py: old error  [arg-type]", "zoo/a.py: old error  [arg-type]",
          "zoo/b.py: Item \"None\" has no attribute \"x\"  [union-attr]")
    assert check.main(["mypy_check.py"]) == 1
    out = capsys.readouterr().out
    assert 'mypy: new error: zoo/b.py: Item "None" has no attribute "x"  [union-attr]' in out


def test_a_third_copy_of_a_known_error_is_new(check, monkeypatch, capsys):
    found(monkeypatch, check, *["zoo/a.py: old error  [arg-type]"] * 3)
    assert check.main(["mypy_check.py"]) == 1
    assert "mypy: new error: zoo/a.py: old error  [arg-type]" in capsys.readouterr().out


def test_a_fixed_error_passes_and_asks_for_the_update(check, monkeypatch, capsys):
    found(monkeypatch, check, "zoo/a.py: old error  [arg-type]")
    assert check.main(["mypy_check.py"]) == 0
    assert "1 baseline error(s) fixed; run python .ci/mypy_check.py --update" in capsys.readouterr().out


def test_the_line_pattern_reads_mypy_output_without_line_numbers(check):
    m = check.ERROR.match('zoo/x.py:12: error: Need type annotation for "rows"  [var-annotated]')
    assert f"{m['path']}: {m['rest']}" == 'zoo/x.py: Need type annotation for "rows"  [var-annotated]'
    assert check.ERROR.match("zoo/x.py:12: note: Left operand is of type") is None
