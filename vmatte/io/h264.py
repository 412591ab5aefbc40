"""H.264 .mp4: a small, widely playable preview of the composite."""

from __future__ import annotations

import av
import numpy as np

from vmatte.io.colour import limited_range, rgb_to_ycbcr
from vmatte.io.frame_writer import BT709, VideoFileWriter, fill_plane


class H264PreviewWriter(VideoFileWriter):
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
        return yuv420_frame(image, self._stream.width, self._stream.height, self._colour.matrix, "yuv420p")


def yuv420_frame(image: np.ndarray, width: int, height: int, matrix: str, pix_fmt: str) -> av.VideoFrame:
    """An 8-bit 4:2:0 limited-range frame (``yuv420p``, or ``yuva420p`` with the last channel as alpha) of
    ``width`` x ``height``, the image padded to it by repeating its last column and row."""
    padded = np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0)), mode="edge")
    if image.shape[2] == 1:  # a matte: the grey picture it is
        luma = padded[..., 0]
        cb = cr = np.zeros((height // 2, width // 2), np.float32)
    else:
        luma, cb, cr = rgb_to_ycbcr(padded, matrix)
        # 4:2:0 chroma: the mean of each 2x2 block (centre-sited).
        cb = cb.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
        cr = cr.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    frame = av.VideoFrame(width, height, pix_fmt)
    for plane, values in zip(frame.planes, limited_range(luma, cb, cr, bits=8)):
        fill_plane(plane, values, np.uint8)
    if pix_fmt == "yuva420p":
        fill_plane(frame.planes[3], np.rint(padded[..., -1] * 255).astype(np.uint8), np.uint8)
    return frame
