"""The ``vmatte`` program (``python -m vmatte`` and the installed script). The signal handlers go in before the
command line's own imports (typer, rich), so that a Ctrl-C at any moment of start-up ends in one line
(``interrupts.py``)."""

from .interrupts import install


def main() -> None:
    install()
    from .cli import main as run

    run()


if __name__ == "__main__":
    main()
