"""The ``vmatte`` command line: parses options and calls the library; nothing else lives here."""

import io
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__, interrupts
from .errors import VmatteError

console = Console(stderr=True, highlight=False)
RUN_EXAMPLES = """
Examples ("vmatte CLIP" is short for "vmatte run CLIP"):

  vmatte clip.mp4                           # clip.alpha.mov beside it
  vmatte clip.mp4 --fgr fgr.mov             # cut-out, straight alpha
  vmatte clip.mp4 --comp prev.mp4 --bg red  # H.264 preview
  vmatte clip.mp4 --out m/ --quality best   # PNG matte, finer
  vmatte footage/ --preset editor-plate --out-dir out/

Options that matter first: --out, --fgr, --comp, --quality.
More: docs/outputs.md and the other pages in docs/.
"""

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="rich", help="Pull people off their background in ordinary video.",
                  epilog=RUN_EXAMPLES)



def say(message: str, prefix: str = "") -> None:
    """One message on stderr, never wrapped (scripts read it) and never read as markup (paths contain [ ])."""
    console.print(prefix + escape(message), soft_wrap=True)


@contextmanager
def user_errors():
    """A VmatteError or Ctrl-C becomes one clear line and a non-zero exit, never a traceback; so does anything
    unforeseen (a bug), unless VMATTE_DEBUG is set, for the traceback a bug report needs."""
    try:
        yield
    except VmatteError as exc:
        say(str(exc), "[bold red]error:[/] ")
        interrupts.told()
        raise typer.Exit(getattr(exc, "exit_code", 1)) from None
    except KeyboardInterrupt:  # without interrupts.install() (tests call the app in process), or before the work
        say(interrupts.BEFORE_WORK)
        interrupts.told()
        raise typer.Exit(interrupts.exit_code()) from None
    except typer.Exit:  # an exit code chosen on purpose (a batch with failed clips)
        raise
    except BrokenPipeError:  # whatever read the output has stopped (`vmatte info clip.mp4 | head -1`): end quietly
        _discard_stdout()
        raise typer.Exit(SIGPIPE_EXIT) from None
    except Exception as exc:
        if os.environ.get("VMATTE_DEBUG"):
            raise
        say(f"unexpected {type(exc).__name__}: {exc} (a bug in vmatte: please report it with the output of the "
            "same command run with VMATTE_DEBUG=1)", "[bold red]error:[/] ")
        raise typer.Exit(2) from None


SIGPIPE_EXIT = 141  # what a shell reports for a program ended by SIGPIPE, as `head` ends `cat`


def _discard_stdout() -> None:
    """Points standard output at /dev/null, so what is still buffered for the closed pipe is dropped at exit."""
    try:
        sys.stdout.flush()
    except OSError:
        pass
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (tests capture it in memory)
        pass


def make_progress(quiet: bool) -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn(), console=console,
                    disable=quiet, transient=False)


def _given(**options) -> dict:
    """The options the user actually gave (None means 'not given', so a preset's value stays)."""
    return {name: value for name, value in options.items() if value is not None}


IO, QUALITY, TIME, SPEED, BATCH = "Inputs and outputs", "Quality", "Time and range", "Performance", "Batch"
# Options a run and a preview share (a preview mattes with the options the run would use).
BG_OPTION = typer.Option(None, "--bg", metavar="BG", rich_help_panel=IO,
                         help="Composite background: colour, image or video.")
FPS_OPTION = typer.Option(None, "--fps", metavar="RATE", rich_help_panel=IO,
                          help="Rate of an image sequence, e.g. 24000/1001 \\[default: 25].")
QUALITY_OPTION = typer.Option(None, "--quality", metavar="LEVEL", rich_help_panel=QUALITY,
                              help="fast, standard or best (3 passes, ~3.5x time) \\[default: standard].")
DOWNSAMPLE_RATIO_OPTION = typer.Option(None, "--downsample-ratio", "-r", metavar="R", rich_help_panel=QUALITY,
                                       help="Internal scale (0, 1], 768px, or auto (640 px long side).")
MODEL_OPTION = typer.Option(None, "--model", "-m", metavar="NAME", rich_help_panel=QUALITY,
                            help="Model (see 'vmatte models').")
