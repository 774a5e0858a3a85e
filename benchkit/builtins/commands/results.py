"""``benchkit report`` (tables or one HTML file) and ``benchkit score`` (add metrics to a finished run)."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchkit.builtins.commands.run import FORMATS, WEIGHTS_HELP, failure_table
from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.run.defaults import METRIC_BATCH_SIZE, csv_list


@hookimpl(tryfirst=True)  # benchkit's own commands head `benchkit --help`
def register_commands(subparsers):
    report = subparsers.add_parser("report", help="print summary tables of a run folder")
    report.add_argument("path", type=Path)
    report.add_argument("--format", default="github", choices=FORMATS)
    report.add_argument("--html", nargs="?", const="", metavar="FILE",
                        help="write one self-contained HTML report (default FILE: PATH/report.html)")
    report.add_argument("--errors", action="store_true", help="HTML: add error images |x - x_hat| x 2 to the grids")
    report.add_argument("--reference", metavar="METHOD",
                        help="HTML: compare every other method with this one (default: the first method)")
    report.add_argument("--all-pairs", action="store_true",
                        help="HTML: compare every pair of methods instead (Holm-adjusted over all of them)")
    report.set_defaults(handler=cmd_report)

    scoring = subparsers.add_parser("score", help="add metrics to a finished run from its kept outputs (no method "
                                    "reruns)")
    scoring.add_argument("path", type=Path)
    scoring.add_argument("--metrics", type=csv_list, required=True,
                         help="comma-separated metrics to add, each NAME or NAME[KEY=VALUE,...]")
    scoring.add_argument("--format", default="github", choices=FORMATS)
    scoring.add_argument("--device", default="cpu", help="torch device of the metrics, e.g. cpu or cuda (default cpu)")
    scoring.add_argument("--batch-size", type=int, default=METRIC_BATCH_SIZE,
                         help=f"images per metric call (default {METRIC_BATCH_SIZE})")
    scoring.add_argument("--models-dir", type=Path, help="folder searched first for trained checkpoints")
    scoring.add_argument("--weights-dir", type=Path, help=WEIGHTS_HELP)
    scoring.set_defaults(handler=cmd_score)


def cmd_report(args: argparse.Namespace) -> int:
    from benchkit.report.tables import format_tables
    from benchkit.store.results import failures, load_tables, metric_columns, run_display

    df, sets = load_tables(args.path)
    if args.html is not None:
        from benchkit.report.html import write_html

        target = Path(args.html) if args.html else args.path / "report.html"
        if args.reference is not None and args.reference not in set(df.method):
            raise UserError(f"--reference {args.reference} is not a method of {args.path} (it holds "
                            f"{', '.join(dict.fromkeys(df.method)) or 'none'}): name one of them")
        try:
            path = write_html(args.path, target, errors=args.errors, reference=args.reference,
                              all_pairs=args.all_pairs)
        except OSError as exc:
            raise UserError(f"cannot write the report to {target} ({exc.strerror or exc}): "
                            "give another --html FILE") from exc
        print(f"report written to {path} (self-contained; open it in any browser)")
        return 0
    unfinished = unfinished_note(args.path)
    if unfinished:
        print(unfinished + "\n")
    print(format_tables(df, metric_columns(df) + metric_columns(sets) + ["seconds"], args.format, sets=sets,
                        display=run_display(args.path)))
    failed = failures(args.path)
    if len(failed):
        print(f"\n{len(failed)} failed cells:\n" + failure_table(failed))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from benchkit.report.tables import format_tables
    from benchkit.run.scoring import score
    from benchkit.run.validation import parse_device
    from benchkit.store.results import load_tables, run_display

    parse_device(args.device)
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    notes, metric_failures, scored = score(args.path, args.metrics, args.registry, device=args.device,
                                           batch_size=args.batch_size,
                                           models_dir=str(args.models_dir) if args.models_dir else None,
                                           weights_dir=str(args.weights_dir) if args.weights_dir else None)
    for note in notes:
        print(f"note: {note}")
    df, sets = load_tables(args.path)
    print(format_tables(df, scored, args.format, sets=sets, display=run_display(args.path)))
    return 1 if metric_failures else 0


def unfinished_note(path: Path) -> str | None:
    """A line saying that the folder's last run did not finish (its manifest's status), or None."""
    from benchkit.store.cells import read_manifest

    manifest = read_manifest(path) or {}
    status = manifest.get("status")
    if status in (None, "finished"):
        return None
    command = manifest.get("command") or "the same `benchkit run`"
    return (f"note: the last run into {path} is {status}, not finished: these tables hold only the cells it "
            f"finished; `{command}` completes it")
