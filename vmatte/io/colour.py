"""Y'CbCr <-> R'G'B' conversion done in numpy, with the matrix and range stated explicitly.

swscale is not used for this: checked against a hand computation, its default 8-bit path is biased by about
one code value, and some of its flag combinations corrupt 10-bit input outright. The arithmetic here follows
ITU-T H.273 (matrix coefficients) and BT.601/BT.709/BT.2020 (code ranges) directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np

# ITU-T H.273 code points, named as FFmpeg names them.
MATRIX_NAMES = {
    0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "ycgco", 9: "bt2020nc", 10: "bt2020c",
}
PRIMARIES_NAMES = {
    1: "bt709", 2: "unspecified", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
TRANSFER_NAMES = {
    1: "bt709", 2: "unspecified", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    11: "iec61966-2-4", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084",
    18: "arib-std-b67",
}
RANGE_NAMES = {1: "tv", 2: "pc"}
LINEAR_TRANSFER = 8  # what FFmpeg's OpenEXR decoder tags its float pictures with
SRGB_TRANSFER = "iec61966-2-1"

# (Kr, Kb) luma weights of the Y'CbCr matrices we convert; Kg = 1 - Kr - Kb.
LUMA_WEIGHTS = {
    "bt709": (0.2126, 0.0722),
    "bt470bg": (0.299, 0.114),
    "smpte170m": (0.299, 0.114),
    "fcc": (0.30, 0.11),
    "smpte240m": (0.212, 0.087),
    "bt2020nc": (0.2627, 0.0593),
}


def code_point(names: dict[int, str], name: str) -> int:
    """The H.273 number for a colour name (to tag encoders with)."""
    return next(code for code, known in names.items() if known == name)


@dataclass(frozen=True)
class Colour:
    """How a picture's code values are to be read: matrix, range and the tags that travel with it."""

    matrix: str
    range: str  # 'tv' (limited) or 'pc' (full)
    primaries: str
    transfer: str


def is_yuv(pix_fmt: av.VideoFormat) -> bool:
    return not pix_fmt.is_rgb and not pix_fmt.has_palette and len(pix_fmt.components) >= 3


def frame_to_rgb(frame: av.VideoFrame, colour: Colour) -> np.ndarray:
    """Decode a frame's pixels to HxWx3 RGB: uint8 for 8-bit formats, uint16 (full 0..65535) above."""
    bits = frame.format.components[0].bits
    if not is_yuv(frame.format):
        if frame.color_trc == LINEAR_TRANSFER:
            return _encode_srgb(_linear_rgb(frame))
        # RGB, grey and palette formats: no matrix is involved, so swscale's repacking is exact.
        return frame.reformat(format="rgb24" if bits <= 8 else "rgb48le").to_ndarray()
    if len(frame.planes) < 3:
        # Semi-planar or packed Y'CbCr (nv12, p010, yuyv422): repack to planar 4:4:4 first.
        frame = frame.reformat(format="yuv444p" if bits <= 8 else "yuv444p16le")
        bits = frame.format.components[0].bits
    y, cb, cr = (plane_array(frame, i) for i in range(3))
    height, width = y.shape
    ycbcr = cv2.merge([np.ascontiguousarray(y), _upsample(cb, height, width), _upsample(cr, height, width)])
    # One affine pass per pixel (OpenCV, vectorised and threaded), rounding to nearest and saturating: the
    # 1080p frame that takes ~100 ms in float NumPy takes a few ms this way.
    peak = 255.0 if bits <= 8 else 65535.0
    return cv2.transform(ycbcr, ycbcr_to_rgb_matrix(colour, bits) * peak)


