"""The ``zoo`` command: list components, run compositions, inspect data, compare runs, predict.

Each sub-command lives in its own module exposing ``register(subparsers)``; the parser it adds
sets ``func(args, registry, workspace) -> int``. ``main`` reads the environment once, into a
:class:`~zoo.workspace.Workspace` (home folder, MLflow store, plugin switches), and passes it down.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from ..errors import ZooError
from ..fsio import describe_os_error, shown
from ..processes import StopSignal
from ..registry import AUTOLOAD_ENV, PLUGINS_ENV
from ..tracking.credentials import scrub
from ..workspace import Workspace

COMMAND_MODULES = (
    "zoo.cli.list_cmd",
    "zoo.cli.run_cmd",
    "zoo.cli.data_cmd",
    "zoo.cli.track_cmd",
    "zoo.cli.predict_cmd",
    "zoo.cli.lab_cmd",
    "zoo.cli.sweep_cmd",
)

DESCRIPTION = """\
Music Zoo: compose a backbone, one or more features and one or more tasks in one spec, train it
on the GPU (or the CPU), track every run in MLflow, and apply the result to new audio.

A spec is BACKBONE+FEATURE[+FEATURE...]:TASK[,TASK...], for example
  zoo run lstm+chroma:genre                      an LSTM on chromagrams, genre classes
  zoo run cnn+mel+chroma:genre                   a 2D CNN on mel and chroma stacked
  zoo run ast+mel:valence,energy,danceability    one AST, three emotion regressions
Without --data, runs use the embedded data set the zoo synthesises on first use.
`zoo list` shows every installed component and the distribution that provides it.
"""

EPILOG = f"""\
environment:
  MLFLOW_TRACKING_URI   where runs are recorded (default: a sqlite store under ~/.zoo/mlflow)
  ZOO_HOME              the zoo's folder for data, caches and runs (default: ~/.zoo)
  {AUTOLOAD_ENV}=1  load only the core and the plugins named in {PLUGINS_ENV}
  {PLUGINS_ENV}=a,b           distributions to load when autoloading is off
"""


class Parser(argparse.ArgumentParser):
    """The parser of ``zoo`` and of every sub-command: an option is never abbreviated, so ``--overfit 2``
    is an error, not ``--overfit-batches 2``. Sub-command parsers are made of this class too."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="zoo", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"music-zoo {__import__('zoo').__version__}")
    parser.add_argument("-p", "--plugin", action="append", default=[], metavar="DIST",
                        help="load this plugin distribution even when autoloading is off (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> None:
    """Refuse arguments no option takes, in the sub-command's usage, naming the options they may have
    meant: options are never abbreviated, so ``--overfit 2`` is told ``--overfit-batches``."""
    import difflib
    target = parser
    while True:  # down to the (sub-)sub-command that was given: `zoo data stats --lim 3`
        subs = [a for a in target._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subs[0].dest, None) if subs and subs[0].dest != argparse.SUPPRESS else None
        if not subs or chosen not in subs[0].choices:
            break
        target = subs[0].choices[chosen]
    options = sorted({o for action in target._actions for o in action.option_strings if o.startswith("--")})
    hints = []
    for extra in extras:
        if not extra.startswith("--"):
            continue
        name = extra.split("=", 1)[0]
        meant = [o for o in options if o.startswith(name)] or difflib.get_close_matches(name, options, n=2)
        if meant:
            hints.append(f"{name}: did you mean {' or '.join(meant[:3])}?")
    target.error(f"unrecognized arguments: {' '.join(extras)}"
                 + (f" ({'; '.join(hints)} options are never abbreviated)" if hints else ""))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            _unrecognized(parser, args, extras)
    except SystemExit as exc:  # a usage error (argparse printed it; exit 2), or --help / --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    args.argv = list(sys.argv[1:] if argv is None else argv)  # zoo run --devices starts itself again with them
    workspace = Workspace.from_env(plugins=args.plugin)
    registry = workspace.registry()
    # MLflow draws a bar for every artifact it copies; the zoo prints its own progress.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A server that stops answering mid-run: MLflow's default 7 retries wait minutes in silence; 3 wait
    # about 15 s before the zoo says so (zoo.tracking.mlflow.faults). Set it in the shell to choose otherwise.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    try:
        code = int(args.func(args, registry, workspace) or 0)
        sys.stdout.flush()  # a reader that went away (zoo list | head) is seen here, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except ZooError as exc:
        print(f"zoo: error: {scrub(shown(exc))}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):  # what else happened meanwhile (a run that could not be marked)
            print(f"zoo: note: {scrub(shown(note))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder no zoo code expected to fail (full disk, read-only): one line
        print(f"zoo: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except StopSignal as exc:  # SIGTERM or SIGHUP where a command unwinds as on Ctrl-C
        print(f"zoo: stopped by {exc.args[0]}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


def _reader_gone() -> int:
    """The command's output was piped to a reader that stopped reading (``zoo list | head``): not an error
    of the zoo's, so no message; stdout goes to /dev/null so that the flush at exit cannot fail again.
    Exits 141, as a command killed by SIGPIPE does."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
