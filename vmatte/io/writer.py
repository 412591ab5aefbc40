"""Output writers: ProRes 4444 .mov, PNG sequences and an H.264 .mp4 preview, behind one interface.

Every writer takes float32 HxWxC images in [0, 1] with the source frame's pts, and never leaves a file that
looks finished when a run fails: video files grow under a hidden ``.NAME.partial.EXT`` name and are renamed
into place by ``close()``; each PNG is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import av
import numpy as np

from vmatte.errors import VmatteError
from vmatte.io.audio import AudioTrack, open_audio_track
from vmatte.io.colour import (
    LUMA_WEIGHTS,
    MATRIX_NAMES,
    PRIMARIES_NAMES,
    TRANSFER_NAMES,
    Colour,
    code_point,
    limited_range,
    rgb_to_limited_codes,
    rgb_to_ycbcr,
)
from vmatte.io.probe import VideoInfo
from vmatte.io.sequence import is_pattern

KINDS = {"alpha": 1, "fgr": 4, "comp": 3}  # kind -> channels of the images it takes
SUPPORTED = (
    ".mov (ProRes 4444: alpha, fgr, comp), .mp4 (H.264 preview: comp only), "
    "a folder or a pattern like out/%06d.png (PNG sequence: alpha, fgr, comp), .png (one-frame inputs)"
)
SINGLE_PNG_HOLDS_ONE = ("a single .png holds one picture: write a sequence to a folder (out/) or a pattern "
                        "(out/%06d.png)")
DEFAULT_PNG_NAME = "%06d.png"  # of the files in a folder given as a PNG output
BT709 = Colour("bt709", "tv", "bt709", "bt709")
LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


class FrameWriter(ABC):
    """Writes one kind of output ('alpha', 'fgr' or 'comp') frame by frame."""

    def __init__(self, kind: str, path: Path, info: VideoInfo, premultiplied: bool) -> None:
        self.kind = kind
        self.path = path
        self.info = info
        self.premultiplied = premultiplied
        self.frames_written = 0

    def write(self, image: np.ndarray, pts: int) -> None:
        """Add a frame: float32 HxWxC in [0, 1] (C = 1 alpha, 4 fgr = straight RGB + alpha, 3 comp)."""
        self._write(self._checked(image), pts)
        self.frames_written += 1

    @abstractmethod
    def _write(self, image: np.ndarray, pts: int) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Finish the output and move it into place."""

    @abstractmethod
    def abort(self) -> None:
        """Remove everything temporary; what close() would have produced does not appear."""

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: type | None, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _checked(self, image: np.ndarray) -> np.ndarray:
        expected = (self.info.height, self.info.width, KINDS[self.kind])
        if image.shape != expected:
            raise ValueError(f"{self.kind} frames for {self.path} must be HxWxC {expected}, got {image.shape}")
        image = np.clip(image, 0.0, 1.0, dtype=np.float32)
        if self.kind == "fgr" and self.premultiplied:
            image[..., :3] *= image[..., 3:]
        return image


class _VideoFileWriter(FrameWriter):
    """A single-stream video file (plus optional audio) built under a hidden partial name."""

    container_format: str
    codec: str
    _colour: Colour  # the Y'CbCr tags written, chosen by _configure

    def __init__(
        self, kind: str, path: Path, info: VideoInfo, premultiplied: bool, audio_from: str | Path | None
    ) -> None:
        super().__init__(kind, path, info, premultiplied)
        self._partial = partial_path(path)
        self._container = open_output_container(path, self._partial, info, self.container_format,
                                                self._container_options())
        self._audio: AudioTrack | None = None
        try:
            self._stream = self._container.add_stream(self.codec, rate=info.frame_rate)
            self._configure(self._stream)
            _tag_colour(self._stream.codec_context, self._colour)
            if info.pixel_aspect != 1:
                self._stream.codec_context.sample_aspect_ratio = info.pixel_aspect
            self._stream.time_base = info.time_base
            self._stream.codec_context.time_base = info.time_base
            if audio_from is not None:
                self._audio = open_audio_track(self._container, audio_from)
        except BaseException:
            self.abort()
            raise

    def _container_options(self) -> dict[str, str]:
        return {}

    @abstractmethod
    def _configure(self, stream: av.VideoStream) -> None: ...

    @abstractmethod
    def _frame(self, image: np.ndarray) -> av.VideoFrame: ...

    def _write(self, image: np.ndarray, pts: int) -> None:
        frame = self._frame(image)
        # Encoders such as prores_ks code the frame's own tags into the bitstream, which decoders believe
        # over the container's colr atom: untagged frames would read back as unspecified colour.
        _tag_colour(frame, self._colour)
        frame.pts = pts
        frame.time_base = self.info.time_base
        self._container.mux(self._stream.encode(frame))
        if self._audio is not None:
            self._audio.mux_until(float(pts * self.info.time_base))

    def close(self) -> None:
        if self.frames_written == 0:
            self.abort()
            raise VmatteError(f"{self.path}: no frames were written")
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish()
                self._audio.close()
            self._container.close()
            os.replace(self._partial, self.path)
        except (av.FFmpegError, OSError) as error:
            self.abort()
            raise VmatteError(f"{self.path}: could not finish writing ({error})") from None

    def abort(self) -> None:
        for closable in (self._audio, self._container):
            if closable is not None:
                try:
                    closable.close()
                except (av.FFmpegError, OSError):
                    pass  # the partial file is removed below whatever state it is in
        self._partial.unlink(missing_ok=True)


