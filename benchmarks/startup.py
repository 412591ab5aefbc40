"""Start-up: where the time goes before the first matted frame, in a whole ``vmatte`` process on a short clip.

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/startup.py [--size 1920x1080] [--frames 1] \\
        [--ratio 0.25] [--rounds 5]

Each round runs ``vmatte CLIP --out out/ --png-depth 8 -r RATIO`` as a user does (the compiled graph already in the
cache, as on any run but the first), with marks at the steps of a run: PyTorch imported, vmatte's modules imported,
the model loaded, the graph compiled for the working size, the pre-roll done, the last frame matted, the process
gone. The table gives each mark's median time from the process's start. Another checkout's code runs with
``PYTHONPATH`` set to it (its step names are the same).
"""

import argparse
import json
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throughput import make_clip

MARKS = ("torch", "vmatte", "model", "compiled", "pre-rolled", "matted", "exit")


def child(marks_file: str, vmatte_args: list[str]) -> None:
    """Runs vmatte in this process with marks at its steps, written to ``marks_file`` by an exit handler."""
    import atexit

    start = time.perf_counter()
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks.setdefault(name, time.perf_counter() - start)

    atexit.register(lambda: Path(marks_file).write_text(json.dumps(marks)))
    import torch  # noqa: F401

    mark("torch")
    import vmatte.inference_openvino as openvino_engine
    import vmatte.pipeline as pipeline
    import vmatte.temporal as temporal

    mark("vmatte")

    def after(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def marked(*args, **kwargs):
            result = original(*args, **kwargs)
            mark(label)
            return result

        setattr(owner, name, marked)

    after(pipeline, "load_engine", "model")
    after(openvino_engine.OpenVinoEngine, "_compile", "compiled")
    after(temporal.MattingStream, "_start_shot", "pre-rolled")
    after(temporal.MattingStream, "finish", "matted")
    sys.argv = ["vmatte", *vmatte_args]
    runpy.run_module("vmatte", run_name="__main__")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="vmatte-startup-"))
    clip = make_clip(work / f"clip_{width}x{height}_{args.frames}.mp4", width, height, args.frames)
    vmatte = [str(clip), "--out", str(work / "out") + "/", "--png-depth", "8", "-r", str(args.ratio), "--overwrite",
              "--fresh", "--quiet"]
    subprocess.run([sys.executable, "-m", "vmatte", *vmatte], check=True, capture_output=True)  # the graph, once
    rounds: dict[str, list[float]] = {name: [] for name in MARKS}
    for _ in range(args.rounds):
        marks_file = work / "marks.json"
        started = time.perf_counter()
        result = subprocess.run([sys.executable, __file__, "--child", str(marks_file), *vmatte], capture_output=True,
                                text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"vmatte failed:\n{result.stderr[-2000:]}")
        marks = {**json.loads(marks_file.read_text()), "exit": wall}
        for name in MARKS:
            if name in marks:
                rounds[name].append(marks[name])
    print(f"# {' '.join(sys.argv)}; {width}x{height}, {args.frames} frame(s), ratio {args.ratio}, {args.rounds} "
          f"rounds; {os.cpu_count()} CPUs; code: {os.environ.get('PYTHONPATH') or 'this checkout'}")
    print("| step done | seconds from the process's start (median) |")
    print("| --- | --- |")
    for name, times in rounds.items():
        if times:
            print(f"| {name} | {statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()
