"""Frame sources: one interface over video files (PyAV) and image sequences.

Frames are matched to the timeline that probing found (every frame's pts), not counted as they come out
of the decoder, so a picture the decoder fails to produce is noticed, named by index and time, and either
reported or stood in for -- never dropped. Where probing had to build the timeline by decoding (packet
timestamps that cannot be trusted, see vmatte.io.probe), frame i is the decoder's i-th picture, and reading from
a later frame decodes from the start (pictures before it are decoded, not converted).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vmatte.errors import VmatteError
from vmatte.io.colour import LUMA_WEIGHTS, frame_to_rgb, is_yuv
from vmatte.io.probe import Timeline, VideoInfo, decoded_pictures, scan

log = logging.getLogger(__name__)


@dataclass
class SourceFrame:
    index: int  # 0-based position in display order
    pts: int  # in the source time base
    time: float  # seconds
    rgb: np.ndarray  # HxWx3, C-contiguous, display orientation; uint8, or uint16 for deeper sources


class FrameSource(ABC):
    """Decoded frames of one source, in display order, as RGB."""

    def __init__(self, info: VideoInfo, timeline: Timeline, skip_corrupt: bool) -> None:
        self.info = info
        self._timeline = timeline
        self._skip_corrupt = skip_corrupt
        self.repeated_frames = 0  # corrupt frames replaced by the previous good one (skip_corrupt=True)

    def frames(self, start: int = 0) -> Iterator[SourceFrame]:
        """Frames from index ``start`` on; identical to those a full decode yields at the same indices."""
        if not 0 <= start <= self.info.frame_count:
            raise ValueError(f"start={start} is outside 0..{self.info.frame_count}")
        return self._frames(start)

    @abstractmethod
    def _frames(self, start: int) -> Iterator[SourceFrame]: ...

    @property
    def pts(self) -> tuple[int, ...]:
        """Every frame's presentation timestamp, in display order."""
        return self._timeline.pts

    def close(self) -> None:
        """Nothing is held open between iterations; kept so sources can be used as context managers."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _frame(self, index: int, rgb: np.ndarray) -> SourceFrame:
        pts = self._timeline.pts[index]
        return SourceFrame(index=index, pts=pts, time=float(pts * self.info.time_base), rgb=rgb)

    def _stand_in(self, index: int, reason: str, last_good: np.ndarray | None) -> SourceFrame:
        """The frame to yield where ``index`` could not be decoded: the last good one, or an error."""
        pts = self._timeline.pts[index]
        where = f"{self.info.path}: corrupt frame at index {index} (t={float(pts * self.info.time_base):.3f} s)"
        if not self._skip_corrupt:
            raise VmatteError(f"{where}: {reason} (--skip-corrupt repeats the previous frame instead)")
        if last_good is None:
            raise VmatteError(f"{where}: {reason}, and there is no earlier good frame to repeat")
        log.warning("%s: %s; repeating the previous frame", where, reason)
        self.repeated_frames += 1
        return self._frame(index, last_good)


class VideoFileSource(FrameSource):
    def _frames(self, start: int) -> Iterator[SourceFrame]:
        if start == self.info.frame_count:
            return
        target_pts = self._timeline.pts[start]
        keyframe = max((keyframe for keyframe in self._timeline.keyframes if keyframe[0] <= target_pts), default=None)
        if keyframe is not None and keyframe[1] > self.info.start_pts:
            # Seeking to the keyframe's pts lands on it where the demuxer indexes by presentation time (MP4,
            # Matroska); to its decoding time, one GOP early there (twice the decoding). Where the first lands
            # after the wanted frame, the second is tried.
            # The picture before the wanted one is decoded too: a damaged wanted frame repeats it, as in a
            # linear read.
            wanted_pts = self._timeline.pts[max(start - 1, 0)]
            for seek_to in dict.fromkeys(keyframe):
                try:
                    with av.open(self.info.path) as container:
                        decoded = self._decoded(container, seek_to, wanted_pts)
                        first = next(decoded, None)
                        if first is not None and first[0] <= start:
                            for frame in self._matched(_chain(first, decoded), start):
                                yield frame
                                start = frame.index + 1
                            return
                        decoded.close()
                except _UnpredictedPicture:
                    pass  # after a seek: the demuxer stamped a picture differently from a linear read
            # Or the demuxer landed after the wanted frame (its index disagrees with the packets' keyframe flags),
            # or where nothing decodes. Decoding from the start is slower but always right.
            log.info("%s: seeking missed frame %d; decoding from the start", self.info.path, start)
        with av.open(self.info.path) as container:
            yield from self._matched(self._decoded(container, None), start)

    def _decoded(
        self, container: av.container.InputContainer, seek_to: int | None, wanted_pts: int | None = None
    ) -> Iterator[tuple[int, av.VideoFrame | None, str]]:
        """(timeline index, frame, reason) for each decoder output; frame is None for a damaged picture. After a
        seek, pictures before ``wanted_pts`` that nothing refers to are skipped."""
        stream = container.streams[self._timeline.stream_index]
        stream.thread_type = "AUTO"
        if seek_to is not None:
            container.seek(seek_to, stream=stream, backward=True)
        if self._timeline.by_count:
            lost = set(self._timeline.lost)
            index_of = dict(enumerate(index for index in range(self.info.frame_count) if index not in lost))
        else:
            index_of = {pts: index for index, pts in enumerate(self._timeline.pts)}
        pictures = decoded_pictures(container, stream, wanted_pts if seek_to is not None else None)
        for position, (frame, error) in enumerate(pictures):
            index = index_of.get(position if self._timeline.by_count else frame.pts)
            if index is None:
                if seek_to is not None:
                    raise _UnpredictedPicture
                raise VmatteError(
                    f"{self.info.path}: the decoder produced a picture (number {position}, pts {frame.pts}) that "
                    "probing did not predict; the stream's timestamps are inconsistent"
                )
            if frame.is_corrupt:
                yield index, None, "the decoder flagged the picture as damaged (error concealment)"
            else:
                yield index, frame, error

    def _matched(
        self, decoded: Iterator[tuple[int, av.VideoFrame | None, str]], start: int
    ) -> Iterator[SourceFrame]:
        """Yield frames start.. in order, standing in for any the decoder did not produce."""
        wanted = start
        last_good: np.ndarray | av.VideoFrame | None = None
        for index, frame, reason in decoded:
            if index < wanted:  # decoded only to reach the wanted frame (after a seek)
                if frame is not None:
                    last_good = frame
                continue
            while wanted < index:
                last_good = self._rgb(last_good)
                yield self._stand_in(wanted, reason or "the decoder produced no picture", last_good)
                wanted += 1
            if frame is None:
                last_good = self._rgb(last_good)
                yield self._stand_in(index, reason, last_good)
            else:
                last_good = self._rgb(frame)
                yield self._frame(index, last_good)
            wanted += 1
        while wanted < self.info.frame_count:
            last_good = self._rgb(last_good)
            yield self._stand_in(wanted, "the stream ended before this frame", last_good)
            wanted += 1

    def _rgb(self, frame: av.VideoFrame | np.ndarray | None) -> np.ndarray | None:
        if frame is None or isinstance(frame, np.ndarray):
            return frame
        return self._timeline.orientation.apply(frame_to_rgb(frame, self.info.colour))


class ImageSequenceSource(FrameSource):
    def _frames(self, start: int) -> Iterator[SourceFrame]:
        last_good = None
        for index in range(start, self.info.frame_count):
            try:
                rgb = self._decode(index)
            except (av.FFmpegError, StopIteration) as error:
                if last_good is None and index > 0:
                    last_good = self._last_good_before(index)
                yield self._stand_in(index, f"{self._timeline.files[index].name} is unreadable ({error})", last_good)
                continue
            last_good = rgb
            yield self._frame(index, rgb)

    def _decode(self, index: int) -> np.ndarray:
        path = self._timeline.files[index]
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            raise VmatteError(
                f"{path}: {frame.width}x{frame.height}, but the sequence {self.info.path} is "
                f"{self.info.width}x{self.info.height}; all images must have the same size"
            )
        return frame_to_rgb(frame, self.info.colour)

    def _last_good_before(self, index: int) -> np.ndarray | None:
        """What a full run would be repeating at ``index`` (needed when resuming onto a bad image)."""
        for earlier in range(index - 1, -1, -1):
            try:
                return self._decode(earlier)
            except (av.FFmpegError, StopIteration):
                continue
        return None


def open_source(path_or_pattern: str | Path, *, skip_corrupt: bool = False,
                sequence_fps: Fraction | None = None) -> FrameSource:
    """Open a video file, a folder of images or a frame pattern (``frames/%06d.png``) for reading; an image
    sequence runs at ``sequence_fps`` (default 25)."""
    info, timeline = scan(path_or_pattern, sequence_fps)
    if info.colour_matrix not in LUMA_WEIGHTS and is_yuv(av.VideoFormat(info.pix_fmt)):
        raise VmatteError(
            f"{info.path}: colour matrix '{info.colour_matrix}' is not supported "
            f"(supported: {', '.join(sorted(LUMA_WEIGHTS))})"
        )
    source_type = ImageSequenceSource if info.is_image_sequence else VideoFileSource
    return source_type(info, timeline, skip_corrupt)


class _UnpredictedPicture(Exception):
    """A picture whose pts is not in the timeline turned up after a seek."""


def _chain(first: tuple | None, rest: Iterator[tuple]) -> Iterator[tuple]:
    if first is not None:
        yield first
    yield from rest
