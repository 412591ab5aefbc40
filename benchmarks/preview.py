"""How close ``vmatte preview`` comes to a full run, and how much quicker it is (issue "a preview contact sheet and
a review report").

For each clip: every frame matted as a full run mattes it (``vmatte.temporal.matted_frames`` over the decoded
clip, with a run's default temporal options), then the preview's frames (``vmatte.preview.preview_frames``), each
after its own warm-up. Printed per clip: MAD x1e3 and the largest absolute difference of each preview matte from the
full run's at the same frame, the preview's time against the full run's, and the preview's estimate of it.

    VMATTE_WEIGHTS=../shared/weights python benchmarks/preview.py CLIP [CLIP ...] [--frames 12] [--warm-ups 4]
        [--hd-frames N] [--commands]

``--warm-ups 4,8,16`` previews each clip once per warm-up length (frames matted before each preview frame), against
the same full run. ``--hd-frames N`` adds a 1920x1080 clip of N frames made from the bedroom sample
(``throughput.make_clip``, H.264 with x264's default keyframe interval), the kind of clip a preview is for.
``--commands`` also times, per clip, the two commands a user runs, each a whole process (start-up included), one
after the other: ``vmatte preview CLIP --out sheet.png`` and the full run ``vmatte CLIP --out alpha.mov``.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from throughput import make_clip

from vmatte.contact_sheet import evenly_spaced
from vmatte.io import open_source
from vmatte.pipeline import job_ratio, load_engine
from vmatte.presets import job_settings
from vmatte.preview import WARM_UP, preview_frames, seconds_per_frame
from vmatte.temporal import matted_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", type=Path, nargs="*")
    parser.add_argument("--hd-frames", type=int, help="also a 1920x1080 clip of this many frames")
    parser.add_argument("--frames", type=int, default=12, help="preview frames per clip")
    parser.add_argument("--commands", action="store_true",
                        help="also time vmatte preview and the full run as commands")
    parser.add_argument("--warm-ups", type=lambda text: [int(part) for part in text.split(",")], default=[WARM_UP],
                        help="warm-up lengths to compare (frames before each preview frame)")
    args = parser.parse_args()
    if args.hd_frames:
        work = Path(tempfile.mkdtemp(prefix="vmatte-preview-"))
        args.clips.append(make_clip(work / f"bedroom_1920x1080_{args.hd_frames}.mp4", 1920, 1080, args.hd_frames))
    worst = 0.0
    for clip in args.clips:
        settings = job_settings(clip, {}, {})
        engine = load_engine(settings, notice=lambda message: None)
        with open_source(clip) as source:
            info = source.info
            temporal = settings.temporal.for_source(info.is_image_sequence)
            shown = set(evenly_spaced(0, info.frame_count, args.frames))  # the frames a preview shows
            started = time.perf_counter()
            full = {m.index: m.pha for m in matted_frames(engine, (f.rgb for f in source.frames()),
                                                          job_ratio(settings, info), temporal, settings.chunk)
                    if m.index in shown}  # only these kept: a long HD clip's mattes would not fit in memory
            full_seconds = time.perf_counter() - started
        for warm_up in args.warm_ups:
            started = time.perf_counter()
            _, count, matted = preview_frames(settings, engine, args.frames, warm_up)
            previews = list(matted)
            preview_seconds = time.perf_counter() - started
            mad = [np.abs(p.matte.pha - full[p.source.index]).mean() * 1e3 for p in previews]
            largest = [float(np.abs(p.matte.pha - full[p.source.index]).max()) for p in previews]
            worst = max(worst, max(mad))
            print(f"{clip.name} ({info.width}x{info.height}, {count} frames): preview of {len(previews)} frames "
                  f"after {warm_up} warm-up frames MAD x1e3 max {max(mad):.2f} (median {np.median(mad):.2f}), "
                  f"largest difference {max(largest):.3f}; preview {preview_seconds:.1f} s = "
                  f"{100 * preview_seconds / full_seconds:.0f} % of the full run's {full_seconds:.1f} s (estimated "
                  f"{count * seconds_per_frame(previews):.1f} s)", flush=True)
        if args.commands:
            commands(clip, args.frames)
    print(f"worst preview frame: MAD x1e3 {worst:.2f}")


def commands(clip: Path, frames: int) -> None:
    """``vmatte preview`` against the full run, each timed as the process a user starts."""
    seconds = {}
    with tempfile.TemporaryDirectory() as out:
        for name, args in {"preview": ["preview", clip, "--frames", frames, "--out", f"{out}/sheet.png"],
                           "full run": [clip, "--out", f"{out}/alpha.mov", "-q"]}.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vmatte", *map(str, args)], check=True, capture_output=True)
            seconds[name] = time.perf_counter() - started
    print(f"{clip.name}: commands: vmatte preview {seconds['preview']:.1f} s, the full run {seconds['full run']:.1f} s "
          f"({100 * seconds['preview'] / seconds['full run']:.1f} %)", flush=True)


if __name__ == "__main__":
    main()
