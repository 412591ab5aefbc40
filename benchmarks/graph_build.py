"""What the OpenVINO backend's CPU graph costs per frame size, against the frames it speeds up:

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/graph_build.py [--sizes 640x360,3840x2160]

For each frame size (at ``--downsample-ratio auto``, so the model works at a long side of about 640 px): the
seconds to build the graph (trace, convert, save) in an empty cache, to load it from the cache (a later run), the
ms per frame on OpenVINO and on PyTorch (``--frames`` frames after a warm-up), and the break-even: the clip length
in frames from which building the graph once and running OpenVINO beats running PyTorch from the start. A batch of
short clips of many sizes pays one build per size (the cache keeps them for later runs).
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from vmatte.inference import MattingEngine
from vmatte.inference_openvino import OpenVinoEngine
from vmatte.settings import auto_downsample_ratio


def per_frame_ms(engine: MattingEngine, frames: torch.Tensor, ratio: float, count: int) -> float:
    state = engine.run(frames[:1], None, ratio, need_fgr=False).state  # warm-up
    start = time.perf_counter()
    for index in range(count):
        state = engine.run(frames[index % len(frames)][None], state, ratio, need_fgr=False).state
    return 1000 * (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="640x360,640x428,1280x720,1920x1080,3840x2160")
    parser.add_argument("--frames", type=int, default=8)
    options = parser.parse_args()
    torch_engine = MattingEngine.load(device=torch.device("cpu"), precision="fp32",
                                      notice=lambda _: None)
    print("| frame size | working size | build s | load s | OpenVINO ms/frame | PyTorch ms/frame | break-even frames |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size in options.sizes.split(","):
        width, height = map(int, size.split("x"))
        ratio = auto_downsample_ratio(height, width)
        frames = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
        with tempfile.TemporaryDirectory() as cache:
            engine = OpenVinoEngine.from_engine(torch_engine, notice=lambda _: None)
            engine.cache = Path(cache)
            base, refine = engine.model.working_frames(frames[:1], ratio)
            start = time.perf_counter()
            engine.compiled(*base.shape[2:], refine, False)
            build = time.perf_counter() - start
            reloaded = OpenVinoEngine.from_engine(torch_engine, notice=lambda _: None)
            reloaded.cache = Path(cache)
            start = time.perf_counter()
            reloaded.compiled(*base.shape[2:], refine, False)
            load = time.perf_counter() - start
            openvino_ms = per_frame_ms(engine, frames, ratio, options.frames)
        torch_ms = per_frame_ms(torch_engine, frames, ratio, options.frames)
        gain = torch_ms - openvino_ms
        even = f"{1000 * build / gain:.0f}" if gain > 0 else "never"
        print(f"| {width}x{height} | {base.shape[3]}x{base.shape[2]} | {build:.1f} | {load:.2f} | {openvino_ms:.0f} | "
              f"{torch_ms:.0f} | {even} |", flush=True)


if __name__ == "__main__":
    main()
