"""The ``benchkit`` command line: a thin dispatcher and its error handling.

Every command, benchkit's own (``run``, ``score``, ``report``, ``train``, ``data``, ``list``,
``info``, in :mod:`benchkit.builtins.commands`) and a plugin's, registers its subcommand through the
``register_commands`` hook; this module only builds the parser from them, calls the handler, and
turns errors into one line and an exit code.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from benchkit.errors import OutputClosed, Terminated, UserError

DESCRIPTION = ("benchkit: benchmark image inpainting methods on datasets x masks, score them and report. "
               "`benchkit COMMAND --help` describes each command.")
# errors of the system rather than of benchkit: a full disk, a quota, a read-only or forbidden place
SYSTEM_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def build_parser(registry) -> argparse.ArgumentParser:
    """The argument parser of every registered command."""
    parser = argparse.ArgumentParser(prog="benchkit", description=DESCRIPTION)
    registry.register_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def _terminate(signum, frame) -> None:
    """SIGTERM (``kill``, a cluster's scheduler) stops a run as Ctrl-C does: finished work is kept."""
    raise Terminated()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, ``benchkit: warning: ...`` (no source line), above any progress bar."""
    from tqdm import tqdm

    tqdm.write(f"benchkit: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    warnings.showwarning = _show_warning
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave SIGTERM as it is
        pass
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str]) -> int:
    try:
        from benchkit.plugin.registry import Registry

        registry = Registry()
        args = build_parser(registry).parse_args(argv)
        args.argv, args.registry = argv, registry
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except UserError as exc:
        print(f"benchkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OutputClosed:  # the reader of a run's output left: finished cells are kept
        _silence()
        return 141
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        print(f"benchkit: {'terminated' if isinstance(exc, Terminated) else 'interrupted'}; run the same command "
              "again to resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:  # `benchkit report ... | head`: the reader left after the work was done
        _silence()
        return 0
    except OSError as exc:
        if exc.errno not in SYSTEM_ERRNOS:
            return _internal_error(exc)
        where = f" {exc.filename}" if exc.filename else ""
        print(f"benchkit: error: cannot access{where} ({exc.strerror or exc}): check the space and permissions "
              "there; finished work is kept, and the same command resumes", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line for the user, the traceback in a file for the report
        return _internal_error(exc)


def _silence() -> None:
    """Point stdout and stderr at /dev/null, so that Python's exit flush does not fail on a closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            pass


def _internal_error(exc: BaseException) -> int:
    """A bug: one line for the user, the traceback in a file for the report (called while handling it)."""
    log = Path(tempfile.gettempdir()) / "benchkit-last-error.txt"
    try:
        log.write_text(traceback.format_exc())
        where = f"traceback in {log}"
    except OSError:
        where = "rerun with BENCHKIT_DEBUG=1 for the traceback"
    if os.environ.get("BENCHKIT_DEBUG"):
        raise
    print(f"benchkit: internal error: {type(exc).__name__}: {exc} ({where}; please report it)",
          file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
