"""Per-frame statistics of a run's mattes, gathered while the run streams, for its review report (``report.py``).

For every frame, on small copies of the picture and the matte (long side ``WORK_LONG_SIDE``):

* coverage: the share of the picture the matte covers (mean alpha), in percent;
* chatter: change of the matte at its edges that the picture's motion does not explain. The previous matte is
  moved along the picture's motion (dense optical flow between the two frames), and what still differs from this
  frame's matte is chatter: an edge that moves while the picture there holds still. Where the flow cannot follow
  the picture (occlusions, new content) nothing is counted. On dtSSD's scale (root mean square over the frame,
  x100), which it estimates without a ground truth (docs/review.md has how well);
* holes: pixels inside the person's silhouette (its outline filled, less a thin rim) that the matte leaves
  mostly transparent, in percent of the silhouette.

Frames whose chatter or holes stand out from the rest of their clip are flagged. Memory stays flat: per frame
only three numbers are kept, plus small thumbnails of the frames a contact sheet shows and of the worst frames.
The collector is saved with each checkpoint, so a resumed run's statistics cover every frame, exactly as an
uninterrupted run's.
"""

import heapq
import threading
import time
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np
import torch

from .contact_sheet import evenly_spaced
from .io import SourceFrame
from .settings import DEFAULT_CUT_THRESHOLD
from .temporal import MattedFrame, cut_score, thumbnail

WORK_LONG_SIDE = 320
SHEET_FRAMES = 12  # evenly spaced frames kept for the report's contact sheet
KEPT_WORST = 8  # frames kept as thumbnails per score, the worst so far: flagged frames are among them
EDGE_LOW, EDGE_HIGH = 0.02, 0.98  # alpha strictly between: the matte's soft edge
EDGE_REACH = 2  # px (at the working size) the edge band reaches out, so a moved edge is inside it either frame
# Picture mismatch (grey, 0-1) after following the flow at which the flow counts as lost there (occlusion, new
# content): the matte's change there is not counted. Sensor noise after the blur stays well under it.
FLOW_LOST = 0.08
CORE_RIM = 2  # px (at the working size) of the silhouette's border left out of the core
SCORES = ("chatter", "holes")
# An outlier: above the clip's median by OUTLIER_SPREADS robust spreads (1.4826 x median absolute deviation),
# and above the floor, under which a frame is fine whatever its clip (chatter: a dtSSD this low is invisible).
OUTLIER_SPREADS = 4.0
FLOORS = {"chatter": 1.5, "holes": 2.0}


def working_size(height: int, width: int) -> tuple[int, int]:
    """(width, height) of the small copies statistics are computed on."""
    scale = min(1.0, WORK_LONG_SIDE / max(height, width))
    return max(1, round(width * scale)), max(1, round(height * scale))


def small_picture(rgb: np.ndarray) -> np.ndarray:
    """A frame (8 or 16 bits) at the working size, uint8 RGB."""
    if rgb.dtype != np.uint8:
        rgb = (rgb >> 8).astype(np.uint8)
    return cv2.resize(rgb, working_size(*rgb.shape[:2]), interpolation=cv2.INTER_AREA)


def _grey(picture: np.ndarray) -> np.ndarray:
    """Grey, uint8, lightly blurred: sensor noise is not motion."""
    return cv2.GaussianBlur(cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY), (3, 3), 0)


def new_flow() -> cv2.DISOpticalFlow:
    """Dense optical flow, fast preset: a few ms at the working size."""
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)


