"""OpenEXR sequences for compositing: half float, lossless (PIZ), scene-linear by default.

Written with the ASWF ``OpenEXR`` bindings rather than FFmpeg's ``exr`` encoder, which writes no
chromaticities attribute, names a one-channel image only ``Y``, and offers no PIZ compression.

* alpha: one ``Y`` channel (coverage is linear already; no transfer function applies).
* fgr: ``R G B A``, premultiplied as OpenEXR defines it: the colour is linearised first, then multiplied by A.
* comp: ``R G B``.

Colour is linearised from the source's transfer function (the inverse of the camera's encoding: BT.709 for
Rec.709/601/2020 video, the sRGB curve, PQ with 1.0 = 100 cd/m2, HLG's scene light); ``display_encoded``
keeps the display-encoded values as they are (for tools set up to read video-encoded EXRs). The
``chromaticities`` attribute states the source's primaries, and ``pixelAspectRatio`` its pixel shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR

from vmatte.errors import VmatteError
from vmatte.io.frame_writer import ImageSequenceWriter
from vmatte.io.probe import VideoInfo

# CIE xy of red, green, blue and white (x, y each), by FFmpeg's primaries name.
D65, ILLUMINANT_C = (0.3127, 0.3290), (0.310, 0.316)
CHROMATICITIES = {
    "bt709": (0.640, 0.330, 0.300, 0.600, 0.150, 0.060, *D65),
    "bt470bg": (0.640, 0.330, 0.290, 0.600, 0.150, 0.060, *D65),
    "smpte170m": (0.630, 0.340, 0.310, 0.595, 0.155, 0.070, *D65),
    "smpte240m": (0.630, 0.340, 0.310, 0.595, 0.155, 0.070, *D65),
    "bt470m": (0.670, 0.330, 0.210, 0.710, 0.140, 0.080, *ILLUMINANT_C),
    "film": (0.681, 0.319, 0.243, 0.692, 0.145, 0.049, *ILLUMINANT_C),
    "bt2020": (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, *D65),
    "smpte431": (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.314, 0.351),
    "smpte432": (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, *D65),
}


def _inverse_bt709(v: np.ndarray) -> np.ndarray:
    return np.where(v < 0.081, v / 4.5, ((v + 0.099) / 1.099) ** (1 / 0.45))


def _inverse_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _inverse_smpte240m(v: np.ndarray) -> np.ndarray:
    return np.where(v < 0.0913, v / 4.0, ((v + 0.1115) / 1.1115) ** (1 / 0.45))


def _inverse_pq(v: np.ndarray) -> np.ndarray:
    m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
    p = v ** (1 / m2)
    nits = 10000 * (np.maximum(p - c1, 0) / (c2 - c3 * p)) ** (1 / m1)
    return nits / 100  # 1.0 = 100 cd/m2, the usual scene-linear convention for SDR-referred compositing


def _inverse_hlg(v: np.ndarray) -> np.ndarray:
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    return np.where(v <= 0.5, v * v / 3, (np.exp((v - c) / a) + b) / 12)


LINEARISE = {
    "bt709": _inverse_bt709, "smpte170m": _inverse_bt709, "bt2020-10": _inverse_bt709, "bt2020-12": _inverse_bt709,
    "iec61966-2-1": _inverse_srgb, "smpte240m": _inverse_smpte240m,
    "gamma22": lambda v: v ** 2.2, "gamma28": lambda v: v ** 2.8, "linear": lambda v: v,
    "smpte2084": _inverse_pq, "arib-std-b67": _inverse_hlg,
}


class ExrSequenceWriter(ImageSequenceWriter):
    """One half-float, PIZ-compressed OpenEXR file per frame."""

    def __init__(self, kind: str, path: Path, info: VideoInfo, display_encoded: bool, first_index: int = 0,
                 number_from: str = "source") -> None:
        if kind != "alpha" and not display_encoded and info.colour_transfer not in LINEARISE:
            raise VmatteError(f"{path}: cannot linearise the source's transfer function '{info.colour_transfer}' "
                              "for OpenEXR; --exr-display-encoded keeps the values as they are")
        # Premultiplication happens here, after linearising, whatever --premultiplied says: EXR colour is
        # premultiplied by definition.
        super().__init__(kind, path, path, info, False, False, first_index, number_from)
        self._linearise = None if display_encoded else LINEARISE.get(info.colour_transfer)
        self._header = {"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage,
                        "pixelAspectRatio": float(info.pixel_aspect)}
        if kind != "alpha" and info.colour_primaries in CHROMATICITIES:
            self._header["chromaticities"] = CHROMATICITIES[info.colour_primaries]

    def _save(self, image: np.ndarray, pts: int, path: Path) -> None:
        if self.kind == "alpha":
            channels = {"Y": image[..., 0].astype(np.float16)}
        else:
            rgb = image[..., :3] if self._linearise is None else self._linearise(image[..., :3])
            if self.kind == "fgr":
                rgb = rgb * image[..., 3:]
                channels = {"RGBA": np.concatenate([rgb, image[..., 3:]], axis=-1).astype(np.float16)}
            else:
                channels = {"RGB": rgb.astype(np.float16)}
        # The bindings read each array's memory as C-ordered, whatever its strides say (frames from the OpenVINO
        # backend arrive channel-planar).
        channels = {name: np.ascontiguousarray(values) for name, values in channels.items()}
        try:
            with OpenEXR.File(self._header, channels) as file:
                file.write(str(path))
        except RuntimeError as error:  # what the bindings raise when the file cannot be written
            raise OSError(error) from None
