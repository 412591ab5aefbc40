"""vmatte against what a CPU user would write instead: a plain loop of PyAV decoding, the official float32 ONNX
release in ONNX Runtime (deep guided filter) and OpenCV PNG writing, with the same weights, clip and outputs
(8-bit PNG alpha), each run as a whole process and timed from start to exit, taking turns in one run:

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/onnxruntime_loop.py \\
        [--heights 1080,720,540] [--frames 150] [--rounds 2] [--network]

Cases: 1920x1080 at ratio 0.25, 1280x720 and 960x540 at the automatic ratio (long side 640 px), clips made from
the bedroom sample (``throughput.make_clip``). vmatte runs with its defaults (backend ``auto``). The table gives
each one's median fps over the rounds and vmatte's speed-up, the median of the per-round ratios.

``--network`` adds ONNX Runtime as a backend would use it: the network at its working size (the part vmatte's
OpenVINO backend runs, ``FrameGraph``) exported to ONNX and run in ONNX Runtime, beside the same graph in OpenVINO,
ms per frame (median of ``--rounds`` x 10 calls, taking turns): what ``auto`` chooses between on a CPU.
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


NAMES = ["src", "r1", "r2", "r3", "r4"]


def network_alone(heights: list[str], rounds: int, work: Path) -> None:
    """The working-size network in ONNX Runtime (vmatte's graph exported to ONNX) and in OpenVINO, taking turns."""
    from vmatte.backends import load_on_backend

    engine = load_on_backend("rvm-mobilenetv3-onnx", None, backend="openvino", notice=lambda message: None)
    print("\n| working size | ONNX Runtime ms/frame | OpenVINO ms/frame | OpenVINO speed-up |")
    print("| --- | --- | --- | --- |")
    for (width, height), ratio in [case for case in CASES if str(case[0][1]) in heights]:
        size = engine.model.semantics.downsampled_size(height, width, ratio or auto_downsample_ratio(height, width))
        ort_ms, ov_ms = network_times(engine, size, rounds, work / f"network_{size[1]}x{size[0]}.onnx")
        print(f"| {size[1]}x{size[0]} | {ort_ms:.1f} | {ov_ms:.1f} | {ort_ms / ov_ms:.2f}x |", flush=True)


def network_times(engine, size: tuple[int, int], rounds: int, exported: Path) -> tuple[float, float]:
    """(ONNX Runtime, OpenVINO) ms per call of the network at ``size``, the median of ``rounds`` x 10 calls."""
    import warnings

    import numpy as np
    import onnxruntime
    import openvino
    import torch

    from vmatte.inference_openvino import COMPILE_CONFIG, FrameGraph, state_shapes

    shapes = state_shapes(engine.model, *size)
    inputs = [np.random.default_rng(0).random((1, 3, *size), np.float32), *(np.zeros(s, np.float32) for s in shapes)]
    with warnings.catch_warnings():  # the tracer's notes on the network's shape tests (inference_openvino.py)
        warnings.simplefilter("ignore")
        torch.onnx.export(FrameGraph(engine.model, True, False), tuple(map(torch.from_numpy, inputs)), exported,
                          input_names=NAMES, opset_version=17, dynamo=False)
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    model, _ = engine.sized_graph(*size, True, False)
    request = openvino.Core().compile_model(model, "CPU", COMPILE_CONFIG).create_infer_request()
    calls = [lambda: session.run(None, dict(zip(NAMES, inputs))), lambda: request.infer(inputs)]
    times: list[list[float]] = [[], []]
    for call in calls:
        call()  # first calls allocate
    for _ in range(rounds):
        for call, series in zip(calls, times):
            start = time.perf_counter()
            for _ in range(10):
                call()
            series.append((time.perf_counter() - start) / 10 * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


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
    parser.add_argument("--network", action="store_true", help="Also the network alone: ONNX Runtime and OpenVINO.")
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
    if args.network:
        network_alone(args.heights.split(","), args.rounds, work)


if __name__ == "__main__":
    main()
