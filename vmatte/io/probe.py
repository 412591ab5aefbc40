"""Facts about a video file or image sequence.

Counts, timestamps and rates come from demuxing every packet (cheap: nothing is decoded but the first
frame), never from container metadata, which is often missing or wrong (no duration, nb_frames off by the
frames an edit list trims, average rates skewed by the last frame's duration).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vmatte.errors import VmatteError
from vmatte.io.audio import AudioCut, decodable_audio_streams
from vmatte.io.colour import MATRIX_NAMES, PRIMARIES_NAMES, RANGE_NAMES, SRGB_TRANSFER, TRANSFER_NAMES, Colour, is_yuv
from vmatte.io.orientation import UPRIGHT, Orientation, orientation_of
from vmatte.io.sequence import frame_numbers, is_sequence, sequence_files
from vmatte.io.timecode import first_frame_timecode, read_timecode, timecode_to_frames
from vmatte.io.vpx import packet_shows_frame

SEQUENCE_FRAME_RATE = Fraction(25)  # of image sequences, unless given
# Nominal rates a constant-rate clip is snapped to when its timestamps (rounded to the time base) agree.
STANDARD_RATES = tuple(
    Fraction(rate) for rate in ("24000/1001", "24", "25", "30000/1001", "30", "50", "60000/1001", "60")
)


@dataclass(frozen=True)
class AudioInfo:
    index: int  # stream index in the container
    codec: str
    sample_rate: int
    channels: int
    start: float  # seconds
    duration: float  # seconds, from the packets' timestamps and durations


@dataclass(frozen=True)
class VideoInfo:
    path: str
    codec: str
    width: int  # display size: after rotation
    height: int
    coded_width: int
    coded_height: int
    rotation: int  # clockwise degrees to apply for display: 0, 90, 180 or 270
    mirrored: bool  # display is also flipped left-right (after the rotation)
    frame_count: int
    frame_rate: Fraction  # exact nominal rate (the average rate for variable-rate clips)
    time_base: Fraction
    is_vfr: bool
    start_pts: int
    duration: float  # seconds
    pix_fmt: str
    bit_depth: int
    has_alpha: bool  # the source carries alpha; readers ignore it and yield RGB
    colour_matrix: str
    colour_range: str  # 'tv' (limited) or 'pc' (full)
    colour_primaries: str
    colour_transfer: str
    colour_assumed: bool  # some colour fields were untagged and filled in (see describe_colour)
    audio: tuple[AudioInfo, ...] = ()
    pixel_aspect: Fraction = Fraction(1)  # sample aspect ratio of the displayed picture (anamorphic: not 1)
    is_image_sequence: bool = False
    frame_numbers: tuple[int, ...] = ()  # image sequences: the number in each file's name, where all have one
    undecodable_leading_frames: int = 0  # pictures before the first decodable one (a stream cut mid-GOP): left out
    timecode: str | None = None  # of the first frame, as HH:MM:SS:FF (';' before FF: drop-frame); None: not stated
    first_frame: int = 0  # the source position of frame 0 (a range of a clip starts later)
    audio_cut: AudioCut | None = None  # a range: the part of the source's audio that goes with it

    def frame_number(self, index: int) -> int:
        """The number a frame's image-sequence output gets: its source image's own number, else its position in
        the source."""
        return self.frame_numbers[index] if self.frame_numbers else self.first_frame + index

    def timecode_frame(self, index: int) -> int:
        """A frame's timecode as a frame count since 00:00:00:00 (for outputs numbered by timecode)."""
        if self.timecode is None:
            raise VmatteError(f"{self.path}: states no start timecode to number frames by")
        return timecode_to_frames(self.timecode, self.frame_rate) + index

    @property
    def colour(self) -> Colour:
        return Colour(self.colour_matrix, self.colour_range, self.colour_primaries, self.colour_transfer)


@dataclass(frozen=True)
class Timeline:
    """What a reader needs beyond VideoInfo: every frame's pts in display order, and where to seek."""

    pts: tuple[int, ...]
    keyframe_pts: tuple[int, ...]  # sorted
    orientation: Orientation = UPRIGHT
    stream_index: int = 0
    files: tuple[Path, ...] = ()  # image sequences only


def probe(path: str | Path, sequence_fps: Fraction | None = None) -> VideoInfo:
    """Describe a video file, a folder of images or a frame pattern; raises VmatteError if it is not one."""
    return scan(path, sequence_fps)[0]


def scan(path: str | Path, sequence_fps: Fraction | None = None) -> tuple[VideoInfo, Timeline]:
    """VideoInfo and Timeline; an image sequence runs at ``sequence_fps`` (default 25); a video file keeps
    its own timestamps."""
    if is_sequence(path):
        return _scan_sequence(Path(path), sequence_fps or SEQUENCE_FRAME_RATE)
    return _scan_video(Path(path))