def _linear_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Float HxWx3 RGB of a scene-linear picture, read off its planes: swscale's half-float conversion is off
    by up to 1 %."""
    name = frame.format.name
    dtype = "<f2" if "f16" in name else "<f4"
    if name.startswith(("gbrpf", "gbrapf")):
        green, blue, red = (plane_array(frame, index, dtype) for index in range(3))
        return np.stack([red, green, blue], axis=-1).astype(np.float32)
    if name.startswith("grayf"):
        return np.repeat(plane_array(frame, 0, dtype)[..., None], 3, axis=-1).astype(np.float32)
    return frame.reformat(format="gbrpf32le").to_ndarray()


def _encode_srgb(linear: np.ndarray) -> np.ndarray:
    """Scene-linear RGB (OpenEXR plates) as 16-bit sRGB-encoded values: the model and the outputs work on
    display-encoded pictures. Values above 1 (highlights) clip, as they would on a display."""
    linear = np.clip(linear, 0.0, 1.0)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
    return np.rint(encoded * 65535.0).astype(np.uint16)


def ycbcr_to_rgb_matrix(colour: Colour, bits: int) -> np.ndarray:
    """3x4 affine map from integer (Y', Cb, Cr, 1) code values to R'G'B' in [0, 1]."""
    scale = float(1 << (bits - 8))
    if colour.range == "pc":
        peak = float((1 << bits) - 1)
        luma_gain, luma_offset = 1 / peak, 0.0
        chroma_gain, chroma_offset = 1 / peak, -(1 << (bits - 1)) / peak
    else:
        luma_gain, luma_offset = 1 / (219 * scale), -16 / 219
        chroma_gain, chroma_offset = 1 / (224 * scale), -128 / 224
    kr, kb = LUMA_WEIGHTS[colour.matrix]
    kg = 1.0 - kr - kb
    luma = np.array([luma_gain, 0.0, 0.0, luma_offset])
    red = luma + 2 * (1 - kr) * np.array([0.0, 0.0, chroma_gain, chroma_offset])
    blue = luma + 2 * (1 - kb) * np.array([0.0, chroma_gain, 0.0, chroma_offset])
    green = (luma - kr * red - kb * blue) / kg
    return np.stack([red, green, blue])


def rgb_to_ycbcr_matrix(matrix: str) -> np.ndarray:
    """3x3 map from R'G'B' in [0, 1] to Y' in [0, 1] and Cb, Cr in [-0.5, 0.5]."""
    kr, kb = LUMA_WEIGHTS[matrix]
    kg = 1.0 - kr - kb
    luma = np.array([kr, kg, kb])
    cb = (np.array([0.0, 0.0, 1.0]) - luma) * (0.5 / (1 - kb))
    cr = (np.array([1.0, 0.0, 0.0]) - luma) * (0.5 / (1 - kr))
    return np.stack([luma, cb, cr])


def rgb_to_ycbcr(rgb: np.ndarray, matrix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float R'G'B' in [0, 1] -> float32 Y' in [0, 1] and Cb, Cr in [-0.5, 0.5]."""
    ycbcr = cv2.transform(np.ascontiguousarray(rgb[..., :3], dtype=np.float32), rgb_to_ycbcr_matrix(matrix))
    return ycbcr[..., 0], ycbcr[..., 1], ycbcr[..., 2]


def rgb_to_limited_codes(rgb: np.ndarray, matrix: str, bits: int) -> np.ndarray:
    """float R'G'B' in [0, 1] -> HxWx3 limited-range Y'CbCr integer codes, in one affine pass plus rounding."""
    scale = float(1 << (bits - 8))
    affine = np.hstack([rgb_to_ycbcr_matrix(matrix) * np.array([[219], [224], [224]]) * scale,
                        np.array([[16], [128], [128]]) * scale])
    codes = cv2.transform(np.ascontiguousarray(rgb[..., :3], dtype=np.float32), affine)
    return np.rint(codes, out=codes).astype(np.uint8 if bits <= 8 else np.uint16)


def limited_range(luma: np.ndarray, cb: np.ndarray, cr: np.ndarray, bits: int) -> tuple[np.ndarray, ...]:
    """Quantise Y'CbCr to limited ('tv') range integers of the given bit depth, rounding to nearest."""
    scale = float(1 << (bits - 8))
    dtype = np.uint8 if bits <= 8 else np.uint16
    y = np.rint((16 + 219 * luma) * scale).astype(dtype)
    u = np.rint((128 + 224 * cb) * scale).astype(dtype)
    v = np.rint((128 + 224 * cr) * scale).astype(dtype)
    return y, u, v


def plane_array(frame: av.VideoFrame, index: int, dtype: str | None = None) -> np.ndarray:
    """One plane as a 2-D array view (without the line padding); integer samples unless ``dtype`` says."""
    plane = frame.planes[index]
    dtype = np.dtype(dtype or (np.uint8 if frame.format.components[index].bits <= 8 else "<u2"))
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
    return rows[:, : plane.width]


def _upsample(chroma: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bring a subsampled chroma plane to luma size by an exact factor (bilinear, centre-sited)."""
    factor_y = -(-height // chroma.shape[0])
    factor_x = -(-width // chroma.shape[1])
    if factor_x == factor_y == 1:
        return chroma
    # Plane views skip line padding, so copy to contiguous for cv2; scaling by exactly the subsampling
    # factor keeps sample sites aligned, and the crop handles odd luma sizes.
    chroma = np.ascontiguousarray(chroma)
    size = (chroma.shape[1] * factor_x, chroma.shape[0] * factor_y)
    return cv2.resize(chroma, size, interpolation=cv2.INTER_LINEAR)[:height, :width]
