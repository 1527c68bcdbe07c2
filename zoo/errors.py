"""The zoo's exceptions: one root, each message says what was given, what is valid and the fix."""
from __future__ import annotations

import difflib
from typing import Iterable


class ZooError(Exception):
    """Root of every error the zoo raises on purpose (bad input, missing plugin, failed run)."""


class ConfigError(ZooError):
    """A configuration value or key is not valid."""


class SpecError(ZooError):
    """A composition spec such as ``lstm+mel:genre`` cannot be parsed or built."""


class UnknownComponentError(SpecError):
    """A component name is not provided by any installed distribution."""


class PluginError(ZooError):
    """A plugin failed to import, registered the wrong kind, or clashes with another one."""


class DataError(ZooError):
    """A data file or folder is missing, corrupt or inconsistent."""


class RunError(ZooError):
    """A training or evaluation run could not complete."""


class StorageError(ZooError):
    """A file or folder the zoo must write cannot be (no space, read-only, no permission)."""


def suggest(given: str, valid: Iterable[str]) -> str:
    """Return a ``"; did you mean 'x'?"`` suffix for the closest valid name, or ``""``."""
    close = difflib.get_close_matches(given, list(valid), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown(what: str, given: str, valid: Iterable[str], fix: str = "") -> str:
    """Format the standard message for an unknown name: given, valid names, closest match."""
    valid = sorted(valid)
    msg = f"unknown {what} '{given}'; installed: {', '.join(valid) if valid else '(none)'}"
    msg += suggest(given, valid)
    return msg + (f" {fix}" if fix else "")