def describe_colour(frame: av.VideoFrame, context: av.VideoCodecContext, codec: str) -> tuple[Colour, bool]:
    """The frame's colour tags (or its decoder's), with untagged fields filled in; also says if any were.

    Fallbacks for Y'CbCr: BT.709 when the coded picture is HD (height >= 720 or width >= 1280), else
    BT.601 (smpte170m); limited range unless the format is a full-range 'yuvj' one; JPEG is always BT.601
    full range (JFIF). RGB and grey pictures are taken as sRGB; scene-linear ones (OpenEXR) are
    encoded to sRGB on reading.
    """
    matrix = _tag(MATRIX_NAMES, frame.colorspace, context.colorspace)
    value_range = _tag(RANGE_NAMES, frame.color_range, context.color_range)
    primaries = _tag(PRIMARIES_NAMES, frame.color_primaries, context.color_primaries)
    transfer = _tag(TRANSFER_NAMES, frame.color_trc, context.color_trc)
    assumed = None in (primaries, transfer)
    if not is_yuv(frame.format):
        # Scene-linear pictures are handed on sRGB-encoded (colour.frame_to_rgb).
        transfer = SRGB_TRANSFER if transfer in (None, "linear") else transfer
        return Colour("rgb", "pc", primaries or "bt709", transfer), assumed
    assumed = assumed or None in (matrix, value_range)
    jpeg = codec == "mjpeg" or frame.format.name.startswith("yuvj")
    hd = frame.height >= 720 or frame.width >= 1280
    standard = "bt709" if hd else "smpte170m"
    return Colour(
        matrix=matrix or ("bt470bg" if jpeg else standard),
        range=value_range or ("pc" if jpeg else "tv"),
        primaries=primaries or standard,
        transfer=transfer or standard,
    ), assumed


def _tag(names: dict[int, str], *codes: int) -> str | None:
    for code in codes:
        name = names.get(int(code))
        if name not in (None, "unspecified"):
            return name
    return None


def _scan_video(path: Path) -> tuple[VideoInfo, Timeline]:
    if not path.is_file():
        raise VmatteError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise VmatteError(f"{path}: not a readable video file ({error})") from None
    with container:
        stream = _video_stream(path, container)
        codec = stream.codec_context.codec.canonical_name
        pts, keyframe_pts, audio_ends = _demux(path, container, stream, codec)
        audio = tuple(_audio_info(container.streams[index], end) for index, end in audio_ends.items())
        metadata = dict(stream.metadata)
        average_rate, guessed_rate = stream.average_rate, stream.guessed_rate
        sample_aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        stream_index, time_base = stream.index, Fraction(stream.time_base)
        timecode = read_timecode(container, stream)
    if not pts:
        raise VmatteError(f"{path}: the video stream has no frames")
    frame, colour, colour_assumed = _first_frame(path, stream_index, codec)
    # A stream cut mid-GOP (broadcast recordings, stream segments) opens with pictures whose references are
    # not in the file: decoders output nothing for them, so they are not frames of the clip.
    leading = bisect_left(pts, frame.pts) if frame.pts is not None else 0
    pts, keyframe_pts = pts[leading:], tuple(k for k in keyframe_pts if k >= pts[leading])
    orientation = orientation_of(frame)
    width, height = orientation.display_size(frame.width, frame.height)
    try:
        frame_rate, is_vfr = _frame_rate(pts, time_base, average_rate, guessed_rate)
    except ValueError as error:
        raise VmatteError(f"{path}: damaged video: {error}") from None
    info = VideoInfo(
        path=str(path),
        codec=codec,
        width=width,
        height=height,
        coded_width=frame.width,
        coded_height=frame.height,
        rotation=orientation.rotation,
        mirrored=orientation.mirrored,
        frame_count=len(pts),
        frame_rate=frame_rate,
        time_base=time_base,
        is_vfr=is_vfr,
        start_pts=pts[0],
        duration=float((pts[-1] - pts[0]) * time_base + 1 / frame_rate),
        **_picture_fields(frame, colour, colour_assumed),
        # VP8/VP9 alpha travels beside the picture (Matroska BlockAdditional), flagged by alpha_mode.
        has_alpha=any(c.is_alpha for c in frame.format.components) or metadata.get("alpha_mode") == "1",
        audio=audio,
        pixel_aspect=orientation.display_aspect(Fraction(sample_aspect)) if sample_aspect else Fraction(1),
        undecodable_leading_frames=leading,
        timecode=first_frame_timecode(timecode, leading, frame_rate),
    )
    return info, Timeline(pts=pts, keyframe_pts=keyframe_pts, orientation=orientation, stream_index=stream_index)


def _picture_fields(frame: av.VideoFrame, colour: Colour, colour_assumed: bool) -> dict:
    """The VideoInfo fields read off a decoded picture: its pixel format and how its colour is to be read."""
    return {"pix_fmt": frame.format.name, "bit_depth": frame.format.components[0].bits,
            "colour_matrix": colour.matrix, "colour_range": colour.range, "colour_primaries": colour.primaries,
            "colour_transfer": colour.transfer, "colour_assumed": colour_assumed}


def _video_stream(path: Path, container: av.container.InputContainer) -> av.VideoStream:
    # Cover art in audio files shows up as a one-picture video stream.
    videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not videos:
        raise VmatteError(f"{path}: contains no video stream")
    for stream in videos:
        if stream.codec_context is not None:
            return stream
    raise VmatteError(f"{path}: its video codec is not one FFmpeg can decode")


