"""The plugin registry: built-ins registered by module, third parties through entry points.

Built-in plugins (the ``benchkit.builtins`` modules named in :data:`BUILTIN_MODULES`) are registered
by module, as llm and tox do theirs; third-party packages name their modules in the entry-point
group ``benchkit``. Both then register through the same hooks (:mod:`benchkit.plugin.hookspecs`), called
through pluggy (``pm.hook``), so ordering and hook wrappers apply. Two plugins that register the same
kind and name are refused with both distributions named; a hook with an unknown name or wrong
parameters is one line naming the plugin and the hook. ``BENCHKIT_BLOCK_EXTERNAL_PLUGINS=1`` loads
only the built-ins.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from benchkit.errors import UserError
from benchkit.plugin import hookspecs
from benchkit.plugin.interfaces import Dataset, Executor, MaskGenerator, Method, Metric, Preset, Trainer
from benchkit.plugin.options import option_specs
from benchkit.plugin.spec import Spec

ENTRY_POINT_GROUP = "benchkit"
BLOCK_ENV = "BENCHKIT_BLOCK_EXTERNAL_PLUGINS"
BUILTIN_DISTRIBUTION = "benchkit"
BUILTIN_MODULES = tuple(f"benchkit.builtins.{m}" for m in (
    "commands.plugins", "commands.models", "commands.export", "commands.results", "commands.run",  # run heads --help
    "commands.weights", "datasets.basic", "datasets.paper", "masks.basic", "metrics.pixel", "methods.baselines",
    "methods.tv", "methods.lowrank", "methods.nn", "methods.patchmatch", "methods.references", "methods.gan",
    "methods.ce", "presets", "executors", "masks.lama", "masks.mat", "metrics.semantic", "metrics.perceptual",
    "methods.predictions", "training.ddpm", "methods.repaint", "methods.dip", "published.torchscript",
    "published.lama", "published.onnx", "published.diffusion", "metrics.embeddings"))
KINDS = {"method": Method, "mask": MaskGenerator, "metric": Metric, "dataset": Dataset, "trainer": Trainer,
         "preset": Preset, "executor": Executor}
HOOKS = {"method": "register_methods", "mask": "register_masks", "metric": "register_metrics",
         "dataset": "register_datasets", "trainer": "register_trainers", "preset": "register_presets",
         "executor": "register_executors"}


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin: its kind, name, one-line description and source distribution."""

    kind: str
    name: str
    description: str
    distribution: str
    cls: Any  # the plugin class (a Preset instance for presets)


