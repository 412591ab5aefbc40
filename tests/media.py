"""Reading vmatte's outputs back for the end-to-end tests, independently of vmatte's own readers.

Everything here uses PyAV (and OpenCV for PNGs) directly, so a bug in ``vmatte.io`` cannot hide itself by
being both the writer and the checker.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


@dataclass
class VideoTrack:
    codec: str
    codec_tag: str
    profile: str | None
    pix_fmt: str  # of the decoded frames
    width: int
    height: int
    time_base: Fraction
    guessed_rate: Fraction | None
    times: list[Fraction]  # presentation time of every decoded frame, in seconds, exact
    audio: list[AudioSpan]
    colour: tuple[int, int, int, int]  # the first decoded frame's (matrix, primaries, transfer, range) codes
    pixel_aspect: Fraction | None  # the container's sample aspect ratio


@dataclass
class AudioSpan:
    codec: str
    sample_rate: int
    start: Fraction  # seconds
    end: Fraction  # seconds: the end of the last packet
    packet_seconds: Fraction  # duration of a typical (the longest) packet: one audio frame

    @property
    def duration(self) -> Fraction:
        return self.end - self.start


# Where conftest.py finds the shared data (../shared beside the checkout, or $VMATTE_SHARED).
SHARED = Path(os.environ.get("VMATTE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
WEIGHTS_DIR = SHARED / "weights"


def offline_env() -> dict[str, str]:
    """What every run gets: the shared weights folder, and no downloads (the default model then falls back to
    the TF.js int8 export)."""
    return {"VMATTE_WEIGHTS": str(WEIGHTS_DIR), "VMATTE_OFFLINE": "1"}


def env_for_cli() -> dict[str, str]:
    """The environment a ``vmatte`` subprocess runs in."""
    return {**os.environ, **offline_env()}


def _decoded_frames(path: str | Path):
    """(stream time base, every picture PyAV's frame-threaded decoder outputs); decode errors are skipped
    (the frames around them still count), as a plain PyAV loop would do."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = Fraction(stream.time_base)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            for frame in frames:
                yield time_base, frame


def decoded_times(path: str | Path) -> tuple[list[Fraction], Fraction, int | None]:
    """Exact times (s) of every frame PyAV's decoder outputs, the stream's time base, and its rotation."""
    times, rotation, time_base = [], None, None
    for time_base, frame in _decoded_frames(path):
        times.append(frame.pts * time_base)
        if rotation is None:
            rotation = frame.rotation
    return times, time_base, rotation


def decode_damage(path: str | Path) -> tuple[int, int]:
    """(pictures PyAV's decoder outputs, how many of them it flags as corrupt), with frame threading."""
    decoded = flagged = 0
    for _, frame in _decoded_frames(path):
        decoded += 1
        flagged += bool(frame.is_corrupt)
    return decoded, flagged


def audio_spans(container: av.container.InputContainer) -> list[AudioSpan]:
    spans = []
    for stream in list(container.streams.audio):
        time_base = Fraction(stream.time_base)
        start = end = None
        longest = 0
        with av.open(container.name) as again:
            audio = again.streams[stream.index]
            for packet in again.demux(audio):
                if packet.pts is None or packet.size == 0:
                    continue
                duration = packet.duration or 0
                longest = max(longest, duration)
                start = packet.pts if start is None else min(start, packet.pts)
                end = packet.pts + duration if end is None else max(end, packet.pts + duration)
        if start is None:
            start = end = 0
        spans.append(AudioSpan(stream.codec_context.name, stream.codec_context.sample_rate, start * time_base,
                               end * time_base, longest * time_base))
    return spans


def read_track(path: str | Path) -> VideoTrack:
    """What a player sees in a video file: codec and tag, decoded pixel format, size, frame times, audio."""
    times, time_base, _ = decoded_times(path)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first = next(container.decode(stream))
        track = VideoTrack(
            codec=stream.codec_context.name,
            codec_tag=stream.codec_tag,
            profile=stream.codec_context.profile,
            pix_fmt=first.format.name,
            width=first.width,
            height=first.height,
            time_base=time_base,
            guessed_rate=Fraction(stream.guessed_rate) if stream.guessed_rate else None,
            times=times,
            audio=audio_spans(container),
            colour=(first.colorspace, first.color_primaries, first.color_trc, first.color_range),
            pixel_aspect=stream.sample_aspect_ratio,
        )
    return track


def _plane(plane, dtype=np.uint16) -> np.ndarray:
    """One picture plane as a 2-D array, without the line padding."""
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // itemsize)
    return rows[:, : plane.width].copy()


def _bits(frame: av.VideoFrame) -> int:
    return frame.format.components[0].bits


def prores_planes(path: str | Path) -> list[tuple[str, list[np.ndarray], int]]:
    """Every frame of a ProRes file as (pix_fmt, raw planes as uint16, bits), exactly as decoded (no conversion)."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            assert frame.format.name.endswith("le") and _bits(frame) > 8, frame.format.name
            out.append((frame.format.name, [_plane(p) for p in frame.planes], _bits(frame)))
    return out


def matte_from_prores(path: str | Path) -> np.ndarray:
    """The alpha matte of an alpha .mov: its luma, limited range, as float64 in [0, 1] (T, H, W).

    The decoder may output 10 or 12 bits; limited range is 64..940 at 10 bits, scaled by 2^(bits-10).
    """
    mattes = []
    for _, planes, bits in prores_planes(path):
        scale = 1 << (bits - 10)
        mattes.append((planes[0].astype(np.float64) / scale - 64) / 876)
    return np.stack(mattes)


def alpha_plane_from_prores(path: str | Path) -> np.ndarray:
    """The alpha plane of a ProRes 4444 file with alpha (full range), as float64 in [0, 1] (T, H, W)."""
    alphas = []
    for pix_fmt, planes, bits in prores_planes(path):
        assert pix_fmt.startswith("yuva"), f"{path}: decoded as {pix_fmt}, which has no alpha plane"
        alphas.append(planes[3].astype(np.float64) / ((1 << bits) - 1))
    return np.stack(alphas)


def read_png(path: str | Path) -> np.ndarray:
    """A PNG as stored: uint8/uint16, grey (H, W) or RGB(A) (H, W, C) in RGB order."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path}: not readable as an image"
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return image


def png_files(folder: str | Path) -> list[Path]:
    """The visible PNG files of a folder, in name order (hidden partial files excluded)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix == ".png" and not p.name.startswith("."))


def read_png_sequence(folder: str | Path) -> tuple[np.ndarray, int]:
    """All PNGs of a folder stacked, as float64 in [0, 1], and their bit depth."""
    images = [read_png(p) for p in png_files(folder)]
    assert images, f"{folder}: no PNG files"
    depth = 16 if images[0].dtype == np.uint16 else 8
    return np.stack(images).astype(np.float64) / ((1 << depth) - 1), depth


def write_png_sequence(frames: np.ndarray, folder: Path) -> None:
    """uint8 RGB frames (T, H, W, 3) as 8-bit RGB PNGs 000000.png, ... (OpenCV wants BGR)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{t:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def visible_entries(folder: str | Path) -> list[str]:
    """Names in a folder that a user would take for output (not hidden work/partial files)."""
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))


