"""SMPTE timecode: reading a source's start timecode, and counting frames to and from HH:MM:SS:FF.

A timecode counts frames at the nominal integer rate (24 for 23.976, 30 for 29.97). Drop-frame timecode
(written with ';' before the frames) skips frame numbers 0 and 1 of every minute except each tenth at
29.97 fps (0-3 at 59.94), so the label keeps pace with the clock; no picture is dropped.
"""

from __future__ import annotations

import re
from fractions import Fraction

import av

TIMECODE = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})\Z")


def read_timecode(container: av.container.InputContainer, video: av.VideoStream) -> str | None:
    """The start timecode a source states: the video stream's own tag, a timecode (tmcd) track's, or the
    container's (MXF material packages, some MP4s); None when it states none."""
    for metadata in (video.metadata, *(stream.metadata for stream in container.streams.data), container.metadata):
        text = metadata.get("timecode")
        if text and TIMECODE.match(text.strip()):
            return text.strip()
    return None


def first_frame_timecode(stated: str | None, left_out: int, rate: Fraction) -> str | None:
    """The timecode of a clip's first frame: the stated one (that of its first picture) moved on by the pictures
    left out; None when none is stated or it cannot be a timecode at this rate."""
    if stated is None:
        return None
    try:
        return offset_timecode(stated, left_out, rate)
    except ValueError:
        return None


def is_drop_frame(timecode: str) -> bool:
    return TIMECODE.match(timecode).group(4) in ";,"


def timecode_base(rate: Fraction) -> int:
    """Frames per timecode second: the nominal integer rate."""
    return max(1, round(rate))


def _dropped_per_minute(rate: Fraction) -> int:
    return 2 * timecode_base(rate) // 30


def timecode_to_frames(timecode: str, rate: Fraction) -> int:
    """Frames since 00:00:00:00 of a timecode at ``rate``; raises ValueError for a malformed one."""
    match = TIMECODE.match(timecode.strip())
    if match is None:
        raise ValueError(f"{timecode!r} is not a timecode like 01:00:10:05")
    hours, minutes, seconds, frames = (int(match.group(i)) for i in (1, 2, 3, 5))
    base = timecode_base(rate)
    if minutes > 59 or seconds > 59 or frames >= base:
        raise ValueError(f"{timecode!r} is not a timecode at {float(rate):.3f} fps")
    total = ((hours * 60 + minutes) * 60 + seconds) * base + frames
    if is_drop_frame(timecode):
        drop = _dropped_per_minute(rate)
        total_minutes = hours * 60 + minutes
        if seconds == 0 and frames < drop and minutes % 10:
            raise ValueError(f"{timecode!r} is a frame number drop-frame timecode skips")
        total -= drop * (total_minutes - total_minutes // 10)
    return total


def frames_to_timecode(count: int, rate: Fraction, drop_frame: bool) -> str:
    """The timecode ``count`` frames after 00:00:00:00 (wrapping at 24 hours)."""
    base = timecode_base(rate)
    if drop_frame:
        drop = _dropped_per_minute(rate)
        per_ten_minutes = base * 600 - drop * 9
        per_minute = base * 60 - drop
        count %= per_ten_minutes * 6 * 24
        tens, rest = divmod(count, per_ten_minutes)
        # The first minute of every ten keeps all its numbers; each later one skips ``drop`` at its start.
        count += drop * 9 * tens + (drop * ((rest - drop) // per_minute) if rest >= drop else 0)
    else:
        count %= base * 86400
    frames, seconds = count % base, count // base
    separator = ";" if drop_frame else ":"
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{separator}{frames:02d}"


def offset_timecode(timecode: str, frames: int, rate: Fraction) -> str:
    """``timecode`` moved on by ``frames``, in the same (drop- or non-drop-frame) counting."""
    return frames_to_timecode(timecode_to_frames(timecode, rate) + frames, rate, is_drop_frame(timecode))
