"""The component registry: discover plugins from entry points without importing, load on demand.

Two phases, as in flake8's plugin finder:

* :meth:`Registry.discover` reads installed distributions' metadata only and returns immutable
  :class:`EntryInfo` values (kind, name, providing distribution and version).
* :meth:`Registry.load` imports one entry point when it is first needed, checks that it is a
  :class:`~zoo.protocols.ComponentSpec` of the right kind and API version, and wraps any failure in
  a :class:`~zoo.errors.PluginError` naming ``distribution[entry]``.

A broken plugin only breaks the components it provides. Built-in components (the tasks and data
sets of the ``music-zoo`` distribution, the backbones and features of ``plugins/``) register
through exactly the same entry points as a third party's.

A component's cheap variants (``ComponentSpec.variants``: a name and a config subclass with other
defaults) need no entry point: a name no entry point has is looked up among the variants of the
installed components of its kind (:meth:`Registry.variants`, which imports their specs).
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any, Mapping

from .config import make_config
from .errors import PluginError, UnknownComponentError, ZooError, unknown
from .protocols import API_VERSION, KINDS, TASK_KINDS, ComponentSpec, Dataset, Feature, MultiLabel, Task

GROUP_PREFIX = "music_zoo."
GROUPS = {kind: f"{GROUP_PREFIX}{kind}s" for kind in KINDS}
"""Entry-point group per kind: ``music_zoo.features``, ``music_zoo.backbones``, ..."""

AUTOLOAD_ENV = "ZOO_DISABLE_PLUGIN_AUTOLOAD"
PLUGINS_ENV = "ZOO_PLUGINS"
CORE_DISTRIBUTION = "music-zoo"


@dataclass(frozen=True)
class EntryInfo:
    """One discovered entry point, known from metadata alone (nothing imported)."""

    kind: str
    name: str
    distribution: str
    version: str
    value: str

    @property
    def provider(self) -> str:
        """``distribution==version``, as recorded with every run."""
        return f"{self.distribution}=={self.version}"

    @property
    def label(self) -> str:
        """``distribution[entry]``, as named in errors."""
        return f"{self.distribution}[{self.name}]"


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed_entries() -> list[EntryInfo]:
    """Every zoo entry point of every installed distribution (first copy of a distribution wins)."""
    seen: set[str] = set()
    out: list[EntryInfo] = []
    groups = {g: k for k, g in GROUPS.items()}
    for dist in md.distributions():
        dname = dist.metadata["Name"] if dist.metadata else None
        if not dname or _norm(dname) in seen:
            continue
        seen.add(_norm(dname))
        for ep in dist.entry_points:
            if ep.group in groups:
                out.append(EntryInfo(groups[ep.group], ep.name, dname, dist.version, ep.value))
    return sorted(out, key=lambda e: (KINDS.index(e.kind), e.name, e.distribution))


@dataclass
class Registry:
    """The components available to this process.

    ``autoload=False`` disables discovery of third-party plugins: only the core distribution and
    the distributions named in ``plugins`` are used (like pytest's ``-p NAME``). ``entries`` lets
    tests inject discovered entries; normally they are read from installed metadata.
    """

    autoload: bool = True
    plugins: tuple[str, ...] = ()
    entries: tuple[EntryInfo, ...] | None = None
    _loaded: dict[tuple[str, str], ComponentSpec] = field(default_factory=dict, repr=False)
    _failed: dict[tuple[str, str], PluginError] = field(default_factory=dict, repr=False)
    _variants: dict[str, dict[str, tuple[EntryInfo, ComponentSpec]]] = field(default_factory=dict, repr=False)
    _variant_problems: dict[tuple[str, str], PluginError] = field(default_factory=dict, repr=False)

    # -- discovery (metadata only) -------------------------------------------------------
    def discover(self) -> tuple[EntryInfo, ...]:
        """All entries this registry may use, without importing any plugin."""
        if self.entries is None:
            self.entries = tuple(installed_entries())
        if self.autoload:
            return self.entries
        allowed = {_norm(CORE_DISTRIBUTION)} | {_norm(p) for p in self.plugins}
        return tuple(e for e in self.entries if _norm(e.distribution) in allowed)

    def names(self, kind: str) -> list[str]:
        """Sorted unique component names of ``kind``."""
        self._check_kind(kind)
        return sorted({e.name for e in self.discover() if e.kind == kind})

    def conflicts(self) -> dict[tuple[str, str], list[EntryInfo]]:
        """Names provided by more than one distribution: ``{(kind, name): [entries]}``."""
        by: dict[tuple[str, str], list[EntryInfo]] = {}
        for e in self.discover():
            by.setdefault((e.kind, e.name), []).append(e)
        return {k: v for k, v in by.items() if len(v) > 1}

    def info(self, kind: str, name: str) -> EntryInfo:
        """The entry for ``kind``/``name``; raise with installed names and a suggestion if absent."""
        self._check_kind(kind)
        found = [e for e in self.discover() if e.kind == kind and e.name == name]
        if not found and name in self.variants(kind):
            return self.variants(kind)[name][0]
        if not found and (kind, name) in self._variant_problems:
            raise self._variant_problems[(kind, name)]
        if not found:
            hint = ""
            if not self.autoload:
                hint = f"(plugin autoloading is off: name its distribution in {PLUGINS_ENV} or unset {AUTOLOAD_ENV})"
            else:
                hint = "(install a plugin that provides it, then check `zoo list`)"
            raise UnknownComponentError(unknown(kind, name, self.names(kind) + sorted(self.variants(kind)), hint))
        if len(found) > 1:
            who = ", ".join(e.label for e in found)
            raise PluginError(
                f"{kind} '{name}' is provided by more than one distribution: {who}; "
                f"uninstall one of them (pip uninstall ...) so the name is unambiguous"
            )
        return found[0]

    # -- loading (imports one plugin) ----------------------------------------------------
    def load(self, kind: str, name: str) -> ComponentSpec:
        """Import and validate the spec registered as ``kind``/``name``."""
        key = (kind, name)
        if key in self._loaded:
            return self._loaded[key]
        if key in self._failed:
            raise self._failed[key]
        entry = self.info(kind, name)
        if name in self._variants.get(kind, {}):  # a variant: its spec was made when the variants were listed
            return self._variants[kind][name][1]
        try:
            spec = self._import(entry)
        except PluginError as exc:
            self._failed[key] = exc
            raise
        self._loaded[key] = spec
        return spec

    def _import(self, entry: EntryInfo) -> ComponentSpec:
        ep = md.EntryPoint(name=entry.name, value=entry.value, group=GROUPS[entry.kind])
        try:
            obj = ep.load()
        except Exception as exc:  # any import-time failure of a plugin is the plugin's fault
            raise PluginError(
                f"plugin {entry.label} ({entry.provider}) failed to import {entry.value!r}: "
                f"{type(exc).__name__}: {exc}; reinstall or upgrade it, or uninstall it"
            ) from exc
        spec = obj() if callable(obj) and not isinstance(obj, ComponentSpec) else obj
        if not isinstance(spec, ComponentSpec):
            raise PluginError(
                f"plugin {entry.label}: entry point {entry.value!r} gave {type(spec).__name__}, "
                f"not a zoo.protocols.ComponentSpec"
            )
        if spec.kind != entry.kind:
            raise PluginError(
                f"plugin {entry.label}: registered in group '{GROUPS[entry.kind]}' (a {entry.kind}) "
                f"but its spec says kind '{spec.kind}'; move the entry point to '{GROUPS[spec.kind]}'"
            )
        if spec.name != entry.name:
            raise PluginError(
                f"plugin {entry.label}: entry point is named '{entry.name}' but its spec is named "
                f"'{spec.name}'; make them the same"
            )
        if spec.api_version != API_VERSION:
            raise PluginError(
                f"plugin {entry.label} targets zoo API {spec.api_version}, this zoo speaks "
                f"{API_VERSION}; upgrade the plugin or the zoo"
            )
        return spec

    # -- variants (imports the specs of one kind) ---------------------------------------------
    def variants(self, kind: str) -> dict[str, tuple[EntryInfo, ComponentSpec]]:
        """``{variant name: (the entry of the component it varies, its spec)}`` of every installed
        component of ``kind`` (loaded to read them; one that fails to load has none).

        A variant's spec is its component's, with the variant's name, config and summary. A variant
        whose name another component or variant has, or whose config is not a dataclass subclass of
        its component's, is left out: loading it by name raises the PluginError saying why, and
        :meth:`check_all` (``zoo list``) reports it.
        """
        self._check_kind(kind)
        if kind in self._variants:
            return self._variants[kind]
        entries = [e for e in self.discover() if e.kind == kind]
        taken = {e.name for e in entries}
        found: dict[str, tuple[EntryInfo, ComponentSpec]] = {}
        for entry in entries:
            try:
                spec = self.load(kind, entry.name)
            except PluginError:
                continue
            for name, config in dict(spec.variants or {}).items():
                where = f"{kind} variant '{name}' of {kind} '{entry.name}' (plugin {entry.label}, {entry.provider})"
                problem = None
                if not (isinstance(config, type) and dataclasses.is_dataclass(config)
                        and issubclass(config, spec.config)):
                    problem = (f"{where}: its config {config!r} is not a dataclass subclass of "
                               f"{spec.config.__name__}; declare it as @dataclass(frozen=True) class "
                               f"...({spec.config.__name__}) with the fields whose defaults differ")
                elif name in taken:
                    problem = f"{where}: the name '{name}' is taken by the {kind} '{name}' itself; rename the variant"
                elif name in found or (kind, name) in self._variant_problems:
                    other = found.pop(name)[0] if name in found else None
                    problem = (f"{where}: the name '{name}' is also a variant of "
                               f"{other.label if other else 'another component'}; rename one of them")
                if problem:
                    self._variant_problems.setdefault((kind, name), PluginError(problem))
                    if name not in taken:  # the component of that name stays usable
                        self._failed.setdefault((kind, name), PluginError(problem))
                    continue
                summary = (config.__doc__ or "").strip().splitlines()[0] if config.__doc__ else ""
                found[name] = (dataclasses.replace(entry, name=name),
                               dataclasses.replace(spec, name=name, config=config, variants={},
                                                   summary=summary or f"a variant of {kind} '{entry.name}'"))
        self._variants[kind] = found
        return found

    def variant_problems(self, kind: str) -> dict[str, PluginError]:
        """``{variant name: why it is left out}`` for the variants of ``kind`` (:meth:`variants`)."""
        self.variants(kind)
        return {name: problem for (k, name), problem in self._variant_problems.items() if k == kind}

    def create(self, kind: str, name: str, settings: Mapping[str, Any] | None = None, *args: Any) -> Any:
        """Load ``kind``/``name``, build its typed config from ``settings`` and build it.

        What ``build()`` returns is checked against the kind's protocol (:func:`check_built`), and
        an exception it raises becomes a PluginError naming ``distribution[entry]`` (a ZooError it
        raises on purpose, such as a data set's "folder does not exist", passes unchanged).
        """
        spec = self.load(kind, name)
        config = make_config(spec.config, settings, where=f"{kind} '{name}'")
        entry = self.info(kind, name)
        try:
            obj = spec.build(config, *args)
        except (ZooError, OSError):
            raise  # on purpose (bad settings, missing data) or about files: said by whoever catches it
        except Exception as exc:  # the plugin's own failure: say whose, keep the cause
            raise PluginError(
                f"plugin {entry.label} ({entry.provider}): building {kind} '{name}' failed: "
                f"{type(exc).__name__}: {_first_line(exc)}; check its settings, or upgrade or report the plugin"
            ) from exc
        try:
            problem = check_built(kind, obj)
        except Exception as exc:  # a property of the built object that raises is the plugin's fault too
            problem = f"an object whose attributes cannot be read ({type(exc).__name__}: {_first_line(exc)})"
        if problem:
            raise PluginError(
                f"plugin {entry.label} ({entry.provider}): build() of {kind} '{name}' returned {problem}; "
                f"the plugin is broken: upgrade or report it (zoo.protocols describes what a {kind} must be)"
            )
        if kind == "backbone":  # the model names it if its forward breaks its own out_dim (ZooModel)
            with contextlib.suppress(Exception):
                obj.zoo_origin = f"backbone '{name}' of plugin {entry.label} ({entry.provider})"
        return obj

    def provider(self, kind: str, name: str) -> str:
        """``distribution==version`` of the component, for run records."""
        return self.info(kind, name).provider

    def check_all(self) -> dict[tuple[str, str], PluginError]:
        """Try to load every entry; return the failures (the rest stay usable)."""
        failures = {}
        conflicts = self.conflicts()
        for e in self.discover():
            if (e.kind, e.name) in conflicts:
                continue
            try:
                self.load(e.kind, e.name)
            except PluginError as exc:
                failures[(e.kind, e.name)] = exc
        for kind in KINDS:
            for name, problem in self.variant_problems(kind).items():
                failures.setdefault((kind, f"{name} (variant)"), problem)
        return failures

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise UnknownComponentError(unknown("component kind", kind, KINDS))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _missing(obj: Any, protocol: type) -> list[str]:
    """Members of ``protocol`` that ``obj`` lacks (attributes and methods alike)."""
    names = [n for n in getattr(protocol, "__annotations__", {})]
    names += [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]
    return [n for n in dict.fromkeys(names) if not hasattr(obj, n)]


def check_built(kind: str, obj: Any) -> str:
    """What is wrong with ``obj`` as a built ``kind`` (see :mod:`zoo.protocols`), or ``""``.

    - feature: :class:`~zoo.protocols.Feature`, with a str name, whole ``n_bins``, ``sample_rate``
      and ``hop_length`` above 0 and ``rate`` "frames" or "beats";
    - backbone: a ``torch.nn.Module`` with an int ``out_dim`` above 0;
    - task: :class:`~zoo.protocols.Task` whose ``kind`` is "classification", "regression" or
      "multilabel" (then also a :class:`~zoo.protocols.MultiLabel`);
    - dataset: :class:`~zoo.protocols.Dataset`.
    """
    what = f"a {type(obj).__module__}.{type(obj).__qualname__}" if obj is not None else "None"
    if kind == "backbone":
        import torch
        if not isinstance(obj, torch.nn.Module):
            return f"{what}, not a torch.nn.Module"
        out_dim = getattr(obj, "out_dim", None)
        if not _whole(out_dim):
            return f"{what} whose out_dim is {out_dim!r}, not a whole number above 0 (its embedding size D)"
        return ""
    protocol = {"feature": Feature, "task": Task, "dataset": Dataset}[kind]
    missing = _missing(obj, protocol)
    if missing:
        return f"{what} without {', '.join(missing)}, so it is not a zoo.protocols.{protocol.__name__}"
    if kind == "feature":
        bad = [f"{n}={getattr(obj, n)!r}" for n in ("n_bins", "sample_rate", "hop_length") if not _whole(getattr(obj, n))]
        if bad:
            return f"a feature with {', '.join(bad)}: each must be a whole number above 0"
        if obj.rate not in ("frames", "beats"):
            return f"a feature with rate {obj.rate!r}: it must be 'frames' or 'beats'"
        if not isinstance(obj.name, str) or not obj.name:
            return f"a feature named {obj.name!r}: its name must be a non-empty str"
    if kind == "task" and obj.kind not in TASK_KINDS:
        return f"a task of kind {obj.kind!r}: it must be 'classification', 'regression' or 'multilabel'"
    if kind == "task" and obj.kind == "multilabel":
        missing = _missing(obj, MultiLabel)
        if missing:
            return f"{what}, a multilabel task without {', '.join(missing)}, so it is not a zoo.protocols.MultiLabel"
    return ""
