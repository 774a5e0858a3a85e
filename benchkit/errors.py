"""User-facing errors: one line naming the problem and the fix; the CLI exits with code 2."""


class UserError(Exception):
    """Bad input from the user (or a plugin's data): printed as one line, exit code 2."""

    exit_code = 2


class WriteError(UserError, OSError):
    """A file could not be written (a full disk, a folder that became read-only). The target is left
    as it was (writes are atomic): printed as one line naming the file; exit code 2. It is an
    OSError too, so code that tolerates an unwritable cache keeps doing so."""


class RunStopped(UserError):
    """The run's workers became unreachable (a Dask scheduler that died): finished shards are kept,
    and the same command resumes. Exit code 1, as for a run with unfinished cells."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM: stops a run as Ctrl-C does (the CLI exits with 143)."""


class OutputClosed(KeyboardInterrupt):
    """The reader of the output went away during a run (``benchkit run ... | head``): the run stops as
    Ctrl-C stops it, finished cells kept and the manifest ``interrupted``; the CLI exits with 141
    (128 + SIGPIPE, as a shell reports a command that a closed pipe stopped)."""