class ProResWriter(_VideoFileWriter):
    """ProRes 4444 in MOV: 10-bit 4:4:4 limited-range Y'CbCr, plus a full-range alpha plane (fgr, alpha)."""

    container_format = "mov"
    codec = "prores_ks"

    def _configure(self, stream: av.VideoStream) -> None:
        self._colour = output_colour(self.info)
        stream.width, stream.height = self.info.width, self.info.height
        # The matte .mov carries the matte twice: as its grey picture (for luma keys and viewing) and as its
        # alpha channel, which ProRes stores losslessly (its picture is lossy at sharp edges).
        stream.pix_fmt = "yuv444p10le" if self.kind == "comp" else "yuva444p10le"
        stream.options = {"profile": "4444", "vendor": "apl0"}
        stream.codec_context.thread_type = "SLICE"  # prores_ks codes slices in parallel

    def _frame(self, image: np.ndarray) -> av.VideoFrame:
        frame = av.VideoFrame(self.info.width, self.info.height, self._stream.pix_fmt)
        if self.kind == "alpha":
            # The matte as a grey picture: Y carries it, chroma is neutral.
            luma, _, _ = limited_range(image[..., 0], 0.0, 0.0, bits=10)
            _fill(frame.planes[0], luma, np.uint16)
            _fill(frame.planes[1], 512, np.uint16)
            _fill(frame.planes[2], 512, np.uint16)
        else:
            codes = rgb_to_limited_codes(image, self._colour.matrix, bits=10)
            for index, plane in enumerate(frame.planes[:3]):
                _fill(plane, codes[..., index], np.uint16)
        if self.kind != "comp":
            _fill(frame.planes[3], np.rint(image[..., -1] * 1023).astype(np.uint16), np.uint16)
        return frame


class H264PreviewWriter(_VideoFileWriter):
    """A small, widely playable H.264 4:2:0 BT.709 preview of the composite.

    4:2:0 needs even dimensions: an odd width or height is padded by repeating the last column or row, so
    no source pixel is lost or resampled and the preview is at most one pixel wider/taller than the source.
    """

    container_format = "mp4"
    codec = "libx264"

    def _container_options(self) -> dict[str, str]:
        return {"movflags": "+faststart"}  # playable while still downloading

    def _configure(self, stream: av.VideoStream) -> None:
        stream.width = self.info.width + self.info.width % 2
        stream.height = self.info.height + self.info.height % 2
        stream.pix_fmt = "yuv420p"
        # No B-frames: segments of a resumable run then join by stream copy with rising timestamps.
        stream.options = {"crf": "18", "preset": "medium", "bf": "0"}
        self._colour = BT709

    def _frame(self, image: np.ndarray) -> av.VideoFrame:
        height, width = self._stream.height, self._stream.width
        padded = np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0)), mode="edge")
        luma, cb, cr = rgb_to_ycbcr(padded, self._colour.matrix)
        # 4:2:0 chroma: the mean of each 2x2 block (centre-sited).
        cb = cb.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
        cr = cr.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane, values in zip(frame.planes, limited_range(luma, cb, cr, bits=8)):
            _fill(plane, values, np.uint8)
        return frame


class PngSequenceWriter(FrameWriter):
    """One PNG per frame (000000.png, ...): grey for alpha, RGBA for fgr, RGB for comp; 8 or 16 bits."""

    FORMATS = {
        ("alpha", 8): "gray", ("alpha", 16): "gray16be",
        ("fgr", 8): "rgba", ("fgr", 16): "rgba64be",
        ("comp", 8): "rgb24", ("comp", 16): "rgb48be",
    }

    def __init__(
        self, kind: str, path: Path, info: VideoInfo, premultiplied: bool, depth: int, first_index: int = 0
    ) -> None:
        super().__init__(kind, path, info, premultiplied)
        self._first_index = first_index  # a resumed run continues the numbering where it stopped
        if depth not in (8, 16):
            raise VmatteError(f"{path}: PNG depth must be 8 or 16, not {depth}")
        self._single = is_single_png(path)
        self._pattern = str(png_pattern(path))
        self._peak = (1 << depth) - 1
        self._dtype = np.uint8 if depth == 8 else np.uint16
        self._format = self.FORMATS[kind, depth]
        self._temporary: Path | None = None
        folder = Path(self._pattern).parent
        _make_parent(folder / "frame")
        if not os.access(folder, os.W_OK):
            raise VmatteError(f"{folder}: not writable")
        self._encoder = av.CodecContext.create("png", "w")
        self._encoder.width, self._encoder.height = info.width, info.height
        self._encoder.pix_fmt = self._format
        self._encoder.time_base = info.time_base

    def _write(self, image: np.ndarray, pts: int) -> None:
        values = np.rint(image * self._peak).astype(self._dtype)
        if self.kind == "alpha":
            values = values[..., 0]
        # from_ndarray takes native uint16 for the big-endian PNG formats and swaps bytes itself.
        frame = av.VideoFrame.from_ndarray(values, format=self._format)
        frame.pts = pts
        data = b"".join(bytes(packet) for packet in self._encoder.encode(frame))
        if self._single and self.frames_written:
            raise VmatteError(f"{self.path}: {SINGLE_PNG_HOLDS_ONE}")
        final = Path(self._pattern if self._single else
                     self._pattern % self.info.frame_number(self._first_index + self.frames_written))
        self._temporary = final.with_name(f".{final.name}.partial")
        try:
            self._temporary.write_bytes(data)
            os.replace(self._temporary, final)
        except OSError as error:
            self.abort()
            raise VmatteError(f"{final}: cannot write ({error})") from None
        self._temporary = None

    def close(self) -> None:
        """Every PNG is complete as soon as write() returns; nothing is left to finish."""

    def abort(self) -> None:
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None


