"""The project's one exception type, and how a stage's main turns it into one line.

Library code raises `SrlmError("error: ...")` (or a subclass) with the whole message a user should
read; it never exits. Every stage's and command's `main` is wrapped in `@entry`, which prints that
message as the process's one line on stderr and exits with `exit_code` (1, or 130 for an interrupt):
no traceback for bad input, and callers in the same process (tests, benchmarks) can still catch it.
"""

from __future__ import annotations

import functools
import sys


class SrlmError(Exception):
    """Bad input, a refused action or a failed write: the message names the file, line or params key."""

    exit_code = 1


class Interrupted(SrlmError):
    """Ctrl-C: committed work is kept; the shell's exit status for SIGINT."""

    exit_code = 130


def entry(main):
    """Decorate a `main(argv=None)`: an SrlmError ends the process with its message and exit code."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None):
        try:
            return main(argv)
        except SrlmError as e:
            if e.exit_code == 1:
                raise SystemExit(str(e)) from None  # the interpreter prints it to stderr and exits 1
            print(e, file=sys.stderr)
            raise SystemExit(e.exit_code) from None

    return run
