"""``benchkit weights``: list the pretrained weights files of the metrics, and download them."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchkit.builtins.metrics.weights import WEIGHTS, default_dir, search_dirs, sha256_matches
from benchkit.datafiles import fetch
from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl


def cmd_weights(args: argparse.Namespace) -> int:
    """``benchkit weights list`` and ``benchkit weights download NAME``."""
    target = Path(args.weights_dir) if args.weights_dir else default_dir()
    if args.weights_command == "list":
        from tabulate import tabulate

        rows = []
        for entry in WEIGHTS.values():
            found = [f / entry.filename for f in search_dirs(target) if entry.present(f)]
            rows.append((entry.name, entry.size, entry.used_by, str(found[0]) if found else f"missing: put it at "
                         f"{target / entry.filename}", entry.sha256[:16] or "none published", entry.url))
        print(tabulate(rows, headers=["weights", "size", "used by", "here", "SHA-256", "where to get it"]))
        return 0
    names = list(WEIGHTS) if args.name == "all" else [args.name]
    for name in names:
        if name not in WEIGHTS:
            raise UserError(f"no weights called '{name}': choose from {', '.join(WEIGHTS)} or all")
        entry = WEIGHTS[name]
        for url, relative in entry.downloads():
            path = fetch(url, target / relative, lambda p, e=entry: sha256_matches(p, e.sha256), "SHA-256")
        print(f"{name}: {target / entry.filename if entry.files else path}")
    return 0


@hookimpl
def register_commands(subparsers):
    parser = subparsers.add_parser("weights", help="pretrained weights of metrics (FID, KID, LPIPS, FD-DINOv2, CLIP "
                                   "score): list, download")
    sub = parser.add_subparsers(dest="weights_command", required=True)
    listing = sub.add_parser("list", help="each weights file, its size, the metrics using it, and where it was found")
    download = sub.add_parser("download", help="fetch a weights file and check its SHA-256 (needs the internet)")
    download.add_argument("name", help=f"one of {', '.join(WEIGHTS)}, or all")
    for p in (listing, download):
        p.add_argument("--weights-dir", help="folder to write to and search first (default $BENCHKIT_WEIGHTS or "
                       "~/.cache/benchkit/weights)")
        p.set_defaults(handler=cmd_weights)