def open_writer(
    kind: str,
    path: str | Path,
    info: VideoInfo,
    *,
    png_depth: int = 16,
    premultiplied: bool = False,
    audio_from: str | Path | None = None,
    first_index: int = 0,
) -> FrameWriter:
    """Open the writer the path asks for (see SUPPORTED); audio_from adds the source's audio to fgr/comp .mov;
    a PNG sequence starts at frame ``first_index`` (files numbered by ``info.frame_number``)."""
    writer = writer_class(kind, path)
    path = Path(path)
    if writer is PngSequenceWriter:
        return PngSequenceWriter(kind, path, info, premultiplied, png_depth, first_index)
    return writer(kind, path, info, premultiplied, audio_from if writer is ProResWriter and kind != "alpha" else None)


def writer_class(kind: str, path: str | Path) -> type[FrameWriter]:
    """The writer that handles ``kind`` at ``path`` (see SUPPORTED); raises VmatteError for any other path."""
    if kind not in KINDS:
        raise VmatteError(f"unknown output kind '{kind}' (expected one of: {', '.join(KINDS)})")
    if is_png_sequence(path) or is_single_png(path):
        return PngSequenceWriter
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mov":
        return ProResWriter
    if suffix == ".mp4" and kind == "comp":
        return H264PreviewWriter
    raise VmatteError(f"{path}: cannot write {kind} output to this kind of path; supported: {SUPPORTED}")


def is_png_sequence(path: str | Path) -> bool:
    """A folder (existing, or named with a trailing slash) or a .png frame pattern like out/%06d.png."""
    text = str(path)
    return text.endswith(("/", os.sep)) or Path(path).is_dir() or (is_pattern(path) and text.lower().endswith(".png"))


def is_single_png(path: str | Path) -> bool:
    """One .png file (for a one-frame input, such as a photo)."""
    return Path(path).suffix.lower() == ".png" and not is_png_sequence(path)


def png_pattern(path: str | Path) -> Path:
    """Where a PNG output's files go: a pattern or single file as given, a folder as FOLDER/000000.png, ..."""
    return Path(path) if is_pattern(path) or is_single_png(path) else Path(path) / DEFAULT_PNG_NAME


def partial_path(path: Path) -> Path:
    """The hidden name a video file grows under until it is complete."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def open_output_container(
    path: Path, partial: Path, info: VideoInfo, container_format: str, options: dict[str, str]
) -> av.container.OutputContainer:
    _make_parent(path)
    try:
        # A movie timescale equal to the track's keeps a non-zero first pts exact (the edit list that
        # carries it is written in movie units, by default milliseconds).
        return av.open(
            str(partial), "w", format=container_format,
            options={"movie_timescale": str(info.time_base.denominator), **options},
        )
    except (av.FFmpegError, OSError) as error:
        raise VmatteError(f"{path}: cannot write here ({error})") from None


def output_colour(info: VideoInfo) -> Colour:
    """Tags for written Y'CbCr: the source's own when it stated them (and we can convert to them), else BT.709."""
    if info.colour_assumed or info.colour_matrix not in LUMA_WEIGHTS:
        return BT709
    return Colour(info.colour_matrix, "tv", info.colour_primaries, info.colour_transfer)


def _tag_colour(target: av.VideoCodecContext | av.VideoFrame, colour: Colour) -> None:
    target.colorspace = code_point(MATRIX_NAMES, colour.matrix)
    target.color_primaries = code_point(PRIMARIES_NAMES, colour.primaries)
    target.color_trc = code_point(TRANSFER_NAMES, colour.transfer)
    target.color_range = LIMITED_RANGE


def _fill(plane: av.video.plane.VideoPlane, values: np.ndarray | int, dtype: type) -> None:
    """Copy a 2-D array (or a constant) into a frame plane of the given sample type, past its line padding."""
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // np.dtype(dtype).itemsize)
    rows[:, : plane.width] = values


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VmatteError(f"{path}: cannot create its folder {path.parent} ({error})") from None