class Registry:
    """All plugins that are installed (and not blocked), indexed by kind and name.

    Parameters
    ----------
    block_external : bool or None
        Load only built-in plugins. None reads ``$BENCHKIT_BLOCK_EXTERNAL_PLUGINS``.
    extra : iterable
        Additional plugin objects (modules or instances with hook implementations), registered as
        distribution ``"<in-process>"``. Used by tests and notebooks.
    """

    def __init__(self, block_external: bool | None = None, extra: Iterable[Any] = ()) -> None:
        if block_external is None:
            block_external = os.environ.get(BLOCK_ENV, "") not in ("", "0", "false")
        self.block_external = block_external
        self._pm = pluggy.PluginManager("benchkit")
        self._pm.add_hookspecs(hookspecs)
        self._modules: dict[str, str] = {}  # module or package name -> distribution
        self._packages: dict[str, list[str]] | None = None  # top-level package -> distributions, when needed
        self.broken: list[str] = []  # third-party plugins that failed to import: left out, named
        for module_name in BUILTIN_MODULES:
            self._register(importlib.import_module(module_name), module_name, BUILTIN_DISTRIBUTION)
        if not block_external:
            seen = set()
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist is not None else "?"
                if (dist, ep.name, ep.value) in seen:
                    continue  # the same distribution found twice on sys.path
                seen.add((dist, ep.name, ep.value))
                try:
                    module = ep.load()
                except Exception as exc:  # a broken third-party plugin is left out, named, and blocks nothing
                    self.broken.append(f"'{ep.name}' from '{dist}' ({type(exc).__name__}: {exc})")
                    warnings.warn(f"plugin '{ep.name}' from '{dist}' failed to import ({type(exc).__name__}: {exc}) "
                                  f"and is left out: fix or uninstall it, or set {BLOCK_ENV}=1 to load none")
                    continue
                self._register(module, f"{dist}:{ep.name}", dist)
        for i, obj in enumerate(extra):
            self._register(obj, f"in-process-{i}", "<in-process>")
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            label = getattr(exc.plugin, "__name__", None) or self._pm.get_name(exc.plugin)
            raise UserError(f"plugin '{label}' from '{self._dist_of_plugin(exc.plugin)}' has a hook "
                            f"that benchkit does not define ({_unknown_hooks(exc.plugin, self._pm)}): the hooks are "
                            f"{', '.join(sorted(HOOKS.values()))} and register_commands; fix its name, or set "
                            f"{BLOCK_ENV}=1") from exc
        self._plugins: dict[str, dict[str, PluginInfo]] = {kind: {} for kind in KINDS}
        for kind, hook in HOOKS.items():  # each plugin credited to the distribution whose hook registered it
            for impl in reversed(getattr(self._pm.hook, hook).get_hookimpls()):  # pluggy's call order
                source = self._dist_of_plugin(impl.plugin)
                impl.function(register=lambda cls, kind=kind, source=source: self._add(kind, cls, source))

    def _register(self, plugin: Any, name: str, dist: str) -> None:
        if self._pm.is_registered(plugin):
            return  # the very same module, named twice: its classes cannot shadow themselves
        try:
            self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            label = getattr(plugin, "__name__", None) or name
            detail = " ".join(str(exc).replace(f"Plugin '{name}' ", "").split())  # one line
            raise UserError(f"plugin '{label}' from '{dist}' has an invalid hook ({detail}): fix it or uninstall it, "
                            f"or set {BLOCK_ENV}=1") from exc
        module = getattr(plugin, "__name__", None) if isinstance(plugin, type(sys)) else type(plugin).__module__
        if module:
            self._modules.setdefault(module, dist)
            self._modules.setdefault(module.partition(".")[0], dist)

    def _dist_of_plugin(self, plugin: Any) -> str:
        module = getattr(plugin, "__name__", None) if isinstance(plugin, type(sys)) else type(plugin).__module__
        return self._dist_of_module(module or "")

    def _dist_of_module(self, module: str) -> str:
        """The distribution of the registered plugin a class comes from (by its module)."""
        parts = module.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in self._modules:
                return self._modules[".".join(parts[:end])]
        if self._packages is None:  # scans every installed distribution: once per registry
            self._packages = dict(importlib.metadata.packages_distributions())
        found = self._packages.get(parts[0])
        return found[0] if found else "<in-process>"

    def register_commands(self, subparsers) -> None:
        """Let every plugin, benchkit's own commands included, add its subcommands (argparse sub-parsers)."""
        self._pm.hook.register_commands(subparsers=subparsers, registry=self)

    def _add(self, kind: str, cls: Any, dist: str) -> None:
        base = KINDS[kind]
        valid = isinstance(cls, base) if kind == "preset" else isinstance(cls, type) and issubclass(cls, base)
        if not valid or not getattr(cls, "name", ""):
            shape = "instance" if kind == "preset" else "subclass"
            raise UserError(f"'{dist}' registered {cls!r} as a {kind}: it must be a {base.__name__} "
                            f"{shape} with a non-empty name")
        if cls.name in self._plugins[kind]:
            if self._plugins[kind][cls.name].cls is cls:
                return  # the same class registered twice
            first, second = sorted([self._plugins[kind][cls.name].distribution, dist],
                                   key=lambda d: (d != BUILTIN_DISTRIBUTION, d))
            raise UserError(f"{kind} '{cls.name}' is registered by both '{first}' and '{second}': "
                            "uninstall one of them, or set {BLOCK_ENV}=1 to use only benchkit's own".replace(
                                "{BLOCK_ENV}", BLOCK_ENV))
        first_line = (cls.description or (cls.__doc__ or "").strip()).splitlines()
        self._plugins[kind][cls.name] = PluginInfo(kind, cls.name, first_line[0] if first_line else "",
                                                   dist, cls)

    def names(self, kind: str) -> list[str]:
        """Sorted names of the plugins of one kind."""
        return sorted(self._plugins[kind])

    def all(self) -> list[PluginInfo]:
        """Every plugin, ordered by kind then name."""
        return [self._plugins[k][n] for k in KINDS for n in self.names(k)]

    def get(self, kind: str, name: str) -> PluginInfo:
        """Look a plugin up; an unknown name raises UserError with the known names and a suggestion."""
        try:
            return self._plugins[kind][name]
        except KeyError:
            known = self.names(kind)
            by_case = [k for k in known if k.lower() == name.lower()]  # `TV` means `tv`
            close = by_case or difflib.get_close_matches(name.lower(), known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            broken = f"; plugins that failed to import: {'; '.join(self.broken)}" if self.broken else ""
            raise UserError(f"unknown {kind} '{name}': {hint}known {kind}s are {', '.join(known)} "
                            f"(see `benchkit list`){broken}") from None

    def create(self, kind: str, spec: str | Spec, options: dict[str, str] | None = None) -> Any:
        """Instantiate a plugin from a :class:`~benchkit.plugin.spec.Spec` or its text (``NAME``,
        ``NAME:ARG``, ``NAME[KEY=VALUE,...]``); ``options`` fill the options the spec leaves unset.

        ``ARG`` fills the class's ``spec_option`` (for example the folder of the ``folder``
        dataset). Option strings are converted and range-checked by :mod:`benchkit.plugin.options`.
        """
        if kind == "preset":
            return self.get(kind, str(spec)).cls
        parsed = spec if isinstance(spec, Spec) else Spec.parse(spec, kind)  # a string: parsed at an edge
        resolved = parsed if parsed.resolved and not options else parsed.resolve(self, options)  # resolved once
        kwargs = resolved.kwargs(self)
        try:
            return self.get(kind, parsed.name).cls(**kwargs)
        except UserError:
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise UserError(f"{kind} '{resolved.canonical}' rejected its options: {exc}") from exc

    def accepts(self, kind: str, spec: str | Spec, option: str) -> bool:
        """Whether the plugin named by ``spec`` takes the keyword option ``option``."""
        name = spec.name if isinstance(spec, Spec) else Spec.parse(spec, kind).name
        return option in option_specs(self.get(kind, name).cls)


def _unknown_hooks(plugin: Any, pm: pluggy.PluginManager) -> str:
    """Names of a plugin's hook implementations that match no hook specification."""
    names = [impl.function.__name__ for caller in pm.get_hookcallers(plugin) or ()
             for impl in caller.get_hookimpls() if impl.plugin is plugin and caller.spec is None]
    return ", ".join(f"'{n}'" for n in names) or "unknown"
