"""Image sequences named by a folder or by a printf pattern such as ``frames/%06d.png``."""

from __future__ import annotations

import re
from pathlib import Path

from vmatte.errors import VmatteError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".exr", ".dpx"}
_PRINTF_NUMBER = re.compile(r"%(0?\d*)d")


def is_pattern(path: str | Path) -> bool:
    """True for a printf-style frame pattern (``%d`` or ``%06d`` in the file name)."""
    return _PRINTF_NUMBER.search(Path(path).name) is not None


def is_sequence(path: str | Path) -> bool:
    return Path(path).is_dir() or is_pattern(path)


def sequence_name(path: str | Path) -> str:
    """What a sequence is called, for naming its outputs: a folder's name; a pattern's file name before the
    number (``shot_%04d.exr`` is "shot"), or its folder's name when the name is only the number."""
    path = Path(path)
    if not is_pattern(path):
        return path.name
    head = path.name[: _PRINTF_NUMBER.search(path.name).start()].rstrip("._- ")
    return head or path.absolute().parent.name


def folder_images(folder: Path) -> list[Path]:
    """The images directly in a folder, in frame order (natural order of their names)."""
    return sorted((child for child in folder.iterdir() if child.suffix.lower() in IMAGE_SUFFIXES and child.is_file()),
                  key=_natural_key)


def sequence_files(path: str | Path) -> list[Path]:
    """The images of a sequence in frame order; raises VmatteError when there are none."""
    path = Path(path)
    if is_pattern(path):
        files = _pattern_files(path)
    elif path.is_dir():
        files = folder_images(path)
    else:
        raise VmatteError(f"{path}: not a folder of images or a frame pattern like frames/%06d.png")
    if not files:
        raise VmatteError(f"{path}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _pattern_files(pattern: Path) -> list[Path]:
    folder = pattern.parent
    if not folder.is_dir():
        raise VmatteError(f"{pattern}: folder {folder} does not exist")
    name = numbered_name(pattern.name)
    numbered = []
    for child in folder.iterdir():
        found = name.match(child.name)
        if found:
            numbered.append((int(found.group(1)), child))
    return [child for _, child in sorted(numbered)]


def frame_numbers(files: list[Path]) -> tuple[int, ...]:
    """The frame number in each file name (its last run of digits), when every name has one and they rise in
    file order; else () and frames are numbered by position."""
    numbers = []
    for file in files:
        digits = re.findall(r"\d+", file.stem)
        if not digits:
            return ()
        numbers.append(int(digits[-1]))
    if any(later <= earlier for earlier, later in zip(numbers, numbers[1:])):
        return ()
    return tuple(numbers)


def numbered_name(pattern_name: str) -> re.Pattern:
    """The file names a printf pattern such as ``%06d.png`` produces, with the number as group 1."""
    match = _PRINTF_NUMBER.search(pattern_name)
    head, tail = pattern_name[: match.start()], pattern_name[match.end() :]
    return re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + r"\Z")


def _natural_key(path: Path) -> list:
    """Sort 'frame2' before 'frame10' as a person would."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]
