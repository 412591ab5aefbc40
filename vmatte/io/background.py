"""Backgrounds for composites: a flat colour, a still image or a (looped) video, sized to fill the frame."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from vmatte.errors import VmatteError
from vmatte.io.reader import FrameSource, SourceFrame, open_source

NAMED_COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
}
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")
STILL_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


class Background(ABC):
    @abstractmethod
    def frame(self, index: int) -> np.ndarray:
        """The background for output frame ``index``: float32 HxWx3 in [0, 1]."""

    def close(self) -> None:
        """Release whatever the background holds open."""


class ColourBackground(Background):
    def __init__(self, rgb: tuple[int, int, int], width: int, height: int) -> None:
        self._image = np.empty((height, width, 3), np.float32)
        self._image[:] = np.array(rgb, np.float32) / 255

    def frame(self, index: int) -> np.ndarray:
        return self._image


class ImageBackground(Background):
    def __init__(self, path: Path, width: int, height: int) -> None:
        with open_source(path) as source:
            self._image = cover(next(source.frames()).rgb, width, height)

    def frame(self, index: int) -> np.ndarray:
        return self._image


class VideoBackground(Background):
    """Streams a video, looping it when the foreground is longer; only one frame is held at a time."""

    def __init__(self, source: FrameSource, width: int, height: int) -> None:
        self._source = source
        self._size = (width, height)
        self._frames: Iterator[SourceFrame] | None = None
        self._next_index = 0

    def frame(self, index: int) -> np.ndarray:
        wanted = index % self._source.info.frame_count
        if self._frames is None or wanted != self._next_index or wanted == 0:
            # The loop wrapping around, or a jump (a resumed run): restart the stream at the wanted frame.
            self._frames = self._source.frames(wanted)
        source_frame = next(self._frames)
        self._next_index = (wanted + 1) % self._source.info.frame_count
        return cover(source_frame.rgb, *self._size)

    def close(self) -> None:
        self._frames = None
        self._source.close()


def open_background(spec: str | Path, width: int, height: int) -> Background:
    """A colour name (green, blue, ...), a hex colour (#00ff00 or 00ff00), an image or a video file."""
    text = str(spec).strip()
    if text.lower() in NAMED_COLOURS:
        return ColourBackground(NAMED_COLOURS[text.lower()], width, height)
    hex_colour = _HEX.fullmatch(text)
    if hex_colour:
        value = int(hex_colour.group(1), 16)
        return ColourBackground(((value >> 16) & 255, (value >> 8) & 255, value & 255), width, height)
    path = Path(text)
    if not path.is_file():
        raise VmatteError(
            f"background '{spec}' is neither a colour ({', '.join(NAMED_COLOURS)}, or hex like #00ff00) "
            "nor an existing image or video file"
        )
    if path.suffix.lower() in STILL_SUFFIXES:
        return ImageBackground(path, width, height)
    return VideoBackground(open_source(path), width, height)


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover width x height keeping the aspect ratio, centre-crop, return float32 in [0, 1]."""
    source_height, source_width = image.shape[:2]
    scale = max(width / source_width, height / source_height)
    scaled_width = max(width, round(source_width * scale))
    scaled_height = max(height, round(source_height * scale))
    shrinking = scale < 1
    resized = cv2.resize(
        image, (scaled_width, scaled_height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )
    left = (scaled_width - width) // 2
    top = (scaled_height - height) // 2
    cropped = resized[top : top + height, left : left + width]
    peak = np.float32(np.iinfo(image.dtype).max)
    return np.ascontiguousarray(cropped, dtype=np.float32) / peak
