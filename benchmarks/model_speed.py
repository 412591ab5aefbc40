"""Milliseconds per frame of the RVM network alone (frames already in memory), per inference backend, side by
side with an earlier checkout of vmatte, in one run:

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/model_speed.py \\
        [--baseline /tmp/base] [--backends torch,openvino] [--heights 1080,720,540] [--rounds 5] [--frames 8] [--fgr]
        [--chunk 4] [--models rvm-mobilenetv3,rvm-mobilenetv3-int8]

Cases: 1920x1080 at ratio 0.25, 1280x720 and 960x540 at the automatic ratio (long side 640 px). Each variant
(every backend of this checkout with every model of ``--models``, e.g. the float32 default with its deep guided
filter beside the uint8 export with the fast one, plus PyTorch from ``--baseline``, e.g. ``git worktree add
/tmp/base 8d20426``)
runs in its own process; the variants take turns, ``--frames`` frames each per round (A, B, C, A, B, C, ...), so
a busy shared machine slows them alike, and the table gives each one's median over the rounds and its speed
relative to the baseline (or to torch). Frames are the bedroom sample, resized; ``--chunk`` frames per call (4, as
the pipeline runs; 1 is one frame per call, as issue 12 first measured); alpha only unless ``--fgr``. Compiled
backends build (or read from the cache) before timing starts. Below the table: each case's GFLOP per frame and
what a float32 matrix product reaches on these cores.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared/samples/portrait_videos/sam2_bedroom_child_960x540.mp4"
CASES = [((1920, 1080), 0.25), ((1280, 720), None), ((960, 540), None)]


def worker(backend: str | None, fgr: bool, chunk: int, model: str) -> None:
    """Runs in a variant's process: loads the model, then answers 'case W H RATIO', 'time N' and 'flops' (the
    case's work per frame) lines on stdin with JSON on stdout. ``backend`` None: code from before backends existed
    (no backend argument)."""
    import cv2
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vmatte.inference import MattingEngine

    try:
        from vmatte.backends import load_on_backend
    except ImportError:  # code from before backends.py (the baseline): the engine chose its backend
        load_on_backend = MattingEngine.load
    from vmatte.io import open_source

    try:
        from vmatte.settings import auto_downsample_ratio
    except ImportError:  # code from before settings.py (the baseline)
        from vmatte.inference import auto_downsample_ratio
    try:
        from vmatte.heap import reuse_large_blocks
    except ImportError:  # code from before heap.py (the baseline)
        pass
    else:
        reuse_large_blocks()  # as every vmatte run does (pipeline.run_job)

    with open_source(SAMPLE) as source:
        pictures = [frame.rgb for _, frame in zip(range(chunk), source.frames())]
    extra = {} if backend is None else {"backend": backend}
    engine = load_on_backend(model, device=torch.device("cpu"), precision="fp32", notice=lambda m: None, **extra)
    frames = ratio = state = None
    for line in sys.stdin:
        command, *args = line.split()
        if command == "case":
            width, height = int(args[0]), int(args[1])
            ratio = float(args[2]) if args[2] != "auto" else auto_downsample_ratio(height, width)
            resized = [cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA) for p in pictures]
            # As the pipeline hands frames over: channels-last views of the decoded HWC pictures.
            frames = torch.from_numpy(__import__("numpy").stack(resized)).permute(0, 3, 1, 2).float().div_(255)
            state = engine.run(frames, None, ratio, need_fgr=fgr).state  # warm-up; builds a compiled graph
            reply = {"ratio": ratio, "engine": engine.describe()}
        elif command == "flops":
            with FlopCounterMode(display=False) as counter:  # PyTorch's path, one frame: the work a frame takes
                MattingEngine.run(engine, frames[:1], None, ratio, need_fgr=fgr)
            reply = {"gflop": counter.get_total_flops() / 1e9}
        else:
            count = int(args[0])
            start = time.perf_counter()
            for _ in range(0, count, chunk):
                state = engine.run(frames, state, ratio, need_fgr=fgr).state
            reply = {"ms": 1000 * (time.perf_counter() - start) / (-(-count // chunk) * chunk)}
        print(json.dumps(reply), flush=True)


def matrix_product_gflops(size: int = 2048, repeats: int = 10) -> float:
    """What these cores reach in float32 on a square matrix product (the kernel that runs closest to a CPU's
    peak): the rate at which a network's GFLOP per frame becomes a floor in ms."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


