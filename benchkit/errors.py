"""User-facing errors: one line naming the problem and the fix; the CLI exits with code 2."""


class UserError(Exception):
    """Bad input from the user (or a plugin's data): printed as one line, exit code 2."""

    exit_code = 2
