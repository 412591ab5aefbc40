"""Figures for running vmatte on a Ray cluster (README, "Render farms: Ray").

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/cluster.py \\
        [--experiments batch,worker] [--clips 4] [--frames 48] [--size 480x270] [--ratio 0.5]

batch   wall time of one batch, as ``vmatte`` processes side by side: locally, then with ``--ray local`` (Ray
        start-up, worker start-up and the model load included: what a user waits for); outputs compared
worker  the per-worker figures of the throughput model, in-process on one clip: decode, model and ProRes alpha
        encode time per frame, bytes read and written per frame
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from throughput import make_clip

from vmatte.inference import MattingEngine
from vmatte.io import open_source, open_writer
from vmatte.temporal import frames_to_tensor

WEIGHTS = Path(__file__).resolve().parents[2] / "shared/weights/rvm_mobilenetv3_tfjs_int8"


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgba64le") for frame in container.decode(video=0)]


def batch(work: Path, clips: int, frames: int, size: tuple[int, int], ratio: float) -> None:
    footage = work / "footage"
    footage.mkdir()
    for index in range(clips):
        make_clip(footage / f"clip{index}.mp4", *size, frames + index)  # lengths differ a little: other clips
    walls = {}
    for name, extra in (("local", []), ("--ray local", ["--ray", "local"])):
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "vmatte", str(footage), "--out-dir", str(work / name.strip("-")),
                              "--out-template", "alpha={stem}.alpha.mov", "-r", str(ratio), "--quiet", *extra],
                             capture_output=True, text=True)
        walls[name] = time.perf_counter() - start
        if run.returncode != 0:
            raise SystemExit(f"vmatte failed: {run.stderr}")
    same = all(np.array_equal(a, b) for index in range(clips)
               for a, b in zip(decoded(work / "local" / f"clip{index}.alpha.mov"),
                               decoded(work / "ray local" / f"clip{index}.alpha.mov")))
    print(f"batch of {clips} clips x {frames}+ frames at {size[0]}x{size[1]}, ratio {ratio}, alpha ProRes:")
    for name, wall in walls.items():
        print(f"  {name:<12} {wall:6.1f} s wall")
    print(f"  outputs identical: {same}")


def worker(work: Path, frames: int, size: tuple[int, int], ratio: float) -> None:
    clip = make_clip(work / "worker.mp4", *size, frames)
    engine = MattingEngine.load("rvm-mobilenetv3-int8", WEIGHTS, notice=lambda m: None)
    start = time.perf_counter()
    with open_source(clip) as source:
        info = source.info
        pictures = list(source.frames())
    decode = (time.perf_counter() - start) / len(pictures)
    engine.run(frames_to_tensor(pictures[:4]), None, ratio, need_fgr=False)  # warm-up
    start, state, mattes = time.perf_counter(), None, []
    for index in range(0, len(pictures), 4):
        out = engine.run(frames_to_tensor(pictures[index:index + 4]), state, ratio, need_fgr=False)
        state = out.state
        mattes += list(out.pha[0, :, 0].numpy())
    model = (time.perf_counter() - start) / len(pictures)
    output = work / "worker.alpha.mov"
    start = time.perf_counter()
    writer = open_writer("alpha", output, info, png_depth=16, premultiplied=False)
    for picture, matte in zip(pictures, mattes):
        writer.write(matte[..., None], picture.pts)
    writer.close()
    encode = (time.perf_counter() - start) / len(pictures)
    read, written = clip.stat().st_size / len(pictures), output.stat().st_size / len(pictures)
    print(f"one CPU worker ({size[0]}x{size[1]}, ratio {ratio}, {len(pictures)} frames, torch threads as a local run):")
    print(f"  decode {decode * 1000:.1f} ms/frame, model {model * 1000:.1f} ms/frame, "
          f"ProRes alpha encode {encode * 1000:.1f} ms/frame")
    print(f"  worker rate (stages sharing the cores) {1 / (decode + model + encode):.1f} fps")
    print(f"  read {read / 1024:.1f} KiB/frame (H.264 source), written {written / 1024:.1f} KiB/frame (ProRes alpha)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", default="batch,worker")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="480x270")
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if "batch" in args.experiments:
            batch(work, args.clips, args.frames, size, args.ratio)
        if "worker" in args.experiments:
            worker(work, args.frames, size, args.ratio)


if __name__ == "__main__":
    main()
