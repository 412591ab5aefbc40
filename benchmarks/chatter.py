"""Does the review report's chatter score track real flicker? Checked on benchmarks/quality.py's clips, whose
ground truth is exact (issue "a preview contact sheet and a review report").

Each clip is matted as vmatte runs it (default model, automatic ratio, pre-roll and cut handling), its frames and
mattes go through the report's statistics collector (``vmatte.frame_stats``), and each frame's chatter score is
set against the ground-truth flicker error of that frame, dtSSD (``vmatte.metrics``). Printed: Pearson and
Spearman correlation over all frames (first frames of shots left out: neither has a previous frame), the same
within each clip, and how the frames the report flags rank by true dtSSD in their clip.

    VMATTE_WEIGHTS=../shared/weights python benchmarks/chatter.py [--frames 60] [--size 640x360]
        [--figure docs/review-chatter.png]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import SHARED, parse_size, reproduce_command, synthetic_clips  # noqa: E402

from vmatte.frame_stats import FrameStats  # noqa: E402
from vmatte.inference import MattingEngine  # noqa: E402
from vmatte.io import SourceFrame  # noqa: E402
from vmatte.metrics import dtssd  # noqa: E402
from vmatte.models.weights import DEFAULT_MODEL  # noqa: E402
from vmatte.settings import TemporalOptions, auto_downsample_ratio  # noqa: E402
from vmatte.temporal import MattedFrame, matted_frames  # noqa: E402

CHUNK = 4


def ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks, ties averaged."""
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values))
    ranked[order] = np.arange(len(values))
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and x.std() > 0 and y.std() > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(ranks(x), ranks(y))


def clip_scores(engine: MattingEngine, clip, ratio: float) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    """(chatter per frame, true dtSSD per frame, flagged frames, frames that have a previous one in their shot)."""
    mattes = [m.pha for m in matted_frames(engine, clip.frames, ratio, TemporalOptions(), CHUNK)]
    stats = FrameStats(0, len(clip.frames))
    for index, (frame, matte) in enumerate(zip(clip.frames, mattes)):
        stats.see([SourceFrame(index, index, index / 25, frame)])
        stats.add(MattedFrame(index, index, matte, None))
    true = np.array([0.0] + [dtssd(mattes[t], mattes[t - 1], clip.gt_alphas[t], clip.gt_alphas[t - 1])
                             for t in range(1, len(mattes))])
    within_shot = np.ones(len(mattes), bool)
    within_shot[clip.shot_starts] = False
    return np.array(stats.chatter), true, stats.flagged()["chatter"], within_shot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (the cut clip cuts halfway)")
    parser.add_argument("--size", type=parse_size, default=(640, 360), help="WxH of the clips")
    parser.add_argument("--backgrounds-per-portrait", type=int, default=1, choices=(1, 2, 3))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--samples", type=Path, default=SHARED / "samples")
    parser.add_argument("--figure", type=Path, help="write a PNG of chatter against true dtSSD here")
    args = parser.parse_args()
    print(f"# {reproduce_command()}")
    started = time.perf_counter()
    engine = MattingEngine.load(args.model, notice=lambda message: None)
    ratio = auto_downsample_ratio(args.size[1], args.size[0])
    print(f"# {engine.describe()}, ratio {ratio:.3g}, {args.size[0]}x{args.size[1]}, {args.frames} frames per clip")
    rows, pooled_chatter, pooled_true, curves = [], [], [], []
    for clip in synthetic_clips(args.samples, args.frames, *args.size, args.backgrounds_per_portrait,
                                framings=("close",)):
        chatter, true, flagged, within_shot = clip_scores(engine, clip, ratio)
        x, y = chatter[within_shot], true[within_shot]
        pooled_chatter.append(x)
        pooled_true.append(y)
        # Where the flagged frames rank by true dtSSD in their clip: 100 = the worst frame.
        position = np.cumsum(within_shot) - 1  # frame -> its place in x and y
        percentile = [100 * ranks(y)[position[f]] / max(len(y) - 1, 1) for f in flagged if within_shot[f]]
        rows.append((clip.name, pearson(x, y), spearman(x, y), len(flagged), percentile))
        curves.append((clip.name, chatter, true))
        print(f"{clip.name}: Pearson {rows[-1][1]:.2f}, Spearman {rows[-1][2]:.2f}, {len(flagged)} flagged "
              f"(true dtSSD percentile {', '.join(f'{p:.0f}' for p in percentile) or '-'})", flush=True)
    x, y = np.concatenate(pooled_chatter), np.concatenate(pooled_true)
    flagged_percentiles = [p for row in rows for p in row[4]]
    print(f"\nall {len(x)} frames: Pearson {pearson(x, y):.2f}, Spearman {spearman(x, y):.2f}; "
          f"mean per clip: Pearson {np.nanmean([r[1] for r in rows]):.2f}, "
          f"Spearman {np.nanmean([r[2] for r in rows]):.2f}")
    if flagged_percentiles:
        print(f"flagged frames: {len(flagged_percentiles)}, median true-dtSSD percentile in their clip "
              f"{np.median(flagged_percentiles):.0f} (100: the clip's worst frame)")
    else:
        print("flagged frames: none")
    print(f"# {time.perf_counter() - started:.0f} s in all")
    if args.figure:
        write_figure(args.figure, curves, x, y)


def write_figure(path: Path, curves: list, chatter: np.ndarray, true: np.ndarray) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), dpi=90)
    scatter, lines = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    scatter.scatter(true, chatter, s=8, alpha=0.6)
    scatter.set_xlabel("true dtSSD (ground truth)")
    scatter.set_ylabel("chatter score (no ground truth)")
    scatter.set_title(f"all frames: Pearson {pearson(chatter, true):.2f}, Spearman {spearman(chatter, true):.2f}",
                      fontsize=10)
    name, clip_chatter, clip_true = max(curves, key=lambda curve: curve[2].max())
    lines.plot(clip_true, label="true dtSSD")
    lines.plot(clip_chatter, label="chatter score")
    lines.set_xlabel("frame")
    lines.set_title(name, fontsize=10)
    lines.legend(frameon=False)
    figure.tight_layout()
    figure.savefig(path, format="png")


if __name__ == "__main__":
    main()