class Variant:
    def __init__(self, name: str, root: Path, backend: str | None, fgr: bool, chunk: int, model: str):
        self.name = name
        env = {**os.environ, "PYTHONPATH": str(root)}
        command = [sys.executable, __file__, "--worker", backend or "none", "--chunk", str(chunk), "--models", model]
        command += ["--fgr"] if fgr else []
        self.process = subprocess.Popen(command, env=env, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)

    def ask(self, line: str) -> dict:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise SystemExit(f"{self.name}: the worker stopped")
        return json.loads(answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="Checkout of earlier vmatte code, timed on PyTorch.")
    parser.add_argument("--backends", default="torch,openvino")
    parser.add_argument("--heights", default="1080,720,540", help="Which of the cases to run, by frame height.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8, help="Frames per variant per round (whole chunks).")
    parser.add_argument("--fgr", action="store_true", help="Alpha and foreground (default: alpha only).")
    parser.add_argument("--chunk", type=int, default=4, help="Frames per call (the pipeline's chunk is 4).")
    parser.add_argument("--models", default="rvm-mobilenetv3", help="Models to time on each backend (names as "
                        "'vmatte models' lists them); the baseline runs its own default.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(None if args.worker == "none" else args.worker, args.fgr, args.chunk, args.models)
        return

    variants = ([Variant(f"baseline ({args.baseline.name})", args.baseline, None, args.fgr, args.chunk,
                         "rvm-mobilenetv3")] if args.baseline else [])
    models = args.models.split(",")
    variants += [Variant(backend + (f" {model}" if len(models) > 1 else ""), REPO, backend, args.fgr, args.chunk, model)
                 for model in models for backend in args.backends.split(",")]
    print(f"# {' '.join(sys.argv)}; {'alpha + foreground' if args.fgr else 'alpha only'}, chunk {args.chunk}, "
          f"{args.rounds} rounds x {args.frames} frames per variant, interleaved")
    print(f"| input | ratio | {' | '.join(v.name + ' ms/frame' for v in variants)} | "
          f"{' | '.join('speed-up ' + v.name for v in variants[1:])} |")
    print("|" + " --- |" * (2 + 2 * len(variants) - 1))
    floors: list[str] = []
    try:
        for (width, height), ratio in [case for case in CASES if str(case[0][1]) in args.heights.split(",")]:
            replies = [v.ask(f"case {width} {height} {ratio or 'auto'}") for v in variants]
            times: list[list[float]] = [[] for _ in variants]
            for _ in range(args.rounds):
                for v, series in zip(variants, times):
                    series.append(v.ask(f"time {args.frames}")["ms"])
            medians = [statistics.median(series) for series in times]
            # Ratios per round (each pair timed minutes apart at most), then their median: steadier than
            # a ratio of medians on a machine whose load changes.
            ups = [statistics.median(a / b for a, b in zip(times[0], series)) for series in times[1:]]
            print(f"| {width}x{height} | {replies[0]['ratio']:.3f} | {' | '.join(f'{m:.0f}' for m in medians)} | "
                  f"{' | '.join(f'{u:.2f}x' for u in ups)} |", flush=True)
            # The work is the case's, whichever variant counts it.
            floors.append(f"# {width}x{height}: {variants[-1].ask('flops')['gflop']:.1f} GFLOP a frame (convolutions "
                          f"and matrix products, PyTorch's flop counter)")
        for v, reply in zip(variants, replies):
            print(f"# {v.name}: {reply['engine']}")
        print("\n".join(floors))
        print(f"# float32 2048x2048 matrix product on these cores (PyTorch): {matrix_product_gflops():.0f} GFLOP/s")
    finally:
        for v in variants:
            v.process.stdin.close()
            v.process.wait()


if __name__ == "__main__":
    main()