def write_exr(path: str | Path, linear_rgb: np.ndarray) -> None:
    """A minimal OpenEXR file (scanline, uncompressed, half-float R, G, B) of float HxWx3 scene-linear RGB:
    neither OpenCV's wheel nor FFmpeg can write one, and plates come as EXR."""
    height, width, _ = linear_rgb.shape

    def attribute(name: str, kind: str, data: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(data)) + data

    # Channels are stored in name order (B, G, R): pixel type 1 = half, not linear, sampling 1x1.
    channels = b"".join(name.encode() + b"\0" + struct.pack("<iB3xii", 1, 0, 1, 1) for name in "BGR") + b"\0"
    window = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = (struct.pack("<ii", 20000630, 2) + attribute("channels", "chlist", channels)
              + attribute("compression", "compression", b"\0") + attribute("dataWindow", "box2i", window)
              + attribute("displayWindow", "box2i", window) + attribute("lineOrder", "lineOrder", b"\0")
              + attribute("pixelAspectRatio", "float", struct.pack("<f", 1))
              + attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0, 0))
              + attribute("screenWindowWidth", "float", struct.pack("<f", 1)) + b"\0")
    lines = []
    for y in range(height):
        data = b"".join(linear_rgb[y, :, channel].astype("<f2").tobytes() for channel in (2, 1, 0))
        lines.append(struct.pack("<ii", y, len(data)) + data)
    offsets, offset = [], len(header) + 8 * height
    for line in lines:
        offsets.append(offset)
        offset += len(line)
    Path(path).write_bytes(header + struct.pack(f"<{height}Q", *offsets) + b"".join(lines))


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """The sRGB decoding function (IEC 61966-2-1), on values in [0, 1]."""
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


# --- awkward source files made with PyAV (kinds the samples do not have) -----------------------------------------

NUMBER_BITS = 6  # numbered pictures carry their number in 6 black-or-white 16x16 blocks along the top


