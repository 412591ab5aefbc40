"""``vmatte eval``: score a predicted matte sequence against ground truth, frame by frame.

Both sides may be any matte vmatte can read back (see ``read_alpha_sequence``); frames are paired in order,
scored with ``vmatte.metrics`` (MAD, MSE, Grad, Conn, dtSSD, scaled as the RVM evaluation scripts do) and
streamed, so only the current and previous pair of mattes are in memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from vmatte.errors import VmatteError
from vmatte.io.colour import is_yuv, plane_array
from vmatte.io.probe import Timeline, VideoInfo, scan
from vmatte.metrics import METRIC_NAMES, evaluate_sequences, plot_per_frame

# Column headings of the summary table, with the scale each metric is reported at.
_LABELS = {"mad": ("MAD", "x1e3"), "mse": ("MSE", "x1e3"), "grad": ("Grad", "/1e3"), "conn": ("Conn", "/1e3"),
           "dtssd": ("dtSSD", "x1e2")}


def read_alpha_sequence(path: str | Path) -> Iterator[np.ndarray]:
    """The mattes of a sequence, one float32 HxW array in [0, 1] per frame, decoded as they are consumed.

    Accepted inputs (counts and sizes come from ``vmatte.io.probe``; path problems raise VmatteError now,
    decoding problems while iterating):

    - an image sequence (a folder, or a pattern like ``alpha/%06d.png``) of 8/16-bit images: the alpha channel
      of RGBA / grey+alpha images, the value of grey ones, and the *first* (red) channel of RGB ones without
      alpha -- a grey matte saved as RGB has R = G = B, so any channel is the matte;
    - a video whose pixel format has an alpha plane (ProRes 4444 ``yuva444p*``, vmatte's fgr .mov): the
      alpha plane, full range;
    - any other Y'CbCr video (vmatte's alpha .mov): the luma plane, which carries the matte in the stream's
      tagged range -- limited ``(Y - 16k) / 219k`` with k = 2^(bits - 8), i.e. (Y - 64) / 876 at 10 bits,
      clipped to [0, 1]; full range ``Y / (2^bits - 1)``.

    VP8/VP9 alpha (WebM) is rejected: it is stored beside the picture and FFmpeg's native decoders drop it.
    """
    return _open(path)[1]


def evaluate(
    pred_path: str | Path, gt_path: str | Path, csv_path: str | Path | None = None,
    plot_path: str | Path | None = None,
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Per-frame metrics of ``pred_path`` against ``gt_path`` and their means.

    Returns ``(rows, summary)``: rows are ``{"frame": i, "mad": ..., "mse": ..., "grad": ..., "conn": ...,
    "dtssd": ...}``; summary is ``{"frames": n, <metric>: mean, ...}``. Optionally writes the rows to a CSV
    and draws MAD and dtSSD per frame into a PNG.
    """
    pred_info, pred_frames = _open(pred_path)
    gt_info, gt_frames = _open(gt_path)
    # Checked before any decoding so a mismatch fails at once, not after scoring most of a clip.
    pred_shape = (pred_info.frame_count, pred_info.width, pred_info.height)
    gt_shape = (gt_info.frame_count, gt_info.width, gt_info.height)
    if pred_shape != gt_shape:
        what = "frame counts" if pred_shape[0] != gt_shape[0] else "frame sizes"
        raise VmatteError(
            f"cannot compare the prediction {pred_path} ({_describe(pred_info)}) with the ground truth "
            f"{gt_path} ({_describe(gt_info)}): the {what} differ"
        )
    results = evaluate_sequences(pred_frames, gt_frames)
    if csv_path is not None:
        _write_csv(results.rows, Path(csv_path))
    if plot_path is not None:
        plot_per_frame(results.rows, plot_path)
    return results.rows, results.summary


def format_summary(summary: dict[str, float]) -> str:
    """The summary as a small aligned table: one line per metric (mean over frames and its scale)."""
    names = [name for name in METRIC_NAMES if name in summary]
    values = [f"{summary[name]:.4f}" for name in names]
    value_width = max([len("mean"), *map(len, values)])
    lines = [f"{'metric':<8}{'mean':>{value_width}}  scale"]
    for name, value in zip(names, values):
        label, scale = _LABELS[name]
        lines.append(f"{label:<8}{value:>{value_width}}  {scale}")
    lines.append(f"{'frames':<8}{int(summary['frames']):>{value_width}}")
    return "\n".join(lines)


