"""What a job asks for, as plain data: the settings the command line, presets and the pipeline share.

Nothing here imports PyTorch, so ``vmatte --help``, ``info`` and ``presets`` start at once; only loading a model
does (``inference.py``).
"""

from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from .errors import VmatteError

OUTPUT_KINDS = ("alpha", "fgr", "comp")
PRECISION_NAMES = ("fp32", "fp16", "bf16")
BACKENDS = ("auto", "torch", "openvino")  # inference backends (inference.choose_backend)
SEMANTICS_NAMES = ("torch", "tfjs")  # official PyTorch numerics (default), the TF.js export's
SMOOTHERS = ("ofd",)
NUMBER_FROM = ("source", "timecode")  # how image-sequence output files are numbered (or from a given number)

# The internal (downsampled) long side of --downsample-ratio auto. RVM's authors advise about 480-512 px for
# portraits and more for full-body shots; measured on composites with exact ground truth (README, "Quality"),
# full resolution beat 512 px at 640x360 on every metric, so vmatte aims a little higher.
AUTO_TARGET_LONG_SIDE = 640
DEFAULT_PREROLL = 16  # frames: the state takes ~10 frames to settle (README, "Quality", benchmarks/quality.py)
# Mean absolute change of hue, saturation and value between consecutive thumbnails, on a 0-255 scale.
# Motion, pans and lighting drift stay well below it; a cut to another shot lands far above it.
DEFAULT_CUT_THRESHOLD = 30.0
# OFD smoothing (smoothing.py). Mattes live in [0, 1]. Frame-to-frame noise of a steady prediction is a few 8-bit
# levels (~0.01-0.02), while the flicker OFD targets (holes, spurious blobs) jumps by a large part of the range.
# 0.1 (~25 levels) sits between the two: neighbours that differ by more than this are real motion, left alone.
OFD_THRESHOLD = 0.1


def check_number_from(value: object) -> str:
    """How image-sequence outputs are numbered: by source frame, by timecode, or on from a given first number
    (a pull's 1001); raises VmatteError."""
    text = str(value).strip()
    if text not in NUMBER_FROM and not text.isdigit():
        raise VmatteError(f"number_from {value!r}: choose {', '.join(NUMBER_FROM)} or the first frame's number")
    return text


def auto_downsample_ratio(height: int, width: int) -> float:
    """Ratio that brings the long side to AUTO_TARGET_LONG_SIDE; never upsamples."""
    return min(1.0, AUTO_TARGET_LONG_SIDE / max(height, width))


# Quality levels (--quality): what each changes; the ensemble behind 'best' runs in ensemble.py.
MERGES = ("mean", "median", "confidence", "region")  # region: the region passes' result in their window


@dataclass(frozen=True)
class Pass:
    """One run of the model: on the mirror image or not, at ``ratio_scale`` times the clip's ratio, with the
    picture moved ``shift`` pixels of the network's working size down and right (the edge mirrored into the gap),
    so its stride-32 grid falls elsewhere on the picture; or, with ``zoom`` above 1, on the subject's region
    enlarged up to ``zoom`` times (subject_region.py)."""

    mirror: bool = False
    ratio_scale: float = 1.0
    shift: int = 0
    zoom: float = 1.0

    def __str__(self) -> str:
        return (("mirror" if self.mirror else "plain") + (f"@{self.ratio_scale:g}" if self.ratio_scale != 1 else "")
                + (f"+{self.shift}" if self.shift else "") + (f" region x{self.zoom:g}" if self.zoom != 1 else ""))


@dataclass(frozen=True)
class Ensemble:
    passes: tuple[Pass, ...] = (Pass(),)
    merge: str = "mean"

    def __post_init__(self) -> None:
        if not self.passes or self.merge not in MERGES:
            raise ValueError(f"bad ensemble {self}")

    @property
    def is_plain(self) -> bool:
        return self == Ensemble()

    def describe(self) -> dict:
        return {"passes": [str(p) for p in self.passes], "merge": self.merge}

    def passes_at(self, downsample_ratio: float) -> list[tuple[Pass, float]]:
        """The passes as they run at this ratio, each with its own ratio (never above 1). A pass that comes out
        the same as an earlier one (a larger size where the clip's own size is already used) runs once: it would
        only weigh that pass twice. A stream keeps one ratio, so its state always splits the same way."""
        distinct = {}
        for one in self.passes:
            distinct.setdefault((one.mirror, min(1.0, downsample_ratio * one.ratio_scale), one.shift, one.zoom), one)
        return [(one, ratio) for (_, ratio, _, _), one in distinct.items()]


