"""``vmatte preview``: a look at a clip's mattes before committing to a long render.

A handful of evenly spaced frames are matted, each as a one-frame range of the clip (``io/clip_range.py``) after
a short warm-up: the model first runs over the ``WARM_UP`` frames before it (``MattingStream.warm_up``), so its
recurrent state has mostly settled as it would have there. A full run's state has seen every frame since the shot
began; docs/review.md gives how far the two mattes differ, and how the warm-up's length was chosen. The frames
go on one contact sheet (``contact_sheet.py``), and the time they took gives an estimate of the full run's.
"""

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from itertools import islice
from pathlib import Path
from statistics import median

from .contact_sheet import Tile, draw_sheet, evenly_spaced, frame_label, write_png
from .ensemble import EnsembleEngine
from .errors import VmatteError
from .inference import MattingEngine
from .io import SourceFrame, VideoInfo, open_source
from .io.clip_range import FrameRange, RangeSource, resolve_range
from .pipeline import job_ratio, load_engine
from .settings import JobSettings
from .temporal import MattedFrame, MattingStream

DEFAULT_FRAMES = 12
WARM_UP = 4  # frames before each preview frame (benchmarks/preview.py --warm-ups; docs/review.md)


@dataclass
class PreviewFrame:
    source: SourceFrame  # indexed in the whole clip
    matte: MattedFrame
    model_seconds: float  # its warm-up (or pre-roll) and matting, decoding left out
    model_frames: int  # frames through the model for it: warm-up (or pre-roll) and those matted
    alone: bool  # matted with no read beside it: its model time is the model's own


@dataclass
class Preview:
    sheet: Path
    frames: int  # in the clip (or its --start/--end range): what a full run mattes
    seconds: float
    full_run_seconds: float  # estimated


def preview_frames(settings: JobSettings, engine: MattingEngine | EnsembleEngine, count: int = DEFAULT_FRAMES,
                   warm_up: int = WARM_UP) -> tuple[VideoInfo, int, Iterator[PreviewFrame]]:
    """(the clip's info, frames a full run would matte, the matted preview frames): ``count`` frames spread evenly
    over the clip, or over its --start/--end range, each matted as that one-frame range of the clip would be."""
    source = open_source(settings.input, skip_corrupt=settings.skip_corrupt, sequence_fps=settings.sequence_fps)
    span = resolve_range(source.info, source.pts, settings.start, settings.end)
    temporal = settings.temporal.for_source(source.info.is_image_sequence)
    ratio = job_ratio(settings, source.info)

    def read(index: int) -> tuple[int, bool, int, list[SourceFrame]]:
        """(index, pre-rolled, the first frame read as own index, the frames read) for one preview frame."""
        # The clip's first frame has nothing before it: a full run pre-rolls over the frames after it, so the
        # preview does too. Any other frame gets a short warm-up, where a run's range replays the whole shot before
        # it (docs/pulls.md): the state carried over the ``warm_up`` frames before, with no pre-roll of their own
        # (docs/review.md states the bound this gives).
        preroll = index == 0 and temporal.preroll > 0
        length = max(1, min(temporal.preroll, span.end - index)) if preroll else 1
        one = RangeSource(source, FrameRange(index, index + length))  # not closed: that closes the clip
        earliest = 0 if preroll else max(one.earliest, -warm_up)
        # The warm-up's frames and the frame's in one read: each read seeks and decodes from the keyframe before
        # them, which on long-GOP footage takes about as long as the model.
        return index, preroll, earliest, list(islice(one.context_frames(earliest), length - earliest))

    def matted() -> Iterator[PreviewFrame]:
        # The next frame is read while the model mattes this one (each read opens the file on its own), except
        # around the second frame and the last, whose model times (with nothing beside them) give the estimate.
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preview-read")
        try:
            indices = evenly_spaced(span.first, span.end, count)
            pending = reader.submit(read, indices[0])
            for position, following in enumerate([*indices[1:], None]):
                index, preroll, earliest, decoded = pending.result()
                alone = position == 1 or following is None
                if following is not None and not alone:
                    pending = reader.submit(read, following)
                frames = decoded[-earliest:]
                model_started = time.perf_counter()
                stream = MattingStream(engine, ratio, temporal if preroll else replace(temporal, preroll=0),
                                       settings.chunk, need_fgr=False)
                if preroll:
                    model_frames = stream.preroll(frames)
                else:
                    model_frames = stream.warm_up(partial(_frames_from, decoded, earliest), earliest)
                matte = next(item for item in stream.push(frames[:1]) + stream.finish()
                             if isinstance(item, MattedFrame))
                model_seconds = time.perf_counter() - model_started
                if following is not None and alone:
                    pending = reader.submit(read, following)
                pts = source.pts[index]  # the range's own frame is moved to where the clip starts
                clip_frame = SourceFrame(index, pts, float((pts - source.info.start_pts) * source.info.time_base),
                                         frames[0].rgb)
                yield PreviewFrame(clip_frame, matte, model_seconds, model_frames + 1, alone)
        finally:
            reader.shutdown(wait=False, cancel_futures=True)
            source.close()

    return source.info, span.frames, matted()


def _frames_from(decoded: list[SourceFrame], earliest: int, start: int) -> Iterator[SourceFrame]:
    """The frames from own index ``start`` on, of those decoded from index ``earliest``."""
    return iter(decoded[start - earliest:])


def seconds_per_frame(frames: list[PreviewFrame]) -> float:
    """Model seconds per frame: the median over the preview frames matted alone (a read beside the model slows
    it more than a full run's decoding does), the first left out where there are others (it includes compiling
    the model)."""
    timed = [frame for frame in frames[1:] if frame.alone] or frames
    return median(frame.model_seconds / frame.model_frames for frame in timed)


def make_preview(settings: JobSettings, sheet: Path, count: int = DEFAULT_FRAMES, *,
                 engine: MattingEngine | EnsembleEngine | None = None,
                 notice: Callable[[str], None] = print) -> Preview:
    """Mattes ``count`` frames of ``settings.input`` and writes their contact sheet to ``sheet`` (PNG)."""
    check_sheet_path(sheet)
    engine = engine or load_engine(settings, notice)
    started = time.perf_counter()
    info, clip_frames, matted = preview_frames(settings, engine, count)
    frames = list(matted)
    tiles = [Tile(frame_label(f.source.index, f.source.time, info.timecode, info.frame_rate), f.source.rgb,
                  f.matte.pha) for f in frames]
    write_png(sheet, draw_sheet(tiles))
    # The full run streams decoding and writing alongside the model, so its time is about the model's.
    return Preview(sheet, clip_frames, time.perf_counter() - started, clip_frames * seconds_per_frame(frames))


def check_sheet_path(sheet: Path) -> None:
    if sheet.suffix.lower() != ".png":
        raise VmatteError(f"--out {sheet}: a contact sheet is a .png file")
    folder = sheet.parent
    if not folder.is_dir():
        raise VmatteError(f"--out {sheet}: the folder {folder} does not exist")
