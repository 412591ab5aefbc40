"""Where a run's time goes: each stage of the pipeline timed alone, in milliseconds per frame.

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/stages.py [--frames 32] \\
        [--backends torch,openvino]

Cases (the clips ``throughput.py`` builds from the bedroom sample): 1920x1080 at ratio 0.25 with an 8-bit PNG
matte, and 1280x720 at the automatic ratio with alpha and foreground ProRes. Stages: decoding (PyAV, and the
colour conversion to RGB), the hand-over to the model (frames to a float tensor), the model per backend split
into downsampling, the network at its working size (for OpenVINO: the compiled graph and its inputs and
outputs, then the kinds of node that take most of its time in OpenVINO's own profile) and the full-resolution
guided-filter step, and each output's writer (conversion to the file's pixel format and encoding). The
pipeline runs decoding, the model and the writers in three threads on the same cores, so a run takes about the
sum of their CPU time divided by the cores, when no stage waits on another.
"""

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import make_clip  # noqa: E402

from vmatte.backends import load_on_backend  # noqa: E402
from vmatte.heap import reuse_large_blocks  # noqa: E402
from vmatte.inference import MattingEngine  # noqa: E402
from vmatte.inference_openvino import COMPILE_CONFIG, OpenVinoEngine, import_openvino  # noqa: E402
from vmatte.io import open_source, open_writer  # noqa: E402
from vmatte.models.matting_network import full_resolution  # noqa: E402
from vmatte.settings import auto_downsample_ratio  # noqa: E402
from vmatte.temporal import frames_to_tensor  # noqa: E402

CHUNK = 4
PROFILE_ROWS = 6  # the kinds of node that take most of the network's time
CASES = [((1920, 1080), 0.25, {"alpha": "alpha/%06d.png"}),
         ((1280, 720), None, {"alpha": "alpha.mov", "fgr": "fgr.mov"})]


def timed(frames: int, work):
    """(milliseconds per frame over ``frames`` frames, result) of ``work()``, timed on its second run: the first
    also grows the process's heap, or builds a compiled graph."""
    work()
    start = time.perf_counter()
    result = work()
    return 1000 * (time.perf_counter() - start) / frames, result


def model_stages(engine: MattingEngine, chunks: list[torch.Tensor], ratio: float, need_fgr: bool) -> dict:
    frames = sum(len(c) for c in chunks)
    downsampled = ratio != 1
    semantics = engine.model.semantics

    def run() -> None:
        state = None
        for chunk in chunks:
            state = engine.run(chunk, state, ratio, need_fgr).state

    total, _ = timed(frames, run)
    down, _ = timed(frames, lambda: [semantics.downsample(c, ratio) for c in chunks]) if downsampled else (0.0, None)
    with torch.inference_mode():
        base, refine = engine.model.working_frames(chunks[0], ratio)
        (x, y), _ = engine.model.low_resolution(base, [None] * 4, refine, need_fgr)
        step, _ = timed(frames, lambda: [full_resolution(x, y, c, refine, need_fgr) for c in chunks])
    return {"model (all)": total, "  downsample": down, "  network": total - down - step, "  full resolution": step}


def network_profile(engine: OpenVinoEngine, chunk: torch.Tensor, ratio: float, need_fgr: bool, frames: int) -> dict:
    """The network's time by kind of node, from OpenVINO's own per-node profile (PERF_COUNT) of the graph the
    engine compiled for this shape: where the network's time goes inside the compiled graph."""
    base, refine = engine.model.working_frames(chunk, ratio)
    model, _ = engine.sized_graph(*base.shape[2:], refine, need_fgr)
    compiled = import_openvino().Core().compile_model(model, "CPU", {**COMPILE_CONFIG, "PERF_COUNT": True})
    request = compiled.create_infer_request()
    inputs = [np.ascontiguousarray(base[:1].numpy())] + [np.zeros(put.shape, np.float32) for put in compiled.inputs[1:]]
    request.infer(inputs)
    by_kind: Counter = Counter()
    for _ in range(frames):
        request.infer(inputs)
        for node in request.profiling_info:
            by_kind[node.node_type] += node.real_time.total_seconds() * 1000 / frames
    return {f"    {kind}": ms for kind, ms in by_kind.most_common(PROFILE_ROWS)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--backends", default="torch,openvino")
    parser.add_argument("--work", type=Path, help="Folder for the generated clips (kept between runs).")
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="Leave the C heap as glibc sets it (freed large blocks go back to the kernel), "
                             "as vmatte ran before vmatte/heap.py.")
    args = parser.parse_args()
    if not args.glibc_defaults:
        reuse_large_blocks()  # as every vmatte run does
    work = args.work or Path(tempfile.mkdtemp(prefix="vmatte-stages-"))
    work.mkdir(parents=True, exist_ok=True)
    engines = {name: load_on_backend(device=torch.device("cpu"), precision="fp32", backend=name,
                                        notice=lambda m: None) for name in args.backends.split(",")}
    print(f"# {' '.join(sys.argv)}; ms per frame, each stage alone on {torch.get_num_threads()} threads")
    for (width, height), ratio, outputs in CASES:
        ratio = ratio or auto_downsample_ratio(height, width)
        need_fgr = "fgr" in outputs
        clip = make_clip(work / f"clip_{width}x{height}_5s.mp4", width, height, 150)
        rows: dict[str, str] = {}
        with open_source(clip) as source:
            ms, decoded = timed(args.frames, lambda: [f for _, f in zip(range(args.frames), source.frames())])
            rows["decode + colour"] = f"{ms:.1f}"
            info = source.info
        batches = [decoded[i:i + CHUNK] for i in range(0, len(decoded), CHUNK)]
        ms, chunks = timed(len(decoded), lambda batches=batches: [frames_to_tensor(b) for b in batches])
        rows["to tensor"] = f"{ms:.1f}"
        for name, engine in engines.items():
            for stage, ms in model_stages(engine, chunks, ratio, need_fgr).items():
                rows[f"{stage} ({name})"] = f"{ms:.1f}"
            if isinstance(engine, OpenVinoEngine):
                for kind, ms in network_profile(engine, chunks[0], ratio, need_fgr, args.frames).items():
                    rows[f"{kind} ({name} profile)"] = f"{ms:.1f}"
        output = engine.run(chunks[0], None, ratio, need_fgr)
        pha = output.pha[0, :, 0].numpy()
        images = {"alpha": [p[..., None] for p in pha]}
        if need_fgr:
            images["fgr"] = [np.concatenate([f.permute(1, 2, 0).numpy(), p[..., None]], axis=2)
                             for f, p in zip(output.fgr[0], pha)]
        for kind, name in outputs.items():
            frames = images[kind] * -(-args.frames // len(images[kind]))
            with open_writer(kind, work / name, info, png_depth=8) as writer:
                # pts: one per frame, counting on over both runs
                ms, _ = timed(len(frames), lambda frames=frames, writer=writer: [
                    writer.write(image, writer.frames_written) for image in frames])
            rows[f"write {kind} {Path(name).suffix}"] = f"{ms:.1f}"
        print(f"\n## {width}x{height}, ratio {ratio:g}, {' + '.join(outputs)}\n\n| stage | ms/frame |\n| --- | --- |")
        for stage, ms in rows.items():
            print(f"| {stage} | {ms} |")


if __name__ == "__main__":
    main()