@dataclass(frozen=True)
class Quality:
    """What a quality level changes; options the user gives explicitly still win."""

    long_side: int | None  # internal long side (px) instead of the automatic one
    refiner: str | None  # instead of the weights' own
    ensemble: Ensemble

    def auto_ratio(self, height: int, width: int) -> float:
        """The downsample ratio when none is given: the level's long side, else the usual automatic one."""
        return min(1.0, self.long_side / max(height, width)) if self.long_side else auto_downsample_ratio(height, width)


QUALITIES = {
    "fast": Quality(384, "fast_guided_filter", Ensemble()),  # the settings of the old 'fast' preset
    "standard": Quality(None, None, Ensemble()),
    # The third pass is the subject's region enlarged up to 2x: on close-ups, where the subject fills the frame,
    # it is the whole frame at 1.25x the ratio (docs/quality.md).
    "best": Quality(None, None, Ensemble((Pass(), Pass(mirror=True), Pass(ratio_scale=1.25, zoom=2)), "median")),
}
DEFAULT_QUALITY = "standard"


def quality_level(name: str) -> Quality:
    if name not in QUALITIES:
        raise VmatteError(f"--quality {name}: choose {', '.join(QUALITIES)}")
    return QUALITIES[name]



@dataclass(frozen=True)
class TemporalOptions:
    """None for ``preroll`` or ``cuts`` means: on for video files, off for image sequences. Sequences are
    usually renders or plates handed over in frame ranges, where the frames are expected to match the
    reference model's exactly; camera footage gets the better first frames and clean cuts."""

    preroll: int | None = None  # frames; 0 turns pre-roll off
    cuts: bool | None = None  # reset the state at detected hard cuts
    cut_threshold: float = DEFAULT_CUT_THRESHOLD
    smooth: str | None = None  # "ofd" or None
    smooth_threshold: float = OFD_THRESHOLD

    def for_source(self, image_sequence: bool) -> "TemporalOptions":
        """These options with the automatic choices made for a video file or an image sequence."""
        preroll = self.preroll if self.preroll is not None else (0 if image_sequence else DEFAULT_PREROLL)
        cuts = self.cuts if self.cuts is not None else not image_sequence
        return replace(self, preroll=preroll, cuts=cuts)


@dataclass
class JobSettings:
    input: Path
    outputs: dict[str, str]  # kind ("alpha", "fgr", "comp") -> output path
    model: str = "rvm-mobilenetv3"
    weights: Path | None = None
    downsample_ratio: float | None = None  # None: auto
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"  # auto, torch, openvino (BACKENDS)
    semantics: str = "torch"
    refiner: str | None = None
    chunk: int = 4
    png_depth: int = 16
    premultiplied: bool = False
    background: str = "green"
    overwrite: bool = False
    skip_corrupt: bool = False
    temporal: TemporalOptions = field(default_factory=TemporalOptions)  # pre-roll, shot cuts, smoothing
    fresh: bool = False  # discard saved progress instead of resuming
    sequence_fps: Fraction | None = None  # frame rate of an image-sequence input (None: 25)
    quality: str = DEFAULT_QUALITY  # fast, standard or best: defaults for the ratio and refiner, the passes
    start: str | None = None  # first frame of the range to matte (io/clip_range.py: frame, 12.5s or timecode)
    end: str | None = None  # the frame after the range's last
    number_from: str = "source"  # image-sequence outputs numbered by source frame ("source") or "timecode"
    exr_display_encoded: bool = False  # OpenEXR colour as the source encodes it, instead of linearised
    # Frames [start, stop) of one shot, matted on their own (cluster.py splits clips at cuts), keeping their
    # positions in the clip, so that the shots' segments join into the clip's outputs.
    shot: tuple[int, int] | None = None
