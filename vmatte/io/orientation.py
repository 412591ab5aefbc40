"""Display orientation from a container's display matrix (90-degree rotations and mirroring).

The matrix maps a coded pixel (x, y) to the display as x' = a*x + c*y, y' = b*x + d*y (plus a translation),
with y pointing down. For the orientations phones and editors write, a, b, c, d are 0 or +-1.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.sidedata.sidedata import Type


@dataclass(frozen=True)
class Orientation:
    """How to turn a decoded (coded) picture into the displayed one."""

    transpose: bool = False
    flip_rows: bool = False  # after the transpose, if any
    flip_columns: bool = False

    @property
    def rotation(self) -> int:
        """Clockwise degrees of rotation, with any mirror taken as applied after it (see ``mirrored``)."""
        a, b = self._unmirrored_first_column()
        return {(1, 0): 0, (0, 1): 90, (-1, 0): 180, (0, -1): 270}[(a, b)]

    @property
    def mirrored(self) -> bool:
        """True when the display is additionally flipped left-right (the matrix has a reflection)."""
        a, b, c, d = self._matrix()
        return a * d - b * c < 0

    def display_size(self, width: int, height: int) -> tuple[int, int]:
        return (height, width) if self.transpose else (width, height)

    def display_aspect(self, sample_aspect: Fraction) -> Fraction:
        """A coded pixel's width:height as displayed: a transpose swaps the two."""
        return 1 / sample_aspect if self.transpose else sample_aspect

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Orient an HxWxC image for display; returns a C-contiguous array."""
        if self.transpose:
            image = image.transpose(1, 0, *range(2, image.ndim))
        if self.flip_rows:
            image = image[::-1]
        if self.flip_columns:
            image = image[:, ::-1]
        return np.ascontiguousarray(image)

    def _matrix(self) -> tuple[int, int, int, int]:
        # Display x' comes from coded y when transposed; a flip negates the display axis it acts on.
        sx = -1 if self.flip_columns else 1
        sy = -1 if self.flip_rows else 1
        if self.transpose:
            return 0, sy, sx, 0
        return sx, 0, 0, sy

    def _unmirrored_first_column(self) -> tuple[int, int]:
        a, b, _, _ = self._matrix()
        return (-a, b) if self.mirrored else (a, b)


UPRIGHT = Orientation()


def orientation_of(frame: av.VideoFrame) -> Orientation:
    """The orientation signalled by a decoded frame's display-matrix side data (upright when absent)."""
    matrix_bytes = _display_matrix(frame)
    if matrix_bytes is None:
        return UPRIGHT
    matrix = np.frombuffer(matrix_bytes, dtype="<i4")
    a, b, c, d = (int(np.sign(value)) for value in (matrix[0], matrix[1], matrix[3], matrix[4]))
    if a == d == 0 and b != 0 and c != 0:
        return Orientation(transpose=True, flip_rows=b < 0, flip_columns=c < 0)
    if b == c == 0 and a != 0 and d != 0:
        return Orientation(flip_rows=d < 0, flip_columns=a < 0)
    # A rotation by other than a multiple of 90 degrees: nothing we can apply losslessly.
    return UPRIGHT


def _display_matrix(frame: av.VideoFrame) -> bytes | None:
    # PyAV 18 gives each side-data entry's metadata to its Python wrapper, which frees it, and the frame
    # frees it again: reading the side data of a frame whose entries carry metadata (a PNG's ICC profile)
    # crashes the process once both are collected. So it is read off a 2x2 copy (av_frame_copy_props copies
    # the side data) that is never freed: a few hundred bytes per probed file.
    copy = frame.reformat(width=2, height=2)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(copy))
    try:
        side_data = copy.side_data.get(Type.DISPLAYMATRIX)
    except ValueError:  # PyAV cannot name some side data (EXIF in JPEGs, type 31): then there is no matrix
        return None
    return None if side_data is None else bytes(side_data)