WEIGHTS_OPTION = typer.Option(None, "--weights", metavar="FILE", rich_help_panel=QUALITY,
                              help="Weight file instead of the model's.")
REFINER_OPTION = typer.Option(None, "--refiner", metavar="NAME", rich_help_panel=QUALITY,
                              help="deep_guided_filter or fast_guided_filter.")
SEMANTICS_OPTION = typer.Option(None, "--semantics", metavar="NAME", rich_help_panel=QUALITY,
                                help="Numerics: torch (default) or tfjs.")
PREROLL_OPTION = typer.Option(None, "--preroll", metavar="N", min=0, max=64, rich_help_panel=QUALITY,
                              help="Frames to settle the state per shot (0-64) \\[default: 16 video, 0 images].")
CUTS_OPTION = typer.Option(None, "--cuts/--no-cuts", rich_help_panel=QUALITY,
                           help="Reset at hard cuts \\[default: on for video].")
CUT_THRESHOLD_OPTION = typer.Option(None, "--cut-threshold", metavar="T", min=0.0, rich_help_panel=QUALITY,
                                    help="Frame difference (0-255) that is a cut.")
SMOOTH_OPTION = typer.Option(None, "--smooth", metavar="HOW", rich_help_panel=QUALITY,
                             help="none or ofd \\[default: ofd for MODNet].")
START_OPTION = typer.Option(None, "--start", metavar="AT", rich_help_panel=TIME,
                            help="First frame: number, 12.5s or timecode 01:00:11:05.")
END_OPTION = typer.Option(None, "--end", metavar="AT", rich_help_panel=TIME,
                          help="Frame after the last (exclusive), same forms.")
SKIP_CORRUPT_OPTION = typer.Option(None, "--skip-corrupt/--stop-on-corrupt", rich_help_panel=TIME,
                                   help="Repeat the last good frame for a corrupt one.")
DEVICE_OPTION = typer.Option(None, "--device", metavar="NAME", rich_help_panel=SPEED,
                             help="auto, cpu, cuda or mps.")
PRECISION_OPTION = typer.Option(None, "--precision", metavar="NAME", rich_help_panel=SPEED,
                                help="auto, fp32, fp16 or bf16.")
BACKEND_OPTION = typer.Option(None, "--backend", metavar="NAME", rich_help_panel=SPEED,
                              help="auto, torch or openvino (auto: OpenVINO on CPUs).")
CHUNK_OPTION = typer.Option(None, "--chunk", metavar="N", min=1, max=64, rich_help_panel=SPEED,
                            help="Frames per model call (1-64) \\[default: 4].")
PRESET_OPTION = typer.Option(None, "--preset", "-p", metavar="NAME", rich_help_panel=BATCH,
                             help="Preset name or .toml (see 'vmatte presets').")


