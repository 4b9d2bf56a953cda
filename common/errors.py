"""User-facing errors: one line that names the file, column or flag and says how to fix it."""
import functools
import sys


class UserError(Exception):
    """Bad input from the user. Printed as a single line, never as a traceback."""


class DivergedLoss(UserError):
    """The training loss became nan/inf. Stops a run; in a search it prunes the trial instead."""


def exits_cleanly(main):
    """Decorate a recipe's main(): a UserError becomes `error: ...` on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
