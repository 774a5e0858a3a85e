"""mkdocs hook: pages whose text must come from the code, so that it cannot drift.

``<!-- cli -->`` becomes the ``--help`` of every command; ``<!-- plugins -->`` the table of every
built-in plugin with each one's options; ``<!-- options: NAME -->`` the options of one plugin.
"""
from __future__ import annotations

import inspect
import re


def _registry():
    from benchkit.plugin.registry import Registry

    return Registry(block_external=True)


def _options(info) -> str:
    from benchkit.plugin.options import option_specs

    specs = [s for s in option_specs(info.cls).values() if s.name != "data_dir"] if info.kind != "preset" else []
    if not specs:
        return "No options.\n"
    rows = ["| option | type | default | valid | description |", "|---|---|---|---|---|"]
    for s in specs:
        default = "" if s.default is inspect.Parameter.empty else f"`{s.default!r}`"
        valid = s.range.describe() if s.range else ""
        rows.append(f"| `{s.name}` | `{s.type_name()}` | {default} | {valid} | {s.doc.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def _plugins() -> str:
    registry = _registry()
    parts = []
    for info in registry.all():
        parts.append(f"### {info.kind} `{info.name}`\n\n{info.description}\n\n{_options(info)}")
    return "\n".join(parts)


def _cli() -> str:
    from benchkit.cli import build_parser

    registry = _registry()
    parser = build_parser(registry)
    parts = [f"```text\n{parser.format_help()}```\n"]
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        parts.append(f"## benchkit {name}\n\n```text\n{sub.format_help()}```\n")
    return "\n".join(parts)


def on_page_markdown(markdown, page, config, files):
    if "<!-- cli -->" in markdown:
        markdown = markdown.replace("<!-- cli -->", _cli())
    if "<!-- plugins -->" in markdown:
        markdown = markdown.replace("<!-- plugins -->", _plugins())

    def options(match: re.Match) -> str:
        registry = _registry()
        name = match.group(1)
        found = [registry.get(kind, name) for kind in ("method", "mask", "metric", "dataset", "executor", "trainer")
                 if name in registry.names(kind)]
        return "\n".join(_options(info) for info in found) or f"No plugin named {name}.\n"

    return re.sub(r"<!-- options: ([\w-]+) -->", options, markdown)
