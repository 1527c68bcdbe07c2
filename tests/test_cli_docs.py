"""docs/cli.md stays true: every command and every option of `zoo` is documented there."""
from __future__ import annotations

import argparse
from pathlib import Path

from zoo.cli import build_parser

DOC = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()


def _walk(parser: argparse.ArgumentParser, prefix: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{prefix} {name}")
        else:
            for opt in action.option_strings:
                yield prefix, opt


def test_every_command_and_option_is_in_the_cli_reference():
    missing = []
    for command, option in _walk(build_parser(), "zoo"):
        if f"## {command}" not in DOC and command != "zoo" and command.count(" ") == 1:
            missing.append(command)
        if option not in DOC:
            missing.append(f"{command} {option}")
    assert not missing, f"regenerate docs/cli.md (see its header); undocumented: {missing}"
