"""Pulls: the shots of an edit matted as a batch, each with handles, and the edit handed back with the mattes.

An edit (CMX 3600 EDL, Final Cut Pro 7 XML, OpenTimelineIO .otio/.otioz) is read with OpenTimelineIO. Every clip
on a video track is a shot (gaps, generators, transitions and audio are not): its source range, widened by the
part a dissolve shows on either side and by the handles, clamped to its media. A retimed clip (speed change,
freeze) mattes the source span its effect reads, at normal speed. Shots that use the same media, even
overlapping, are matted once each, under their own names: every shot is then a unit of its own, skipped when
finished and resumed alone, at the cost of matting shared frames twice.

Media are found by the clip's media reference (the path itself, else its file name in the ``--media``
folders), else by reel or clip name against file names; a candidate must hold the clip's source timecode range
(by its own timecode, or from frame 0 when it states none). Each shot runs as a range (``--start``/``--end``) of
its media, so it mattes as a run over the whole file would at those frames (docs/pulls.md), and its movies carry
the source timecode of their first frame. Image sequences are numbered from ``start_number`` (1001) at the first
handle frame, or at the cut's first frame (``number_at="cut"``). The handed-back timeline holds the edit's tracks
and, above each video track, a track of the shots' mattes at their record ranges, handles inside the clips.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from .batch import FAILED, BatchPlan, BatchReport, ClipResult, find_videos, known_results, plan_clip
from .errors import VmatteError
from .io import VideoInfo, probe
from .io.timecode import timecode_base, timecode_to_frames
from .io.writer import sequence_pattern, writer_class
from .settings import JobSettings

EDIT_FORMATS = {".edl": "cmx_3600", ".xml": "fcp_xml", ".otio": "otio_json", ".otioz": "otioz"}
HANDBACK_SUFFIX = {".edl": ".edl", ".xml": ".xml"}  # the input's own format, besides the .otio
SHOT_FIELDS = ("shot", "clip", "reel", "track", "index", "kind", "stem", "name")  # stem, name: a preset's = shot
DEFAULT_TEMPLATES = {"alpha": "{shot}/{shot}.{kind}.%04d.png", "fgr": "{shot}.{kind}.mov"}
DEFAULT_SHOT_TEMPLATE = "{clip}"
NUMBER_AT = ("handle", "cut")


@dataclass
class Shot:
    """A clip of the edit as a unit of work."""

    index: int  # 1, 2, ... in track order, then edit order
    name: str
    clip: otio.schema.Clip
    track: str  # the track's name (V1, V2 ... where it has none)
    reel: str
    track_number: int = 1  # of the video tracks, from 1
    media: Path | None = None
    info: VideoInfo | None = None
    first: int = 0  # frames [first, end) of the media are matted, handles included
    end: int = 0
    cut_in: int = 0  # the media frame of the cut's first frame
    number: int = 1001  # of the first image-sequence file
    problem: str | None = None  # why the shot cannot run
    notes: list[str] = field(default_factory=list)

    @property
    def handle_in(self) -> int:
        """Frames matted before the cut's first frame (handle and dissolve)."""
        return self.cut_in - self.first


def read_edit(path: Path, rate: Fraction | None = None) -> otio.schema.Timeline:
    """The edit at ``path`` as an OTIO timeline (an EDL's timecodes read at ``rate``, which it needs); raises
    VmatteError."""
    adapter = EDIT_FORMATS.get(path.suffix.lower())
    if adapter is None:
        raise VmatteError(f"{path}: not an edit vmatte reads (give a CMX 3600 .edl, a Final Cut Pro 7 .xml, or an "
                          ".otio/.otioz file)")
    if not path.is_file():
        raise VmatteError(f"{path}: no such file")
    options = {"rate": float(rate)} if adapter == "cmx_3600" else {}
    try:
        edit = otio.adapters.read_from_file(str(path), adapter_name=adapter, **options)
    except Exception as exc:  # the adapters raise whatever their parsers meet: one line, whatever it is
        raise VmatteError(f"{path}: cannot read the edit ({type(exc).__name__}: {exc})") from None
    if not isinstance(edit, otio.schema.Timeline):
        edit = next(iter(edit.find_children(descended_from_type=otio.schema.Timeline)), None) \
            if isinstance(edit, otio.schema.SerializableCollection) else None
        if edit is None:
            raise VmatteError(f"{path}: holds no timeline")
    return edit


