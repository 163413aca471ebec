"""The project's one exception type, and how a stage's main turns it into one line.

Library code raises `SrlmError("error: ...")` (or a subclass) with the whole message a user should
read; it never exits. Every stage's and command's `main` is wrapped in `@entry`, which prints that
message as the process's one line on stderr and exits with `exit_code` (1, or 130 for an interrupt):
no traceback for bad input, and callers in the same process (tests, benchmarks) can still catch it.

Ctrl-C: code that runs long wraps itself in `interruptible(message)` (generation shards, sft and dpo training),
which turns the KeyboardInterrupt into `Interrupted(message)`; one anywhere else ends the stage with
`<stage>: interrupted`. Either way: one line, exit 130, and the stage's outputs are not written.

`@entry` also ends what library code started for the run with `on_finish` (rows.all_or_none: a stage's
outputs appear together only when main returns; stages/engine/shards.py: committed shards are dropped only then).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from typing import Callable

from stages.core import timing

_finish: list[Callable[[bool], None]] | None = None  # callbacks of the running @entry main, in order


class SrlmError(Exception):
    """Bad input, a refused action or a failed write: the message names the file, line or params key."""

    exit_code = 1


class Interrupted(SrlmError):
    """Ctrl-C: committed work is kept; the shell's exit status for SIGINT."""

    exit_code = 130


def brief(e: BaseException) -> str:
    """Another library's exception as one line: its type and the first line of its message (polars and
    transformers add paragraphs of context that would break the one-line error)."""
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


@contextlib.contextmanager
def interruptible(message: str | Callable[[], str]):
    """Ctrl-C inside the block raises Interrupted(message) (a callable is asked at that moment): one line and
    exit 130 from @entry, no traceback. Python's own SIGINT handler is put back for the block (polars installs
    one that only fires inside polars calls) and the previous one restored after."""
    main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(message() if callable(message) else message) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def running() -> bool:
    """True inside an @entry main (so `on_finish` callbacks will run)."""
    return _finish is not None


def on_finish(callback: Callable[[bool], None]) -> None:
    """Run `callback(ok)` when the running @entry main ends: ok is True when it returned and every earlier
    callback succeeded, False when it raised (an earlier callback that raises turns the later ones to False)."""
    if _finish is None:
        raise RuntimeError("on_finish needs a main decorated with @entry")
    _finish.append(callback)


def _settle(callbacks: list[Callable[[bool], None]], ok: bool) -> None:
    failure = None
    for cb in callbacks:
        try:
            cb(ok and failure is None)
        except BaseException as e:  # the rest still run (with ok=False), so nothing is left half done
            failure = failure or e
    if failure is not None:
        raise failure


def entry(main):
    """Decorate a `main(argv=None)`: an SrlmError ends the process with its message and exit code.
    A stage that DVC runs also records where its wall time went (stages/core/timing.py)."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None):
        global _finish
        outer, _finish = _finish, []
        clock = timing.begin(main.__module__)
        status = "error"
        try:
            try:
                result = main(argv)
                sys.stdout.flush()  # a closed pipe fails here, inside the handler below, not at interpreter exit
            except BaseException:
                _settle(_finish, False)
                raise
            _settle(_finish, True)
            status = "ok"
            return result
        except BrokenPipeError:  # the reader went away (`srlm params | head`): stop quietly, as `cat` does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail again
            raise SystemExit(141) from None  # 128 + SIGPIPE, the shell's status for a writer killed by the pipe
        except SrlmError as e:
            if e.exit_code == 1:
                raise SystemExit(str(e)) from None  # the interpreter prints it to stderr and exits 1
            status = "interrupted"
            print(e, file=sys.stderr)
            raise SystemExit(e.exit_code) from None
        except KeyboardInterrupt:  # outside an interruptible block: still one line and the shell's 130
            status = "interrupted"
            name = main.__module__.rpartition(".")[2]
            print(f"{'srlm' if name == 'cli' else name}: interrupted", file=sys.stderr)
            raise SystemExit(Interrupted.exit_code) from None
        finally:
            _finish = outer
            timing.end(clock, status)

    return run
