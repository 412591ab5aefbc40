"""Matte quality of RVM on synthetic composites with exact ground truth (issue "Matte quality: at least the
official model's, then better").

Each clip moves a P3M portrait (photo F + its alpha) over a sample background along a fixed, slow pan/zoom
path and composites I = a*F + (1-a)*B in float, quantised to 8-bit RGB; the moved alpha is the exact ground
truth. One more clip has a hard cut in the middle (another person over another background), so the recurrent
state carried across it is wrong for the second shot. Mattes come from ``vmatte.temporal.matte_frames`` and
are scored with ``vmatte.metrics``: MAD, MSE, Grad, dtSSD over whole clips (means over all frames), MAD over
the first 15 frames of each clip, and MAD over the 15 frames after each cut.

    VMATTE_WEIGHTS=../shared/weights python benchmarks/quality.py [--experiments semantics,preroll,cuts,ratio]
        [--frames 60] [--size 640x360] [--sweep-sizes 640x360,1280x720] [--csv quality.csv]

Experiments (each prints one table):
  semantics  torch vs tfjs numerical semantics at ratios 1.0, 0.8, 0.5, as RVM is published (no pre-roll,
             no cut handling)
  preroll    pre-roll K = 0, 4, 8, 16 frames (cut handling on, so K also applies after the cut)
  cuts       cut handling off / on (default pre-roll), and no recurrence at all (state reset every frame)
  ratio      downsample ratios giving an internal long side of 256..768 px, at each --sweep-sizes size
  smooth     without and with one-frame-delay (OFD) smoothing of the matte
  quality    --quality standard and best, and the other ensembles best was chosen from (vmatte/ensemble.py):
             mirror image, a smaller (0.8x) or larger (1.25x, never above the clip's size) internal size, a
             shifted picture, merged by mean, median or confidence; a pass that comes out the same as another at
             the ratio in use runs once, as in vmatte
  reverse    standard and the mean of it and a pass over the reversed clip (held in memory here; the pipeline
             has no reverse pass)
  region     a pass over the subject's region enlarged up to 2x (vmatte/subject_region.py), alone (the region's
             matte in its window, the full frame's elsewhere) or merged with other passes; best before it (mirror +
             1.25x size, median)
  weights    --quality standard and best with the float32 default (ONNX release, deep guided filter) and with
             the uint8 TF.js export (fast guided filter), side by side
Foreground error (x1e3): MSE of the straight foreground against the composite's exact one, over the soft edge
(0 < true alpha < 1) where halos live: "Fgr edge" for the model's own foreground (merged over passes), "BF edge"
for the blur-fusion estimate (benchmarks/blur_fusion.py) from the same matte and the picture.
All but "semantics" use --semantics (torch) and vmatte's automatic ratio for --size (or --ratio), except where
varied.
Everything is deterministic: fixed motion paths, no randomness. Progress goes to stderr.
"""

import argparse
import csv
import os
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from itertools import count
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from blur_fusion import estimate_foreground

from vmatte.ensemble import for_quality, merge_mattes
from vmatte.inference import MattingEngine
from vmatte.io.background import cover, open_background
from vmatte.metrics import evaluate_sequences
from vmatte.settings import (
    DEFAULT_CUT_THRESHOLD,
    DEFAULT_PREROLL,
    QUALITIES,
    Ensemble,
    Pass,
    TemporalOptions,
    auto_downsample_ratio,
)
from vmatte.temporal import cut_score, matted_frames, thumbnail

