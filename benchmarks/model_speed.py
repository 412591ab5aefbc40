"""Frames per second of the RVM network alone (frames already in memory), as the model issue asks:
1920x1080 at downsample ratio 0.25 and 960x540 at 0.4, alpha + foreground, on this machine's CPU.

    python benchmarks/model_speed.py [--weights PATH] [--frames 60] [--chunk 4] [--alpha-only]

Without --weights it uses the model vmatte would use by default (VMATTE_WEIGHTS / cache lookup).
"""

import argparse
import time

import torch

from vmatte.inference import MattingEngine, choose_device

CASES = [((1080, 1920), 0.25), ((540, 960), 0.4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="rvm-mobilenetv3")
    parser.add_argument("--weights")
    parser.add_argument("--refiner", choices=["deep_guided_filter", "fast_guided_filter"])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--chunk", type=int, default=4)
    parser.add_argument("--alpha-only", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    device = choose_device(args.device)
    for (height, width), ratio in CASES:
        engine = MattingEngine.load(args.model, args.weights, device=device, precision=args.precision,
                                    refiner=args.refiner)
        frames = torch.rand(args.chunk, height, width, 3).permute(0, 3, 1, 2)  # decoded frames are HWC
        state = None
        engine.run(frames, state, ratio, need_fgr=not args.alpha_only)  # warm-up: allocator, kernels
        done = 0
        start = time.perf_counter()
        while done < args.frames:
            out = engine.run(frames, state, ratio, need_fgr=not args.alpha_only)
            state = out.state
            done += args.chunk
        if device.type == "cuda":
            torch.cuda.synchronize()
        fps = done / (time.perf_counter() - start)
        print(f"{width}x{height} ratio {ratio}: {fps:.1f} fps ({engine.describe()}, chunk {args.chunk}, "
              f"{'alpha only' if args.alpha_only else 'alpha + foreground'})")


if __name__ == "__main__":
    main()
