"""What happens over time between decoded frames and finished mattes.

* Pre-roll: RVM's recurrent state needs a few frames to settle (without it the first frames of a shot are
  clearly worse). Before the first frame of each shot, the model runs over the shot's first ``preroll``
  frames to build the state, then starts the shot again from its first frame with that state.
* Shot cuts: a hard cut makes the carried state wrong for the new shot. A cheap frame-difference test on
  small thumbnails finds cuts; the state is reset there and the new shot is pre-rolled the same way.
* Smoothing: optional one-frame-delay (OFD) smoothing of the alpha (``smoothing.py``), after any model.

``MattingStream`` does all three on a stream of decoded chunks and can save and restore everything it
carries at chunk boundaries, so an interrupted run resumes to exactly the same output.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import cv2
import numpy as np
import torch

from .inference import MattingEngine
from .io import SourceFrame
from .settings import SMOOTHERS, TemporalOptions
from .smoothing import OneFrameDelaySmoother

THUMBNAIL_WIDTH = 64


@dataclass
class MattedFrame:
    index: int
    pts: int
    pha: np.ndarray  # HxW float32 in [0, 1]
    fgr: np.ndarray | None  # HxWx3 float32 in [0, 1], when asked for


@dataclass
class Boundary:
    """Everything the stream carries after frame ``next_frame - 1``: a resume point."""

    next_frame: int
    saved: dict


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A small HSV picture of a frame for the cut test (uint8, OpenCV's hue range 0..179)."""
    if rgb.dtype != np.uint8:
        rgb = (rgb >> 8).astype(np.uint8)
    height = max(1, round(rgb.shape[0] * THUMBNAIL_WIDTH / rgb.shape[1]))
    small = cv2.resize(rgb, (THUMBNAIL_WIDTH, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2HSV)


def cut_score(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean change of hue (circular), saturation and value between two thumbnails, on a 0-255 scale."""
    delta = np.abs(previous.astype(np.int16) - current.astype(np.int16)).astype(np.float32)
    hue = np.minimum(delta[..., 0], 180 - delta[..., 0]) * (255 / 90)  # the largest circular hue step is 90
    return float((hue.mean() + delta[..., 1].mean() + delta[..., 2].mean()) / 3)


def cut_flags(frames: Iterable[SourceFrame], threshold: float) -> Iterator[tuple[int, bool]]:
    """Each frame's index, and whether a hard cut comes right before it: the test the stream resets its state at."""
    previous = None
    for frame in frames:
        current = thumbnail(frame.rgb)
        yield frame.index, previous is not None and cut_score(previous, current) > threshold
        previous = current


@dataclass
class _Pending:
    frame: SourceFrame  # kept as decoded (8 or 16 bits): pre-roll holds up to ``preroll`` frames back
    thumbnail: np.ndarray | None
    shot_start: bool


def _stack(items: list[_Pending]) -> torch.Tensor:
    return frames_to_tensor([i.frame for i in items])


@dataclass
class MattingStream:
    """Decoded chunks in, matted frames out (in order), with pre-roll, cut handling and smoothing.

    ``push`` and ``finish`` return ``MattedFrame`` items and, right after each frame whose index + 1 is a
    multiple of ``boundary_every``, a ``Boundary`` to save. Model calls never span a shot start or a boundary,
    so a run resumed from a boundary makes exactly the same calls as an uninterrupted one.
    """

    engine: MattingEngine
    downsample_ratio: float
    options: TemporalOptions = field(default_factory=TemporalOptions)
    chunk: int = 4
    need_fgr: bool = True
    boundary_every: int | None = None
    first_frame: int = 0  # where the stream starts: a shot (cluster.py) starts there
    state: list | None = None
    last_thumbnail: np.ndarray | None = None  # of the last frame pushed
    processed_thumbnail: np.ndarray | None = None  # of the last frame matted
    next_frame: int = 0  # index of the next frame to matte
    _pending: list[_Pending] = field(default_factory=list)
    _prerolled_shot: int | None = None  # index of the shot start whose pre-roll is done
    _smoother: OneFrameDelaySmoother | None = None
    _warmed_up: bool = False  # the first frame continues from frames before it (a range's warm-up)

    def __post_init__(self) -> None:
        self.next_frame = self.first_frame
        self.options = self.options.for_source(image_sequence=False)  # explicit choices are kept as given
        if self.options.smooth not in (None, *SMOOTHERS):
            raise ValueError(f"unknown smoothing {self.options.smooth!r}")
        if self.options.smooth == "ofd":
            self._smoother = OneFrameDelaySmoother(self.options.smooth_threshold)

    def thumbnails(self, frames: list[SourceFrame]) -> list[np.ndarray | None]:
        """The cut test's thumbnails of ``frames``: ``push`` takes them made beforehand (in the decoding thread,
        beside the model) or makes them itself."""
        return [thumbnail(frame.rgb) if self.options.cuts else None for frame in frames]

    def push(self, frames: list[SourceFrame], thumbnails: list[np.ndarray | None] | None = None) -> list:
        for frame, thumb in zip(frames, thumbnails or self.thumbnails(frames), strict=True):
            shot_start = (frame.index == self.first_frame and not self._warmed_up) or (
                thumb is not None and self.last_thumbnail is not None
                and cut_score(self.last_thumbnail, thumb) > self.options.cut_threshold)
            self._pending.append(_Pending(frame, thumb, shot_start))
            self.last_thumbnail = thumb
        return self._drain(end_of_stream=False)

    def warm_up(self, frames_from: Callable[[int], Iterable[SourceFrame]], earliest: int) -> int:
        """Carries into ``first_frame`` the state a run from frame ``earliest`` (the clip's first) would carry
        there, so that a range's mattes are that run's (docs/pulls.md): the stream replays the shot the range
        begins in, from its start (the last cut before the range, or the clip's first frame) as a run does: its
        pre-roll, then its frames up to the range. No shorter warm-up is enough: the state keeps traces of a
        shot's start for as long as the shot lasts. ``frames_from(i)`` yields the clip's frames from index i on.
        Returns how many frames the model ran on."""
        first, preroll = self.first_frame, self.options.preroll
        if not self.engine.recurrent or earliest >= first:
            return 0
        starts = [earliest]
        if self.options.cuts:  # the cuts up to the range, and after it as far as a pre-roll can reach
            for index, cut in islice(cut_flags(frames_from(earliest), self.options.cut_threshold),
                                     first + preroll - earliest):
                starts += [index] if cut else []
        shot = max(start for start in starts if start <= first)
        if shot == first:  # the range begins a shot: nothing before it counts
            return 0
        preroll_end = min([shot + preroll, *(start for start in starts if start > shot)])
        self._start_shot([_Pending(frame, None, False) for frame in islice(frames_from(shot), preroll_end - shot)])
        for batch in chunks(islice(frames_from(shot), first - shot), self.chunk):
            self.state = self.engine.state_after(frames_to_tensor(batch), self.state, self.downsample_ratio,
                                                 self.need_fgr)
            last = batch[-1]
        self.last_thumbnail = self.thumbnails([last])[0]
        self._warmed_up = True
        return preroll_end - shot + first - shot

    def preroll(self, frames: list[SourceFrame]) -> int:
        """Pre-rolls the shot that starts at ``frames[0]`` over ``frames`` (its first ones), as the stream does
        once they are pushed, so that pushing only the shot's first frame next mattes it as a run does. Returns
        how many frames the model ran on."""
        self._start_shot([_Pending(frame, None, False) for frame in frames])
        self._prerolled_shot = frames[0].index
        return len(frames) if self.engine.recurrent else 0

    def finish(self) -> list:
        out = self._drain(end_of_stream=True)
        if self._smoother is not None:
            out += [self._unwrap(matte, payload) for matte, payload in self._smoother.flush()]
        return out

    def _drain(self, end_of_stream: bool) -> list:
        out = []
        while self._pending:
            head, shot = self._pending[0], self._shot_length()
            if head.shot_start and self._prerolled_shot != head.frame.index:
                wanted = min(self.options.preroll, shot if shot is not None else self.options.preroll)
                if len(self._pending) < wanted and not end_of_stream:
                    break  # wait for the frames this shot's pre-roll needs
                self._start_shot(self._pending[:wanted])
                self._prerolled_shot = head.frame.index
            size = min(self.chunk, shot if shot is not None else self.chunk)
            if self.boundary_every:
                size = min(size, self.boundary_every - self.next_frame % self.boundary_every)
            if len(self._pending) < size and not end_of_stream:
                break
            out += self._matte(self._pending[:size])
        return out

    def _shot_length(self) -> int | None:
        """Frames from the pending head to the next shot start, if one is already pending."""
        for offset, item in enumerate(self._pending[1:], start=1):
            if item.shot_start:
                return offset
        return None

    def _start_shot(self, items: list[_Pending]) -> None:
        """Resets the state for a new shot and builds it over the shot's first frames (pre-roll)."""
        self.state = None
        if not self.engine.recurrent:
            return
        for start in range(0, len(items), self.chunk):
            batch = _stack(items[start : start + self.chunk])
            self.state = self.engine.state_after(batch, self.state, self.downsample_ratio, self.need_fgr)

    def _matte(self, items: list[_Pending]) -> list:
        del self._pending[: len(items)]
        out = self.engine.run(_stack(items), self.state, self.downsample_ratio, need_fgr=self.need_fgr)
        self.state = out.state
        self.next_frame = items[-1].frame.index + 1
        self.processed_thumbnail = items[-1].thumbnail
        matted = []
        for t, item in enumerate(items):
            frame = MattedFrame(item.frame.index, item.frame.pts, out.pha[0, t, 0].numpy(),
                                out.fgr[0, t].permute(1, 2, 0).numpy() if out.fgr is not None else None)
            matted += self._smooth(frame)
        if self.boundary_every and self.next_frame % self.boundary_every == 0:
            matted.append(Boundary(self.next_frame, self.save()))
        return matted

    def _smooth(self, frame: MattedFrame) -> list[MattedFrame]:
        if self._smoother is None:
            return [frame]
        payload = (frame.index, frame.pts, None if frame.fgr is None else torch.from_numpy(frame.fgr))
        return [self._unwrap(m, p) for m, p in self._smoother.push(torch.from_numpy(frame.pha), payload)]

    @staticmethod
    def _unwrap(matte: torch.Tensor, payload: tuple) -> MattedFrame:
        index, pts, fgr = payload
        return MattedFrame(index, pts, matte.numpy(), None if fgr is None else fgr.numpy())

    def save(self) -> dict:
        """What a resumed run needs to continue exactly from ``next_frame`` (tensors and plain values only)."""
        return {
            "state": [r.detach().float().cpu().clone() for r in self.state] if self.state else None,
            "thumbnail": None if self.processed_thumbnail is None else torch.from_numpy(self.processed_thumbnail),
            "smoother": self._smoother.state_dict() if self._smoother is not None else None,
        }

    def restore(self, next_frame: int, saved: dict) -> None:
        """Continue after frame ``next_frame - 1`` as saved by ``save``."""
        self.next_frame = next_frame
        self.state = [r.to(self.engine.device, self.engine.dtype) for r in saved["state"]] if saved["state"] else None
        self.last_thumbnail = None if saved["thumbnail"] is None else saved["thumbnail"].numpy()
        self.processed_thumbnail = self.last_thumbnail
        if self._smoother is not None and saved["smoother"] is not None:
            self._smoother.load_state_dict(saved["smoother"])


def chunks(frames: Iterable[SourceFrame], size: int) -> Iterator[list[SourceFrame]]:
    """The frames in lists of ``size`` (the last may be shorter)."""
    batch: list[SourceFrame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def frames_to_tensor(frames: list[SourceFrame]) -> torch.Tensor:
    """(T, 3, H, W) float32 in [0, 1] in the channels-last layout frames are decoded in (viewed, not
    transposed): every model call sees one memory layout (results differ in the last bits between layouts),
    and the convolutions run faster in it."""
    batch = np.stack([f.rgb for f in frames])
    scale = np.float32(255.0 if batch.dtype == np.uint8 else 65535.0)
    # The same float32 values PyTorch's division gives, faster (9 against 11.6 ms for four 1080p frames).
    return torch.from_numpy(np.divide(batch, scale, dtype=np.float32)).permute(0, 3, 1, 2)


def matted_frames(engine: MattingEngine, frames: Iterable[np.ndarray], downsample_ratio: float,
                  options: TemporalOptions = TemporalOptions(), chunk: int = 4,
                  need_fgr: bool = False) -> Iterator[MattedFrame]:
    """Matted in-memory RGB frames (HxWx3 uint8), in order: for benchmarks and tests."""
    stream = MattingStream(engine, downsample_ratio, options, chunk, need_fgr=need_fgr)
    batch: list[SourceFrame] = []

    for index, rgb in enumerate(frames):
        batch.append(SourceFrame(index, index, 0.0, rgb))
        if len(batch) == chunk:
            yield from stream.push(batch)
            batch = []
    out = stream.push(batch) if batch else []
    yield from out + stream.finish()


def matte_frames(engine: MattingEngine, frames: Iterable[np.ndarray], downsample_ratio: float,
                 options: TemporalOptions = TemporalOptions(), chunk: int = 4) -> Iterator[np.ndarray]:
    """Alpha mattes (HxW float32) of in-memory RGB frames (HxWx3 uint8), in order: for benchmarks and tests."""
    yield from (m.pha for m in matted_frames(engine, frames, downsample_ratio, options, chunk))
