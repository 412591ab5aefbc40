"""The interface every output writer implements, and what the format modules share.

Every writer takes float32 HxWxC images in [0, 1] with the source frame's pts, and never leaves a file that
looks finished when a run fails: video files grow under a hidden ``.NAME.partial.EXT`` name and are renamed
into place by ``close()``; each image of a sequence is written to a temporary name and renamed when complete.
The format modules (prores.py, h264.py, png.py) build on the two bases here; writer.py picks one for a path.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import av
import numpy as np

from vmatte.errors import VmatteError
from vmatte.io.audio import AudioTrack, open_audio_track
from vmatte.io.colour import LUMA_WEIGHTS, MATRIX_NAMES, PRIMARIES_NAMES, TRANSFER_NAMES, Colour, code_point
from vmatte.io.probe import VideoInfo

KINDS = {"alpha": 1, "fgr": 4, "comp": 3}  # kind -> channels of the images it takes
BT709 = Colour("bt709", "tv", "bt709", "bt709")
LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


class FrameWriter(ABC):
    """Writes one kind of output ('alpha', 'fgr' or 'comp') frame by frame."""

    is_sequence = False  # one file per frame (built in a folder) rather than one video file

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


class VideoFileWriter(FrameWriter):
    """A single-stream video file (plus optional audio) built under a hidden partial name."""

    container_format: str
    codec: str
    carries_audio = True  # the source's audio can go in (fgr and comp)
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
            tag_colour(self._stream.codec_context, self._colour)
            if info.pixel_aspect != 1:
                self._stream.codec_context.sample_aspect_ratio = info.pixel_aspect
            self._stream.time_base = info.output_time_base
            self._stream.codec_context.time_base = info.output_time_base
            tag_timecode(self._stream, info)
            if audio_from is not None:
                self._audio = open_audio_track(self._container, audio_from, info.audio_cut)
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
        tag_colour(frame, self._colour)
        frame.pts = self.info.output_pts(pts)
        frame.time_base = self.info.output_time_base
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


class ImageSequenceWriter(FrameWriter):
    """One image file per frame, named by a printf pattern (or one file for a one-frame input).

    Subclasses save a frame to a file; this class names it, and renames it into place once it is complete.
    """

    is_sequence = True
    single_file_holds_one = "a single image file holds one picture"  # the error for a second frame

    def __init__(self, kind: str, path: Path, pattern: Path, info: VideoInfo, premultiplied: bool,
                 single: bool, first_index: int, number_from: str = "source") -> None:
        super().__init__(kind, path, info, premultiplied)
        self._first_index = first_index  # a resumed run continues the numbering where it stopped
        self._number_from = number_from
        self._single = single
        self._pattern = str(pattern)
        self._temporary: Path | None = None
        folder = pattern.parent
        make_parent(folder / "frame")
        if not os.access(folder, os.W_OK):
            raise VmatteError(f"{folder}: not writable")

    @abstractmethod
    def _save(self, image: np.ndarray, pts: int, path: Path) -> None:
        """Write one frame's file at ``path`` (OSError when it cannot)."""

    def _write(self, image: np.ndarray, pts: int) -> None:
        if self._single and self.frames_written:
            raise VmatteError(f"{self.path}: {self.single_file_holds_one}")
        final = Path(self._pattern if self._single else
                     self._pattern % file_number(self.info, self._first_index + self.frames_written,
                                                 self._number_from))
        self._temporary = final.with_name(f".{final.name}.partial")
        try:
            self._save(image, pts, self._temporary)
            os.replace(self._temporary, final)
        except OSError as error:
            self.abort()
            raise VmatteError(f"{final}: cannot write ({error})") from None
        self._temporary = None

    def close(self) -> None:
        """Every image is complete as soon as write() returns; nothing is left to finish."""

    def abort(self) -> None:
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None


def file_number(info: VideoInfo, index: int, number_from: str) -> int:
    """The number in the name of frame ``index``'s file: its timecode as a frame count ("timecode"), else its
    source image's own number or its position in the source ("source"), or a given first number's count on."""
    if number_from.isdigit():
        return int(number_from) + index
    return info.timecode_frame(index) if number_from == "timecode" else info.frame_number(index)


def partial_path(path: Path) -> Path:
    """The hidden name a video file grows under until it is complete."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def open_output_container(
    path: Path, partial: Path, info: VideoInfo, container_format: str, options: dict[str, str]
) -> av.container.OutputContainer:
    make_parent(path)
    try:
        if container_format in ("mov", "mp4"):
            # A movie timescale equal to the track's keeps a non-zero first pts exact (the edit list that
            # carries it is written in movie units, by default milliseconds).
            options = {"movie_timescale": str(movie_timescale(info)), **options}
        return av.open(str(partial), "w", format=container_format, options=options)
    except (av.FFmpegError, OSError) as error:
        raise VmatteError(f"{path}: cannot write here ({error})") from None


def output_colour(info: VideoInfo) -> Colour:
    """Tags for written Y'CbCr: the source's own when it stated them (and we can convert to them), else BT.709."""
    if info.colour_assumed or info.colour_matrix not in LUMA_WEIGHTS:
        return BT709
    return Colour(info.colour_matrix, "tv", info.colour_primaries, info.colour_transfer)


def tag_colour(target: av.VideoCodecContext | av.VideoFrame, colour: Colour) -> None:
    target.colorspace = code_point(MATRIX_NAMES, colour.matrix)
    target.color_primaries = code_point(PRIMARIES_NAMES, colour.primaries)
    target.color_trc = code_point(TRANSFER_NAMES, colour.transfer)
    target.color_range = LIMITED_RANGE


def movie_timescale(info: VideoInfo) -> int:
    """The video track's timescale as FFmpeg's MOV muxer sets it (the time base's denominator, doubled up to at
    least 10000), so a non-zero first pts stays exact in the edit list that carries it, and audio's is close."""
    scale = info.output_time_base.denominator
    while scale < 10000:
        scale *= 2
    return scale


def tag_timecode(stream: av.VideoStream, info: VideoInfo) -> None:
    """The start timecode, which FFmpeg's MOV muxer writes as a timecode (tmcd) track counting at the stream's
    frame rate (a stream copied from a template has none until told)."""
    if info.timecode is not None:
        stream.metadata["timecode"] = info.timecode
        stream.codec_context.framerate = info.frame_rate


def fill_plane(plane: av.video.plane.VideoPlane, values: np.ndarray | int, dtype: type) -> None:
    """Copy a 2-D array (or a constant) into a frame plane of the given sample type, past its line padding."""
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // np.dtype(dtype).itemsize)
    rows[:, : plane.width] = values


def make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VmatteError(f"{path}: cannot create its folder {path.parent} ({error})") from None
