"""What the OpenVINO backend's CPU graph costs per frame size, against the frames it speeds up:

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/graph_build.py [--sizes 640x360,3840x2160]

The graph is converted once with its height and width left open, and fixed to each working size when a run
needs it. For each frame size (at ``--downsample-ratio auto``, so the model works at a long side of about 640 px):
the seconds to fix and compile the converted graph for that size, what converting a graph for that size alone
(the way vmatte did before) takes, the ms per frame of both compiled graphs (taking turns, the median of three)
and of PyTorch (``--frames`` frames after a warm-up), and the largest difference between the two graphs'
outputs. The one conversion's seconds are printed above the table.

``--batch-frames N`` then runs ``vmatte`` on a folder of one clip per size, N frames each (the sample scaled), with
an empty graph cache, as a user's first batch would, and splits its time into preparing graphs (the conversion
and each size's compile) and everything else (decoding, matting, writing).
"""

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from throughput import make_clip
from typer.testing import CliRunner

from vmatte.cli import app
from vmatte.inference import MattingEngine
from vmatte.inference_openvino import COMPILE_CONFIG, FrameGraph, OpenVinoEngine, import_openvino, state_shapes
from vmatte.settings import auto_downsample_ratio


def per_frame_ms(step, frames: torch.Tensor, count: int) -> float:
    state = step(frames[0], None)  # warm-up
    start = time.perf_counter()
    for index in range(count):
        state = step(frames[index % len(frames)], state)
    return 1000 * (time.perf_counter() - start) / count


def graph_step(compiled, shapes, outputs: list):
    """One working-size frame through a compiled graph, its alpha kept in ``outputs``."""
    request = compiled.create_infer_request()

    def step(base: torch.Tensor, state):
        state = state or [np.zeros(shape, np.float32) for shape in shapes]
        request.infer([np.ascontiguousarray(base[None].numpy()), *state], share_inputs=False)
        x, y, *state = [tensor.data.copy() for tensor in request.output_tensors]
        outputs.append(y)
        return state
    return step


def converted_for_one_size(engine: OpenVinoEngine, height: int, width: int, refine: bool):
    """A graph traced and converted with this working size fixed: what every new size cost before."""
    ov = import_openvino()
    shapes = state_shapes(engine.model, height, width)
    example = (torch.zeros(1, 3, height, width), *(torch.zeros(s) for s in shapes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = ov.convert_model(FrameGraph(engine.model, refine, False), example_input=example,
                                 input=[list(tensor.shape) for tensor in example])
    return ov.Core().compile_model(graph, "CPU", COMPILE_CONFIG), shapes


def size_table(torch_engine: MattingEngine, sizes: list[tuple[int, int]], frames: int) -> None:
    with tempfile.TemporaryDirectory() as cache:
        engine = OpenVinoEngine.from_engine(torch_engine, notice=lambda _: None)
        engine.cache = Path(cache)
        rows = []
        for index, (width, height) in enumerate(sizes):
            ratio = auto_downsample_ratio(height, width)
            fine = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
            bases, refine = engine.model.working_frames(fine, ratio)
            start = time.perf_counter()
            compiled, shapes = engine.compiled(*bases.shape[2:], refine, False)
            fixed = time.perf_counter() - start
            if index == 0:
                print(f"converting the graph once (open height and width), then compiling it for "
                      f"{bases.shape[3]}x{bases.shape[2]}: {fixed:.1f} s\n")
                print("| frame size | working size | compile s | converted alone s | open graph ms/frame | "
                      "converted alone ms/frame | PyTorch ms/frame | max difference |")
                print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            start = time.perf_counter()
            alone, alone_shapes = converted_for_one_size(engine, *bases.shape[2:], refine)
            alone_s = time.perf_counter() - start
            open_out, alone_out = [], []
            open_step, alone_step = graph_step(compiled, shapes, open_out), graph_step(alone, alone_shapes, alone_out)
            # Taking turns, three times each, the median kept: the machine is shared and noisy.
            turns = [(per_frame_ms(open_step, bases, frames), per_frame_ms(alone_step, bases, frames))
                     for _ in range(3)]
            open_ms, alone_ms = (statistics.median(times) for times in zip(*turns))
            difference = max(float(np.abs(a - b).max()) for a, b in zip(open_out, alone_out))
            with torch.inference_mode():
                torch_ms = per_frame_ms(lambda base, state, refine=refine: torch_engine.model.low_resolution(
                    base[None], state or [None] * 4, refine, False)[1], bases, frames)
            compile_s = "(above)" if index == 0 else f"{fixed:.2f}"
            rows.append(f"| {width}x{height} | {bases.shape[3]}x{bases.shape[2]} | {compile_s} | {alone_s:.1f} | "
                        f"{open_ms:.0f} | {alone_ms:.0f} | {torch_ms:.0f} | {difference:.1e} |")
            print(rows[-1], flush=True)


def first_batch(sizes: list[tuple[int, int]], frames: int) -> None:
    """``vmatte footage/ --out-dir out/`` in this process, one clip per size, with an empty graph cache."""
    preparing = []
    original = OpenVinoEngine._compile

    def timed_compile(self, key):
        start = time.perf_counter()
        try:
            return original(self, key)
        finally:
            preparing.append(time.perf_counter() - start)

    OpenVinoEngine._compile = timed_compile
    with tempfile.TemporaryDirectory() as work:
        footage = Path(work) / "footage"
        footage.mkdir()
        for width, height in sizes:
            make_clip(footage / f"clip_{width}x{height}.mp4", width, height, frames)
        os.environ["VMATTE_HOME"] = str(Path(work) / "home")
        start = time.perf_counter()
        result = CliRunner().invoke(app, ["run", str(footage), "--out-dir", str(Path(work) / "out"), "-q"])
        total = time.perf_counter() - start
        if result.exit_code != 0:
            raise SystemExit(result.output)
    prepared = sum(preparing)
    print(f"\nfirst batch, {len(sizes)} clips of {frames} frames ({', '.join(f'{w}x{h}' for w, h in sizes)}), "
          f"empty graph cache: {total:.1f} s in all, preparing graphs {prepared:.1f} s ({len(preparing)} sizes), "
          f"everything else {total - prepared:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="640x360,640x428,1280x720,1920x1080,3840x2160")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-frames", type=int, default=0, help="Frames per clip of the first-batch run (0: none).")
    options = parser.parse_args()
    sizes = [tuple(map(int, size.split("x"))) for size in options.sizes.split(",")]
    torch_engine = MattingEngine.load(device=torch.device("cpu"), precision="fp32", notice=lambda _: None)
    size_table(torch_engine, sizes, options.frames)
    if options.batch_frames:
        first_batch(sizes, options.batch_frames)


if __name__ == "__main__":
    main()
