"""Ctrl-C (SIGINT) and SIGTERM at any moment of a command: one line and exit 130 (143), never a traceback.

Python's own SIGINT handler raises KeyboardInterrupt wherever the main thread happens to be, in the middle of
importing torch or NumPy too; their half-initialised modules then fail in odd ways ("module 'numpy' has no
attribute 'multiply'", "cannot load module more than once per process") or swallow the interrupt, and the run
goes on. So the program installs its own handlers before it imports anything heavy (``install``), and what a
signal does depends on where the run is:

- before any output is being made (imports, option checks, probing, loading the model) there is nothing on disk
  to tidy: the process says so and ends at once;
- while outputs are being made (inside ``making_outputs()``), the first signal raises KeyboardInterrupt in the main
  thread, which the pipeline turns into saved progress and a resume line; ``check()`` raises it again at the next
  chunk should a library have swallowed it;
- a second signal ends the process at once (saved progress is only ever replaced atomically, so resume holds).

A library user who never calls ``install`` keeps Python's behaviour.
"""

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import VmatteError

SIGNALS = (signal.SIGINT, signal.SIGTERM)
BEFORE_WORK = "interrupted before any frame was written"
AFTER_WORK = "interrupted after the outputs were finished"
SECOND = "interrupted again: stopped at once; run the same command again to resume from the last saved frame"


class Interrupted(VmatteError):
    """Ctrl-C or SIGTERM while outputs were being made: progress is kept; the same command resumes."""

    @property
    def exit_code(self) -> int:
        return exit_code()


class _State:
    received: int | None = None  # the first signal's number
    installed = False
    making = 0  # runs making outputs right now (a batch's clips run in threads)
    made = False  # some run has finished making its outputs
    told = False  # the command has said its last line (an error, or how it was interrupted) and is ending
    lock = threading.Lock()


def install() -> None:
    """Takes over SIGINT and SIGTERM for the rest of the process (idempotent)."""
    for signum in SIGNALS:
        signal.signal(signum, _handle)
    _State.installed = True


def reclaim() -> None:
    """Puts vmatte's handlers back where a library has replaced them (Ray's core worker installs a SIGTERM handler
    that prints a stack dump and exits 1); only in a process that ``install``ed them."""
    if _State.installed:
        install()


def exit_code() -> int:
    """The shell's code for the signal received: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + (_State.received or signal.SIGINT)


def received() -> bool:
    return _State.received is not None


def check() -> None:
    """Raises KeyboardInterrupt if a signal came while outputs were being made (a library may have caught the
    first one); called between chunks."""
    if _State.installed and _State.received is not None:
        raise KeyboardInterrupt


@contextmanager
def making_outputs() -> Iterator[None]:
    """Marks the block in which a signal must stop the run resumably rather than end the process."""
    with _State.lock:
        _State.making += 1
    try:
        yield
        _State.made = True
    finally:
        with _State.lock:
            _State.making -= 1


def told() -> None:
    """The command has said its last line: a signal from now on ends it without a second one. Once an interrupt
    has been told, further signals are ignored: the process is ending, and the interpreter's shutdown restores
    the default handlers, under which a late second Ctrl-C would kill it with no exit code of ours."""
    _State.told = True
    if _State.received is not None and threading.current_thread() is threading.main_thread():
        _ignore_signals()


def _ignore_signals() -> None:
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _handle(signum: int, frame) -> None:
    if _State.received is None:
        _State.received = signum
        if _State.making and not _State.told:
            raise KeyboardInterrupt
        if not _State.told:
            _exit(AFTER_WORK if _State.made else BEFORE_WORK)
    _exit(None if _State.told else SECOND)


def flush_output() -> None:
    """Flushes standard output and error before the process ends without the interpreter's own flushing."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, RuntimeError):  # closed, or a signal handler interrupted a write to it
            pass


def _exit(message: str | None) -> None:
    """Says ``message`` on stderr and ends the process now: no clean-up code runs, so none can fail half-way."""
    _ignore_signals()  # the process is ending: a further signal (a second Ctrl-C) must not kill it on the way
    flush_output()
    terminal = os.isatty(2)
    # A progress bar may hold the line and have hidden the cursor: start a line of our own, show the cursor again.
    line = (("\r\x1b[2K" if terminal else "") + f"{message}\n" if message else "") + ("\x1b[?25h" if terminal else "")
    try:
        os.write(2, line.encode())
    except OSError:
        pass
    os._exit(exit_code())
