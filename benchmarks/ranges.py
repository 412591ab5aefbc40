"""How close a range's mattes come to a full run's at the same frames, against the warm-up before the range
(issue "Pulls from an edit").

For each clip (decoded, scaled to --width), a full run (vmatte's defaults: pre-roll 16, cut handling) gives the
reference mattes. Each range [S, S + --length) is then matted alone after one of these warm-ups:

  preroll:L   the state built on the L frames before S (from the last cut among them), as --start did before
  replay:L    a run from W = max(S - L, the last cut before S) as a full run starts a shot (pre-rolled on its
              first frames, then matted from W), its outputs kept from S on
  replay:cut  the same from the last cut before S (or the clip's first frame): vmatte's warm-up
              (MattingStream.warm_up), which --start, pulls and every range use

and compared with the reference: the largest absolute difference and the share of pixels off by more than 0.01,
on the range's first frame, and over its frames after the first --settle.

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/ranges.py \
        [--clips a.mp4,b.mp4] [--starts 40,90] [--length 30] [--width 320] [--warmups preroll:16,replay:32,...]
"""

import argparse
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

from vmatte.io import SourceFrame
from vmatte.pipeline import JobSettings, load_engine
from vmatte.settings import TemporalOptions, auto_downsample_ratio
from vmatte.temporal import MattingStream, _Pending, cut_flags, thumbnail

SAMPLES = Path("../shared/samples")
CLIPS = ("portrait_videos/sam2_coffee_hands_2997_aac.mp4",  # close-up: hands and a cup
         "portrait_videos/sam2_bedroom_child_960x540.mp4",  # full figure, static camera
         "robustness_videos/mmaction2_basketball_2997_426x240.mp4")  # full figures, moving camera
WARMUPS = "preroll:16,preroll:32,preroll:64,replay:16,replay:32,replay:64,replay:cut"


def decode(path: Path, frames: int, width: int) -> list[np.ndarray]:
    pictures = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            height = round(rgb.shape[0] * width / rgb.shape[1] / 2) * 2
            pictures.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
            if len(pictures) == frames:
                break
    return pictures


def cuts(pictures: list[np.ndarray], options: TemporalOptions) -> list[int]:
    frames = [SourceFrame(i, i, 0.0, p) for i, p in enumerate(pictures)]
    return [i for i, cut in cut_flags(frames, options.cut_threshold) if cut]


def matte(engine, ratio: float, pictures: list[np.ndarray], first: int, end: int, warm_up: list[int] = (),
          replay: bool = False) -> dict:
    """Mattes of frames first..end-1 (a stream that starts a shot at ``first``), after a warm-up: the state
    built on the frames ``warm_up``, or vmatte's (``replay``)."""
    stream = MattingStream(engine, ratio, TemporalOptions(), need_fgr=False, first_frame=first)
    if warm_up:  # the state built on these frames, from the last cut among them (vmatte before this change)
        items = [SourceFrame(i, i, 0.0, pictures[i]) for i in warm_up]
        last = max([0, *[k for k, (_, cut) in enumerate(cut_flags(items, stream.options.cut_threshold)) if cut]])
        stream._start_shot([_Pending(frame, None, False) for frame in items[last:]])
        stream.last_thumbnail, stream._warmed_up = thumbnail(items[-1].rgb), True
    if replay:
        stream.warm_up(lambda i: (SourceFrame(k, k, 0.0, pictures[k]) for k in range(i, len(pictures))), 0)
    frames = [SourceFrame(i, i, 0.0, pictures[i]) for i in range(first, end)]
    out = {}
    for start in range(0, len(frames), 4):
        out.update({m.index: m.pha for m in stream.push(frames[start:start + 4])})
    out.update({m.index: m.pha for m in stream.finish()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--starts", default="40,90")
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--settle", type=int, default=3, help="frames left out of the 'after' columns")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--warmups", default=WARMUPS)
    args = parser.parse_args()
    engine = load_engine(JobSettings(input=Path("."), outputs={}), notice=lambda m: print(m, file=sys.stderr))
    options = TemporalOptions().for_source(image_sequence=False)
    starts = [int(s) for s in args.starts.split(",")]
    print(f"| clip | S | warm-up | max first | >0.01 first % | max after {args.settle} | >0.01 after % | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for clip in args.clips.split(","):
        pictures = decode(SAMPLES / clip, max(starts) + args.length, args.width)
        ratio = auto_downsample_ratio(*pictures[0].shape[:2])
        clip_cuts = cuts(pictures, options)
        # The full run, as MattingStream runs a clip: shot starts at the cuts it finds itself.
        reference = matte(engine, ratio, pictures, 0, len(pictures))
        for start in starts:
            end = min(start + args.length, len(pictures))
            last_cut = max([0, *[c for c in clip_cuts if c <= start]])
            for warmup in args.warmups.split(","):
                kind, length = warmup.split(":")
                began = time.perf_counter()
                if kind == "preroll":
                    got = matte(engine, ratio, pictures, start, end, list(range(max(0, start - int(length)), start)))
                elif length == "cut":
                    got = matte(engine, ratio, pictures, start, end, replay=True)
                else:
                    first = max(last_cut, start - int(length))
                    got = matte(engine, ratio, pictures, first, end)
                seconds = time.perf_counter() - began
                diffs = [np.abs(got[i] - reference[i]) for i in range(start, end)]
                after = np.stack(diffs[args.settle:])
                print(f"| {Path(clip).stem} | {start} | {warmup} | {diffs[0].max():.3f} | "
                      f"{100 * (diffs[0] > 0.01).mean():.2f} | {after.max():.3f} | {100 * (after > 0.01).mean():.3f} "
                      f"| {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
