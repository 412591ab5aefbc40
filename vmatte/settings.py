"""What a job asks for, as plain data: the settings the command line, presets and the pipeline share.

Nothing here imports PyTorch, so ``vmatte --help``, ``info`` and ``presets`` start at once; only loading a model
does (``inference.py``).
"""

from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

OUTPUT_KINDS = ("alpha", "fgr", "comp")
PRECISION_NAMES = ("fp32", "fp16", "bf16")
BACKENDS = ("auto", "torch", "openvino")  # inference backends (inference.choose_backend)
SEMANTICS_NAMES = ("torch", "tfjs")  # official PyTorch numerics (default), the TF.js export's
SMOOTHERS = ("ofd",)

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


def auto_downsample_ratio(height: int, width: int) -> float:
    """Ratio that brings the long side to AUTO_TARGET_LONG_SIDE; never upsamples."""
    return min(1.0, AUTO_TARGET_LONG_SIDE / max(height, width))


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
