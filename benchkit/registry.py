"""Find plugins through the ``benchkit`` entry-point group and build them by name.

Built-in plugins are registered through the same entry-point group as third-party ones. Setting
``BENCHKIT_BLOCK_EXTERNAL_PLUGINS=1`` loads only the plugins of the ``benchkit`` distribution.
"""
from __future__ import annotations

import difflib
import importlib.metadata
import os
from dataclasses import dataclass
from typing import Any, Iterable

import pluggy

from benchkit import hookspecs
from benchkit.errors import UserError
from benchkit.interfaces import Dataset, MaskGenerator, Method, Metric
from benchkit.options import option_specs

ENTRY_POINT_GROUP = "benchkit"
BLOCK_ENV = "BENCHKIT_BLOCK_EXTERNAL_PLUGINS"
BUILTIN_DISTRIBUTION = "benchkit"
KINDS = {"method": Method, "mask": MaskGenerator, "metric": Metric, "dataset": Dataset}
HOOKS = {"method": "register_methods", "mask": "register_masks", "metric": "register_metrics",
         "dataset": "register_datasets"}


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin: its kind, name, one-line description and source distribution."""

    kind: str
    name: str
    description: str
    distribution: str
    cls: type


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
        self._pm = pluggy.PluginManager("benchkit")
        self._pm.add_hookspecs(hookspecs)
        self._distribution: dict[str, str] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "?"
            if block_external and dist != BUILTIN_DISTRIBUTION:
                continue
            if self._pm.has_plugin(ep.name):
                continue  # the same distribution seen twice on sys.path
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not look like our bug
                raise UserError(f"plugin '{ep.name}' from '{dist}' failed to import ({exc}): "
                                f"fix or uninstall it, or set {BLOCK_ENV}=1") from exc
            self._pm.register(module, name=ep.name)
            self._distribution[ep.name] = dist
        for i, obj in enumerate(extra):
            name = f"in-process-{i}"
            self._pm.register(obj, name=name)
            self._distribution[name] = "<in-process>"
        self._plugins: dict[str, dict[str, PluginInfo]] = {kind: {} for kind in KINDS}
        for kind, hook in HOOKS.items():
            for impl in getattr(self._pm.hook, hook).get_hookimpls():
                dist = self._distribution.get(impl.plugin_name, "?")
                impl.function(register=lambda cls, kind=kind, dist=dist: self._add(kind, cls, dist))

    def _add(self, kind: str, cls: type, dist: str) -> None:
        base = KINDS[kind]
        if not (isinstance(cls, type) and issubclass(cls, base)) or not cls.name:
            raise UserError(f"'{dist}' registered {cls!r} as a {kind}: it must be a {base.__name__} "
                            "subclass with a non-empty name")
        if cls.name in self._plugins[kind]:
            other = self._plugins[kind][cls.name].distribution
            raise UserError(f"{kind} '{cls.name}' is registered by both '{other}' and '{dist}': "
                            "uninstall one of them")
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
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"unknown {kind} '{name}': {hint}known {kind}s are {', '.join(known)} "
                            "(see `benchkit list`)") from None

    def create(self, kind: str, spec: str, options: dict[str, str] | None = None) -> Any:
        """Instantiate a plugin from ``NAME`` or ``NAME:ARG`` with string options.

        ``ARG`` fills the class's ``spec_option`` (for example the folder of the ``folder``
        dataset). Option strings are converted and range-checked by :mod:`benchkit.options`.
        """
        name, _, arg = spec.partition(":")
        info = self.get(kind, name)
        options = dict(options or {})
        if arg:
            key = getattr(info.cls, "spec_option", None)
            if key is None:
                raise UserError(f"{kind} '{name}' takes no ':' argument (got '{spec}')")
            options[key] = arg
        specs = option_specs(info.cls)
        kwargs = {}
        for key, value in options.items():
            if key not in specs:
                valid = ", ".join(specs) or "none"
                close = difflib.get_close_matches(key, list(specs), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise UserError(f"{kind} '{name}' has no option '{key}': {hint}its options are {valid} "
                                f"(see `benchkit info {name}`)")
            kwargs[key] = specs[key].convert(value, f"{name}.{key}")
        try:
            return info.cls(**kwargs)
        except UserError:
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise UserError(f"{kind} '{name}' rejected its options {options}: {exc}") from exc

    def accepts(self, kind: str, spec: str, option: str) -> bool:
        """Whether the plugin named by ``spec`` takes the keyword option ``option``."""
        return option in option_specs(self.get(kind, spec.partition(":")[0]).cls)