class MediaIndex:
    """The videos in the ``--media`` folders (and their subfolders), probed when first looked at."""

    def __init__(self, folders: list[Path]):
        self.files: list[Path] = []
        for folder in folders:
            self.files += find_videos(folder, recursive=True)[0]
        self._infos: dict[Path, VideoInfo | str] = {}

    def info(self, path: Path) -> VideoInfo | str:
        """The file's VideoInfo, or why it cannot be read."""
        if path not in self._infos:
            try:
                self._infos[path] = probe(path)
            except VmatteError as exc:
                self._infos[path] = str(exc)
        return self._infos[path]

    def by_path(self, reference: str) -> list[Path]:
        """The referenced file where it is, else the files of that name in the media folders (the longest
        matching tail of folders wins: the edit was made on another machine)."""
        path = Path(otio.url_utils.filepath_from_url(reference) if "://" in reference else reference)
        if path.is_file():
            return [path]
        named = [file for file in self.files if file.name == path.name]
        def tail(file: Path) -> int:
            return next((n for n in range(len(path.parts), 0, -1) if file.parts[-n:] == path.parts[-n:]), 0)
        best = max(map(tail, named), default=0)
        return [file for file in named if tail(file) == best]

    def by_name(self, *names: str) -> list[Path]:
        """Files whose name, or name without its extension, is one of ``names`` (case-insensitively)."""
        wanted = {name.lower() for name in names if name}
        return [file for file in self.files if file.name.lower() in wanted or file.stem.lower() in wanted]


def shots_of(edit: otio.schema.Timeline, shot_template: str) -> list[Shot]:
    """The clips on the edit's video tracks as shots, named by ``shot_template`` (a name used twice gets _2,
    _3 ...). Generators (colour bars, titles) are not shots."""
    shots, names = [], set()
    for number, track in enumerate(edit.video_tracks(), 1):
        for clip in track.find_clips(shallow_search=True):
            if isinstance(clip.media_reference, otio.schema.GeneratorReference):
                continue
            index = len(shots) + 1
            reel = str((clip.metadata.get("cmx_3600") or {}).get("reel") or clip.name)
            track_name = track.name or f"V{number}"
            try:
                name = shot_template.format(index=index, clip=clip.name, reel=reel, track=track_name)
            except (KeyError, IndexError, ValueError) as exc:
                raise VmatteError(f"--shot-template {shot_template!r}: {exc!r} (fields: {{index}}, {{clip}}, "
                                  "{reel}, {track})") from None
            name = _safe(name) or f"shot{index}"
            unique, count = name, 1
            while unique in names:
                count += 1
                unique = f"{name}_{count}"
            names.add(unique)
            shots.append(Shot(index, unique, clip, track_name, reel, number))
    return shots


def _safe(name: str) -> str:
    """A shot name fit for file names: path separators and control characters become _."""
    return "".join("_" if c in "/\\:" or ord(c) < 32 else c for c in name).strip(". ")


def read_edl(path: Path, media: MediaIndex) -> tuple[otio.schema.Timeline, Fraction]:
    """An EDL read at the frame rate of the media its clips name, when --rate is not given (EDLs state none):
    tried at each rate the media folders hold, it is the one at which the EDL reads and the media its clips
    name run."""
    named: set[Fraction] = set()
    for rate in sorted({info.frame_rate for file in media.files if isinstance(info := media.info(file), VideoInfo)}):
        try:
            edit = read_edit(path, rate)
        except VmatteError:
            continue
        rates = {info.frame_rate for shot in shots_of(edit, DEFAULT_SHOT_TEMPLATE) for candidate in
                 _candidates(shot, media) if isinstance(info := media.info(candidate), VideoInfo)}
        if rates == {rate}:
            return edit, rate
        named |= rates
    found = f"its media run at {', '.join(f'{float(r):.3f}' for r in sorted(named))} fps" if named else \
        "no media matched its clips"
    raise VmatteError(f"{path}: an EDL states no frame rate and {found}; give --rate (24, 23.976, 25 ...)")


def _candidates(shot: Shot, media: MediaIndex) -> list[Path]:
    """Files the shot may use: its media reference's, else those named by its reel or clip name."""
    reference = shot.clip.media_reference
    by_path = media.by_path(reference.target_url) if isinstance(reference, otio.schema.ExternalReference) and \
        reference.target_url else []
    return by_path or media.by_name(shot.reel, shot.clip.name)


def _timecode_frames(time: otio.opentime.RationalTime, rate: Fraction) -> int:
    """A source time as a timecode frame count at the media's rate (the same count at 23.976 and 24)."""
    nominal = timecode_base(rate)
    return round(time.value) if round(time.rate) == nominal else round(time.value * nominal / time.rate)