def _describe(info: VideoInfo) -> str:
    return f"{info.frame_count} frames of {info.width}x{info.height}"


def _open(path: str | Path) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    info, timeline = scan(path)
    if info.is_image_sequence:
        return info, _image_mattes(info, timeline)
    if info.has_alpha and info.codec in ("vp8", "vp9"):
        raise VmatteError(
            f"{info.path}: {info.codec.upper()} alpha is not supported: WebM stores it beside the picture and "
            "FFmpeg's native decoder drops it; convert the matte to ProRes 4444 or a PNG sequence"
        )
    return info, _video_mattes(info, timeline)


def _image_mattes(info: VideoInfo, timeline: Timeline) -> Iterator[np.ndarray]:
    full_range = info.colour_range == "pc"  # only matters for Y'CbCr images: JPEG is full range, WebP limited
    for path in timeline.files:
        try:
            with av.open(str(path)) as container:
                frame = next(container.decode(video=0))
        except (av.FFmpegError, StopIteration) as error:
            raise VmatteError(f"{path}: not a readable image ({error})") from None
        if (frame.width, frame.height) != (info.width, info.height):
            raise VmatteError(
                f"{path}: {frame.width}x{frame.height}, but the sequence {info.path} is "
                f"{info.width}x{info.height}; all images must have the same size"
            )
        yield _matte(frame, full_range)


def _video_mattes(info: VideoInfo, timeline: Timeline) -> Iterator[np.ndarray]:
    full_range = info.colour_range == "pc"  # probe's reading of the tags (limited when untagged, as vmatte writes)
    index = 0
    with av.open(info.path) as container:
        stream = container.streams[timeline.stream_index]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield timeline.orientation.apply(_matte(frame, full_range))
                index += 1
        except av.FFmpegError as error:
            raise VmatteError(f"{info.path}: decoding failed at frame {index} ({error.strerror})") from None


def _matte(frame: av.VideoFrame, full_range_luma: bool) -> np.ndarray:
    """One decoded picture as a float32 HxW matte in [0, 1] (the rules are in read_alpha_sequence)."""
    fmt = frame.format
    has_alpha = any(component.is_alpha for component in fmt.components)
    if is_yuv(fmt):
        if len(frame.planes) < 3:  # packed or semi-planar Y'CbCr: make plane 0 luma and plane 3 alpha
            frame = frame.reformat(format="yuva444p16le" if has_alpha else "yuv444p16le")
            fmt = frame.format
        # Planes are read as stored: swscale would rescale full-range (yuvj) luma on the way to 16 bits.
        if has_alpha:
            bits = fmt.components[3].bits
            return (plane_array(frame, 3) / np.float32((1 << bits) - 1)).astype(np.float32)
        bits = fmt.components[0].bits
        luma = plane_array(frame, 0).astype(np.float32)
        if full_range_luma:
            return luma / np.float32((1 << bits) - 1)
        scale = np.float32(1 << (bits - 8))
        return np.clip((luma - 16 * scale) / (219 * scale), 0.0, 1.0)
    # Grey, RGB(A), grey+alpha and palette images: swscale widens these to 16 bits exactly (v * 257).
    if len(fmt.components) == 1 and fmt.name != "pal8":
        return frame.to_ndarray(format="gray16le").astype(np.float32) / np.float32(65535)
    rgba = frame.to_ndarray(format="rgba64le")
    # A palette's transparency is not a component of the format, so look at what the palette gave.
    has_alpha = has_alpha or (fmt.name == "pal8" and bool((rgba[..., 3] < 65535).any()))
    return rgba[..., 3 if has_alpha else 0].astype(np.float32) / np.float32(65535)


def _write_csv(rows: list[dict[str, float]], path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    except OSError as error:
        raise VmatteError(f"{path}: cannot write the per-frame CSV ({error.strerror})") from None
