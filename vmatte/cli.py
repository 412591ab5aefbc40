"""The ``vmatte`` command line: parses options and calls the library; nothing else lives here."""

import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .errors import VmatteError

console = Console(stderr=True, highlight=False)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="rich", help="Pull people off their background in ordinary video.")

RUN_EXAMPLES = """
Examples:

  vmatte clip.mp4 --out alpha.mov                      # alpha matte, ProRes 4444
  vmatte clip.mp4 --fgr fgr.mov --out alpha/           # straight foreground with alpha + 16-bit PNG matte
  vmatte clip.mp4 --comp preview.mp4 --bg "#00ff00"    # H.264 preview over green
  vmatte frames/%06d.png --out matte/%06d.png --png-depth 8
"""


@contextmanager
def user_errors():
    """A VmatteError or Ctrl-C becomes one clear line and a non-zero exit, never a traceback."""
    try:
        yield
    except VmatteError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(getattr(exc, "exit_code", 1)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: nothing finished was written")
        raise typer.Exit(130) from None


def parse_ratio(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        ratio = float(text)
    except ValueError:
        raise VmatteError(f"--downsample-ratio {text!r}: give a number in (0, 1] or 'auto'") from None
    if not 0 < ratio <= 1:
        raise VmatteError(f"--downsample-ratio {text}: must be in (0, 1]")
    return ratio


def make_progress(quiet: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn(), console=console,
                    disable=quiet, transient=False)


@app.command("run", epilog=RUN_EXAMPLES)
def run_command(
    input: Path = typer.Argument(..., help="Video file, folder of images, or printf pattern (frames/%06d.png)."),
    out: str = typer.Option(None, "--out", "-o", help="Alpha matte: .mov (ProRes 4444), folder/ or %06d.png."),
    fgr: str = typer.Option(None, "--fgr", help="Straight foreground with alpha: .mov or PNG sequence."),
    comp: str = typer.Option(None, "--comp", help="Composite over --bg: .mov, .mp4 (H.264 preview) or PNGs."),
    bg: str = typer.Option("green", "--bg", help="Composite background: colour name or hex, image, or video."),
    model: str = typer.Option("rvm-mobilenetv3", "--model", "-m", help="Model name (see 'vmatte models')."),
    weights: Path = typer.Option(None, "--weights", help="Weight file to use instead of the model's."),
    downsample_ratio: str = typer.Option("auto", "--downsample-ratio", "-r",
                                         help="Internal scale in (0, 1], or auto (long side about 512 px)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, fp16 or bf16."),
    chunk: int = typer.Option(4, "--chunk", min=1, max=64, help="Frames per model call."),
    png_depth: int = typer.Option(16, "--png-depth", help="Bit depth of PNG outputs: 8 or 16."),
    premultiplied: bool = typer.Option(False, "--premultiplied", help="Premultiply the foreground by alpha."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs that already exist."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard saved progress of an interrupted run."),
    skip_corrupt: bool = typer.Option(False, "--skip-corrupt",
                                      help="Repeat the last good frame in place of a corrupt one."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Matte one clip: write its alpha matte, foreground and/or composite."""
    from .pipeline import JobSettings, run_job

    with user_errors():
        if png_depth not in (8, 16):
            raise VmatteError(f"--png-depth {png_depth}: choose 8 or 16")
        outputs = {kind: path for kind, path in (("alpha", out), ("fgr", fgr), ("comp", comp)) if path}
        settings = JobSettings(input=input, outputs=outputs, model=model, weights=weights,
                               downsample_ratio=parse_ratio(downsample_ratio), device=device, precision=precision,
                               chunk=chunk, png_depth=png_depth, premultiplied=premultiplied, background=bg,
                               overwrite=overwrite, skip_corrupt=skip_corrupt, fresh=fresh)
        with make_progress(quiet) as progress:
            task = progress.add_task(input.name, total=None, fps=0.0)

            def on_progress(done: int, total: int) -> None:
                elapsed = progress.tasks[task].elapsed or 0
                progress.update(task, completed=done, total=total, fps=done / elapsed if elapsed else 0.0)

            result = run_job(settings, on_progress=on_progress, notice=lambda m: console.print(m))
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}")
        if not quiet:
            written = ", ".join(result.outputs.values())
            console.print(f"wrote {written}: {result.frames} frames in {result.seconds:.1f} s "
                          f"({result.fps:.1f} fps)")


@app.command("info")
def info_command(input: Path = typer.Argument(..., help="Video file or image sequence.")) -> None:
    """What vmatte sees in a clip: size, rotation, frames, rate, pixel format, colour, audio."""
    from .inference import auto_downsample_ratio
    from .io import probe

    with user_errors():
        info = probe(input)
        rows = [
            ("size", f"{info.width}x{info.height} (coded {info.coded_width}x{info.coded_height})"),
            ("rotation", f"{info.rotation} degrees"),
            ("frames", str(info.frame_count)),
            ("frame rate", f"{info.frame_rate} ({float(info.frame_rate):.3f} fps){' variable' if info.is_vfr else ''}"),
            ("pixel format", f"{info.pix_fmt} ({info.bit_depth}-bit{', alpha' if info.has_alpha else ''})"),
            ("colour", f"{info.colour_matrix}, {info.colour_range} range"
                       f"{' (assumed)' if info.colour_assumed else ''}"),
            ("audio", ", ".join(f"{a.codec} {a.sample_rate} Hz {a.channels} ch" for a in info.audio) or "none"),
            ("auto downsample ratio", f"{auto_downsample_ratio(info.height, info.width):.3f}"),
        ]
        for name, value in rows:
            typer.echo(f"{name:>22}: {value}")


@app.command("models")
def models_command() -> None:
    """Known models, and whether each is present locally (and where)."""
    from .models.weights import MODELS, find_local

    with user_errors():
        for model in MODELS.values():
            path = find_local(model)
            where = str(path) if path else "not downloaded"
            typer.echo(f"{model.name:22} {model.description}\n{'':22} {where}")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vmatte {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Show the version and exit.")) -> None:
    """Pull people off their background in ordinary video: alpha mattes, foregrounds, composites."""


def main() -> None:
    """Entry point: ``vmatte INPUT ...`` is short for ``vmatte run INPUT ...``."""
    argv = sys.argv[1:]
    commands = {"run", "info", "models", "presets", "eval"}
    if argv and argv[0] not in commands and not argv[0].startswith("-"):
        argv = ["run", *argv]
    app(args=argv, prog_name="vmatte")


if __name__ == "__main__":
    main()