@app.command("run", epilog=RUN_EXAMPLES)
def run_command(
    input: Path = typer.Argument(..., metavar="INPUT", help="Video, image folder, frames/%06d.png, or a folder of "
                                                           "videos (a batch)."),
    out: str = typer.Option(None, "--out", "-o", metavar="PATH", rich_help_panel=IO,
                            help="Matte: .mov, folder/, %06d.png or %06d.exr \\[default: CLIP.alpha.mov]."),
    fgr: str = typer.Option(None, "--fgr", metavar="PATH", rich_help_panel=IO,
                            help="Foreground with alpha: .mov, .webm, PNGs or EXRs."),
    comp: str = typer.Option(None, "--comp", metavar="PATH", rich_help_panel=IO,
                             help="Composite over --bg: .mov, .mp4 (preview), PNGs or EXRs."),
    bg: str = BG_OPTION,
    png_depth: int = typer.Option(None, "--png-depth", metavar="8|16", rich_help_panel=IO,
                                  help="PNG bit depth \\[default: 16]."),
    premultiplied: bool = typer.Option(None, "--premultiplied/--straight", rich_help_panel=IO,
                                       help="Foreground alpha \\[default: straight]."),
    exr_display_encoded: bool = typer.Option(None, "--exr-display-encoded/--exr-linear", rich_help_panel=IO,
                                             help="EXR values as the source encodes them \\[default: linear]."),
    number_from: str = typer.Option(None, "--number-from", metavar="FROM", rich_help_panel=IO,
                                    help="Number PNG/EXR frames: source, timecode or from N."),
    fps: str = FPS_OPTION,
    overwrite: bool = typer.Option(False, "--overwrite", rich_help_panel=IO, help="Replace existing outputs."),
    dry_run: bool = typer.Option(False, "--dry-run", rich_help_panel=IO, help="Print the outputs, write nothing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", rich_help_panel=IO, help="No progress bar."),
    report: Path = typer.Option(None, "--report", metavar="HTML", rich_help_panel=IO,
                                help="Also write a review report: sheet, curves, frames to check."),
    quality: str = QUALITY_OPTION,
    downsample_ratio: str = DOWNSAMPLE_RATIO_OPTION,
    model: str = MODEL_OPTION,
    weights: Path = WEIGHTS_OPTION,
    refiner: str = REFINER_OPTION,
    semantics: str = SEMANTICS_OPTION,
    preroll: int = PREROLL_OPTION,
    cuts: bool = CUTS_OPTION,
    cut_threshold: float = CUT_THRESHOLD_OPTION,
    smooth: str = SMOOTH_OPTION,
    start: str = START_OPTION,
    end: str = END_OPTION,
    skip_corrupt: bool = SKIP_CORRUPT_OPTION,
    fresh: bool = typer.Option(False, "--fresh", rich_help_panel=TIME, help="Start over, not resume."),
    device: str = DEVICE_OPTION,
    precision: str = PRECISION_OPTION,
    backend: str = BACKEND_OPTION,
    chunk: int = CHUNK_OPTION,
    preset: str = PRESET_OPTION,
    out_dir: Path = typer.Option(None, "--out-dir", metavar="DIR", rich_help_panel=BATCH,
                                 help="Folder for outputs named by templates."),
    out_template: list[str] = typer.Option(None, "--out-template", metavar="K=T", rich_help_panel=BATCH,
                                           help="Output name, e.g. alpha={stem}.alpha.mov."),
    recursive: bool = typer.Option(False, "--recursive", rich_help_panel=BATCH, help="Include subfolders."),
    glob: str = typer.Option(None, "--glob", metavar="PATTERN", rich_help_panel=BATCH,
                             help="Only files matching, e.g. '*.MOV'."),
    jobs: int = typer.Option(1, "--jobs", "-j", metavar="N", min=1, rich_help_panel=BATCH,
                             help="Clips at once (with --ray: per node or GPU)."),
    ray: str = typer.Option(None, "--ray", metavar="ADDRESS", rich_help_panel=BATCH,
                            help="Run on Ray: local, auto, host:port."),
    split: str = typer.Option(None, "--split", metavar="shots", rich_help_panel=BATCH,
                              help="With --ray: each shot is a unit."),
) -> None:
    """Matte a clip (or a folder of clips): write alpha matte, foreground and/or composite."""
    from .batch import find_videos
    from .io.sequence import folder_images
    from .models.weights import check_weight_file
    from .presets import DEFAULT_OUTPUTS, merge_templates, render_outputs
    from .settings import check_number_from

    with user_errors():
        if png_depth not in (None, 8, 16):
            raise VmatteError(f"--png-depth {png_depth}: choose 8 or 16")
        if number_from is not None:
            check_number_from(number_from)
        if report is not None:
            from .report import check_report_path

            check_report_path(report)
        chosen, options = job_options(
            input, preset, _given(model=model, weights=weights, device=device, precision=precision, backend=backend,
                                  semantics=semantics, refiner=refiner, chunk=chunk, png_depth=png_depth,
                                  premultiplied=premultiplied, background=bg, skip_corrupt=skip_corrupt,
                                  quality=quality, exr_display_encoded=exr_display_encoded, number_from=number_from),
            downsample_ratio=downsample_ratio, fps=fps, start=start, end=end, preroll=preroll, cuts=cuts,
            cut_threshold=cut_threshold, smooth=smooth)
        options.update(overwrite=overwrite, fresh=fresh)
        if options.get("weights") is not None:
            check_weight_file(options["weights"])
        templates = merge_templates(chosen.outputs if chosen else {}, out_template or []) \
            if (chosen or out_template) else {}
        explicit = {kind: path for kind, path in (("alpha", out), ("fgr", fgr), ("comp", comp)) if path}
        if not templates and not explicit:  # nothing asked for: the matte beside the clip
            templates = dict(DEFAULT_OUTPUTS)
        # A folder of videos is a batch; a folder of images is one clip (named by --out-dir and templates too).
        if input.is_dir() and (find_videos(input, recursive, glob)[0] or (out_dir is not None and
                                                                          not folder_images(input))):
            if explicit:
                raise VmatteError("a folder of videos takes --preset/--out-template and --out-dir, not --out, "
                                  "--fgr or --comp (each clip needs its own names)")
            _run_batch(input, out_dir or input, templates, options, recursive, glob, jobs, dry_run, quiet, ray, split,
                       report)
            return
        if ray is not None or split is not None:
            raise VmatteError("--ray and --split run a batch: give a folder of videos")
        outputs = {**render_outputs(templates, input, out_dir or input.parent), **explicit}
        _run_single(input, outputs, options, dry_run, quiet, report)


