"""Facts about a video file or image sequence.

Counts, timestamps and rates come from the streams themselves, never from container metadata, which is often
missing or wrong (no duration, nb_frames off by the frames an edit list trims, average rates skewed by the last
frame's duration). The frame timeline (every frame's time, in display order) is built one of two ways:

* From the packets (cheap: nothing is decoded but the first frame). Where every packet carries its own
  presentation timestamp (MP4, MOV, Matroska, WebM, MPEG-TS/PS), the decoder hands out one picture per shown
  packet, stamped with that packet's pts: the sorted packet pts are the frames' times.
* From a full decode, only where the packet timestamps cannot be trusted: some packet has no pts (raw
  .h264/.hevc elementary streams), two packets share one or the dts go back (joined MPEG streams), or an AVI
  reorders frames (AVI stores decode-order times only, so its pts are the demuxer's guesses; DivX/Xvid "packed"
  B-frames even hide two pictures in one packet and follow them with an empty placeholder). The frames are then
  the pictures the decoder outputs, in that order -- the count FFmpeg's own tools give -- timed as FFmpeg's
  best_effort_timestamp times them (see _best_effort_times), and a reader matches pictures to it by count.
  That costs little next to matting: 0.5-0.6 s for 500 640x352 MPEG-4 frames here (the packets alone: 0.05 s).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
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
    # Interlaced pictures (matted as frames): 'top field first', 'bottom field first' or 'field order unknown'.
    field_order: str = "progressive"

    @property
    def interlaced(self) -> bool:
        return self.field_order != "progressive"

    @property
    def output_time_base(self) -> Fraction:
        """The time base video outputs are written in: the source's, unless the clip is constant-rate in a time
        base its frame times do not fall on (Matroska's milliseconds at 30 fps: 33, 34, 33 ms apart); then the
        rate's own, as FFmpeg writes such a clip, so the output is constant-rate too. A variable-rate clip keeps
        its times exactly."""
        if self.is_vfr or (1 / (self.frame_rate * self.time_base)).denominator == 1:
            return self.time_base
        return 1 / self.frame_rate

    def output_pts(self, pts: int) -> int:
        """A source pts in ``output_time_base``: on the rate's grid where that is the rate's own."""
        return round(pts * self.time_base / self.output_time_base)
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
    # (pts, timestamp to seek to) of each keyframe, by pts; the seek timestamp is its dts where known, as MPEG
    # program/transport streams seek by dts. Empty where frames are matched by count (readers decode from the start).
    keyframes: tuple[tuple[int, int], ...]
    orientation: Orientation = UPRIGHT
    stream_index: int = 0
    files: tuple[Path, ...] = ()  # image sequences only
    by_count: bool = False  # pts are the decoder's best-effort times: frames are the decoder's pictures in order
    lost: tuple[int, ...] = ()  # by_count: indices of pictures the decoder failed to output (no decoder picture)


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
        packets, audio_ends = _demux(path, container, stream, codec)
        audio = tuple(_audio_info(container.streams[index], end) for index, end in audio_ends.items())
        metadata = {key.lower(): value for key, value in stream.metadata.items()}  # FFmpeg may upper-case tags
        average_rate, guessed_rate = stream.average_rate, stream.guessed_rate
        sample_aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        stream_index, time_base = stream.index, Fraction(stream.time_base)
        format_name = container.format.name
        by_count = not _packet_times_trusted(format_name, packets, bool(stream.codec_context.has_b_frames))
        timecode = read_timecode(container, stream)
    if not packets:
        raise VmatteError(f"{path}: the video stream has no frames")
    frame, colour, colour_assumed, field_order = _first_frame(path, stream_index, codec)
    if by_count:
        pts, lost = _decoder_times(path, stream_index, time_base, guessed_rate or average_rate)
        keyframes, leading = (), 0
        if not pts:
            raise VmatteError(f"{path}: no video frame could be decoded")
    else:
        pts = tuple(sorted(packet.pts for packet in packets))
        # A stream cut mid-GOP (broadcast recordings, stream segments) opens with pictures whose references are
        # not in the file: decoders output nothing for them, so they are not frames of the clip.
        leading = bisect_left(pts, frame.pts) if frame.pts is not None else 0
        pts = pts[leading:]
        keyframes = tuple(sorted((packet.pts, packet.pts if packet.dts is None else min(packet.pts, packet.dts))
                                 for packet in packets if packet.is_keyframe and packet.pts >= pts[0]))
        lost = ()
        if format_name == "mpeg":
            # MPEG program streams pack several pictures into one PES packet, and after a seek the demuxer pins
            # the PES timestamp on another picture than a linear read does: readers decode these from the start.
            keyframes = ()
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
        field_order=field_order,
        timecode=first_frame_timecode(timecode, leading, frame_rate),
    )
    return info, Timeline(pts=pts, keyframes=keyframes, orientation=orientation, stream_index=stream_index,
                          by_count=by_count, lost=lost)


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


@dataclass(frozen=True)
class _Packet:
    pts: int | None
    dts: int | None
    is_keyframe: bool


def _demux(
    path: Path, container: av.container.InputContainer, stream: av.VideoStream, codec: str
) -> tuple[list[_Packet], dict[int, int]]:
    """The video packets that make a decoder output a picture, in decode order, and each audio end pts."""
    packets, audio_ends = [], {}
    try:
        for packet in container.demux(stream, *decodable_audio_streams(container)):
            # Empty packets flush decoders; discarded ones fall outside the edit list and decode to nothing.
            if packet.size == 0 or packet.is_discard:
                continue
            if packet.stream.index != stream.index:
                timestamp = packet.pts if packet.pts is not None else packet.dts
                if timestamp is not None:
                    end = timestamp + (packet.duration or 0)
                    audio_ends[packet.stream.index] = max(end, audio_ends.get(packet.stream.index, end))
                continue
            if packet_shows_frame(codec, memoryview(packet)):
                packets.append(_Packet(packet.pts, packet.dts, packet.is_keyframe))
    except av.FFmpegError as error:
        raise VmatteError(f"{path}: unreadable container data after {len(packets)} frames ({error})") from None
    return packets, audio_ends


def _packet_times_trusted(format_name: str, packets: list[_Packet], reorders: bool) -> bool:
    """Whether each shown packet's pts is the time of one picture the decoder outputs (see the module docstring);
    ``reorders``: the decoder delays pictures to put B-frames in display order."""
    pts = [packet.pts for packet in packets]
    if None in pts or len(set(pts)) != len(pts):
        return False
    # Decode order going back in time: a timestamp discontinuity (concatenated MPEG streams, a restarted encoder).
    dts = [packet.dts for packet in packets if packet.dts is not None]
    if any(later < earlier for earlier, later in zip(dts, dts[1:])):
        return False
    # AVI has decode-order times only: its pts are the demuxer's guesses, right only where no frame is reordered.
    if "avi" in format_name.split(","):
        return not reorders and all(packet.pts == packet.dts for packet in packets)
    return True


def decoded_pictures(container: av.container.InputContainer, stream: av.VideoStream, unwanted_before: int | None = None
                     ) -> Iterator[tuple[av.VideoFrame, str]]:
    """Every picture the decoder outputs, in its order, with the last decoding error seen so far ('' if none).

    Decoding goes on with the next packet, as FFmpeg's tools do. With frame threading an error surfaces a few
    packets late, so it is not tied to a picture here: the picture it cost shows up as a gap in the timeline and
    gets this reason. Pictures shown before pts ``unwanted_before`` that no other picture refers to are not decoded
    at all (after a seek: on long-GOP footage about half the pictures between the keyframe and the wanted one).
    """
    error = ""
    for packet in container.demux(stream):
        if unwanted_before is not None:
            # The decoder reads the setting as each packet goes in, frame threads included.
            unwanted = packet.pts is not None and packet.pts < unwanted_before
            stream.codec_context.skip_frame = "NONREF" if unwanted else "DEFAULT"
        try:
            frames = stream.decode(packet)
        except av.FFmpegError as failure:
            error = f"decoding failed ({failure.strerror})"
            continue
        for frame in frames:
            yield frame, error


def _decoder_times(path: Path, stream_index: int, time_base: Fraction, rate: Fraction | None
                   ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The time of every frame, by a full decode (only for untrusted packet timestamps), and which of them the
    decoder failed to output.

    Where decoding fails (errors, or concealed pictures), the pictures it cost leave a gap of whole frame durations
    in a constant-rate stream's times: they are frames of the clip all the same (as where packets time the frames),
    so a reader names them. Without such damage a gap is the stream's own (an AVI capture's dropped frames).
    """
    reordered, decode_order, failed = [], [], False
    with av.open(str(path)) as container:
        stream = container.streams[stream_index]
        stream.thread_type = "AUTO"  # as the reader decodes: the same pictures come out
        for frame, error in decoded_pictures(container, stream):
            reordered.append(frame.pts)
            decode_order.append(frame.dts)
            failed = failed or bool(error) or frame.is_corrupt
    step = max(1, round(1 / (Fraction(rate or SEQUENCE_FRAME_RATE) * time_base)))
    times = _best_effort_times(reordered, decode_order, step)
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    if not failed or any(gap % step for gap in gaps):
        return times, ()
    frames, lost = [times[0]], []
    for time, gap in zip(times[1:], gaps):
        for missing in range(time - gap + step, time, step):
            lost.append(len(frames))
            frames.append(missing)
        frames.append(time)
    return tuple(frames), tuple(lost)


def _best_effort_times(reordered: list[int | None], decode_order: list[int | None], step: int) -> tuple[int, ...]:
    """Each picture's time, chosen as FFmpeg's best_effort_timestamp chooses it, made strictly increasing.

    A decoded picture carries two candidate times: the pts of the packet it was coded in (``reordered``) and the
    dts of the packet whose decoding released it (``decode_order``). FFmpeg takes the first unless it has gone
    missing or backwards more often than the second; here that count is made over the whole stream, not as
    frames come, so a few early pictures are not timed by the series that turns out wrong (DivX packed B-frames:
    pts 1, 2, 4, 3, 5, 7, 6, ... but dts 1, 2, 3, ...). Pictures without a time (raw elementary streams) or
    that step back get the previous time plus one frame duration (``step`` ticks), as FFmpeg's tools stamp them.
    """

    def faults(series: list[int | None]) -> int:
        known = [time for time in series if time is not None]
        return len(series) - len(known) + sum(later <= earlier for earlier, later in zip(known, known[1:]))

    chosen = min(reordered, decode_order, key=faults)  # the first on a tie, as FFmpeg
    first_known = next((i for i, time in enumerate(chosen) if time is not None), None)
    previous = -step if first_known is None else chosen[first_known] - (first_known + 1) * step
    times = []
    for time in chosen:
        previous = time if time is not None and time > previous else previous + step
        times.append(previous)
    return tuple(times)


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


# AVFieldOrder codes of interlaced video -> the field displayed first (TT, BB, TB: top coded first, BT).
FIELD_ORDERS = {2: "top field first", 3: "bottom field first", 4: "bottom field first", 5: "top field first"}


def _first_frame(path: Path, stream_index: int, codec: str) -> tuple[av.VideoFrame, Colour, bool, str]:
    """The first decodable frame (for its display matrix and real pixel format), its colour and field order."""
    with av.open(str(path)) as container:
        stream = container.streams[stream_index]
        for packet in container.demux(stream):
            try:
                for frame in stream.decode(packet):
                    context = stream.codec_context
                    field_order = FIELD_ORDERS.get(context.field_order, "field order unknown")
                    if not frame.interlaced_frame and context.field_order not in FIELD_ORDERS:
                        field_order = "progressive"
                    return frame, *describe_colour(frame, context, codec), field_order
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
            # Over a short span 30 and 30000/1001 both fit the average; the rate whose frame times, rounded to the
            # time base, are the timestamps (30 fps in milliseconds: 0, 33, 67, 100 ...) is the clip's.
            return min(agreeing, key=lambda rate: _grid_deviation(pts, time_base, rate)), False
    return measured, False


def _grid_deviation(pts: tuple[int, ...], time_base: Fraction, rate: Fraction) -> Fraction:
    """The largest distance, in ticks, of the timestamps from the first one plus whole frames at ``rate``."""
    ticks_per_frame = 1 / (rate * time_base)
    return max(abs(t - pts[0] - index * ticks_per_frame) for index, t in enumerate(pts))


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
    return info, Timeline(pts=tuple(range(count)), keyframes=tuple((pts, pts) for pts in range(count)), files=files)
