"""What a user names: one :class:`Spec` type for methods, masks, datasets, metrics and executors.

A spec is written ``NAME``, ``NAME:ARGUMENT`` or either followed by inline options in brackets, in
the shape benchopt uses for solver parameters::

    gan[iterations=300]        tv[tol=1e-3,max_iter=500]        folder:/data/photos[size=64]

The argument fills the plugin's ``spec_option`` (the folder of ``folder:``). ``-o NAME.KEY=VALUE`` on
the command line fills the options that a spec leaves unset, for every spec of that name.

A spec is parsed once (:meth:`Spec.parse`) and resolved once against the registry
(:meth:`Spec.resolve`): its options are converted and range-checked, options equal to their default
are dropped, and the rest are sorted. :attr:`Spec.canonical` is then its identity everywhere (cell
files, tables, grids, reports, reuse): ``gan[iterations=1500]`` and ``gan`` are one spec, and a spec
without options is its bare name, as in results folders written before specs had options.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchkit.errors import UserError


def split_list(text: str) -> list[str]:
    """Split a comma-separated list at the commas outside brackets (``\\,`` is a literal comma).

    ``"gan[iterations=300,lr=0.01],tv"`` -> ``["gan[iterations=300,lr=0.01]", "tv"]``.
    """
    parts, depth, current, escaped = [], 0, [], False
    for char in text:
        if escaped:
            current.append("\\" + char if char != "," else ",")
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            depth += (char == "[") - (char == "]" and depth > 0)
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def format_value(value: Any) -> str:
    """The canonical text of an option value: ``true``/``false``, ``none``, ``repr`` of a float."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Spec:
    """One entry of ``--methods``, ``--masks``, ``--datasets``, ``--metrics`` or ``--executor``.

    Attributes
    ----------
    kind : str
        The plugin kind: ``method``, ``mask``, ``dataset``, ``metric``, ``executor``, ``trainer``.
    name : str
        The registered plugin name.
    argument : str or None
        What follows ``NAME:`` (a folder), or None.
    options : tuple of (str, object) pairs
        Inline options, sorted by key: strings as written before :meth:`resolve`, converted values
        (only those that differ from the default) after it.
    resolved : bool
        Whether the options were converted and checked against the plugin's declaration.
    """

    kind: str
    name: str
    argument: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    resolved: bool = field(default=False, compare=False)

    @classmethod
    def parse(cls, text: str, kind: str) -> Spec:
        """Parse ``NAME[:ARG][[KEY=VALUE,...]]``; malformed brackets raise UserError."""
        text = text.strip()
        body, options = text, {}
        if text.endswith("]"):
            start = _opening_bracket(text)
            if start is None:
                raise UserError(f"{kind} '{text}' has a ']' without its '[': write options as NAME[KEY=VALUE,...]")
            body, inside = text[:start], text[start + 1:-1]
            for pair in split_list(inside):
                key, sep, value = pair.partition("=")
                if not sep or not key.strip():
                    raise UserError(f"{kind} '{text}': option '{pair}' is not KEY=VALUE "
                                    "(for example gan[iterations=300])")
                if key.strip() in options:
                    raise UserError(f"{kind} '{text}' sets option '{key.strip()}' twice: keep one")
                options[key.strip()] = value.strip().replace("\\,", ",")
        elif "[" in text and not text.partition(":")[2]:
            raise UserError(f"{kind} '{text}' has a '[' without its ']': write options as NAME[KEY=VALUE,...]")
        name, colon, argument = body.partition(":")
        if not name.strip():
            raise UserError(f"{kind} '{text}' has no name: write NAME, NAME:ARGUMENT or NAME[KEY=VALUE]")
        return cls(kind, name.strip(), argument if colon else None, tuple(sorted(options.items())))

    @property
    def canonical(self) -> str:
        """The spec's identity: ``NAME[:ARG][KEY=VALUE,...]`` with sorted, non-default options."""
        text = self.name + (f":{self.argument}" if self.argument is not None else "")
        if self.options:
            text += "[" + ",".join(f"{k}={format_value(v).replace(',', chr(92) + ',')}"
                                   for k, v in self.options) + "]"
        return text

    def __str__(self) -> str:
        return self.canonical

    @property
    def label(self) -> str:
        """How the spec's rows read: the value of its ``name`` option when it has one
        (``predictions:DIR[name=lama]`` reads ``lama``), else its canonical string."""
        return str(dict(self.options).get("name", self.canonical))

    def resolve(self, registry, fill: dict[str, Any] | None = None) -> Spec:
        """Convert and check the options against the plugin's declaration; ``fill`` (from ``-o``)
        supplies the options the spec leaves unset. Returns the canonical spec: options equal to
        their default are dropped. Unknown names and options raise UserError (with "did you mean")."""
        from benchkit.plugin.options import option_specs

        info = registry.get(self.kind, self.name)
        declared = option_specs(info.cls)
        given = dict(fill or {}) | dict(self.options)
        argument_key = info.cls.spec_option
        if self.argument is not None and argument_key is None:
            raise UserError(f"{self.kind} '{self.name}' takes no ':' argument (got '{self.canonical}')")
        if argument_key in given and self.argument is not None:
            raise UserError(f"{self.kind} '{self.canonical}' gives {argument_key} twice (after ':' and as an "
                            "option): keep one")
        argument = self.argument  # converted as its option is (a FilePath made absolute), like any option
        if argument is not None and argument_key in declared:
            argument = declared[argument_key].convert(argument, f"{self.name}.{argument_key}")
        kept = []
        for key, value in given.items():
            if key not in declared:
                raise UserError(unknown_option(self.kind, self.name, key, list(declared)))
            converted = declared[key].convert(value, f"{self.name}.{key}")
            if not _same(converted, declared[key].default):
                kept.append((key, converted))
        return Spec(self.kind, self.name, argument, tuple(sorted(kept)), resolved=True)

    def kwargs(self, registry) -> dict[str, Any]:
        """Keyword arguments that create the plugin: the options, and the argument in its ``spec_option``."""
        spec = self if self.resolved else self.resolve(registry)
        kwargs = dict(spec.options)
        if spec.argument is not None:
            kwargs[registry.get(self.kind, self.name).cls.spec_option] = spec.argument
        return kwargs


def unknown_option(kind: str, name: str, key: str, valid: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return (f"{kind} '{name}' has no option '{key}': {hint}its options are {', '.join(valid) or 'none'} "
            f"(see `benchkit info {name}`)")


def _same(value: Any, default: Any) -> bool:
    """Whether a converted option value is its default (so that it can be left out of the identity)."""
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    if isinstance(value, (int, float)) and isinstance(default, (int, float)):
        return value == default
    return type(value) is type(default) and value == default


def _opening_bracket(text: str) -> int | None:
    """Index of the '[' that opens the trailing option block of ``text`` (which ends with ']')."""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        if text[i] == "]" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif text[i] == "[":
            depth -= 1
            if depth == 0:
                return i
    return None


def unique(specs: list[Spec], flag: str, notes: list[str]) -> list[Spec]:
    """Keep the first of resolved specs with the same canonical string, with a note for each repeat."""
    seen: dict[str, Spec] = {}
    for spec in specs:
        if spec.canonical in seen:
            notes.append(f"{flag}: '{spec.canonical}' is named twice (the same options after defaults): "
                         "run once")
            continue
        seen[spec.canonical] = spec
    return list(seen.values())