def numbered_picture(index: int, width: int = 96, height: int = 64) -> np.ndarray:
    """RGB picture number ``index``: its number in binary along the top (bit 0 leftmost), a bar moving below."""
    picture = np.full((height, width, 3), 90, np.uint8)
    for bit in range(NUMBER_BITS):
        picture[:16, 16 * bit : 16 * (bit + 1)] = 255 if index >> bit & 1 else 0
    bar = (index * 3) % (width - 8)
    picture[16:, bar : bar + 8] = 200
    return picture


def picture_number(rgb: np.ndarray) -> int:
    """Which numbered_picture() a decoded picture is (the block centres survive any lossy coding)."""
    peak = 65535 if rgb.dtype == np.uint16 else 255
    return sum(1 << bit for bit in range(NUMBER_BITS) if rgb[4:12, 16 * bit + 4 : 16 * bit + 12].mean() > peak / 2)


def write_numbered_clip(path: str | Path, codec: str, count: int, *, container_format: str | None = None,
                        rate: int = 25, size: tuple[int, int] = (96, 64), options: dict | None = None,
                        codec_tag: str | None = None, audio: str | None = None) -> None:
    """``count`` numbered pictures encoded with ``codec`` (and a silent ``audio`` track as long as the video)."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        if codec_tag:
            stream.codec_tag = codec_tag
        sound = container.add_stream(audio, rate=48000, layout="stereo") if audio else None
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(numbered_picture(index, *size), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            samples, chunk = count * 48000 // rate, sound.codec_context.frame_size or 1152
            for start in range(0, samples, chunk):
                length = min(chunk, samples - start)
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 2 * length), np.int16), format="s16", layout="stereo")
                frame.sample_rate, frame.pts = 48000, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))


_VOP = b"\x00\x00\x01\xb6"
# An MPEG-4 Part 2 P-VOP with vop_coded = 0 (time increment 0 of 5 bits, for a 1/25 time base) and stuffing:
# the 6-byte "N-VOP" placeholder DivX and Xvid write after a packed chunk.
N_VOP = _VOP + bytes([0b01010000, 0b01001111])
# User data a DivX 5 / Xvid encoder writes; the trailing 'p' tells decoders the B-frames are packed.
DIVX_PACKED_USER_DATA = b"\x00\x00\x01\xb2DivX503b1393p"


def _vop_type(data: bytes) -> int:
    """0 I, 1 P, 2 B, 3 S (vop_coding_type, the two bits after the first VOP start code)."""
    return data[data.index(_VOP) + 4] >> 6


def pack_b_frames(source: str | Path, path: str | Path, codec_tag: str) -> None:
    """Rewrite an MPEG-4 Part 2 AVI as DivX 5 / Xvid do with "packed bitstream" on: each reference picture shares
    its AVI chunk with the first B-picture that follows it in decode order, the other B-pictures keep their own,
    and an N-VOP placeholder closes the group so that there is still one chunk per frame; the chunks' only
    timestamps are their positions. FFmpeg's mpeg4_unpack_bframes filter undoes exactly this."""
    with av.open(str(source)) as original:
        video = original.streams.video[0]
        pictures = [bytes(packet) for packet in original.demux(video) if packet.size]
        time_base = video.time_base
    pictures[0] = pictures[0].replace(_VOP, DIVX_PACKED_USER_DATA + _VOP, 1)
    chunks, position = [], 0
    while position < len(pictures):
        group_end = position + 1
        while group_end < len(pictures) and _vop_type(pictures[group_end]) == 2:
            group_end += 1
        bs = pictures[position + 1 : group_end]
        if bs:
            chunks += [pictures[position] + bs[0], *bs[1:], N_VOP]
        else:
            chunks.append(pictures[position])
        position = group_end
    with av.open(str(source)) as original, av.open(str(path), "w", format="avi") as packed:
        streams = {stream.index: packed.add_stream_from_template(stream) for stream in original.streams}
        video_out = streams[original.streams.video[0].index]
        video_out.codec_tag = codec_tag
        for number, chunk in enumerate(chunks):
            packet = av.Packet(chunk)
            packet.pts = packet.dts = number
            packet.time_base, packet.stream = time_base, video_out
            packet.is_keyframe = _vop_type(chunk) == 0
            packed.mux(packet)
        for stream in original.streams.audio:
            for packet in original.demux(stream):
                if packet.size and packet.dts is not None:
                    packet.stream = streams[stream.index]
                    packed.mux(packet)


