"""vmatte against what a CPU user would write instead: a plain loop of PyAV decoding, the official float32 ONNX
release in ONNX Runtime (deep guided filter) and OpenCV PNG writing, with the same weights, clip and outputs
(8-bit PNG alpha), each run as a whole process and timed from start to exit, taking turns in one run:

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/onnxruntime_loop.py \\
        [--heights 1080,720,540] [--frames 150] [--rounds 2]

Cases: 1920x1080 at ratio 0.25, 1280x720 and 960x540 at the automatic ratio (long side 640 px), clips made from
the bedroom sample (``throughput.make_clip``). vmatte runs with its defaults (backend ``auto``). The table gives
each one's median fps over the rounds and vmatte's speed-up, the median of the per-round ratios.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throughput import RATE, make_clip

from vmatte.models.weights import MODELS, find_local
from vmatte.settings import auto_downsample_ratio

CASES = [((1920, 1080), 0.25), ((1280, 720), None), ((960, 540), None)]


def onnxruntime_loop(clip: Path, out: Path, ratio: float, weights: Path) -> None:
    """The plain loop, as a user would write it from the release's own inference example."""
    import av
    import cv2
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
    state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    ratio_input = np.array([ratio], np.float32)
    out.mkdir(parents=True, exist_ok=True)
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            src = (frame.to_ndarray(format="rgb24").astype(np.float32) / 255).transpose(2, 0, 1)[None]
            _, pha, *state = session.run(None, {"src": src, "r1i": state[0], "r2i": state[1], "r3i": state[2],
                                                "r4i": state[3], "downsample_ratio": ratio_input})
            cv2.imwrite(str(out / f"{index:06d}.png"), (pha[0, 0] * 255 + 0.5).astype(np.uint8))


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heights", default="1080,720,540", help="Which of the cases to run, by frame height.")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, help="Folder for the generated clips (kept between runs).")
    parser.add_argument("--loop", nargs=3, metavar=("CLIP", "OUT", "RATIO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    weights = find_local(MODELS["rvm-mobilenetv3-onnx"])
    if weights is None:
        raise SystemExit("rvm_mobilenetv3_fp32.onnx not found: set VMATTE_WEIGHTS")
    if args.loop:
        onnxruntime_loop(Path(args.loop[0]), Path(args.loop[1]), float(args.loop[2]), weights)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="vmatte-ort-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {' '.join(sys.argv)}; {args.frames} frames at {RATE} fps, 8-bit PNG alpha, whole processes, "
          f"{args.rounds} rounds taking turns; {os.cpu_count()} CPUs")
    print("| input | ratio | ONNX Runtime loop fps | vmatte fps | vmatte speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for (width, height), ratio in [case for case in CASES if str(case[0][1]) in args.heights.split(",")]:
        ratio = ratio or auto_downsample_ratio(height, width)
        clip = make_clip(work / f"clip_{width}x{height}_{args.frames}.mp4", width, height, args.frames)
        loop = [sys.executable, __file__, "--loop", str(clip), str(work / "loop-out"), str(ratio)]
        vmatte = [sys.executable, "-m", "vmatte", str(clip), "--out", str(work / "vmatte-out") + "/", "--png-depth",
                  "8", "-r", str(ratio), "--overwrite", "--fresh", "--quiet"]
        timed(vmatte, work)  # untimed: builds this shape's compiled graph once, as any first run does
        seconds: dict[str, list[float]] = {"loop": [], "vmatte": []}
        for _ in range(args.rounds):
            seconds["loop"].append(timed(loop, work))
            seconds["vmatte"].append(timed(vmatte, work))
        fps = {name: args.frames / statistics.median(series) for name, series in seconds.items()}
        up = statistics.median(a / b for a, b in zip(seconds["loop"], seconds["vmatte"]))
        print(f"| {width}x{height} | {ratio:.3f} | {fps['loop']:.2f} | {fps['vmatte']:.2f} | {up:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
