"""The ``vmatte`` program (``python -m vmatte`` and the installed script). The signal handlers go in before the
command line's own imports (typer, rich), so that a Ctrl-C at any moment of start-up ends in one line
(``interrupts.py``)."""

import atexit
import os
import sys

from .interrupts import flush_output, install


def main() -> None:
    install()
    from .cli import main as run

    try:
        run()
        code = 0
    except SystemExit as end:
        code = end.code
    exit_at_once(code)


def exit_at_once(code: int | str | None) -> None:
    """Ends the finished command without the interpreter's teardown, which takes 0.5-0.8 s once PyTorch is imported
    (docs/speed.md) and does nothing a finished command needs: its outputs are closed and in place by now. The exit
    handlers still run (Ray's shutdown, temporary folders), then the streams are flushed."""
    if isinstance(code, str):  # SystemExit("message"): Python prints it and exits 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    flush_output()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