def strip_leading_pts(source: str | Path, path: str | Path, count: int) -> int:
    """Copy an MPEG transport stream with the timestamps taken out of its first ``count`` video PES headers, as
    in a recording that starts where the encoder had not stamped them (the bytes become header stuffing).
    Returns how many were stripped."""
    data = bytearray(Path(source).read_bytes())
    stripped = 0
    for offset in range(0, len(data), 188):
        packet = data[offset : offset + 188]
        if stripped == count or packet[0] != 0x47 or not packet[1] & 0x40:  # sync byte, payload_unit_start
            continue
        payload = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)  # after any adaptation field
        if packet[payload : payload + 4] != b"\x00\x00\x01\xe0":  # a video PES
            continue
        flags, header_length = payload + 7, payload + 8
        timestamps = packet[flags] >> 6
        if timestamps:
            size = 10 if timestamps == 3 else 5
            data[offset + flags] &= 0x3F
            data[offset + header_length + 1 : offset + header_length + 1 + size] = b"\xff" * size
            stripped += 1
    Path(path).write_bytes(bytes(data))
    return stripped


def drop_first_gop(source: str | Path, path: str | Path, container_format: str) -> None:
    """Copy a clip from its second keyframe on, as a VOB cut at a VOBU boundary: its first GOP is open (its
    leading B-pictures reference a picture that is not in the file)."""
    with av.open(str(source)) as original, av.open(str(path), "w", format=container_format) as cut:
        streams = {stream.index: cut.add_stream_from_template(stream) for stream in original.streams}
        video = original.streams.video[0]
        keyframes = 0
        for packet in original.demux():
            keyframes += packet.stream.index == video.index and packet.is_keyframe
            if packet.size and packet.dts is not None and keyframes >= 2:
                packet.stream = streams[packet.stream.index]
                cut.mux(packet)


def scramble_avi_chunk(source: str | Path, path: str | Path, chunk: int) -> None:
    """Copy an AVI with the payload of its ``chunk``-th video chunk (from 0) overwritten by noise after 8 bytes,
    as a bad sector or a broken download leaves it."""
    data = bytearray(Path(source).read_bytes())
    position = data.index(b"movi")
    for _ in range(chunk + 1):
        position = data.index(b"00dc", position + 4)
    size = int.from_bytes(data[position + 4 : position + 8], "little")
    noise = np.random.default_rng(chunk).integers(0, 256, size - 8, dtype=np.uint8).tobytes()
    data[position + 16 : position + 8 + size] = noise
    Path(path).write_bytes(bytes(data))


def write_timecoded_clip(path: str | Path, source: str | Path, frames: int, timecode: str,
                         rate: Fraction = Fraction(25), size: tuple[int, int] = (128, 72)) -> None:
    """A camera-like .mov: the first ``frames`` pictures of ``source`` (resized, MPEG-4 Part 2), a timecode
    (tmcd) track starting at ``timecode`` (';' before the frames: drop-frame), and a 48 kHz stereo AAC tone
    as long as the video."""
    with av.open(str(source)) as container:
        pictures = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(frames), container.decode(video=0))]
    assert len(pictures) == frames, f"{source} has fewer than {frames} frames"
    with av.open(str(path), "w") as output:
        video = output.add_stream("mpeg4", rate=rate)
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        video.options = {"qscale": "3"}
        video.metadata["timecode"] = timecode  # FFmpeg's MOV muxer makes the tmcd track of it
        audio = output.add_stream("aac", rate=48000, layout="stereo")
        sample = 0
        for index, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(cv2.resize(picture, size, interpolation=cv2.INTER_AREA), "rgb24")
            frame.pts = index
            output.mux(video.encode(frame))
            while sample < (index + 1) * 48000 / rate:
                tone = np.sin(2 * np.pi * 440 * (sample + np.arange(1024)) / 48000).astype(np.float32) * 0.2
                chunk = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = 48000, sample
                output.mux(audio.encode(chunk))
                sample += 1024
        output.mux(video.encode(None))
        output.mux(audio.encode(None))


def mov_timecodes(path: str | Path) -> list[str | None]:
    """The start timecode of each timecode (tmcd) track in a .mov, as FFmpeg's demuxer reads it."""
    with av.open(str(path)) as container:
        return [stream.metadata.get("timecode") for stream in container.streams.data
                if stream.metadata.get("handler_name") == "TimeCodeHandler"]


def audio_samples(path: str | Path) -> int:
    """Samples of the first audio stream, decoded."""
    with av.open(str(path)) as container:
        return sum(frame.samples for frame in container.decode(audio=0))


def write_scaled_clip(path: Path, source: Path, frames: int, width: int, height: int, start: int = 0) -> Path:
    """``frames`` frames of a real clip from ``start``, scaled down (H.264): small and quick, with mattes worth
    looking at."""
    with av.open(str(source)) as container, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "16", "preset": "ultrafast"}
        for index, frame in enumerate(container.decode(video=0)):
            if index >= start + frames:
                break
            if index >= start:
                rgb = cv2.resize(frame.to_ndarray(format="rgb24"), (width, height), interpolation=cv2.INTER_AREA)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    return path
