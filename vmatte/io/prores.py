"""ProRes 4444 .mov: the master deliverable (alpha, foreground with alpha, composite)."""

from __future__ import annotations

import av
import numpy as np

from vmatte.io.colour import limited_range, rgb_to_limited_codes
from vmatte.io.frame_writer import VideoFileWriter, fill_plane, output_colour

QUANTISER = 1  # ProRes quantiser for every slice: the finest
FF_QP2LAMBDA = 118  # FFmpeg's scale for global_quality
# A fixed quantiser of 1: prores_ks's rate control searches every slice's quantiser and, for 4444 at sizes up to
# 4K on real footage, settles on 1 anyway (the same pictures); skipping the search makes encoding 2.7-2.9x faster
# (README, "Speed and memory"). Very noisy pictures make larger frames, not coarser ones.
ENCODER_OPTIONS = {"profile": "4444", "vendor": "apl0", "global_quality": str(QUANTISER * FF_QP2LAMBDA)}


class ProResWriter(VideoFileWriter):
    """ProRes 4444 in MOV: 10-bit 4:4:4 limited-range Y'CbCr, plus a full-range alpha plane (fgr, alpha)."""

    container_format = "mov"
    codec = "prores_ks"

    def _configure(self, stream: av.VideoStream) -> None:
        self._colour = output_colour(self.info)
        stream.width, stream.height = self.info.width, self.info.height
        # The matte .mov carries the matte twice: as its grey picture (for luma keys and viewing) and as its
        # alpha channel, which ProRes stores losslessly (its picture is lossy at sharp edges).
        stream.pix_fmt = pixel_format(self.kind)
        stream.options = ENCODER_OPTIONS
        stream.codec_context.thread_type = "SLICE"  # prores_ks codes slices in parallel

    def _frame(self, image: np.ndarray) -> av.VideoFrame:
        return yuv444_frame(self.kind, image, self._colour.matrix)


def pixel_format(kind: str) -> str:
    """10-bit 4:4:4, with an alpha plane for all but the (opaque) composite."""
    return "yuv444p10le" if kind == "comp" else "yuva444p10le"


def yuv444_frame(kind: str, image: np.ndarray, matrix: str) -> av.VideoFrame:
    """A float HxWxC image in [0, 1] of an output ``kind`` as the 10-bit 4:4:4 frame ProRes 4444 codes: a grey
    picture plus alpha for the matte, Y'CbCr (with ``matrix``) plus alpha for the foreground, Y'CbCr for the
    composite."""
    height, width = image.shape[:2]
    frame = av.VideoFrame(width, height, pixel_format(kind))
    if kind == "alpha":
        # The matte as a grey picture: Y carries it, chroma is neutral.
        luma, _, _ = limited_range(image[..., 0], 0.0, 0.0, bits=10)
        fill_plane(frame.planes[0], luma, np.uint16)
        fill_plane(frame.planes[1], 512, np.uint16)
        fill_plane(frame.planes[2], 512, np.uint16)
    else:
        codes = rgb_to_limited_codes(image, matrix, bits=10)
        for index, plane in enumerate(frame.planes[:3]):
            fill_plane(plane, codes[..., index], np.uint16)
    if kind != "comp":
        fill_plane(frame.planes[3], np.rint(image[..., -1] * 1023).astype(np.uint16), np.uint16)
    return frame