def job_options(input: Path, preset: str | None, given: dict, *, downsample_ratio: str | None, fps: str | None,
                start: str | None, end: str | None, preroll: int | None, cuts: bool | None,
                cut_threshold: float | None, smooth: str | None) -> tuple:
    """(the preset chosen or None, JobSettings keyword arguments) from the options given on the command line
    (``given``: those that need no parsing) over the preset's: what a run and a preview share."""
    from .io.clip_range import check_position
    from .io.sequence import is_sequence
    from .models.weights import DEFAULT_MODEL
    from .presets import load_preset, parse_downsample_ratio, parse_frame_rate
    from .settings import quality_level

    overrides = dict(given)
    if "quality" in given:
        quality_level(given["quality"])  # a wrong name fails here, before anything is opened
    if downsample_ratio is not None:
        overrides["downsample_ratio"] = parse_downsample_ratio(downsample_ratio)
    if fps is not None:
        if not is_sequence(input):
            raise VmatteError(f"--fps {fps}: {input} is a video file, which keeps its own frame rate "
                              "(--fps is for image sequences)")
        overrides["sequence_fps"] = parse_frame_rate(fps)
    overrides.update(_given(start=start and check_position("--start", start),
                            end=end and check_position("--end", end)))
    chosen = load_preset(preset) if preset else None
    options = chosen.apply(overrides) if chosen else overrides
    options["temporal"] = temporal_options(options.get("model", DEFAULT_MODEL), preroll, cuts, cut_threshold, smooth)
    return chosen, options


def temporal_options(model: str, preroll: int | None, cuts: bool | None, cut_threshold: float | None,
                     smooth: str | None):
    """The TemporalOptions the temporal flags ask for (None: the automatic choice)."""
    from .models.weights import MODELS
    from .settings import DEFAULT_CUT_THRESHOLD, SMOOTHERS, TemporalOptions

    if smooth not in (None, "none", *SMOOTHERS):
        raise VmatteError(f"--smooth {smooth}: choose none or {', '.join(SMOOTHERS)}")
    if smooth is None:  # MODNet works frame by frame and flickers without it
        smooth = "ofd" if model in MODELS and MODELS[model].family == "modnet" else "none"
    return TemporalOptions(preroll=preroll, cuts=cuts,
                           cut_threshold=DEFAULT_CUT_THRESHOLD if cut_threshold is None else cut_threshold,
                           smooth=None if smooth == "none" else smooth)


