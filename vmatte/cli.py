"""The ``vmatte`` command line: parses options and calls the library; nothing else lives here."""

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
Examples:

  vmatte clip.mp4 --out alpha.mov                      # alpha matte, ProRes 4444
  vmatte clip.mp4 --fgr fgr.mov --out alpha/           # straight foreground with alpha + 16-bit PNG matte
  vmatte clip.mp4 --comp preview.mp4 --bg "#00ff00"    # H.264 preview over green
  vmatte frames/%06d.png --out matte/%06d.png --png-depth 8
  vmatte plates/ --fps 23.976 --out matte.mov          # image sequences run at 25 fps unless told
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
    except Exception as exc:
        if os.environ.get("VMATTE_DEBUG"):
            raise
        say(f"unexpected {type(exc).__name__}: {exc} (a bug in vmatte: please report it with the output of the "
            "same command run with VMATTE_DEBUG=1)", "[bold red]error:[/] ")
        raise typer.Exit(2) from None


def make_progress(quiet: bool) -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn(), console=console,
                    disable=quiet, transient=False)


def _given(**options) -> dict:
    """The options the user actually gave (None means 'not given', so a preset's value stays)."""
    return {name: value for name, value in options.items() if value is not None}


@app.command("run", epilog=RUN_EXAMPLES)
def run_command(
    input: Path = typer.Argument(..., help="Video file, folder of images, printf pattern (frames/%06d.png), "
                                           "or a folder of videos (batch)."),
    out: str = typer.Option(None, "--out", "-o", help="Alpha matte: .mov (ProRes 4444), folder/, %06d.png or "
                                                      "%06d.exr."),
    fgr: str = typer.Option(None, "--fgr", help="Foreground with alpha: .mov, PNG or EXR sequence."),
    comp: str = typer.Option(None, "--comp", help="Composite over --bg: .mov, .mp4 (H.264 preview), PNGs or "
                                                  "EXRs."),
    preset: str = typer.Option(None, "--preset", "-p", help="Preset name or .toml file (see 'vmatte presets')."),
    out_dir: Path = typer.Option(None, "--out-dir", help="Folder for outputs named by the preset's templates "
                                                         "(batch: mirrors the input folder)."),
    out_template: list[str] = typer.Option(None, "--out-template", help="KIND=TEMPLATE, e.g. "
                                                                         "alpha={stem}.alpha.mov (repeatable)."),
    recursive: bool = typer.Option(False, "--recursive", help="Batch: include subfolders."),
    glob: str = typer.Option(None, "--glob", help="Batch: take files matching this pattern (e.g. '*.MOV')."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Batch: clips processed at once (with --ray: per "
                                                            "node, or per GPU)."),
    ray: str = typer.Option(None, "--ray", help="Batch: run on Ray: local (start it here), auto (the cluster "
                                                "'ray start' or RAY_ADDRESS names), host:port or ray://host:port."),
    split: str = typer.Option(None, "--split", help="With --ray: 'shots' runs each shot of a clip (cut at hard cuts) "
                                                    "as its own unit; same output."),
    bg: str = typer.Option(None, "--bg", help="Composite background: colour name or hex, image, or video."),
    model: str = typer.Option(None, "--model", "-m", help="Model name (see 'vmatte models')."),
    weights: Path = typer.Option(None, "--weights", help="Weight file to use instead of the model's."),
    quality: str = typer.Option(None, "--quality", help="fast, standard (default) or best: best runs the model "
                                                        "on each frame, its mirror image and a 1.25x larger "
                                                        "internal size, median of the mattes (about 3.5x the "
                                                        "time)."),
    downsample_ratio: str = typer.Option(None, "--downsample-ratio", "-r",
                                         help="Internal scale in (0, 1], a long side like 768px, or auto "
                                              "(long side about 640 px)."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda or mps."),
    precision: str = typer.Option(None, "--precision", help="auto, fp32, fp16 or bf16."),
    backend: str = typer.Option(None, "--backend", help="Inference backend: auto (OpenVINO on the CPU where "
                                                        "installed, else PyTorch), torch or openvino."),
    semantics: str = typer.Option(None, "--semantics", help="Numerics: torch (official PyTorch, default) or tfjs "
                                                            "(the TF.js export's, for parity)."),
    refiner: str = typer.Option(None, "--refiner", help="deep_guided_filter or fast_guided_filter."),
    chunk: int = typer.Option(None, "--chunk", min=1, max=64, help="Frames per model call (default 4)."),
    png_depth: int = typer.Option(None, "--png-depth", help="Bit depth of PNG outputs: 8 or 16 (default)."),
    premultiplied: bool = typer.Option(None, "--premultiplied/--straight",
                                       help="Premultiply the foreground by alpha (default straight)."),
    fps: str = typer.Option(None, "--fps", help="Frame rate of an image-sequence input: 24, 23.976, 24000/1001 "
                                                "... (default 25; video files keep their own)."),
    start: str = typer.Option(None, "--start", help="First frame to matte: frame number (0 is the first), seconds "
                                                    "(12.5s) or source timecode (01:00:11:05)."),
    end: str = typer.Option(None, "--end", help="Frame after the last to matte (exclusive); same forms."),
    exr_display_encoded: bool = typer.Option(None, "--exr-display-encoded/--exr-linear",
                                             help="OpenEXR colour as the source encodes it (default: linearised "
                                                  "from its transfer function)."),
    number_from: str = typer.Option(None, "--number-from", help="Number image-sequence outputs by source frame "
                                                                "(source, default) or by timecode frame count."),
    skip_corrupt: bool = typer.Option(None, "--skip-corrupt/--stop-on-corrupt",
                                      help="Repeat the last good frame in place of a corrupt one."),
    preroll: int = typer.Option(None, "--preroll", min=0, max=64,
                                help="Frames run before each shot to settle the recurrent state (0: off; "
                                     "default 16 for video files, 0 for image sequences)."),
    cuts: bool = typer.Option(None, "--cuts/--no-cuts", help="Reset the state at detected hard cuts (default: "
                                                               "on for video files, off for image sequences)."),
    cut_threshold: float = typer.Option(None, "--cut-threshold", min=0.0,
                                        help="Frame-difference score (0-255) above which a cut is detected."),
    smooth: str = typer.Option(None, "--smooth", help="Temporal smoothing of the matte: none or ofd "
                                                     "(one-frame delay; default for MODNet)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs that already exist."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard saved progress of an interrupted run."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be written, write nothing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Matte a clip (or a folder of clips): write alpha matte, foreground and/or composite."""
    from .batch import find_videos
    from .io.clip_range import check_position
    from .io.sequence import folder_images, is_sequence
    from .models.weights import DEFAULT_MODEL, check_weight_file
    from .presets import load_preset, merge_templates, parse_downsample_ratio, parse_frame_rate, render_outputs
    from .settings import NUMBER_FROM, quality_level

    with user_errors():
        if png_depth not in (None, 8, 16):
            raise VmatteError(f"--png-depth {png_depth}: choose 8 or 16")
        overrides = _given(model=model, weights=weights, device=device, precision=precision, backend=backend,
                           semantics=semantics, refiner=refiner, chunk=chunk, png_depth=png_depth,
                           premultiplied=premultiplied, background=bg, skip_corrupt=skip_corrupt, quality=quality,
                           exr_display_encoded=exr_display_encoded)
        if quality is not None:
            quality_level(quality)  # a wrong name fails here, before anything is opened
        if downsample_ratio is not None:
            overrides["downsample_ratio"] = parse_downsample_ratio(downsample_ratio)
        if fps is not None:
            if not is_sequence(input):
                raise VmatteError(f"--fps {fps}: {input} is a video file, which keeps its own frame rate "
                                  "(--fps is for image sequences)")
            overrides["sequence_fps"] = parse_frame_rate(fps)
        if number_from not in (None, *NUMBER_FROM):
            raise VmatteError(f"--number-from {number_from}: choose {' or '.join(NUMBER_FROM)}")
        overrides.update(_given(start=start and check_position("--start", start),
                                end=end and check_position("--end", end), number_from=number_from))
        overrides.update(overwrite=overwrite, fresh=fresh)
        chosen = load_preset(preset) if preset else None
        options = chosen.apply(overrides) if chosen else overrides
        if options.get("weights") is not None:
            check_weight_file(options["weights"])
        options["temporal"] = temporal_options(options.get("model", DEFAULT_MODEL), preroll, cuts, cut_threshold,
                                               smooth)
        templates = merge_templates(chosen.outputs if chosen else {}, out_template or []) \
            if (chosen or out_template) else {}
        explicit = {kind: path for kind, path in (("alpha", out), ("fgr", fgr), ("comp", comp)) if path}
        # A folder of videos is a batch; a folder of images is one clip (named by --out-dir and templates too).
        if input.is_dir() and (find_videos(input, recursive, glob)[0] or (out_dir is not None and
                                                                          not folder_images(input))):
            if explicit:
                raise VmatteError("a folder of videos takes --preset/--out-template and --out-dir, not --out, "
                                  "--fgr or --comp (each clip needs its own names)")
            if not templates:
                raise VmatteError("a folder of videos needs output names: give --preset NAME or "
                                  "--out-template KIND=TEMPLATE (for example alpha={stem}.alpha.mov)")
            _run_batch(input, out_dir or input, templates, options, recursive, glob, jobs, dry_run, quiet, ray, split)
            return
        if ray is not None or split is not None:
            raise VmatteError("--ray and --split run a batch: give a folder of videos")
        outputs = {**render_outputs(templates, input, out_dir or input.parent), **explicit}
        _run_single(input, outputs, options, dry_run, quiet)


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


def _run_single(input: Path, outputs: dict[str, str], options: dict, dry_run: bool, quiet: bool) -> None:
    from .io import probe
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


def _run_batch(input_dir: Path, out_dir: Path, templates: dict, options: dict, recursive: bool, glob: str | None,
               jobs: int, dry_run: bool, quiet: bool, ray: str | None, split: str | None) -> None:
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


cache_app = typer.Typer(help="Compiled CPU graphs (one per working size): list them, or clear them.",
                        no_args_is_help=False)
app.add_typer(cache_app, name="cache")


@cache_app.callback(invoke_without_command=True)
def cache_command(context: typer.Context) -> None:
    """The compiled CPU graphs, least recently used first, with their total and the cache's limit."""
    from .compiled_cache import compiled_dir, describe, graphs, limit_bytes

    if context.invoked_subcommand is not None:
        return
    with user_errors():
        present = graphs()
        for graph in present:
            typer.echo(describe(graph))
        typer.echo(f"{len(present)} graph(s), {sum(g.size for g in present) / 1e6:.1f} MB in {compiled_dir()} "
                   f"(limit {limit_bytes() / 1e6:.0f} MB: VMATTE_COMPILED_CACHE_MB)")


@cache_app.command("clear")
def cache_clear_command() -> None:
    """Remove every compiled graph (each is built again, once, when a run needs it)."""
    from .compiled_cache import clear

    with user_errors():
        removed = clear()
        typer.echo(f"removed {len(removed)} graph(s), {sum(g.size for g in removed) / 1e6:.1f} MB")


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
    commands = {"run", "info", "models", "presets", "eval", "cache"}
    return ["run", *argv] if argv and argv[0] not in commands and not argv[0].startswith("-") else argv


def main() -> None:
    """Entry point."""
    interrupts.install()  # first: a Ctrl-C during the imports below must not leave a half-imported PyTorch
    app(args=with_command(sys.argv[1:]), prog_name="vmatte")


if __name__ == "__main__":
    main()