def chatter_score(alpha: np.ndarray, previous_alpha: np.ndarray, grey: np.ndarray, previous_grey: np.ndarray,
                  flow: cv2.DISOpticalFlow) -> float:
    """Change of the matte in its edge band that the picture's motion does not explain (dtSSD's scale)."""
    motion = flow.calc(grey, previous_grey, None)  # where each pixel of this frame was in the previous one
    ys, xs = np.indices(alpha.shape, dtype=np.float32)
    map_x, map_y = xs + motion[..., 0], ys + motion[..., 1]
    moved_alpha, moved_grey = (cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                               for image in (previous_alpha, previous_grey.astype(np.float32) / 255))
    lost = np.clip(np.abs(grey.astype(np.float32) / 255 - moved_grey) / FLOW_LOST, 0, 1)
    unexplained = np.abs(alpha - moved_alpha) * (1 - lost)
    kernel = np.ones((2 * EDGE_REACH + 1,) * 2, np.uint8)
    soft = ((alpha > EDGE_LOW) & (alpha < EDGE_HIGH)) | ((moved_alpha > EDGE_LOW) & (moved_alpha < EDGE_HIGH))
    band = cv2.dilate(soft.astype(np.uint8), kernel) > 0
    return float(np.sqrt(np.square(unexplained[band]).sum() / alpha.size) * 100)


def holes_score(alpha: np.ndarray) -> float:
    """Percent of the silhouette's core (its outlines filled, less a rim) the matte leaves mostly transparent."""
    solid = (alpha > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(solid, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(solid)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    area = int(filled.sum())
    if area == 0:
        return 0.0
    core = cv2.erode(filled, np.ones((2 * CORE_RIM + 1,) * 2, np.uint8))
    return float(((core > 0) & (solid == 0)).sum() / area * 100)


def outliers(values: np.ndarray, floor: float) -> np.ndarray:
    """Indices (into ``values``) of the values that stand out from the rest (see OUTLIER_SPREADS)."""
    if len(values) == 0:
        return np.zeros(0, np.int64)
    median = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - median))
    return np.flatnonzero(values > max(median + OUTLIER_SPREADS * spread, floor))


@dataclass
class Thumbnail:
    index: int
    time: float
    picture: np.ndarray  # working size, uint8 RGB
    alpha: np.ndarray  # working size, uint8


