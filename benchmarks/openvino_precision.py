"""OpenVINO below float32: is it faster here, and are its mattes still the official model's?

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/openvino_precision.py [--frames 40]

The graph is the one vmatte's OpenVINO backend runs at 1920x1080, ratio 0.25, alpha only (the network at
480x270, ``inference_openvino.py``), built or read from the cache. Variants:
  f32   what vmatte ships (INFERENCE_PRECISION_HINT f32)
  bf16  OpenVINO's bf16 hint (used natively on CPUs with AVX512-BF16 or AMX; elsewhere it stays f32)
  int8  NNCF post-training quantisation (``pip install nncf``; skipped without it), calibrated on three other
        sample clips, the guided filter's coefficients and the output projection left in float
The bedroom sample, resized to 1080p, runs through each with its own recurrent state carried; each matte is
finished at 1080p by vmatte's full-resolution step and compared with float32's against the golden tolerances
(max 1e-2, mean 2e-4, at most 0.01 % of pixels off by more than 1e-3). Time: the network alone, one frame per
call, variants taking turns (median of rounds).
"""

import argparse
import dataclasses
import statistics
import time

import cv2
import numpy as np
import torch
from model_speed import SAMPLE

from vmatte.heap import reuse_large_blocks
from vmatte.inference import MattingEngine
from vmatte.inference_openvino import COMPILE_CONFIG, OpenVinoEngine, import_openvino
from vmatte.io import open_source
from vmatte.models.matting_network import full_resolution
from vmatte.temporal import frames_to_tensor

SIZE, RATIO = (1920, 1080), 0.25
CALIBRATION = ["sam2_coffee_hands_2997_aac.mp4", "androidx_webcam_face_640x428.mov",
               "androidx_face_portrait_720x1080.mp4"]  # other clips of the samples folder


def clip_frames(path, count: int) -> torch.Tensor:
    """The clip's first frames at 1080p, as the pipeline hands them to an engine."""
    with open_source(path) as source:
        frames = [dataclasses.replace(frame, rgb=cv2.resize(frame.rgb, SIZE, interpolation=cv2.INTER_AREA))
                  for _, frame in zip(range(count), source.frames())]
    return frames_to_tensor(frames)


def network_inputs(engine: OpenVinoEngine, fine: torch.Tensor) -> list[np.ndarray]:
    return [np.ascontiguousarray(base.numpy()[None]) for base in engine.model.semantics.downsample(fine, RATIO)]


def run_clip(compiled, bases: list[np.ndarray], shapes: list[tuple]):
    """(inputs, outputs) per frame, the state carried as vmatte carries it."""
    request = compiled.create_infer_request()
    state = [np.zeros(shape, np.float32) for shape in shapes]
    for base in bases:
        inputs = [base, *state]
        request.infer(inputs)
        outputs = [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]
        yield inputs, outputs
        state = outputs[2:]


def quantised(model, calibration: list[tuple[list, list]]):
    try:
        import nncf
    except ImportError:
        return None
    samples = [inputs for inputs, _ in calibration]
    # The guided filter's variances cancel catastrophically below float32 (see MattingNetwork.low_resolution).
    keep_float = nncf.IgnoredScope(patterns=[".*refiner.*", ".*project_mat.*"], validate=False)
    return nncf.quantize(model, nncf.Dataset(samples, lambda inputs: dict(enumerate(inputs))),
                         subset_size=len(samples), ignored_scope=keep_float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    reuse_large_blocks()
    ov = import_openvino()
    engine = OpenVinoEngine.from_engine(MattingEngine.load(device=torch.device("cpu"), precision="fp32",
                                                           notice=lambda message: None))
    fine = clip_frames(SAMPLE, args.frames)
    bases = network_inputs(engine, fine)
    height, width = bases[0].shape[2:]
    compiled_f32, shapes = engine.compiled(height, width, True, False)
    model, _ = engine.sized_graph(height, width, True, False)
    variants = {"f32": compiled_f32,
                "bf16": ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})}
    calibration = [step for name in CALIBRATION
                   for step in run_clip(compiled_f32, network_inputs(engine, clip_frames(SAMPLE.parent / name, 40)),
                                        shapes)]
    int8 = quantised(model, calibration)
    if int8 is not None:
        variants["int8"] = ov.Core().compile_model(int8, "CPU", COMPILE_CONFIG)

    mattes = {}
    for name, compiled in variants.items():
        mattes[name] = torch.cat([full_resolution(torch.from_numpy(a), torch.from_numpy(b), fine[t:t + 1], True,
                                                  False)[1]
                                  for t, (_, (a, b, *_)) in enumerate(run_clip(compiled, bases, shapes))])
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, compiled in variants.items():
            request, inputs = compiled.create_infer_request(), calibration[len(calibration) // 2][0]
            request.infer(inputs)
            started = time.perf_counter()
            for _ in range(10):
                request.infer(inputs)
            times[name].append((time.perf_counter() - started) / 10 * 1e3)

    print(f"# {args.frames} frames of the bedroom sample at 1920x1080, ratio 0.25 (network at {width}x{height}); "
          f"openvino {ov.__version__}{'' if int8 is not None else '; int8 skipped: pip install nncf'}")
    print("| variant | network ms/frame | matte max diff | mean diff | pixels off > 1e-3 | golden tolerances |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in variants:
        diff = (mattes[name] - mattes["f32"]).abs()
        max_diff, mean_diff, share = diff.max().item(), diff.mean().item(), (diff > 1e-3).float().mean().item()
        holds = max_diff <= 1e-2 and mean_diff <= 2e-4 and share <= 1e-4
        print(f"| {name} | {statistics.median(times[name]):.1f} | {max_diff:.2e} | {mean_diff:.2e} | "
              f"{share * 100:.3f} % | {'hold' if holds else 'fail'} |")


if __name__ == "__main__":
    main()