def _run_single(input: Path, outputs: dict[str, str], options: dict, dry_run: bool, quiet: bool,
                report: Path | None) -> None:
    from .io import probe
    from .io.writer import output_use
    from .outputs import check_outputs
    from .presets import job_settings

    probe(input)  # a missing, damaged or unsupported input is said now, not after the model has loaded
    settings = job_settings(input, outputs, options)
    check_outputs(settings.input, settings.outputs, settings.overwrite, settings.fresh)
    if dry_run:
        typer.echo(f"{input} ->")
        for kind, path in settings.outputs.items():
            typer.echo(f"  {kind}: {path}")
        return
    from .pipeline import FrameRate, run_job  # PyTorch loads here, once the options and paths are known to be right

    with make_progress(quiet) as progress:
        tasks = []  # the bar appears when the frames start flowing, so an early error stands alone
        rate = FrameRate()

        def on_progress(done: int, total: int) -> None:
            if not tasks:
                tasks.append(progress.add_task(input.name, total=total, fps=0.0))
            progress.update(tasks[0], completed=done, total=total, fps=rate(done))

        result = run_job(settings, on_progress=on_progress, notice=say)
    for note in result.notes:
        say(note, "[yellow]note:[/] ")
    if not quiet:  # the frames this run matted: a resumed run did only the rest
        resumed = f" (resumed after {result.resumed_from} done before)" if result.resumed_from else ""
        say(f"wrote {', '.join(result.outputs.values())}: {result.frames - result.resumed_from} frames in "
            f"{result.seconds:.1f} s ({result.fps:.1f} fps){resumed}")
        for kind, path in result.outputs.items():
            say(f"  {path}: {output_use(kind, path, settings.premultiplied)}")
    if report is not None:
        from .batch import finished_clip
        from .report import write_report

        write_report(report, [finished_clip(input, input.name, result.outputs, result)], result.seconds)
        say(f"report: {report}")


def _run_batch(input_dir: Path, out_dir: Path, templates: dict, options: dict, recursive: bool, glob: str | None,
               jobs: int, dry_run: bool, quiet: bool, ray: str | None, split: str | None,
               report_path: Path | None) -> None:
    from .batch import find_videos, render_report, run_batch
    from .presets import render_outputs

    if dry_run:
        videos, others = find_videos(input_dir, recursive, glob)
        for video in videos:
            typer.echo(f"{video} ->")
            for kind, path in render_outputs(templates, video, out_dir, video.parent.relative_to(input_dir)).items():
                typer.echo(f"  {kind}: {path}")
        for other in others:
            typer.echo(f"{other}: skipped, not a video")
        return
    if split is not None and ray is None:
        raise VmatteError("--split runs shots as separate units on Ray: add --ray local (or a cluster's address)")
    if report_path is not None and ray is not None:
        raise VmatteError("--report: a batch on Ray gathers no per-frame statistics yet; run it without --ray")
    with make_progress(quiet) as progress:
        if ray is not None:
            from .cluster import run_batch_on_ray

            report = run_batch_on_ray(input_dir, out_dir, templates, options, address=ray, recursive=recursive,
                                      glob=glob, jobs=jobs, split=split, progress=None if quiet else progress,
                                      notice=say)
        else:
            report = run_batch(input_dir, out_dir, templates, options, recursive=recursive, glob=glob, jobs=jobs,
                               progress=None if quiet else progress, notice=say)
    console.print(render_report(report))
    if report_path is not None:
        from .report import write_report

        write_report(report_path, report.clips, report.seconds)
        say(f"report: {report_path}")
    if report.failed:
        raise typer.Exit(1)


