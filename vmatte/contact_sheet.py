"""Contact sheets: matted frames laid out as source | matte | composite over a checkerboard, each labelled with
its frame number and source timecode (burned in with OpenCV), as editors review a shot at a glance.

``vmatte preview`` draws one from frames it mattes; a run's review report (``report.py``) from the thumbnails
the statistics collector (``frame_stats.py``) keeps while the run streams.
"""

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from .errors import VmatteError
from .io.timecode import offset_timecode
from .resume import write_atomically

TILE_WIDTH = 240  # px per picture on a sheet: three per frame, two frames a row, fit a 1920 px screen
CHECKER = 12  # px per checkerboard square
LABEL_HEIGHT = 22
GAP = 6
BACKGROUND = (32, 32, 32)


@dataclass
class Tile:
    """One matted frame for a sheet: the picture (HxWx3 uint8 RGB), its matte (HxW float in [0, 1]) and label."""

    label: str
    rgb: np.ndarray
    alpha: np.ndarray


def evenly_spaced(first: int, end: int, count: int) -> list[int]:
    """Up to ``count`` frame indices spread evenly over [first, end), the first and the last among them."""
    frames = end - first
    return sorted({first + round(i * (frames - 1) / max(count - 1, 1)) for i in range(min(count, frames))})


def frame_label(index: int, time: float, timecode: str | None, rate: Fraction) -> str:
    """'frame 120  01:00:05:00': the frame number and the source timecode, or the time when none is stated."""
    if timecode:
        return f"frame {index}  {offset_timecode(timecode, index, rate)}"
    minutes, seconds = divmod(max(time, 0.0), 60)
    return f"frame {index}  {int(minutes) // 60:02d}:{int(minutes) % 60:02d}:{seconds:06.3f}"


def as_uint8(rgb: np.ndarray) -> np.ndarray:
    return rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)


def shrink(rgb: np.ndarray, alpha: np.ndarray, width: int = TILE_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """A picture (8 or 16 bits) and its matte scaled to ``width`` (never up), the picture as uint8."""
    height, full_width = alpha.shape
    size = (min(width, full_width), max(1, round(height * min(width, full_width) / full_width)))
    return (cv2.resize(as_uint8(rgb), size, interpolation=cv2.INTER_AREA),
            cv2.resize(alpha.astype(np.float32), size, interpolation=cv2.INTER_AREA))


def checkerboard(height: int, width: int) -> np.ndarray:
    """Light and dark grey squares (HxWx3 float32): what shows through where the matte is transparent."""
    rows, cols = np.indices((height, width)) // CHECKER
    grey = np.where((rows + cols) % 2 == 0, 0.8, 0.55).astype(np.float32)
    return np.repeat(grey[..., None], 3, axis=2)


def _pictures(tile: Tile) -> np.ndarray:
    """Source, matte and composite side by side (uint8 RGB)."""
    rgb, alpha = shrink(tile.rgb, tile.alpha)
    a = np.clip(alpha, 0, 1)[..., None]
    matte = np.repeat(np.rint(a * 255).astype(np.uint8), 3, axis=2)
    comp = rgb.astype(np.float32) / 255 * a + checkerboard(*alpha.shape) * (1 - a)
    comp = np.rint(comp * 255).astype(np.uint8)
    gap = np.full((rgb.shape[0], GAP, 3), BACKGROUND, np.uint8)
    return np.concatenate([rgb, gap, matte, gap, comp], axis=1)


def _labelled(tile: Tile) -> np.ndarray:
    pictures = _pictures(tile)
    bar = np.full((LABEL_HEIGHT, pictures.shape[1], 3), BACKGROUND, np.uint8)
    cv2.putText(bar, tile.label, (4, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1,
                cv2.LINE_AA)
    return np.concatenate([bar, pictures], axis=0)


def draw_sheet(tiles: list[Tile], columns: int = 2) -> np.ndarray:
    """The tiles in rows of ``columns`` frames (uint8 RGB)."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one frame")
    cells = [_labelled(tile) for tile in tiles]
    cell_height = max(cell.shape[0] for cell in cells)
    cell_width = max(cell.shape[1] for cell in cells)
    columns = min(columns, len(cells))
    rows = -(-len(cells) // columns)
    sheet = np.full((GAP + rows * (cell_height + GAP), GAP + columns * (cell_width + GAP), 3), BACKGROUND, np.uint8)
    for number, cell in enumerate(cells):
        top = GAP + (number // columns) * (cell_height + GAP)
        left = GAP + (number % columns) * (cell_width + GAP)
        sheet[top : top + cell.shape[0], left : left + cell.shape[1]] = cell
    return sheet


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Writes an RGB picture as PNG atomically, so a failed write never leaves a file that looks finished."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise VmatteError(f"{path}: cannot encode the picture as PNG")
    try:
        write_atomically(Path(path), encoded.tobytes())
    except OSError as exc:
        raise VmatteError(f"{path}: cannot write it ({exc.strerror or exc})") from None