def _demux(
    path: Path, container: av.container.InputContainer, stream: av.VideoStream, codec: str
) -> tuple[tuple[int, ...], tuple[int, ...], dict[int, int]]:
    """Presentation timestamps of the frames a decoder will output, keyframe pts, and each audio end pts."""
    pts, keyframe_pts, audio_ends = [], [], {}
    try:
        for packet in container.demux(stream, *decodable_audio_streams(container)):
            # Empty packets flush decoders; discarded ones fall outside the edit list and decode to nothing.
            if packet.size == 0 or packet.is_discard:
                continue
            timestamp = packet.pts if packet.pts is not None else packet.dts
            if packet.stream.index != stream.index:
                if timestamp is not None:
                    end = timestamp + (packet.duration or 0)
                    audio_ends[packet.stream.index] = max(end, audio_ends.get(packet.stream.index, end))
                continue
            if not packet_shows_frame(codec, memoryview(packet)):
                continue
            if timestamp is None:
                raise VmatteError(f"{path}: video packets without timestamps are not supported")
            pts.append(timestamp)
            if packet.is_keyframe:
                keyframe_pts.append(timestamp)
    except av.FFmpegError as error:
        raise VmatteError(f"{path}: unreadable container data after {len(pts)} frames ({error})") from None
    return tuple(sorted(pts)), tuple(sorted(keyframe_pts)), audio_ends


def _audio_info(stream: av.AudioStream, end: int) -> AudioInfo:
    context = stream.codec_context
    start = stream.start_time if stream.start_time is not None else 0
    return AudioInfo(
        index=stream.index,
        codec=context.codec.canonical_name,
        sample_rate=context.sample_rate,
        channels=context.channels,
        start=float(start * stream.time_base),
        duration=float((end - start) * stream.time_base),
    )


def _first_frame(path: Path, stream_index: int, codec: str) -> tuple[av.VideoFrame, Colour, bool]:
    """The first decodable frame (for its display matrix and real pixel format) and its colour."""
    with av.open(str(path)) as container:
        stream = container.streams[stream_index]
        for packet in container.demux(stream):
            try:
                for frame in stream.decode(packet):
                    return frame, *describe_colour(frame, stream.codec_context, codec)
            except av.FFmpegError:
                continue  # a damaged opening packet: the reader reports it; here any frame will do
    raise VmatteError(f"{path}: no video frame could be decoded")


def _frame_rate(
    pts: tuple[int, ...], time_base: Fraction, average_rate: Fraction | None, guessed_rate: Fraction | None
) -> tuple[Fraction, bool]:
    """Exact nominal rate and whether the clip is variable-rate, judged from the timestamps themselves."""
    declared = [Fraction(rate) for rate in (average_rate, guessed_rate) if rate]
    if len(pts) < 2:
        return (declared[0] if declared else SEQUENCE_FRAME_RATE), False
    deltas = [later - earlier for earlier, later in zip(pts, pts[1:])]
    # Timestamps rounded to the time base wobble by one tick at a constant rate (33/34 ms at 29.97 fps).
    is_vfr = max(deltas) - min(deltas) > 1
    span = (pts[-1] - pts[0]) * time_base
    if span <= 0:
        raise ValueError("its frames' timestamps do not advance")
    measured = (len(pts) - 1) / span
    if is_vfr:
        return (Fraction(average_rate) if average_rate else measured), True
    tolerance = 2 * time_base / span  # each end of the span may be off by a tick
    for candidates in (STANDARD_RATES, declared):
        agreeing = [rate for rate in candidates if abs(rate / measured - 1) <= tolerance]
        if agreeing:
            return min(agreeing, key=lambda rate: abs(rate - measured)), False
    return measured, False


def _scan_sequence(path: Path, frame_rate: Fraction) -> tuple[VideoInfo, Timeline]:
    files = tuple(sequence_files(path))
    try:
        with av.open(str(files[0])) as container:
            stream = container.streams.video[0]
            frame = next(container.decode(stream))
            codec = stream.codec_context.codec.canonical_name
            colour, colour_assumed = describe_colour(frame, stream.codec_context, codec)
    except (av.FFmpegError, IndexError, StopIteration) as error:
        raise VmatteError(f"{files[0]}: not a readable image ({error})") from None
    count = len(files)
    info = VideoInfo(
        path=str(path),
        codec=codec,
        width=frame.width,
        height=frame.height,
        coded_width=frame.width,
        coded_height=frame.height,
        rotation=0,
        mirrored=False,
        frame_count=count,
        frame_rate=frame_rate,
        time_base=1 / frame_rate,
        is_vfr=False,
        start_pts=0,
        duration=float(count / frame_rate),
        **_picture_fields(frame, colour, colour_assumed),
        has_alpha=any(c.is_alpha for c in frame.format.components),
        is_image_sequence=True,
        frame_numbers=frame_numbers(files),
    )
    return info, Timeline(pts=tuple(range(count)), keyframe_pts=tuple(range(count)), files=files)