@app.command("preview")
def preview_command(
    input: Path = typer.Argument(..., metavar="INPUT", help="Video file, image sequence, or a folder of videos."),
    frames: int = typer.Option(12, "--frames", "-n", metavar="N", min=1, max=100, rich_help_panel=IO,
                               help="Frames to matte, spread evenly."),
    out: Path = typer.Option(None, "--out", "-o", metavar="PATH", rich_help_panel=IO,
                             help="Sheet .png \\[default: NAME.preview.png]; a folder's: previews/."),
    preset: str = PRESET_OPTION,
    model: str = MODEL_OPTION,
    weights: Path = WEIGHTS_OPTION,
    quality: str = QUALITY_OPTION,
    downsample_ratio: str = DOWNSAMPLE_RATIO_OPTION,
    device: str = DEVICE_OPTION,
    precision: str = PRECISION_OPTION,
    backend: str = BACKEND_OPTION,
    semantics: str = SEMANTICS_OPTION,
    refiner: str = REFINER_OPTION,
    chunk: int = CHUNK_OPTION,
    fps: str = FPS_OPTION,
    start: str = START_OPTION,
    end: str = END_OPTION,
    skip_corrupt: bool = SKIP_CORRUPT_OPTION,
    preroll: int = PREROLL_OPTION,
    cuts: bool = CUTS_OPTION,
    cut_threshold: float = CUT_THRESHOLD_OPTION,
    smooth: str = SMOOTH_OPTION,
) -> None:
    """Matte a few evenly spaced frames, each after a short warm-up over the frames before it, into one contact
    sheet (source, matte, composite over a checkerboard), and estimate how long the full run will take."""
    from .batch import find_videos
    from .io.sequence import folder_images, is_pattern
    from .pipeline import load_engine
    from .presets import job_settings
    from .preview import check_sheet_path, make_preview

    with user_errors():
        _, options = job_options(
            input, preset, _given(model=model, weights=weights, device=device, precision=precision, backend=backend,
                                  semantics=semantics, refiner=refiner, chunk=chunk, skip_corrupt=skip_corrupt,
                                  quality=quality),
            downsample_ratio=downsample_ratio, fps=fps, start=start, end=end, preroll=preroll, cuts=cuts,
            cut_threshold=cut_threshold, smooth=smooth)
        if input.is_dir() and not folder_images(input):
            clips = find_videos(input)[0]
            if not clips:
                raise VmatteError(f"{input}: no videos or images in it")
            folder = out or Path("previews")
            folder.mkdir(parents=True, exist_ok=True)
            sheets = [folder / f"{clip.name}.preview.png" for clip in clips]
        else:
            clips = [input]
            name = input.parent.name if is_pattern(str(input)) else Path(str(input).rstrip("/")).name
            sheets = [out or Path(f"{name}.preview.png")]
        for sheet in sheets:
            check_sheet_path(sheet)
        settings = [job_settings(clip, {}, options) for clip in clips]
        engine = load_engine(settings[0], notice=say)
        total = 0.0
        for one, sheet in zip(settings, sheets):
            preview = make_preview(one, sheet, frames, engine=engine, notice=say)
            total += preview.full_run_seconds
            typer.echo(str(preview.sheet))
            say(f"{one.input.name}: {frames if frames < preview.frames else preview.frames} frames in "
                f"{preview.seconds:.1f} s; the full run of {preview.frames} frames will take about "
                f"{_duration(preview.full_run_seconds)} on this machine")
        if len(sheets) > 1:
            say(f"all {len(sheets)} clips: about {_duration(total)}")


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


