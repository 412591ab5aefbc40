"""A range of a clip and the frame source that yields only its frames: ``--start``/``--end``, a shot of a clip
split at its cuts (cluster.py), a shot of an edit (pull.py).

Each end of ``--start``/``--end`` is a frame number (the clip's first frame is 0), seconds (``12.5s``) or a
timecode of the source (``01:00:11:05``); the end is exclusive. Such a range stands alone: its frames are
renumbered from 0 and moved back in time so its outputs start where the source does, with their own timecode
(the source's, moved on to the first frame) and the source's audio cut to the same span. A shot of a split clip
stays in place (its outputs are joined into the clip's). Either way the frames before the range stay readable
(``context_frames``), for the warm-up that makes the range's mattes those of a run over the whole clip
(temporal.py).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction

from vmatte.errors import VmatteError
from vmatte.io.audio import AudioCut
from vmatte.io.probe import VideoInfo
from vmatte.io.reader import FrameSource, SourceFrame
from vmatte.io.timecode import TIMECODE, offset_timecode, timecode_to_frames

POSITION_FORMS = "a frame number (30), seconds (12.5s) or a timecode of the source (01:00:11:05)"
_SECONDS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*s\Z")


def check_position(name: str, value: object) -> str:
    """A range end as given (a whole number, or text in one of POSITION_FORMS), as text; raises VmatteError."""
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not (text.isdigit() or _SECONDS.match(text.lower()) or TIMECODE.match(text)):
        raise VmatteError(f"{name} {value!r}: give {POSITION_FORMS}")
    return text


@dataclass(frozen=True)
class FrameRange:
    first: int  # index of the first frame in the range
    end: int  # index after the last one
    # Its frames keep their positions, timestamps and timecode: the whole clip, or a shot of a clip split at its
    # cuts (cluster.py), whose outputs are joined into the clip's.
    in_place: bool = False

    @property
    def frames(self) -> int:
        return self.end - self.first


def resolve_range(info: VideoInfo, pts: tuple[int, ...], start: str | None, end: str | None) -> FrameRange:
    """The frames ``start``/``end`` (POSITION_FORMS, end exclusive; None: the clip's first/last) name in a clip
    whose frames have the presentation timestamps ``pts``."""
    first = 0 if start is None else _index(info, pts, "--start", start)
    stop = info.frame_count if end is None else _index(info, pts, "--end", end)
    if first >= info.frame_count:
        raise VmatteError(f"--start {start}: beyond the clip, which has {info.frame_count} frames ({_span(info)})")
    if stop > info.frame_count:
        raise VmatteError(f"--end {end}: beyond the clip, which has {info.frame_count} frames ({_span(info)}); "
                          "leave --end out to run to the last frame")
    if stop <= first:
        raise VmatteError(f"--end {end} must come after --start {start or 0} (the end is exclusive)")
    return FrameRange(first, stop)


def _index(info: VideoInfo, pts: tuple[int, ...], name: str, value: str) -> int:
    text = check_position(name, value)
    if text.isdigit():
        return int(text)
    if seconds := _SECONDS.match(text.lower()):
        # The first frame shown at or after that time (half a tick early still counts: timestamps are rounded).
        target = Fraction(seconds.group(1)) / info.time_base + info.start_pts - Fraction(1, 2)
        return bisect_left(pts, target)
    if info.timecode is None:
        raise VmatteError(f"{name} {value}: {info.path} states no timecode; give a frame number or seconds")
    try:
        index = timecode_to_frames(text, info.frame_rate) - timecode_to_frames(info.timecode, info.frame_rate)
    except ValueError as error:
        raise VmatteError(f"{name} {value}: {error}") from None
    if index < 0:
        raise VmatteError(f"{name} {value}: before the clip, which starts at timecode {info.timecode}")
    return index


def _span(info: VideoInfo) -> str:
    if info.timecode is None:
        return f"0-{info.frame_count - 1}, {info.duration:.3f} s"
    last = offset_timecode(info.timecode, info.frame_count - 1, info.frame_rate)
    return f"0-{info.frame_count - 1}, {info.duration:.3f} s, timecode {info.timecode}-{last}"


class RangeSource:
    """The FrameSource interface (info, frames, close, repeated_frames) over a range of another source.

    Its frames carry their own indices: the source's less ``offset`` (the range's first frame is 0 in a range
    that stands alone). ``first``/``end`` are the range in those indices, ``earliest`` the source's first frame.
    """

    def __init__(self, source: FrameSource, frame_range: FrameRange) -> None:
        self._source = source
        self.range = frame_range
        self.offset = 0 if frame_range.in_place else frame_range.first
        self.first, self.end, self.earliest = frame_range.first - self.offset, frame_range.end - self.offset, \
            -self.offset
        info, pts = source.info, source.pts
        if frame_range.in_place:
            self._shift, self.info = 0, info
            return
        self._shift = pts[frame_range.first] - info.start_pts  # the range's outputs start where the source does
        start = Fraction(pts[frame_range.first] * info.time_base)
        end = Fraction(pts[frame_range.end] * info.time_base) if frame_range.end < info.frame_count else \
            Fraction(info.start_pts * info.time_base) + Fraction(info.duration)
        self.info = replace(
            info,
            frame_count=frame_range.frames,
            duration=float(end - start),
            frame_numbers=info.frame_numbers[frame_range.first : frame_range.end],
            timecode=offset_timecode(info.timecode, frame_range.first, info.frame_rate) if info.timecode else None,
            first_frame=info.first_frame + frame_range.first,
            audio_cut=AudioCut(float(start), float(end), float(self._shift * info.time_base)),
        )

    @property
    def repeated_frames(self) -> int:
        return self._source.repeated_frames

    def frames(self, start: int | None = None) -> Iterator[SourceFrame]:
        """The range's frames from its own index ``start`` (default: its first) on."""
        start = self.first if start is None else start
        if not self.first <= start <= self.end:
            raise ValueError(f"start={start} is outside {self.first}..{self.end}")
        return self._moved(start, self.end)

    def context_frames(self, start: int) -> Iterator[SourceFrame]:
        """The source's frames from own index ``start`` (``earliest`` or later, before the range too) to its end."""
        return self._moved(max(start, self.earliest), self._source.info.frame_count - self.offset)

    def _moved(self, first: int, end: int) -> Iterator[SourceFrame]:
        if first >= end:
            return
        time_shift = float(self._shift * self._source.info.time_base)
        for frame in self._source.frames(first + self.offset):
            if frame.index - self.offset >= end:
                return
            yield SourceFrame(frame.index - self.offset, frame.pts - self._shift, frame.time - time_shift,
                              frame.rgb)

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> RangeSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
