"""``benchkit list`` (every plugin) and ``benchkit info NAME`` (a plugin's options)."""
from __future__ import annotations

import argparse
import inspect

from benchkit.plugin.hookspecs import hookimpl


@hookimpl(tryfirst=True)  # benchkit's own commands head `benchkit --help`
def register_commands(subparsers):
    listing = subparsers.add_parser("list", help="show every plugin (and preset): kind, name, description, "
                                    "distribution")
    listing.set_defaults(handler=cmd_list)
    info = subparsers.add_parser("info", help="a plugin's description and options: types, defaults, ranges")
    info.add_argument("name", help="plugin name, e.g. gan or tv; a model spec such as lama:big-lama/ prints what "
                      "its files hold")
    info.set_defaults(handler=cmd_info)


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    rows = [(p.kind, p.name, p.description, _speed(p.cls) if p.kind == "method" else "", p.distribution,
             _missing(p.cls)) for p in args.registry.all()]
    print(tabulate(rows, headers=["kind", "name", "description", "s/image", "distribution", "needs"]))
    for broken in args.registry.broken:
        print(f"broken plugin (failed to import, left out): {broken}")
    return 0


def _missing(cls) -> str:
    """What a plugin lacks to run here (its ``install_hint``), or nothing."""
    problem = cls.missing_requirement() if isinstance(cls, type) else None
    return cls.install_hint if problem else ""


def _speed(cls) -> str:
    """A method's measured seconds per image (32 px, default options, 2-core CPU), "slow" marked."""
    text = cls.speed if cls.seconds_per_image is None else f"{cls.seconds_per_image:.3g}"
    return f"{text} (slow)" if cls.slow else text


def cmd_info(args: argparse.Namespace) -> int:
    """Print each plugin called NAME (a method and a trainer may share one): kind, distribution,
    description and its options with their types, defaults, ranges and descriptions."""
    from tabulate import tabulate

    from benchkit.plugin.options import option_specs
    from benchkit.plugin.registry import KINDS

    registry = args.registry
    if ":" in args.name or "[" in args.name:
        return _model_card(registry, args.name)
    found = [registry.get(kind, args.name) for kind in KINDS if args.name in registry.names(kind)]
    if not found:
        registry.get("method", args.name)  # the unknown-name error, with "did you mean"
    for info in found:
        print(f"{info.kind} {info.name} (from {info.distribution}): {info.description}")
        if info.kind == "preset":
            print(f"  datasets {', '.join(info.cls.datasets)}; masks {', '.join(info.cls.masks)}; "
                  f"methods {', '.join(info.cls.methods) or 'all available'}\n")
            continue
        specs = [s for s in option_specs(info.cls).values() if s.name != "data_dir"]
        if not specs:
            print("  no options\n")
            continue
        rows = [(s.name, s.type_name(), "" if s.default is inspect.Parameter.empty else repr(s.default),
                 s.range.describe() if s.range else "", s.doc) for s in specs]
        flag = "-o KEY=VALUE" if info.kind == "trainer" else f"{info.name}[KEY=VALUE] or -o {info.name}.KEY=VALUE"
        print(f"  options ({flag}):")
        print(tabulate(rows, headers=["option", "type", "default", "valid", "description"], tablefmt="github") + "\n")
    return 0


def _model_card(registry, text: str) -> int:
    """``benchkit info lama:DIR``: what a method found in its files (architecture, parameters,
    digests, convention), loaded as a run would load them."""
    from benchkit.plugin.spec import Spec

    spec = Spec.parse(text, "method")
    card = registry.create("method", spec).model_card()
    print(f"method {spec.canonical}")
    for key, value in card.items() or [("files", "this method reads no model files")]:
        print(f"  {key}: {value}")
    return 0