@app.command("pull")
def pull_command(
    edit: Path = typer.Argument(..., help="The edit: CMX 3600 .edl, Final Cut Pro 7 .xml, .otio or .otioz."),
    media: list[Path] = typer.Option(..., "--media", help="Folder holding the edit's media (repeatable; "
                                                          "subfolders are searched)."),
    out_dir: Path = typer.Option(..., "--out-dir", help="Folder for the shots' outputs and the handed-back edit."),
    handles: int = typer.Option(8, "--handles", help="Frames matted before and after each shot's cut."),
    preset: str = typer.Option(None, "--preset", "-p", help="Preset name or .toml file: options and outputs "
                                                            "({stem} is the shot's name)."),
    out_template: list[str] = typer.Option(None, "--out-template", help="KIND=TEMPLATE with {shot}, {clip}, {reel}, "
                                                                         "{track}, {index}, {kind} (repeatable)."),
    rate: str = typer.Option(None, "--rate", help="An EDL's frame rate (default: its media's)."),
    shot_template: str = typer.Option(None, "--shot-template", help="Shot names, e.g. sh{index:03d}0 (default: "
                                                                     "the clip names)."),
    start_number: int = typer.Option(1001, "--start-number", min=0, help="Number of the first image-sequence file."),
    number_at: str = typer.Option("handle", "--number-at", help="Where --start-number falls: handle (the first "
                                                                "handle frame, default) or cut (the cut's first)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Shots matted at once (with --ray: per node)."),
    ray: str = typer.Option(None, "--ray", help="Run on Ray: local, auto, host:port or ray://host:port."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo shots whose outputs exist."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard saved progress of interrupted shots."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Matte the shots of an edit, with handles, and hand back the edit with a matte track."""
    from .batch import render_report
    from .models.weights import DEFAULT_MODEL
    from .presets import load_preset, merge_templates, parse_frame_rate
    from .pull import DEFAULT_SHOT_TEMPLATE, DEFAULT_TEMPLATES, SHOT_FIELDS, plan_pull, run_pull

    with user_errors():
        chosen = load_preset(preset) if preset else None
        options = chosen.apply({"overwrite": overwrite, "fresh": fresh}) if chosen else \
            {"overwrite": overwrite, "fresh": fresh}
        options["temporal"] = temporal_options(options.get("model", DEFAULT_MODEL), None, None, None, None)
        templates = merge_templates(chosen.outputs if chosen else DEFAULT_TEMPLATES, out_template or [], SHOT_FIELDS)
        pull = plan_pull(edit, media, out_dir, templates, options, handles=handles,
                         rate=parse_frame_rate(rate) if rate else None,
                         shot_template=shot_template or DEFAULT_SHOT_TEMPLATE, start_number=start_number,
                         number_at=number_at, notice=say)
        with make_progress(quiet) as progress:
            report, timelines = run_pull(pull, out_dir, options, jobs=jobs, ray=ray,
                                         progress=None if quiet else progress, notice=say)
        console.print(render_report(report))
        for timeline in timelines:
            say(f"handed back: {timeline}")
        if report.failed:
            raise typer.Exit(1)


@app.command("eval")
def eval_command(
    pred: Path = typer.Argument(..., help="Predicted mattes: PNG sequence (folder or pattern) or video."),
    gt: Path = typer.Argument(..., help="Ground-truth mattes, same frame count and size."),
    csv: Path = typer.Option(None, "--csv", help="Write per-frame metrics to this CSV file."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG plot of per-frame MAD and dtSSD."),
) -> None:
    """Matting metrics of PRED against GT: MAD, MSE, Grad, Conn, dtSSD (RVM's definitions and scales)."""
    from .evaluate import evaluate, format_summary

    with user_errors():
        _, summary = evaluate(pred, gt, csv_path=csv, plot_path=plot)
        typer.echo(format_summary(summary))


@app.command("presets")
def presets_command() -> None:
    """The presets --preset can name, with what each is for."""
    from .presets import list_presets

    with user_errors():
        for name, description, _path in list_presets():
            typer.echo(f"{name:14} {description}")


@app.command("info")
def info_command(input: Path = typer.Argument(..., help="Video file or image sequence.")) -> None:
    """What vmatte sees in a clip: size, rotation, frames, rate, pixel format, colour, audio."""
    from .io import probe
    from .settings import auto_downsample_ratio

    with user_errors():
        info = probe(input)
        rows = [
            ("size", f"{info.width}x{info.height} (coded {info.coded_width}x{info.coded_height})"),
            ("rotation", f"{info.rotation} degrees"),
            ("pixel aspect", f"{info.pixel_aspect}{'' if info.pixel_aspect == 1 else ' (anamorphic)'}"),
            ("frames", _frames(info)),
            ("frame rate", f"{info.frame_rate} ({float(info.frame_rate):.3f} fps){' variable' if info.is_vfr else ''}"),
            ("scan", f"interlaced, {info.field_order} (matted frame by frame)" if info.interlaced else "progressive"),
            ("pixel format", f"{info.pix_fmt} ({info.bit_depth}-bit{', alpha' if info.has_alpha else ''})"),
            ("colour", f"matrix {info.colour_matrix}, {info.colour_range} range, primaries {info.colour_primaries}, "
                       f"transfer {info.colour_transfer}{' (some assumed: untagged)' if info.colour_assumed else ''}"),
            ("timecode", _timecode(info)),
            ("audio", ", ".join(f"{a.codec} {a.sample_rate} Hz {a.channels} ch" for a in info.audio) or "none"),
            ("auto downsample ratio", f"{auto_downsample_ratio(info.height, info.width):.3f}"),
        ]
        for name, value in rows:
            typer.echo(f"{name:>22}: {value}")


def _frames(info) -> str:
    """The frame count, with a sequence's numbering or the pictures left out of a stream cut mid-GOP."""
    numbers = info.frame_numbers
    if numbers:
        gaps = numbers[-1] - numbers[0] + 1 != len(numbers)
        return f"{info.frame_count} (numbered {numbers[0]}-{numbers[-1]}{', with gaps' if gaps else ''})"
    if info.undecodable_leading_frames:
        return (f"{info.frame_count} ({info.undecodable_leading_frames} undecodable pictures before the first "
                "keyframe left out)")
    return str(info.frame_count)


def _timecode(info) -> str:
    """The start timecode, and whether it counts drop-frame."""
    from .io.timecode import is_drop_frame

    if info.timecode is None:
        return "none"
    return f"{info.timecode} ({'drop-frame' if is_drop_frame(info.timecode) else 'non-drop-frame'})"


models_app = typer.Typer(help="Known models: list them, or fetch one.", no_args_is_help=False)
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def models_command(context: typer.Context) -> None:
    """Known models, and whether each is present locally (and where)."""
    from .models.weights import DEFAULT_MODEL, MODELS, find_local, resolve

    if context.invoked_subcommand is not None:
        return
    with user_errors():
        for model in MODELS.values():
            path = find_local(model)
            where = str(path) if path else f"not here: 'vmatte models pull {model.name}'"
            typer.echo(f"{model.name:22} {model.description}\n{'':22} {where}")
        try:
            used, path = resolve(DEFAULT_MODEL, allow_download=False, notice=lambda _: None)
            typer.echo(f"\nthe default ({DEFAULT_MODEL}) runs {used.name}: {path}")
        except VmatteError:
            typer.echo(f"\nthe default ({DEFAULT_MODEL}) is not here; a run downloads it first")


@models_app.command("pull")
def models_pull_command(name: str = typer.Argument(..., help="Model name, as 'vmatte models' lists it.")) -> None:
    """Download a model's official file into the cache (checked against its sha256 where one is known)."""
    from .models.weights import MODELS, download, find_local, missing_message, offline

    with user_errors():
        if name not in MODELS:
            raise VmatteError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
        model = MODELS[name]
        if path := find_local(model):
            say(f"{name} is already here: {path}")
            return
        if offline():
            raise VmatteError(missing_message(model) + " (VMATTE_OFFLINE is set)")
        try:
            path = download(model)
        except OSError as exc:
            raise VmatteError(f"{missing_message(model)} (download failed: {exc})") from None
        say(f"{name}: {path}")


cache_app = typer.Typer(help="Converted CPU graphs and imported weights: list them, or clear them.",
                        no_args_is_help=False)
app.add_typer(cache_app, name="cache")


@cache_app.callback(invoke_without_command=True)
def cache_command(context: typer.Context) -> None:
    """The compiled CPU graphs and imported weights, least recently used first, with their total and the limit."""
    from .compiled_cache import compiled_dir, describe, graphs, limit_bytes

    if context.invoked_subcommand is not None:
        return
    with user_errors():
        present = graphs()
        for graph in present:
            typer.echo(describe(graph))
        typer.echo(f"{len(present)} entries, {sum(g.size for g in present) / 1e6:.1f} MB in {compiled_dir()} "
                   f"(limit {limit_bytes() / 1e6:.0f} MB: VMATTE_COMPILED_CACHE_MB)")


@cache_app.command("clear")
def cache_clear_command() -> None:
    """Remove every compiled graph and imported weight file (each is made again when a run needs it)."""
    from .compiled_cache import clear

    with user_errors():
        removed = clear()
        typer.echo(f"removed {len(removed)} entries, {sum(g.size for g in removed) / 1e6:.1f} MB")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vmatte {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Show the version and exit.")) -> None:
    """Pull people off their background in ordinary video: alpha mattes, foregrounds, composites."""


def with_command(argv: list[str]) -> list[str]:
    """``vmatte INPUT ...`` is short for ``vmatte run INPUT ...``."""
    commands = {"run", "info", "models", "presets", "eval", "pull", "preview", "cache"}
    return ["run", *argv] if argv and argv[0] not in commands and not argv[0].startswith("-") else argv


def main() -> None:
    """Entry point."""
    interrupts.install()  # first: a Ctrl-C during the imports below must not leave a half-imported PyTorch
    app(args=with_command(sys.argv[1:]), prog_name="vmatte")


if __name__ == "__main__":
    main()