SHARED = Path(os.environ.get("VMATTE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
METRICS = ("mad", "mse", "grad", "dtssd")  # Conn is slow and not asked for by the issue
SETTLE_FRAMES = 15  # window for "MAD over the first frames" and "MAD after the cut"
MAX_ZOOM = 1.25  # the person layer's largest scale, relative to just covering the frame
CHUNK = 4
PREROLLS = (0, 4, 8, 16)
SEMANTICS_RATIOS = (1.0, 0.8, 0.5)
LONG_SIDES = (256, 384, 512, 640, 768)
EXPERIMENTS = ("semantics", "preroll", "cuts", "ratio", "smooth", "quality", "reverse", "weights", "region")
WEIGHTS = ("rvm-mobilenetv3", "rvm-mobilenetv3-int8")  # the float32 default and the uint8 export, side by side
COLUMNS = (("MAD", "mad"), ("MSE", "mse"), ("Grad", "grad"), ("dtSSD", "dtssd"),
           (f"MAD 1-{SETTLE_FRAMES}", "mad_first"), (f"MAD cut+{SETTLE_FRAMES}", "mad_after_cut"),
           ("Fgr edge", "fgr_edge"), ("BF edge", "bf_edge"), ("CPU ms/f", "cpu_ms"),
           ("BF ms/f", "bf_ms"))


# --- synthetic clips ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shot:
    portrait: Path  # p_<id>.jpg, with its matte p_<id>.alpha.png beside it
    background: Path  # still image or video
    frames: int
    phase: int  # picks the directions of the motion path, so clips differ
    # Wide shots: the person's share of the frame's area at the shot's start and end (None: a close-up, the
    # portrait covering the frame). The person walks across the frame and the camera pans over a still.
    share: tuple[float, float] | None = None


class Clip(NamedTuple):
    name: str
    framing: str  # "close" or "wide": scored apart
    frames: list[np.ndarray]  # HxWx3 uint8 RGB
    gt_alphas: list[np.ndarray]  # HxW float32 in [0, 1]
    gt_foregrounds: list[np.ndarray]  # HxWx3 float16 in [0, 1]
    shot_starts: list[int]  # 0 and the first frame after each hard cut


class Layer(NamedTuple):
    rgb: np.ndarray  # HxWx3 float32 in [0, 1]
    alpha: np.ndarray  # HxW float32 in [0, 1]


def load_person(portrait: Path, width: int, height: int) -> Layer:
    """The portrait and its alpha, area-scaled once so that at MAX_ZOOM they just cover width x height;
    per-frame warps then only shrink mildly (>= 1 / MAX_ZOOM), where bilinear sampling does not alias."""
    photo = load_portrait(portrait)
    scale = MAX_ZOOM * max(width / photo[0].shape[1], height / photo[0].shape[0])
    size = (round(photo[0].shape[1] * scale), round(photo[0].shape[0] * scale))
    return scaled_layer(photo, size)


def layer_transform(layer: Layer, width: int, height: int, progress: float, phase: int) -> np.ndarray:
    """The 2x3 affine map from layer to frame at ``progress`` (0..1 through the shot): an eased zoom
    (1 -> MAX_ZOOM, or back) with a horizontal pan and one gentle vertical sway. The layer always covers the
    frame, so the portrait's borders, where its person is cut off, never show."""
    ease = (1 - np.cos(np.pi * progress)) / 2
    forward = phase % 2 == 0
    zoom = 1 + (MAX_ZOOM - 1) * (ease if forward else 1 - ease)
    scale = zoom / MAX_ZOOM
    pan_x = ease if forward else 1 - ease
    pan_y = 0.5 + (0.4 if forward else -0.4) * np.sin(2 * np.pi * progress)
    spare_x = layer.alpha.shape[1] * scale - width  # how far the scaled layer can slide inside the frame
    spare_y = layer.alpha.shape[0] * scale - height
    return np.float32([[scale, 0, -pan_x * spare_x], [0, scale, -pan_y * spare_y]])


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """I = a*F + (1-a)*B in float, quantised to 8-bit RGB."""
    a = alpha[..., None]
    return np.clip(np.rint((a * foreground + (1 - a) * background) * 255), 0, 255).astype(np.uint8)


def background_frames(path: Path, width: int, height: int) -> Iterator[np.ndarray]:
    """Endless HxWx3 float32 frames in [0, 1] covering width x height: a still repeated, or a video looped."""
    if path.suffix == ".jpg":
        # OpenCV rather than vmatte's PyAV reader, which fails on moviepy_vacation_2017.jpg's frame side data.
        still = cover(cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), width, height)
        while True:
            yield still
    background = open_background(path, width, height)
    try:
        for index in count():
            yield background.frame(index)
    finally:
        background.close()


def composite_shot(shot: Shot, width: int, height: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(frame, exact alpha, exact foreground) for each frame of one shot."""
    if shot.share:
        yield from composite_wide_shot(shot, width, height)
        return
    layer = load_person(shot.portrait, width, height)
    for index, background in zip(range(shot.frames), background_frames(shot.background, width, height)):
        matrix = layer_transform(layer, width, height, index / max(shot.frames - 1, 1), shot.phase)
        foreground, alpha = (cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                            borderMode=cv2.BORDER_REPLICATE) for image in layer)
        yield composite(foreground, alpha, background), alpha, foreground


def load_portrait(portrait: Path) -> tuple[np.ndarray, np.ndarray]:
    """The photo (HxWx3 uint8 RGB) and its alpha (HxW uint8)."""
    rgb = cv2.cvtColor(cv2.imread(str(portrait), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return rgb, cv2.imread(str(portrait.with_name(f"{portrait.stem}.alpha.png")), cv2.IMREAD_GRAYSCALE)


def scaled_layer(photo: tuple[np.ndarray, np.ndarray], size: tuple[int, int]) -> Layer:
    """The photo and its alpha area-scaled to ``size`` (width, height), as floats in [0, 1]."""
    return Layer(*(cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255 for image in photo))


def wide_layer(photo: tuple[np.ndarray, np.ndarray], width: int, height: int, share: float) -> Layer:
    """The portrait area-scaled (no aliasing) so that its person covers ``share`` of a width x height frame."""
    rgb, alpha = photo
    scale = np.sqrt(share * width * height * 255 / float(alpha.sum(dtype=np.float64)))
    size = (max(round(alpha.shape[1] * scale), 1), max(round(alpha.shape[0] * scale), 1))
    return scaled_layer(photo, size)


def composite_wide_shot(shot: Shot, width: int, height: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A wide shot: the person, small, walks across the frame (from one side to the other, growing or shrinking
    between the two shares as if walking towards or away from the camera) while the camera pans over a still
    background (a moving background video plays as it is). The portrait's edge where its photo cuts the person
    off (the bottom, or the top) stays just outside the frame, so no cut edge shows."""
    portrait = load_portrait(shot.portrait)
    cut_at_top = portrait[1][0].mean() > portrait[1][-1].mean()
    forward = shot.phase % 2 == 0
    pan = 0.3 * width  # how far the camera pans over a still, in frame pixels
    still = shot.background.suffix == ".jpg"
    backgrounds = background_frames(shot.background, width + round(pan) if still else width, height)
    for index, background in zip(range(shot.frames), backgrounds):
        progress = index / max(shot.frames - 1, 1)
        ease = (1 - np.cos(np.pi * progress)) / 2
        share = shot.share[0] + (shot.share[1] - shot.share[0]) * ease
        layer = wide_layer(portrait, width, height, share)
        ys, xs = np.nonzero(layer.alpha > 0.5)
        centre = 0.15 + 0.7 * (ease if forward else 1 - ease)  # where the person's middle is, across the frame
        shift_x = centre * width - (xs.min() + xs.max()) / 2
        shift_y = -1.0 if cut_at_top else height - layer.alpha.shape[0] + 1.0
        matrix = np.float32([[1, 0, shift_x], [0, 1, shift_y]])
        foreground = cv2.warpAffine(layer.rgb, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(layer.alpha, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if still:
            offset = round(pan * (progress if forward else 1 - progress))
            background = background[:, offset:offset + width]
        yield composite(foreground, alpha, background), alpha, foreground


def make_clip(name: str, shots: list[Shot], width: int, height: int) -> Clip:
    clip = Clip(name, "wide" if shots[0].share else "close", [], [], [], [])
    for shot in shots:
        clip.shot_starts.append(len(clip.frames))
        for frame, alpha, foreground in composite_shot(shot, width, height):
            clip.frames.append(frame)
            clip.gt_alphas.append(alpha)
            clip.gt_foregrounds.append(foreground.astype(np.float16))
    return clip


FRAMINGS = ("close", "wide")


def clip_plans(samples: Path, frame_count: int, backgrounds_per_portrait: int,
               framings: tuple[str, ...] = FRAMINGS) -> list[tuple[str, list[Shot]]]:
    """Close-ups: each portrait over ``backgrounds_per_portrait`` backgrounds (rotating, so every background and
    the moving pool video are used), then the two-shot clip with a hard cut at frame_count // 2. Wide shots: each
    portrait small (8-25 % of the frame) walking across one background, and one more person over the pool video
    walking the other way."""
    portraits = sorted((samples / "image_alpha_pseudogt_p3m").glob("p_*.jpg"))
    backgrounds = sorted(path for path in (samples / "backgrounds").iterdir() if path.suffix in (".jpg", ".mp4"))
    plans = []
    if "close" in framings:
        for index, portrait in enumerate(portraits):
            for offset in range(backgrounds_per_portrait):
                background = backgrounds[(index + offset) % len(backgrounds)]
                plans.append((f"{portrait.stem} over {background.stem}",
                              [Shot(portrait, background, frame_count, phase=len(plans))]))
        shot_a = Shot(portraits[0], backgrounds[1], frame_count // 2, phase=0)
        shot_b = Shot(portraits[1], backgrounds[2], frame_count - frame_count // 2, phase=1)
        plans.append((f"cut: {shot_a.portrait.stem} over {shot_a.background.stem} | "
                      f"{shot_b.portrait.stem} over {shot_b.background.stem}", [shot_a, shot_b]))
    if "wide" in framings:
        shares = ((0.08, 0.16), (0.12, 0.25), (0.22, 0.1))
        for index, (portrait, share) in enumerate(zip(portraits, shares)):
            background = backgrounds[(index + 1) % len(backgrounds)]
            plans.append((f"wide: {portrait.stem} over {background.stem}, {share[0]:.0%}-{share[1]:.0%} of the frame",
                          [Shot(portrait, background, frame_count, phase=index, share=share)]))
        plans.append((f"wide: {portraits[0].stem} over {backgrounds[0].stem}, 10%-18% of the frame",
                      [Shot(portraits[0], backgrounds[0], frame_count, phase=1, share=(0.1, 0.18))]))
    return plans


def synthetic_clips(samples: Path, frame_count: int, width: int, height: int, backgrounds_per_portrait: int = 1,
                    only: list[int] | None = None, framings: tuple[str, ...] = FRAMINGS) -> Iterator[Clip]:
    """The benchmark's clips (those numbered in ``only``, when given), built one at a time (each is held in
    memory while it is used)."""
    plans = clip_plans(samples, frame_count, backgrounds_per_portrait, framings)
    for number, (name, shots) in enumerate(plans):
        if only is None or number in only:
            yield make_clip(name, shots, width, height)


def cut_test_fires(frames: list[np.ndarray]) -> list[int]:
    """Frames where vmatte's default shot-cut test sees a cut: shows false or missed cuts on these clips."""
    thumbnails = [thumbnail(frame) for frame in frames]
    return [index for index in range(1, len(frames))
            if cut_score(thumbnails[index - 1], thumbnails[index]) > DEFAULT_CUT_THRESHOLD]


# --- settings and experiments ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    semantics: str
    ratio: float
    model: str = "rvm-mobilenetv3"
    preroll: int = DEFAULT_PREROLL
    cuts: bool = True  # reset the state (and pre-roll again) at detected hard cuts
    recurrent: bool = True  # False: state reset every frame
    smooth: str | None = None  # "ofd": one-frame-delay smoothing after the model
    ensemble: Ensemble = Ensemble()  # passes and merge
    reverse: bool = False  # also run the ensemble over the reversed clip and merge the two


@dataclass
class Experiment:
    name: str
    title: str
    size: tuple[int, int]  # width, height
    rows: list[tuple[str, Setting]]  # (label, setting)


def plan_experiments(names: list[str], size: tuple[int, int], sweep_sizes: list[tuple[int, int]],
                     semantics: str, long_sides: list[int], prerolls: list[int],
                     ratio: float | None = None, model: str = "rvm-mobilenetv3") -> list[Experiment]:
    width, height = size
    default = Setting(semantics, ratio or auto_downsample_ratio(height, width), model)  # vmatte at this size
    published = replace(default, preroll=0, cuts=False)  # RVM as its authors run it
    plans = []
    if "semantics" in names:
        plans.append(Experiment("semantics", "semantics x ratio (no pre-roll, no cut handling)", size, [
            (f"{name} r={ratio}", replace(published, semantics=name, ratio=ratio))
            for ratio in SEMANTICS_RATIOS for name in ("torch", "tfjs")]))
    if "preroll" in names:
        plans.append(Experiment("preroll", f"pre-roll ({semantics}, r={default.ratio:.3g}, cut handling on)", size,
                                [(f"K={k}" + (" (off)" if k == 0 else ""), replace(default, preroll=k))
                                 for k in prerolls]))
    if "cuts" in names:
        title = f"cut handling ({semantics}, r={default.ratio:.3g}, pre-roll K={DEFAULT_PREROLL})"
        plans.append(Experiment("cuts", title, size, [
            ("cut handling off", replace(default, cuts=False)),
            ("cut handling on", default),
            ("no recurrence", replace(default, preroll=0, cuts=False, recurrent=False))]))
    if "smooth" in names:
        plans.append(Experiment("smooth", f"OFD smoothing ({semantics}, r={default.ratio:.3g}, defaults otherwise)",
                                size, [("no smoothing", default), ("--smooth ofd", replace(default, smooth="ofd"))]))
    if "quality" in names:
        mirror, smaller = Pass(mirror=True), Pass(ratio_scale=0.8)
        three = (Pass(), mirror, smaller)
        shifted, larger = Pass(shift=16), Pass(ratio_scale=1.25)
        candidates = [
            ("--quality standard", Ensemble()),
            ("mirror, mean", Ensemble((Pass(), mirror))),
            ("mirror, confidence", Ensemble((Pass(), mirror), "confidence")),
            ("0.8x size, mean", Ensemble((Pass(), smaller))),
            ("mirror + 0.8x size, mean", Ensemble(three)),
            ("mirror + 0.8x size, median", Ensemble(three, "median")),
            ("mirror + shift 16 px, mean", Ensemble((Pass(), mirror, shifted))),
            ("1.25x size alone", Ensemble((larger,))),
            ("1.25x size, mean", Ensemble((Pass(), larger))),
            ("mirror + 1.25x size, mean", Ensemble((Pass(), mirror, larger))),
            ("mirror + 1.25x size, median", Ensemble((Pass(), mirror, larger), "median")),
            ("mirror + 1.25x size, confidence", Ensemble((Pass(), mirror, larger), "confidence")),
            ("1.25x size + its mirror, mean", Ensemble((larger, Pass(mirror=True, ratio_scale=1.25)))),
            ("mirror x 0.8x size, mean", Ensemble((*three, Pass(mirror=True, ratio_scale=0.8)))),
            ("mirror x 0.8x size, median", Ensemble((*three, Pass(mirror=True, ratio_scale=0.8)), "median")),
            ("mirror x 0.8x size + 1.25x, median", Ensemble((*three, Pass(mirror=True, ratio_scale=0.8),
                                                             larger), "median")),
        ]
        rows = [(label, replace(default, ensemble=ensemble)) for label, ensemble in candidates]
        best = QUALITIES["best"].ensemble
        rows = [(label + (" (--quality best)" if setting.ensemble == best and not setting.reverse else ""), setting)
                for label, setting in rows]
        plans.append(Experiment("quality", f"quality ({semantics}, r={default.ratio:.3g}, defaults otherwise)",
                                size, rows))
    if "reverse" in names:
        rows = [("--quality standard", default), ("forward + reverse, mean", replace(default, reverse=True))]
        plans.append(Experiment("reverse", f"a pass over the reversed clip ({semantics}, r={default.ratio:.3g})",
                                size, rows))
    if "weights" in names:
        best = QUALITIES["best"].ensemble
        plans.append(Experiment("weights", f"weight files ({semantics}, r={default.ratio:.3g}, defaults otherwise)",
                                size, [(f"{weights} {label}", replace(default, model=weights, ensemble=ensemble))
                                       for weights in WEIGHTS
                                       for label, ensemble in (("standard", Ensemble()), ("best", best))]))
    if "region" in names:
        best = QUALITIES["best"].ensemble
        plain, mirror, region = Pass(), Pass(mirror=True), Pass(zoom=2)
        candidates = [
            ("--quality standard", Ensemble()),
            ("mirror + 1.25x size, median", Ensemble((plain, mirror, Pass(ratio_scale=1.25)), "median")),
            ("region x2 alone", Ensemble((plain, region), "region")),
            ("region x2, mean", Ensemble((plain, region))),
            ("mirror + region x2, median", Ensemble((plain, mirror, region), "median")),
            ("mirror + region x2 at 1.25x, median", best),
        ]
        rows = [(label + (" (--quality best)" if ensemble == best else ""), replace(default, ensemble=ensemble))
                for label, ensemble in candidates]
        plans.append(Experiment("region", f"the subject's region enlarged ({semantics}, r={default.ratio:.3g})",
                                size, rows))
    if "ratio" in names:
        for sweep_width, sweep_height in sweep_sizes:
            long_side = max(sweep_width, sweep_height)
            plans.append(Experiment("ratio", f"internal long side ({semantics}, defaults otherwise)",
                                    (sweep_width, sweep_height), [
                (f"{side} px (r={side / long_side:.3g})", replace(default, ratio=side / long_side))
                for side in long_sides]))
    return plans


# --- running and scoring -----------------------------------------------------------------------------------

@cache
def load_engine(model: str, semantics: str) -> MattingEngine:
    return MattingEngine.load(model, semantics=semantics, notice=lambda message: None)


class PassRun(NamedTuple):
    mattes: list[np.ndarray]
    foregrounds: list[np.ndarray]
    cpu_seconds: float


def run_pass(engine: MattingEngine, frames: list[np.ndarray], setting: Setting) -> PassRun:
    """One pass (``setting.ensemble`` holds one) over the clip, or over it backwards when ``setting.reverse``."""
    # Explicit choices: no automatic ones.
    options = TemporalOptions(preroll=setting.preroll, cuts=setting.cuts, smooth=setting.smooth)
    engine = for_quality(engine, setting.ensemble)
    # CPU time rather than wall time: machines are shared. Still only indicative (idle threads spin).
    started = time.process_time()
    if not setting.recurrent:  # each frame as a one-frame stream: the state starts empty every time
        matted = [next(matted_frames(engine, [frame], setting.ratio, options, 1, need_fgr=True)) for frame in frames]
    else:
        order = -1 if setting.reverse else 1
        matted = list(matted_frames(engine, frames[::order], setting.ratio, options, CHUNK, need_fgr=True))[::order]
    return PassRun([m.pha for m in matted], [m.fgr for m in matted], time.process_time() - started)


def matte_clip(engine: MattingEngine, frames: list[np.ndarray], setting: Setting,
               runs: dict[Setting, PassRun]) -> PassRun:
    """A clip under one setting: its passes (each with its own state, and over the reversed clip too when
    ``setting.reverse``) merged as ``ensemble.EnsembleEngine`` merges them. Each pass runs once per clip
    (``runs`` keeps them), so settings that share passes share their cost; the time is the passes' sum."""
    distinct = [one for one, _ in setting.ensemble.passes_at(setting.ratio)]
    if any(one.zoom != 1 for one in distinct):  # a region pass follows the others' matte: the ensemble runs whole
        if setting not in runs:
            runs[setting] = run_pass(engine, frames, setting)
        return runs[setting]
    passes = [replace(setting, ensemble=Ensemble((one,)), reverse=backwards)
              for backwards in ((False, True) if setting.reverse else (False,)) for one in distinct]
    for one in passes:
        if one not in runs:
            runs[one] = run_pass(engine, frames, one)
    mattes = [merge_mattes([torch.from_numpy(runs[one].mattes[t]) for one in passes], setting.ensemble.merge).numpy()
              for t in range(len(frames))]
    foregrounds = [np.mean([runs[one].foregrounds[t] for one in passes], axis=0) for t in range(len(frames))]
    return PassRun(mattes, foregrounds, sum(runs[one].cpu_seconds for one in passes))


def edge_foreground_error(foregrounds: list[np.ndarray], clip: Clip) -> tuple[float, int]:
    """(sum of squared errors, pixels) of foregrounds over the soft edge (0 < true alpha < 1), all channels."""
    total, pixels = 0.0, 0
    for foreground, true_foreground, true_alpha in zip(foregrounds, clip.gt_foregrounds, clip.gt_alphas):
        edge = (true_alpha > 0) & (true_alpha < 1)
        total += float(((foreground[edge] - true_foreground[edge].astype(np.float32)) ** 2).sum())
        pixels += int(edge.sum()) * 3
    return total, pixels


@dataclass
class Score:
    """One setting's per-frame MADs and metric sums over all clips of a size, and its model time."""
    frames: int = 0
    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(METRICS, 0.0))
    first_mads: list[float] = field(default_factory=list)
    after_cut_mads: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # model time, pre-roll included
    estimate_seconds: float = 0.0  # blur-fusion foreground estimation time
    foreground_errors: dict[str, list[float]] = field(  # squared error sum and pixel count per foreground kind
        default_factory=lambda: {"fgr_edge": [0.0, 0], "bf_edge": [0.0, 0]})

    def add(self, clip: Clip, predictions: list[np.ndarray], foregrounds: dict[str, list[np.ndarray]],
            cpu_seconds: float, estimate_seconds: float) -> float:
        """Adds one clip's scores; returns its MAD, for the progress log."""
        for kind, estimated in foregrounds.items():
            total, pixels = edge_foreground_error(estimated, clip)
            self.foreground_errors[kind][0] += total
            self.foreground_errors[kind][1] += pixels
        rows = evaluate_sequences(predictions, clip.gt_alphas, METRICS).rows
        self.frames += len(rows)
        for name in METRICS:
            self.totals[name] += sum(row[name] for row in rows)
        self.first_mads += [row["mad"] for row in rows[:SETTLE_FRAMES]]
        shot_ends = clip.shot_starts[2:] + [len(rows)]
        for start, end in zip(clip.shot_starts[1:], shot_ends):
            self.after_cut_mads += [row["mad"] for row in rows[start:min(start + SETTLE_FRAMES, end)]]
        self.cpu_seconds += cpu_seconds
        self.estimate_seconds += estimate_seconds
        return float(np.mean([row["mad"] for row in rows]))

    def summary(self) -> dict[str, float]:
        return {**{name: total / self.frames for name, total in self.totals.items()},
                "mad_first": float(np.mean(self.first_mads)),
                "mad_after_cut": float(np.mean(self.after_cut_mads)) if self.after_cut_mads else float("nan"),
                **{kind: 1e3 * total / max(pixels, 1) for kind, (total, pixels) in self.foreground_errors.items()},
                "cpu_ms": 1e3 * self.cpu_seconds / self.frames, "bf_ms": 1e3 * self.estimate_seconds / self.frames}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def score_experiments(experiments: list[Experiment], args: argparse.Namespace) -> dict[tuple, Score]:
    """Scores of every distinct (size, setting) the experiments use; each is run once, clip by clip."""
    scores: dict[tuple, Score] = {}
    for size in dict.fromkeys(experiment.size for experiment in experiments):
        settings = list(dict.fromkeys(setting for experiment in experiments if experiment.size == size
                                      for _, setting in experiment.rows))
        for clip in synthetic_clips(args.samples, args.frames, *size, args.backgrounds_per_portrait, args.clips,
                                    args.framings):
            print(f"# {size[0]}x{size[1]} {clip.name}: {len(clip.frames)} frames, shots start at "
                  f"{clip.shot_starts}, cut test fires at {cut_test_fires(clip.frames)}", flush=True)
            runs: dict[Setting, PassRun] = {}
            for setting in settings:
                engine = load_engine(setting.model, setting.semantics)
                predictions, model_foregrounds, cpu_seconds = matte_clip(engine, clip.frames, setting, runs)
                started = time.process_time()
                estimated = [estimate_foreground(frame.astype(np.float32) / 255, matte)
                             for frame, matte in zip(clip.frames, predictions)]
                estimate_seconds = time.process_time() - started
                foregrounds = {"fgr_edge": model_foregrounds, "bf_edge": estimated}
                score = scores.setdefault((clip.framing, size, setting), Score())
                clip_mad = score.add(clip, predictions, foregrounds, cpu_seconds, estimate_seconds)
                log(f"{size[0]}x{size[1]} {clip.name} {setting}: MAD {clip_mad:.2f}, {cpu_seconds:.1f} CPU s "
                    f"(blur fusion {1e3 * estimate_seconds / len(clip.frames):.0f} CPU ms/f)")
    return scores


# --- output ------------------------------------------------------------------------------------------------

def format_table(experiment: Experiment, framing: str, scores: dict[tuple, Score]) -> str:
    width = max(len(label) for label, _ in experiment.rows) + 2
    frames = scores[framing, experiment.size, experiment.rows[0][1]].frames
    lines = [f"{experiment.title}, {framing} shots, {experiment.size[0]}x{experiment.size[1]}, {frames} frames per "
             "row", "setting".ljust(width) + "".join(f"{heading:>12}" for heading, _ in COLUMNS)]
    for label, setting in experiment.rows:
        summary = scores[framing, experiment.size, setting].summary()
        lines.append(label.ljust(width) + "".join(f"{summary[key]:>12.3f}" for _, key in COLUMNS))
    return "\n".join(lines)


def tables(experiments: list[Experiment], scores: dict[tuple, Score]) -> list[tuple[Experiment, str]]:
    """Each experiment once per framing it has clips of: close-ups and wide shots are reported apart."""
    return [(experiment, framing) for experiment in experiments for framing in FRAMINGS
            if (framing, experiment.size, experiment.rows[0][1]) in scores]


def write_csv(path: Path, experiments: list[Experiment], scores: dict[tuple, Score]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["experiment", "framing", "size", "label", *(column.name for column in fields(Setting)),
                         "frames", *(key for _, key in COLUMNS)])
        for experiment, framing in tables(experiments, scores):
            for label, setting in experiment.rows:
                score = scores[framing, experiment.size, setting]
                summary = score.summary()
                writer.writerow([experiment.name, framing, f"{experiment.size[0]}x{experiment.size[1]}", label,
                                 *asdict(setting).values(), score.frames,
                                 *(f"{summary[key]:.6g}" for _, key in COLUMNS)])


def reproduce_command() -> str:
    env = " ".join(f"{name}={shlex.quote(os.environ[name])}" for name in ("VMATTE_WEIGHTS", "VMATTE_OFFLINE")
                   if name in os.environ)
    return " ".join(part for part in (env, "python", shlex.join(sys.argv)) if part)


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(part) for part in text.lower().split("x"))
    return width, height


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS),
                        type=lambda text: [name for name in text.split(",") if name],
                        help=f"comma-separated subset of {','.join(EXPERIMENTS)}")
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (the cut clip cuts halfway)")
    parser.add_argument("--size", type=parse_size, default=(640, 360), help="WxH of the clips")
    parser.add_argument("--sweep-sizes", type=lambda text: [parse_size(part) for part in text.split(",")],
                        help="WxH list for the ratio sweep (default: --size)")
    parser.add_argument("--long-sides", type=lambda text: [int(part) for part in text.split(",")],
                        default=list(LONG_SIDES), help="internal long sides (px) of the ratio sweep")
    parser.add_argument("--prerolls", type=lambda text: [int(part) for part in text.split(",")],
                        default=list(PREROLLS), help="pre-roll lengths K of the preroll experiment")
    parser.add_argument("--ratio", type=float, help="downsample ratio of all experiments but 'semantics' and 'ratio' "
                        "(default: vmatte's automatic ratio for --size)")
    parser.add_argument("--framings", default=",".join(FRAMINGS),
                        type=lambda text: tuple(name for name in text.split(",") if name),
                        help="clips of these framings, each scored apart: close (portraits filling the frame, and a "
                             "cut), wide (a small person walking across, 8-25 %% of the frame)")
    parser.add_argument("--backgrounds-per-portrait", type=int, default=1, choices=(1, 2, 3))
    parser.add_argument("--semantics", default="torch", choices=("torch", "tfjs"),
                        help="semantics of all experiments but 'semantics'")
    parser.add_argument("--model", default="rvm-mobilenetv3", help="model of all experiments but 'weights'")
    parser.add_argument("--samples", type=Path, default=SHARED / "samples")
    parser.add_argument("--csv", type=Path, help="also write the tables here")
    parser.add_argument("--clips", type=lambda text: [int(part) for part in text.split(",")],
                        help="only these clips, numbered from 0 in the order they are listed (to split a run "
                             "over processes)")
    args = parser.parse_args()
    if not args.framings or set(args.framings) - set(FRAMINGS):
        parser.error(f"--framings: choose from {', '.join(FRAMINGS)}")
    unknown = set(args.experiments) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown experiment(s) {', '.join(sorted(unknown))}; choose from {', '.join(EXPERIMENTS)}")
    if args.frames < 2 * SETTLE_FRAMES:
        parser.error(f"--frames must be at least {2 * SETTLE_FRAMES} (each shot of the cut clip needs "
                     f"{SETTLE_FRAMES} frames)")
    return args


def main() -> None:
    args = parse_args()
    experiments = plan_experiments(args.experiments, args.size, args.sweep_sizes or [args.size], args.semantics,
                                   args.long_sides, args.prerolls, args.ratio, args.model)
    print(f"# {reproduce_command()}")
    print(f"# model {args.model}, chunk {CHUNK}. MAD and MSE x1e3, Grad /1e3, dtSSD x1e2: means over all frames;\n"
          f"# MAD 1-{SETTLE_FRAMES}: each clip's first {SETTLE_FRAMES} frames; MAD cut+{SETTLE_FRAMES}: the "
          f"{SETTLE_FRAMES} frames from the cut;\n# CPU ms/f: model CPU time (all threads, pre-roll included) "
          "per frame", flush=True)
    started = time.perf_counter()
    scores = score_experiments(experiments, args)
    for experiment, framing in tables(experiments, scores):
        print()
        print(format_table(experiment, framing, scores))
    print(f"\n# {time.perf_counter() - started:.0f} s in all")
    if args.csv:
        write_csv(args.csv, experiments, scores)


if __name__ == "__main__":
    main()
