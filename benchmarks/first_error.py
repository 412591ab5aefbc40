"""Time to the first line of an error that needs no model, against ``vmatte --version``:

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/first_error.py [--rounds 5]

Each case runs ``python -m vmatte`` on a small clip made here (96x64, 12 frames) as a user would, and times from
the process's start to the first line it writes (its error, or the version): an existing output, ``--weights``
naming a missing file, a video passed as ``--weights``, an output in a folder that cannot take files (under
/proc, as permission bits do not stop root), and an option with a wrong value. Median and slowest of
``--rounds`` runs, in seconds of wall time (the machines are shared: compare the rows of one run).
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import media  # noqa: E402

CASES = {
    "vmatte --version": ["--version"],
    "existing output": ["clip.mov", "--out", "clip.mov.alpha.mov"],
    "--weights missing": ["clip.mov", "--out", "alpha.mov", "--weights", "/nonexistent.pth"],
    "a video as --weights": ["clip.mov", "--out", "alpha.mov", "--weights", "clip.mov"],
    "output cannot be written": ["clip.mov", "--out", "/proc/vmatte/alpha.mov"],
    "wrong option value": ["clip.mov", "--out", "alpha.mov", "--png-depth", "12"],
}


def first_line_seconds(args: list[str], cwd: Path) -> tuple[float, str]:
    """Seconds from the start of ``python -m vmatte ARGS`` to its first line (stdout or stderr), and the line."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "vmatte", *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline()
    seconds = time.perf_counter() - start
    process.communicate()
    return seconds, line.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        media.write_numbered_clip(cwd / "clip.mov", "mpeg4", 12)
        (cwd / "clip.mov.alpha.mov").write_bytes(b"an earlier output")
        print(f"{'case':26} {'median s':>9} {'slowest s':>10}  first line")
        for name, args in CASES.items():
            runs = [first_line_seconds(args, cwd) for _ in range(options.rounds)]
            seconds = [s for s, _ in runs]
            print(f"{name:26} {statistics.median(seconds):9.2f} {max(seconds):10.2f}  {runs[0][1][:70]}")


if __name__ == "__main__":
    main()
