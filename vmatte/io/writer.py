"""Which writer an output path asks for, and opening it.

One module per format holds its writer (prores.py, h264.py, png.py, exr.py, webm.py), all behind the interface in
frame_writer.py; this module maps a kind and a path to one of them.
"""

from __future__ import annotations

import os
from pathlib import Path

from vmatte.errors import VmatteError
from vmatte.io.exr import ExrSequenceWriter
from vmatte.io.frame_writer import KINDS, FrameWriter
from vmatte.io.h264 import H264PreviewWriter
from vmatte.io.png import PngSequenceWriter
from vmatte.io.probe import VideoInfo
from vmatte.io.prores import ProResWriter
from vmatte.io.sequence import is_pattern
from vmatte.io.webm import WebmWriter

SUPPORTED = (
    ".mov (ProRes 4444: alpha, fgr, comp), .mp4 (H.264 preview: comp only), "
    "a folder or a pattern like out/%06d.png (PNG sequence: alpha, fgr, comp), .png (one-frame inputs), "
    "a pattern like out/%06d.exr (OpenEXR sequence: alpha, fgr, comp), .webm (VP9 with alpha: alpha, fgr, comp)"
)
DEFAULT_PNG_NAME = "%06d.png"  # of the files in a folder given as a PNG output


def open_writer(
    kind: str,
    path: str | Path,
    info: VideoInfo,
    *,
    png_depth: int = 16,
    premultiplied: bool = False,
    audio_from: str | Path | None = None,
    first_index: int = 0,
    number_from: str = "source",
    exr_display_encoded: bool = False,
) -> FrameWriter:
    """Open the writer the path asks for (see SUPPORTED); audio_from adds the source's audio to fgr/comp .mov;
    a PNG sequence starts at frame ``first_index`` (files numbered as ``frame_writer.file_number`` says)."""
    writer = writer_class(kind, path)
    path = Path(path)
    if writer is PngSequenceWriter:
        return PngSequenceWriter(kind, path, png_pattern(path), info, premultiplied, is_single_png(path), png_depth,
                                 first_index, number_from)
    if writer is ExrSequenceWriter:
        return ExrSequenceWriter(kind, path, info, exr_display_encoded, first_index, number_from)
    return writer(kind, path, info, premultiplied, audio_from if writer is ProResWriter and kind != "alpha" else None)


def writer_class(kind: str, path: str | Path) -> type[FrameWriter]:
    """The writer that handles ``kind`` at ``path`` (see SUPPORTED); raises VmatteError for any other path."""
    if kind not in KINDS:
        raise VmatteError(f"unknown output kind '{kind}' (expected one of: {', '.join(KINDS)})")
    if is_png_sequence(path) or is_single_png(path):
        return PngSequenceWriter
    if is_exr_sequence(path):
        return ExrSequenceWriter
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mov":
        return ProResWriter
    if suffix == ".mp4" and kind == "comp":
        return H264PreviewWriter
    if suffix == ".webm":
        return WebmWriter
    raise VmatteError(f"{path}: cannot write {kind} output to this kind of path; supported: {SUPPORTED}")


def is_png_sequence(path: str | Path) -> bool:
    """A folder (existing, or named with a trailing slash) or a .png frame pattern like out/%06d.png."""
    text = str(path)
    return text.endswith(("/", os.sep)) or Path(path).is_dir() or (is_pattern(path) and text.lower().endswith(".png"))


def is_exr_sequence(path: str | Path) -> bool:
    """A frame pattern like out/%06d.exr."""
    return is_pattern(path) and str(path).lower().endswith(".exr")


def sequence_pattern(path: str | Path) -> Path:
    """Where an image-sequence output's files go (PNG or OpenEXR)."""
    return Path(path) if is_exr_sequence(path) else png_pattern(path)


def is_single_png(path: str | Path) -> bool:
    """One .png file (for a one-frame input, such as a photo)."""
    return Path(path).suffix.lower() == ".png" and not is_png_sequence(path)


def png_pattern(path: str | Path) -> Path:
    """Where a PNG output's files go: a pattern or single file as given, a folder as FOLDER/000000.png, ..."""
    return Path(path) if is_pattern(path) or is_single_png(path) else Path(path) / DEFAULT_PNG_NAME


# What each output is for, told after a run (docs/outputs.md has the full table per editing program).
_USES = {
    (ProResWriter, "alpha"): "matte (grey picture, same matte as alpha): a luma or alpha track matte over the source",
    (ProResWriter, "fgr"): "cut-out with {alpha} alpha; import with Alpha: {Alpha} (Resolve: Clip Attributes; "
                           "Premiere, After Effects: Interpret Footage)",
    (ProResWriter, "comp"): "composite, opaque: use as any clip",
    (H264PreviewWriter, "comp"): "H.264 preview for review, not for finishing",
    (PngSequenceWriter, "alpha"): "matte frames (grey): import as an image sequence, use as a luma matte",
    (PngSequenceWriter, "fgr"): "cut-out frames (RGBA, {alpha} alpha): import as an image sequence",
    (PngSequenceWriter, "comp"): "composite frames: import as an image sequence",
    (ExrSequenceWriter, "alpha"): "matte frames (one Y channel, linear): for compositing",
    (ExrSequenceWriter, "fgr"): "cut-out frames (RGBA, premultiplied as OpenEXR defines it): for compositing",
    (ExrSequenceWriter, "comp"): "composite frames (linear): for compositing",
    (WebmWriter, "alpha"): "matte as VP9 with alpha, for web pages",
    (WebmWriter, "fgr"): "cut-out as VP9 with {alpha} alpha, for web pages (<video> over the page)",
    (WebmWriter, "comp"): "composite as VP9, for web pages",
}


def output_use(kind: str, path: str | Path, premultiplied: bool) -> str:
    """One line saying what an output is and how to bring it into an editor."""
    alpha = "premultiplied" if premultiplied else "straight"
    return _USES[writer_class(kind, path), kind].format(alpha=alpha, Alpha=alpha.capitalize())
