"""An output as a resumable run builds it: in its hidden work folder, segment by segment, and put in place in
one step when the run is complete.

Video outputs (.mov, .mp4) are written as closed segments and joined by stream copy at the end; image
sequences (PNG, OpenEXR) are written frame by frame (each file atomically) into the work folder and moved into place.
"""

import os
import tempfile
from pathlib import Path

from .errors import VmatteError
from .io import FrameWriter, VideoInfo, open_writer
from .io.frame_writer import file_number
from .io.segments import join_segments
from .io.sequence import is_pattern, is_sequence, numbered_name
from .io.writer import is_single_png, sequence_pattern, writer_class
from .resume import CHECKPOINT, clear_work_dir, remove_work_dir, work_dir_for


def existing_output(path: str) -> bool:
    """Whether a finished output is already at ``path`` (a file, or a sequence with its first frames)."""
    target = Path(path)
    if is_pattern(path):
        name = numbered_name(target.name)
        return target.parent.is_dir() and any(name.match(p.name) for p in target.parent.iterdir())
    return target.is_file() or (target.is_dir() and any(p for p in target.iterdir() if not p.name.startswith(".")))


def check_outputs(input: Path, outputs: dict[str, str], overwrite: bool, fresh: bool = False) -> None:
    """Everything about the outputs that can be wrong before any work starts (the command line calls this before
    it loads PyTorch and the model, so a wrong path is said at once)."""
    if not outputs:
        raise VmatteError("nothing to write: give at least one of --out (alpha), --fgr or --comp")
    source = Path(input).resolve()
    source_folder = source if source.is_dir() else source.parent if is_sequence(input) else None
    # Outputs of a run killed while it was putting them in place exist already; resuming finishes the job.
    resuming = not fresh and any((work_dir_for(p) / CHECKPOINT).is_file() for p in outputs.values())
    for kind, path in outputs.items():
        sequence = writer_class(kind, path).is_sequence
        target = Path(path).resolve()
        if target == source or (sequence and sequence_pattern(path).parent.resolve() == source_folder):
            raise VmatteError(f"{path}: an output cannot be written over its own input")
        if existing_output(path) and not (overwrite or resuming):
            raise VmatteError(f"{path} already exists; pass --overwrite to replace it")
        check_writable(path)
    paths = [os.path.abspath(p) for p in outputs.values()]
    if len(set(paths)) != len(paths):
        raise VmatteError("two outputs have the same path")


def check_writable(output: str) -> None:
    """The folder an output (and its work folder) goes in can take files: its nearest existing folder is tried
    with an empty file, as permission bits do not tell (root, read-only mounts, ACLs)."""
    folder = work_dir_for(output).parent.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise VmatteError(f"{output}: {folder} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".vmatte-write-test-", dir=folder)
    except OSError as exc:
        raise VmatteError(f"{output}: cannot write in {folder} ({exc.strerror})") from None
    os.close(handle)
    os.unlink(probe)


def segment_path(work_dir: Path, index: int, suffix: str) -> Path:
    """Segment ``index`` of a movie output built in ``work_dir``."""
    return work_dir / f"segment-{index:06d}{suffix}"


class OutputTrack:
    def __init__(self, kind: str, path: str, info: VideoInfo, *, png_depth: int, premultiplied: bool,
                 number_from: str = "source", exr_display_encoded: bool = False):
        self.kind = kind
        self.path = path
        self.info = info
        self.number_from = number_from
        # open_writer's options
        self.options = {"png_depth": png_depth, "premultiplied": premultiplied, "number_from": number_from,
                        "exr_display_encoded": exr_display_encoded}
        self.work_dir = work_dir_for(path)
        self.is_single_png = is_single_png(path)
        self.writer = writer_class(kind, path)
        self.is_sequence = self.writer.is_sequence
        if self.is_sequence:
            pattern = sequence_pattern(path)
            self.target_dir, self.file_name = pattern.parent, pattern.name
        self.suffix = Path(path).suffix.lower()

    def segment_path(self, index: int) -> Path:
        return segment_path(self.work_dir, index, self.suffix)

    def open_segment(self, index: int, first_frame: int) -> FrameWriter:
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VmatteError(f"{self.path}: cannot create the work folder {self.work_dir} ({exc})") from None
        if self.is_sequence:
            return open_writer(self.kind, self.work_dir / "frames" / self.file_name, self.info, first_index=first_frame,
                               **self.options)
        return open_writer(self.kind, self.segment_path(index), self.info, **self.options)

    def discard_segments_from(self, index: int) -> None:
        """Drops segments written after the checkpoint being resumed from, and any a kill left half-written
        (PNG frames are simply rewritten)."""
        if self.work_dir.is_dir() and not self.is_sequence:
            for partial in self.work_dir.glob(".segment-*.partial*"):
                partial.unlink()
            for segment in self.work_dir.glob(f"segment-*{self.suffix}"):
                if int(segment.stem.split("-")[1]) >= index:
                    segment.unlink()

    def finalize(self, segments: int, frames_total: int, audio_from: Path | None) -> None:
        """Puts the finished output in place: joined segments, or the PNG frames moved from the work folder."""
        if not self.is_sequence:
            join_segments([self.segment_path(i) for i in range(segments)], Path(self.path), self.info,
                          audio_from if self.kind != "alpha" and self.writer.carries_audio else None)
            return
        frames = self.work_dir / "frames"
        if not frames.is_dir():  # moved into place already, by a run killed before it could tidy up
            return
        self._remove_frames_from(frames_total)
        if not self.target_dir.exists() or not any(self.target_dir.iterdir()):
            # A new folder appears in one step.
            if self.target_dir.exists():
                self.target_dir.rmdir()
            self.target_dir.parent.mkdir(parents=True, exist_ok=True)
            os.replace(frames, self.target_dir)
        else:
            for frame in sorted(frames.iterdir()):
                os.replace(frame, self.target_dir / frame.name)

    def _remove_frames_from(self, frames_total: int) -> None:
        """With --overwrite, an earlier sequence must not leave frames this one does not have (the others are
        replaced one by one, so a move cut short by a kill can simply be repeated)."""
        if not self.target_dir.is_dir() or self.is_single_png:
            return
        name = numbered_name(self.file_name)
        numbers = {file_number(self.info, index, self.number_from) for index in range(frames_total)}
        for old in self.target_dir.iterdir():
            if (found := name.match(old.name)) and int(found.group(1)) not in numbers:
                old.unlink()

    def clear_work_dir(self) -> None:
        clear_work_dir(self.work_dir)

    def remove_work_dir(self) -> None:
        remove_work_dir(self.work_dir)