def _source_span(clip: otio.schema.Clip) -> tuple[otio.opentime.RationalTime, int, int, float | None]:
    """(start, frames before the cut shown by a dissolve, frames the clip reads, its speed where retimed): the
    source the clip shows, a dissolve's overlap on either side included."""
    cut, visible = clip.trimmed_range(), clip.visible_range()
    before = round((cut.start_time - visible.start_time).value)
    frames = round(visible.duration.value)
    speed = None
    for effect in clip.effects:
        if isinstance(effect, otio.schema.LinearTimeWarp) and effect.time_scalar != 1:
            speed = effect.time_scalar
    if speed is None:
        return visible.start_time, before, frames, None
    read = max(1, math.ceil(frames * abs(speed)))
    start = visible.start_time if speed >= 0 else visible.start_time - otio.opentime.RationalTime(read - 1,
                                                                                                   cut.start_time.rate)
    return start, before, read, speed


def match_media(shot: Shot, media: MediaIndex, handles: int) -> None:
    """Finds the shot's media file and its frames (handles clamped to the media), or says why not."""
    start, before, frames, speed = _source_span(shot.clip)
    looked_for = _looked_for(shot)
    fits, unreadable = _holding(_candidates(shot, media), media, start, frames)
    if not fits and isinstance(shot.clip.media_reference, otio.schema.ExternalReference):
        # A reference that names the wrong file (an EDL's dissolve lists the outgoing clip's): try the names.
        fits, _ = _holding(media.by_name(shot.reel, shot.clip.name), media, start, frames)
    if len(fits) != 1:
        what = "no media file" if not fits else f"{len(fits)} media files ({', '.join(str(f[0]) for f in fits)})"
        shot.problem = f"{what} found for {looked_for}" + (f" ({'; '.join(unreadable)})" if unreadable else "")
        return
    shot.media, shot.info, first = fits[0]
    shot.cut_in = first + (before if speed is None else 0)
    shot.first, shot.end = max(0, first - handles), min(shot.info.frame_count, first + frames + handles)
    short = [f"{side} handle {got} of {handles} frames (the media {where} there)"
             for side, got, where in (("in", first - shot.first, "starts"), ("out", shot.end - first - frames, "ends"))
             if got < handles]
    shot.notes += short
    if speed is not None:
        shot.notes.append(f"retimed ({'freeze frame' if speed == 0 else f'speed {speed:g}x'}): the {frames} source "
                          "frames it reads are matted at normal speed; retime the matte as the plate in the edit")


def _holding(candidates: list[Path], media: MediaIndex, start: otio.opentime.RationalTime,
             frames: int) -> tuple[list[tuple[Path, VideoInfo, int]], list[str]]:
    """(the candidates that hold ``frames`` source frames from ``start`` by their own timecode, each with the
    file's frame there; why others could not be read)."""
    fits, unreadable = [], []
    for candidate in candidates:
        info = media.info(candidate)
        if not isinstance(info, VideoInfo):
            unreadable.append(info)
            continue
        origin = timecode_to_frames(info.timecode, info.frame_rate) if info.timecode else 0
        first = _timecode_frames(start, info.frame_rate) - origin
        if 0 <= first and first + frames <= info.frame_count:
            fits.append((candidate, info, first))
    return fits, unreadable


def _looked_for(shot: Shot) -> str:
    reference = shot.clip.media_reference
    parts = [f"reel {shot.reel}"] + ([f"clip {shot.clip.name}"] if shot.clip.name != shot.reel else [])
    if isinstance(reference, otio.schema.ExternalReference) and reference.target_url:
        parts.insert(0, f"path {reference.target_url}")
    start, _, frames, _ = _source_span(shot.clip)
    rate = start.rate
    tc = otio.opentime.to_timecode(start, rate) if rate >= 1 else str(start)
    return f"{', '.join(parts)}, source {tc} + {frames} frames"


def shot_fields(shot: Shot, kind: str) -> dict[str, object]:
    return {"shot": shot.name, "clip": _safe(shot.clip.name), "reel": _safe(shot.reel), "track": shot.track,
            "index": shot.index, "kind": kind, "stem": shot.name, "name": shot.name}


def pull_outputs(shot: Shot, templates: Mapping[str, str], out_dir: Path) -> dict[str, str]:
    outputs = {}
    for kind, template in templates.items():
        rendered = template.format(**shot_fields(shot, kind))
        outputs[kind] = str(out_dir / rendered) + ("/" if rendered.endswith(("/", "\\")) else "")
    return outputs


