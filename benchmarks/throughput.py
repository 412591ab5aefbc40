"""End-to-end speed and memory of ``vmatte`` (decode -> model -> encode), as the pipeline issue asks.

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/throughput.py \\
        [--experiments speed,memory,checkpoint] [--seconds 10] [--long-minutes 10]

speed       fps for alpha-only PNG (16-bit), alpha-only ProRes and foreground ProRes at 1920x1080 (ratio 0.25)
            and 960x540 (ratio 0.4), 10-second clips made by scaling and looping a sample
memory      peak resident memory of a run on a 10-second and a 10-minute 640x360 clip (same sample, looped;
            alpha ProRes, ratio 0.5)
checkpoint  fps with the usual segment/checkpoint cadence against one segment for the whole clip
weights     the float32 default (ONNX release, deep guided filter) against the uint8 export (fast guided filter),
            this checkout, the same three cases as compare
compare     this checkout (on the backend ``auto`` picks, and on PyTorch) against ``--baseline`` (an earlier
            checkout, e.g. ``git worktree add /tmp/base 8d20426``), runs taking turns (A, B, C, A, B, C):
            1920x1080 ratio 0.25 8-bit PNG alpha, 1280x720 at default settings with alpha + foreground ProRes,
            960x540 at default settings with alpha ProRes; ``--rounds`` runs each
Each run is a separate ``vmatte`` process (its own start-up excluded from fps: the figure is the one vmatte
prints, frames over the time from the first decoded frame to the finished files).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared/samples/portrait_videos/sam2_bedroom_child_960x540.mp4"
RATE = Fraction(30)


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """The sample scaled to width x height and looped (forwards, then backwards, so motion stays smooth)."""
    if path.exists():
        return path
    with av.open(str(SAMPLE)) as source:
        pictures = [f.reformat(width=width, height=height, format="yuv420p") for f in source.decode(video=0)]
    loop = pictures + pictures[-2:0:-1]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=RATE, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            picture = loop[index % len(loop)]
            frame = av.VideoFrame.from_ndarray(picture.to_ndarray(), format="yuv420p")
            frame.pts = index
            frame.time_base = 1 / RATE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def run_vmatte(args: list[str], cwd: Path, code: Path | None = None) -> float:
    """The fps vmatte reports for one run (of the vmatte in ``code``, else the one installed)."""
    env = {**os.environ, "PYTHONPATH": str(code)} if code else None
    result = subprocess.run([sys.executable, "-m", "vmatte", *args, "--overwrite", "--fresh"], cwd=cwd,
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"vmatte failed: {result.stderr}")
    return float(re.search(r"\(([\d.]+) fps\)", result.stderr).group(1))


def speed(work: Path, seconds: float) -> None:
    print(f"{'size':>10} {'ratio':>5} {'output':<22} {'fps':>6}")
    for (width, height), ratio in (((1920, 1080), 0.25), ((960, 540), 0.4)):
        clip = make_clip(work / f"clip_{width}x{height}_{seconds}s.mp4", width, height, int(seconds * RATE))
        for label, outputs in (("alpha PNG 16-bit", ["--out", "alpha/"]), ("alpha ProRes", ["--out", "a.mov"]),
                               ("fgr ProRes", ["--fgr", "f.mov"])):
            fps = run_vmatte([str(clip), *outputs, "-r", str(ratio)], work)
            print(f"{width}x{height:<5} {ratio:>5} {label:<22} {fps:6.1f}", flush=True)


def memory(work: Path, seconds: float, minutes: float) -> None:
    # Peak memory is measured per process: each run is its own child, so ru_maxrss is read per run.
    print(f"{'clip':>12} {'frames':>7} {'fps':>6} {'peak MiB':>9}")
    for label, frames in ((f"{seconds} s", int(seconds * RATE)), (f"{minutes} min", int(minutes * 60 * RATE))):
        clip = make_clip(work / f"clip_640x360_{frames}.mp4", 640, 360, frames)
        code = ("import resource, sys; from vmatte.cli import main; sys.argv = ['vmatte', *sys.argv[1:]]\n"
                "try:\n    main()\nfinally:\n"
                "    print('peak-kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
        result = subprocess.run([sys.executable, "-c", code, str(clip), "--out", "a.mov", "-r", "0.5", "--overwrite",
                                 "--fresh"], cwd=work, capture_output=True, text=True)
        peak = int(re.search(r"peak-kib (\d+)", result.stderr).group(1)) / 1024
        fps = float(re.search(r"\(([\d.]+) fps\)", result.stderr).group(1)) if "fps)" in result.stderr else 0.0
        print(f"{label:>12} {frames:7d} {fps:6.1f} {peak:9.0f}", flush=True)


def checkpoint_overhead(work: Path, seconds: float) -> None:
    clip = make_clip(work / f"clip_960x540_{seconds}s.mp4", 960, 540, int(seconds * RATE))
    code = ("import sys, vmatte.pipeline as p; p.SEGMENT_FRAMES = int(sys.argv.pop(1))\n"
            "from vmatte.cli import main; sys.argv = ['vmatte', *sys.argv[1:]]; main()")
    results = {}
    for segment in (64, 10**9):
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", code, str(segment), str(clip), "--out", "a.mov", "-r",
                                  "0.4", "--overwrite", "--fresh"], cwd=work, capture_output=True, text=True)
            runs.append(float(re.search(r"\(([\d.]+) fps\)", out.stderr).group(1)))
        results[segment] = max(runs)
    with_cp, without = results[64], results[10**9]
    print(f"checkpoint every 64 frames: {with_cp:.2f} fps; one segment: {without:.2f} fps; "
          f"overhead {100 * (1 - with_cp / without):.1f} %")


def compare(work: Path, seconds: float, baseline: Path, rounds: int) -> None:
    side_by_side(work, seconds, rounds, {f"baseline ({baseline.name})": (baseline, []), "now (auto)": (REPO, []),
                                         "now, --backend torch": (REPO, ["--backend", "torch"])})


def weights(work: Path, seconds: float, rounds: int) -> None:
    side_by_side(work, seconds, rounds, {"uint8 export, fast guided filter": (REPO, ["-m", "rvm-mobilenetv3-int8"]),
                                         "float32 default, deep guided filter": (REPO, [])})


def side_by_side(work: Path, seconds: float, rounds: int, variants: dict[str, tuple[Path, list[str]]]) -> None:
    """The three cases, each variant (name: (code, extra arguments); the first is what the speed-ups are
    against) run ``rounds`` times, taking turns."""
    print(f"| input | outputs | {' | '.join(f'{name} fps' for name in variants)} | "
          f"{' | '.join(f'speed-up {name}' for name in list(variants)[1:])} |")
    print("|" + " --- |" * (2 + 2 * len(variants) - 1))
    for (width, height), label, outputs in (((1920, 1080), "alpha PNG 8-bit, r 0.25",
                                             ["--out", "alpha/", "--png-depth", "8", "-r", "0.25"]),
                                            ((1280, 720), "alpha + fgr ProRes, defaults",
                                             ["--out", "a.mov", "--fgr", "f.mov"]),
                                            ((960, 540), "alpha ProRes, defaults", ["--out", "a.mov"])):
        clip = make_clip(work / f"clip_{width}x{height}_{seconds}s.mp4", width, height, int(seconds * RATE))
        for code, extra in variants.values():  # untimed: builds each variant's compiled model for this shape
            run_vmatte([str(clip), *outputs, *extra], work, code)
        fps: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, (code, extra) in variants.items():
                fps[name].append(run_vmatte([str(clip), *outputs, *extra], work, code))
        runs = list(fps.values())
        medians = [statistics.median(series) for series in runs]
        ups = [statistics.median(b / a for a, b in zip(runs[0], series)) for series in runs[1:]]
        print(f"| {width}x{height} | {label} | {' | '.join(f'{m:.2f}' for m in medians)} | "
              f"{' | '.join(f'{u:.2f}x' for u in ups)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", default="speed,memory,checkpoint")
    parser.add_argument("--seconds", type=float, default=10)  # fractions: a few frames (the tests)
    parser.add_argument("--long-minutes", type=float, default=10)
    parser.add_argument("--baseline", type=Path, help="Earlier checkout for --experiments compare.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, help="Folder for the generated clips (kept between runs).")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="vmatte-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {' '.join(sys.argv)}  (clips in {work})")
    started = time.perf_counter()
    for experiment in args.experiments.split(","):
        print(f"\n## {experiment}")
        {"speed": lambda: speed(work, args.seconds),
         "memory": lambda: memory(work, args.seconds, args.long_minutes),
         "checkpoint": lambda: checkpoint_overhead(work, args.seconds),
         "compare": lambda: compare(work, args.seconds, args.baseline, args.rounds),
         "weights": lambda: weights(work, args.seconds, args.rounds)}[experiment]()
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
