"""Plugin options: declared by a plugin's ``__init__`` signature, converted and checked before a run.

An option is a keyword parameter with a default. Its annotation gives its type (``int``,
``float``, ``bool``, ``str``, ``X | None``, ``Literal[...]`` choices, :class:`FilePath`) and, through
``typing.Annotated``, its valid range, right next to the default::

    def __init__(self, max_iter: Annotated[int, Range(1)] = 3000,
                 tol: Annotated[float, Range(0, exclusive=True)] = 1e-4) -> None: ...

Command-line strings (``-o tv.max_iter=100``) are converted by the annotation (by the type of the
default where there is none); floats must be finite; values outside their range are refused with a
:class:`~benchkit.errors.UserError` naming the option and its range. Unannotated parameters whose
default is None receive the string unchanged.
"""
from __future__ import annotations

import inspect
import math
import os
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from benchkit.errors import UserError

NONE_WORDS = ("none", "null")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class FilePath(str):
    """The type of an option that names a file or folder (``folder:PATH``, ``file:DIR``,
    ``predictions:DIR``): its value is made absolute and normal (``./``, ``..``, a trailing slash and
    ``~`` resolved; symbolic links kept), so that every way of writing one path is one identity."""

    @classmethod
    def of(cls, value: str) -> FilePath:
        if not value.strip():
            return cls("")
        return cls(os.path.abspath(os.path.expanduser(value)))


@dataclass(frozen=True)
class Range:
    """Valid interval of a numeric option: ``low <= value <= high`` (either end may be None).

    ``exclusive=True`` makes both given ends strict; ``odd=True`` also requires an odd integer.
    """

    low: float | None = None
    high: float | None = None
    exclusive: bool = False
    odd: bool = False

    def describe(self) -> str:
        less = "<" if self.exclusive else "<="
        text = {(True, True): f"{self.low} {less} value {less} {self.high}",
                (True, False): f"value {'>' if self.exclusive else '>='} {self.low}",
                (False, True): f"value {less} {self.high}",
                (False, False): "any value"}[(self.low is not None, self.high is not None)]
        return text + (", odd" if self.odd else "")

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.exclusive else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.exclusive else value > self.high):
            return False
        return not self.odd or (int(value) == value and int(value) % 2 == 1)


@dataclass(frozen=True)
class OptionSpec:
    """One option of a plugin: its name, base type, default, choices, range, and whether None is valid."""

    name: str
    type: type | None  # bool, int, float, str, or None when unknown (value passed as given)
    default: Any
    optional: bool = False
    choices: tuple = ()
    range: Range | None = None
    doc: str = ""

    def type_name(self) -> str:
        base = " | ".join(repr(c) for c in self.choices) if self.choices else (
            self.type.__name__ if self.type else "any")
        return base + (" | None" if self.optional else "")

    def convert(self, value: Any, label: str) -> Any:
        """Turn a command-line string (or a Python value) into a checked option value."""
        if isinstance(value, str) and self.optional and value.strip().lower() in NONE_WORDS:
            return None
        if value is None and (self.optional or self.default is None):
            return None
        try:
            converted = _to_type(value, self.type)
        except (TypeError, ValueError):
            raise UserError(f"option {label}={value!r} is not a valid {self.type_name()}") from None
        if self.choices and converted not in self.choices:
            raise UserError(f"option {label}={value!r} must be one of {', '.join(map(str, self.choices))}")
        if isinstance(converted, float) and not math.isfinite(converted):
            raise UserError(f"option {label}={value!r} must be a finite number")
        if self.range is not None and isinstance(converted, (int, float)) and not isinstance(converted, bool):
            if not self.range.contains(converted):
                raise UserError(f"option {label}={value!r} is out of range: needs {self.range.describe()}")
        return converted


def _to_type(value: Any, kind: type | None) -> Any:
    if kind is None:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(value.strip() if isinstance(value, str) else value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value.strip() if isinstance(value, str) else value)
    if kind is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    if kind is FilePath:
        if not isinstance(value, str):  # a pathlib.Path from the Python API is a str here
            value = os.fspath(value)
        return FilePath.of(value)
    return value


def _strip_range(annotation: Any, bound: Range | None = None) -> tuple[Any, Range | None]:
    """``Annotated[T, Range(...)]`` -> (T, the Range); anything else comes back with ``bound``."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return annotation, bound
    inner, *extras = typing.get_args(annotation)
    return inner, next((e for e in extras if isinstance(e, Range)), bound)


def _unpack(annotation: Any) -> tuple[type | None, bool, tuple, Range | None]:
    """(base type, optional, choices, range) of an annotation; the range may sit inside or around ``| None``."""
    annotation, bound = _strip_range(annotation)
    optional = False
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation, bound = _strip_range(args[0] if len(args) == 1 else None, bound)
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), optional, choices, bound
    return (annotation if annotation in (bool, int, float, str, FilePath) else None), optional, (), bound


def option_docs(cls: type) -> dict[str, str]:
    """One-line descriptions of options from a numpydoc ``Parameters`` section of the class docstring."""
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Parameters") + 2
    except StopIteration:
        return docs
    current = None
    for line in lines[start:]:
        if not line.strip():
            continue
        if not line.startswith(" "):
            if set(line.strip()) == {"-"} or (current and line.strip() and line[0].isupper() and ":" not in line):
                break
            current = line.split(":")[0].strip()
            for name in current.split(","):
                docs.setdefault(name.strip(), "")
        elif current:
            for name in current.split(","):
                name = name.strip()
                docs[name] = (docs[name] + " " + line.strip()).strip()
    return docs


def option_specs(cls: type) -> dict[str, OptionSpec]:
    """Every option of a plugin class, in signature order, from its ``__init__``."""
    init = cls.__init__  # type: ignore[misc]  # the class's own, read for its signature
    try:
        hints = typing.get_type_hints(init, include_extras=True)
    except Exception:  # an annotation that cannot be resolved: fall back to the defaults' types
        hints = {}
    owner = next((c for c in cls.__mro__ if "__init__" in vars(c)), cls)  # documented where __init__ is defined
    docs = option_docs(cls) | {k: v for k, v in option_docs(owner).items() if v}
    specs = {}
    for name, param in inspect.signature(init).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = param.default
        if name in hints:
            kind, optional, choices, bound = _unpack(hints[name])
        else:
            kind, optional, choices, bound = None, False, (), None
        if kind is None and default is not inspect.Parameter.empty and default is not None:
            kind = type(default) if type(default) in (bool, int, float, str) else None
        optional = optional or default is None
        specs[name] = OptionSpec(name, kind, default, optional, choices, bound, docs.get(name, ""))
    return specs