@dataclass
class Pull:
    """A pull, planned: the edit, its shots, and the batch that mattes them."""

    edit_path: Path
    edit: otio.schema.Timeline
    shots: list[Shot]
    plan: BatchPlan


def plan_pull(edit_path: Path, media_folders: list[Path], out_dir: Path, templates: Mapping[str, str],
              options: Mapping[str, object], *, handles: int = 8, rate: Fraction | None = None,
              shot_template: str = DEFAULT_SHOT_TEMPLATE, start_number: int = 1001,
              number_at: str = "handle", notice: Callable[[str], None] = print) -> Pull:
    """Reads the edit, finds every shot's media and frames, and plans the batch (see the module's description).
    Shots whose media is not found, or found twice, fail in the plan; the others run."""
    if handles < 0:
        raise VmatteError(f"--handles {handles}: give 0 or more frames")
    if number_at not in NUMBER_AT:
        raise VmatteError(f"--number-at {number_at}: choose {' or '.join(NUMBER_AT)}")
    for folder in media_folders:
        if not Path(folder).is_dir():
            raise VmatteError(f"--media {folder}: not a folder")
    edit_path, out_dir = Path(os.path.abspath(edit_path)), Path(os.path.abspath(out_dir))
    media = MediaIndex([Path(os.path.abspath(folder)) for folder in media_folders])
    if EDIT_FORMATS.get(edit_path.suffix.lower()) == "cmx_3600" and rate is None and edit_path.is_file():
        edit, rate = read_edl(edit_path, media)
        notice(f"{edit_path.name}: read at {float(rate):.3f} fps, the rate of its media (give --rate to choose)")
    else:
        edit = read_edit(edit_path, rate)
    shots = shots_of(edit, shot_template)
    if not shots:
        raise VmatteError(f"{edit_path}: no clips on its video tracks")
    base = JobSettings(input=edit_path, outputs={}, **options)
    clips = []
    for shot in shots:
        match_media(shot, media, handles)
        outputs = pull_outputs(shot, templates, out_dir)
        shot.number = start_number - (shot.handle_in if number_at == "cut" else 0)
        if shot.number < 0:
            raise VmatteError(f"--start-number {start_number}: shot {shot.name} would number frames below 0")
        clips.append(plan_clip(shot.media or edit_path, shot.name, outputs, base.overwrite, {
            "start": str(shot.first), "end": str(shot.end), "number_from": str(shot.number)}))
    results = known_results(clips, "{shot}")
    for shot, clip in zip(shots, clips):
        if shot.problem:
            results[shot.name] = ClipResult(clip.input, shot.name, FAILED, clip.outputs, message=shot.problem)
    plan = BatchPlan(edit_path.parent, base, clips, [], results, [c for c in clips if c.name not in results])
    return Pull(edit_path, edit, shots, plan)


def run_pull(pull: Pull, out_dir: Path, options: Mapping[str, object], *, jobs: int = 1, ray: str | None = None,
             progress=None, notice: Callable[[str], None] = print) -> tuple[BatchReport, list[Path]]:
    """Mattes the planned shots (locally, or on Ray), then hands the edit back with the finished ones; returns
    the report (notes of the shots added) and the timelines written."""
    start = time.perf_counter()
    if ray is not None:
        from .cluster import run_plan_on_ray

        report = run_plan_on_ray(pull.plan, Path(os.path.abspath(out_dir)), options, start, address=ray, jobs=jobs,
                                 progress=progress, notice=notice)
    else:
        from .batch import run_plan

        report = run_plan(pull.plan, options, start, jobs=jobs, progress=progress, notice=notice)
    notes = {shot.name: shot.notes for shot in pull.shots}
    for result in report.clips:
        if result.status != FAILED and notes.get(result.name):
            result.message = "; ".join(filter(None, [*notes[result.name], result.message]))
    finished = {result.name for result in report.clips if result.status != FAILED}
    return report, hand_back(pull, [shot for shot in pull.shots if shot.name in finished], Path(out_dir))


