"""User-facing errors: one line, a non-zero exit, no traceback."""
import sys
from typing import Callable


class UserError(Exception):
    """A mistake in the user's input (a path, a flag, a file). Printed as one line."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run an entry point; turn a `UserError` into `error: ...` on stderr and exit code 1 (or the
    error's own `exit_code`, e.g. 143 for a run stopped by SIGTERM)."""
    try:
        code = main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(getattr(err, "exit_code", 1))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    sys.exit(code or 0)