class FrameStats:
    """Fed by a run: ``see`` with each decoded chunk (decoder thread), ``add`` with each matted frame in order
    (writer thread). ``save``/``restore`` carry it across a checkpoint."""

    def __init__(self, first: int, end: int, timecode: str | None = None, frame_rate: Fraction = Fraction(25)) -> None:
        self.first = first  # frame index of the first statistic
        self.timecode, self.frame_rate = timecode, frame_rate  # the clip's, for the frames' labels
        self.coverage: list[float] = []
        self.chatter: list[float] = []
        self.holes: list[float] = []
        self.seconds = 0.0  # spent here: the cost of the statistics
        self.sheet_frames = evenly_spaced(first, end, SHEET_FRAMES)
        self.sheet: dict[int, Thumbnail] = {}
        self.worst: dict[str, list[tuple[float, int, Thumbnail]]] = {score: [] for score in SCORES}  # min-heaps
        self._pictures: dict[int, tuple[float, np.ndarray]] = {}  # seen, not yet added: index -> (time, picture)
        # (grey, alpha, cut-test thumbnail) of the last frame added
        self._previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._flow = new_flow()
        self._lock = threading.Lock()  # ``see`` and ``save`` run on different threads

    def __getstate__(self) -> dict:
        """What crosses a process boundary (a Ray worker's result): all but the optical flow and the lock."""
        return {name: value for name, value in vars(self).items() if name not in ("_flow", "_lock")}

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state)
        self._flow, self._lock = new_flow(), threading.Lock()

    def see(self, frames: list[SourceFrame]) -> None:
        started = time.perf_counter()
        pictures = {frame.index: (frame.time, small_picture(frame.rgb)) for frame in frames}
        with self._lock:
            self._pictures.update(pictures)
            self.seconds += time.perf_counter() - started

    def add(self, frame: MattedFrame) -> None:
        started = time.perf_counter()
        with self._lock:
            frame_time, picture = self._pictures.pop(frame.index)
        alpha = cv2.resize(frame.pha, picture.shape[1::-1], interpolation=cv2.INTER_AREA)
        grey, cut_thumbnail = _grey(picture), thumbnail(picture)
        self.coverage.append(float(alpha.mean() * 100))
        # A shot's first frame has no previous frame to flicker against (the cut test is the pipeline's).
        new_shot = self._previous is None or cut_score(self._previous[2], cut_thumbnail) > DEFAULT_CUT_THRESHOLD
        self.chatter.append(0.0 if new_shot else chatter_score(alpha, self._previous[1], grey, self._previous[0],
                                                               self._flow))
        self.holes.append(holes_score(alpha))
        self._previous = grey, alpha, cut_thumbnail
        kept = None
        if frame.index in self.sheet_frames:
            kept = self.sheet[frame.index] = Thumbnail(frame.index, frame_time, picture, _as_uint8(alpha))
        for score in SCORES:
            value, heap = getattr(self, score)[-1], self.worst[score]
            if len(heap) < KEPT_WORST or value > heap[0][0]:
                kept = kept or Thumbnail(frame.index, frame_time, picture, _as_uint8(alpha))
                (heapq.heappush if len(heap) < KEPT_WORST else heapq.heapreplace)(heap, (value, frame.index, kept))
        self.seconds += time.perf_counter() - started

    @property
    def frames(self) -> int:
        return len(self.coverage)

    def flagged(self) -> dict[str, list[int]]:
        """Score name -> frame indices flagged as outliers of this clip."""
        return {score: [self.first + int(i) for i in outliers(np.array(getattr(self, score)), FLOORS[score])]
                for score in SCORES}

    def thumbnails(self) -> dict[int, Thumbnail]:
        """Every kept thumbnail, by frame index."""
        kept = {thumb.index: thumb for heap in self.worst.values() for _, _, thumb in heap}
        return {**kept, **self.sheet}

    def save(self, next_frame: int) -> dict:
        """Everything needed to go on after a checkpoint whose decoding resumes at ``next_frame`` (tensors and
        plain values, as checkpoints hold)."""
        with self._lock:
            pending = {index: seen for index, seen in self._pictures.items() if index < next_frame}
            return {
                "first": self.first, "coverage": list(self.coverage), "chatter": list(self.chatter),
                "holes": list(self.holes), "seconds": self.seconds, "sheet_frames": list(self.sheet_frames),
                "sheet": [_saved(thumb) for thumb in self.sheet.values()],
                "worst": {score: [(value, _saved(thumb)) for value, _, thumb in heap]
                          for score, heap in self.worst.items()},
                "pending": [[index, frame_time, torch.from_numpy(picture)]
                            for index, (frame_time, picture) in pending.items()],
                "previous": None if self._previous is None else [torch.from_numpy(a) for a in self._previous],
            }

    def restore(self, saved: dict) -> None:
        self.first = saved["first"]
        self.coverage, self.chatter, self.holes = saved["coverage"], saved["chatter"], saved["holes"]
        self.seconds, self.sheet_frames = saved["seconds"], saved["sheet_frames"]
        self.sheet = {thumb.index: thumb for thumb in map(_loaded, saved["sheet"])}
        self.worst = {score: [(value, thumb.index, thumb) for value, thumb in ((v, _loaded(t)) for v, t in heap)]
                      for score, heap in saved["worst"].items()}
        for heap in self.worst.values():
            heapq.heapify(heap)
        self._pictures = {index: (frame_time, picture.numpy()) for index, frame_time, picture in saved["pending"]}
        self._previous = None if saved["previous"] is None else tuple(a.numpy() for a in saved["previous"])


def _as_uint8(alpha: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(alpha, 0, 1) * 255).astype(np.uint8)


def _saved(thumb: Thumbnail) -> list:
    return [thumb.index, thumb.time, torch.from_numpy(thumb.picture), torch.from_numpy(thumb.alpha)]


def _loaded(saved: list) -> Thumbnail:
    index, frame_time, picture, alpha = saved
    return Thumbnail(index, frame_time, picture.numpy(), alpha.numpy())