def _matte_reference(shot: Shot, outputs: Mapping[str, str], rate: float, image_sequences: bool):
    """The media reference of a shot's matte: its first movie output (foreground first: it carries its own
    alpha), else its first image sequence (in .otio; as its first file where the format takes no sequences)."""
    frames = shot.end - shot.first
    tc = shot.info.timecode
    origin = timecode_to_frames(tc, shot.info.frame_rate) if tc else 0
    available = otio.opentime.TimeRange(otio.opentime.RationalTime(origin + shot.first, rate),
                                        otio.opentime.RationalTime(frames, rate))
    ordered = sorted(outputs.items(), key=lambda item: ("fgr", "alpha", "comp").index(item[0]))
    movies = [path for kind, path in ordered if not writer_class(kind, path).is_sequence]
    if movies:
        return otio.schema.ExternalReference(target_url=otio.url_utils.url_from_filepath(movies[0]),
                                             available_range=available)
    kind, path = ordered[0]
    pattern = sequence_pattern(path)
    first_number = shot.number
    if not image_sequences:
        name = pattern.name % first_number
        return otio.schema.ExternalReference(target_url=otio.url_utils.url_from_filepath(str(pattern.parent / name)),
                                             available_range=available)
    prefix, _, suffix = pattern.name.partition("%")
    digits = int(suffix[1:suffix.index("d")]) if suffix.startswith("0") else 0
    return otio.schema.ImageSequenceReference(
        target_url_base=otio.url_utils.url_from_filepath(str(pattern.parent)) + "/", name_prefix=prefix,
        name_suffix=suffix[suffix.index("d") + 1:], start_frame=first_number, frame_zero_padding=digits,
        rate=rate, available_range=available)


def hand_back(pull: Pull, finished: list[Shot], out_dir: Path) -> list[Path]:
    """Writes the edit with a matte track above each video track (``<edit>.vmatte.otio``, and in the edit's
    own format where it is an EDL or FCP 7 XML): each finished shot's matte at its clip's record range, its
    source range the cut's frames (the handles and dissolve overlap stay inside the clip)."""
    if not finished:
        return []
    suffix = HANDBACK_SUFFIX.get(pull.edit_path.suffix.lower())
    timelines = [(out_dir / f"{pull.edit_path.stem}.vmatte.otio", True)]
    if suffix:
        timelines.append((out_dir / f"{pull.edit_path.stem}.vmatte{suffix}", False))
    written = []
    for path, image_sequences in timelines:
        timeline = _handback_timeline(pull, finished, image_sequences)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.partial")
            otio.adapters.write_to_file(timeline, str(partial), adapter_name=EDIT_FORMATS[path.suffix.lower()])
            os.replace(partial, path)
        except Exception as exc:  # the adapters raise whatever their writers meet: one line, whatever it is
            raise VmatteError(f"{path}: cannot write the handed-back edit ({type(exc).__name__}: {exc})") from None
        written.append(path)
    return written


def _handback_timeline(pull: Pull, finished: list[Shot], image_sequences: bool) -> otio.schema.Timeline:
    timeline = pull.edit.deepcopy()
    timeline.name = f"{pull.edit.name or pull.edit_path.stem} (vmatte)"
    edl = pull.edit_path.suffix.lower() == ".edl" and not image_sequences
    for number, track in enumerate(list(timeline.video_tracks()), 1):
        matte = otio.schema.Track(name=f"{track.name or f'V{number}'} matte", kind=otio.schema.TrackKind.Video)
        position = None
        for shot in (shot for shot in finished if shot.track_number == number):
            record = shot.clip.range_in_parent()
            position = position or otio.opentime.RationalTime(0, record.start_time.rate)
            if record.start_time > position:
                matte.append(otio.schema.Gap(duration=record.start_time - position))
            matte.append(_matte_clip(shot, pull.plan, record, image_sequences))
            position = record.end_time_exclusive()
        if edl:  # an EDL holds one video track: the mattes only, to lay over the editor's own cut
            timeline.tracks[:] = [matte]
            break
        timeline.tracks.append(matte)
    return timeline


def _matte_clip(shot: Shot, plan: BatchPlan, record: otio.opentime.TimeRange,
                image_sequences: bool) -> otio.schema.Clip:
    outputs = next(clip.outputs for clip in plan.clips if clip.name == shot.name)
    rate = record.duration.rate
    reference = _matte_reference(shot, outputs, rate, image_sequences)
    start = reference.available_range.start_time + otio.opentime.RationalTime(shot.handle_in, rate)
    clip = otio.schema.Clip(name=shot.name, media_reference=reference,
                            source_range=otio.opentime.TimeRange(start, shot.clip.trimmed_range().duration))
    clip.metadata["cmx_3600"] = {"reel": shot.name}
    for effect in shot.clip.effects:  # a retimed plate: the matte retimed the same way
        clip.effects.append(effect.deepcopy())
    return clip
