"""End-to-end acceptance of the ``vmatte`` command line.

* Golden parity through the CLI: the first 8 frames of each ``../shared/golden`` case, written as 8-bit RGB
  PNGs, matted with ``--png-depth 16`` must match the golden alpha (README criteria, 16-bit rounding
  included): the official PyTorch semantics by default, the TF.js semantics with ``--semantics tfjs``. Image
  sequences get no pre-roll by default, so the state starts from zeros at frame 0 as in the goldens.
* Bad input: non-zero exit, one clear ``error:`` line on stderr, no traceback, nothing finished-looking left.
* ``--help`` examples, ``--version``, ``vmatte info``.

Most runs are in-process (typer's CliRunner on ``vmatte.cli.app``); a few go through the installed ``vmatte``
script to cover the real entry point (including its ``vmatte CLIP`` shorthand for ``vmatte run CLIP``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from fractions import Fraction

import av
import cv2
import media
import numpy as np
import pytest
import torch
from backends import BACKENDS
from typer.testing import CliRunner

from vmatte import __version__
from vmatte.cli import app

WEIGHTS = media.WEIGHTS_DIR / "rvm_mobilenetv3_tfjs_int8"
GOLDEN_CASES = ["bedroom_256x144_r1.0", "bedroom_320x180_r0.5", "webcamface_320x214_r0.375"]
SMALL = "robustness_videos/decord_rot0.mov"  # 3 frames, 568x320
CORRUPT = "robustness_videos/decord_corrupted.mp4"
# Lines a run may print before its error: a stand-in model, the model line once it is loaded, and the CPU graph
# it builds the first time.
NOTICE = re.compile(r"\S+ is not available here; using \S+ \(.*?\) instead|"
                    r"preparing the CPU graph for the model, once \(every frame size reuses it\)|"
                    r"model: \S+ \(\S+\)(, [^,]+ guided filter, \w+ semantics)?, \w+ \S+, (torch|openvino \S+)"
                    r"(, passes \S+)?")


def vmatte(*args) -> object:
    """``vmatte ARGS`` in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args])


def vmatte_process(*args, timeout: int = 120) -> subprocess.CompletedProcess:
    """The installed ``vmatte`` script in a subprocess."""
    return subprocess.run(["vmatte", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=media.env_for_cli())


def assert_clean_failure(code: int, stdout: str, stderr: str, exception: BaseException | None, *needles: str):
    """Non-zero exit; stderr is one 'error:' line (besides the model's line) naming what is wrong."""
    assert code != 0, f"exit code 0\nstdout: {stdout}\nstderr: {stderr}"
    assert exception is None or isinstance(exception, SystemExit), f"leaked {exception!r}"
    assert "Traceback" not in stdout + stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one error line on stderr, got:\n{stderr}"
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    rest = NOTICE.sub("", " ".join(stderr.split())).replace(" ".join(errors[0].split()), "").strip()
    assert rest == "", f"more than the error on stderr: {rest!r}"


def assert_cli_failure(result, *needles: str):
    assert_clean_failure(result.exit_code, result.stdout, result.stderr, result.exception, *needles)


# --- golden parity through the command line --------------------------------------------------------------------

def assert_matches_golden(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """The golden README's criteria, per frame: max <= 1e-2, mean <= 2e-4, <= 0.01 % of values off by > 1e-3."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    for t, (a, e) in enumerate(zip(actual, expected.astype(np.float64))):
        diff = np.abs(a - e)
        assert diff.max() <= 1e-2, f"{what} frame {t}: max |diff| {diff.max():.2e}"
        assert diff.mean() <= 2e-4, f"{what} frame {t}: mean |diff| {diff.mean():.2e}"
        assert (diff > 1e-3).mean() <= 1e-4, f"{what} frame {t}: {(diff > 1e-3).mean():.3%} off by > 1e-3"


@pytest.fixture(scope="module")
def golden_frames(golden_dir, tmp_path_factory):
    """Each case's input frames as a folder of 8-bit RGB PNGs, and its downsample ratio."""
    root = tmp_path_factory.mktemp("golden")
    cases = {}
    for case in GOLDEN_CASES:
        data = np.load(golden_dir / f"{case}.npz", allow_pickle=False)
        frames = data["frames"][:8]
        media.write_png_sequence(frames, root / case)
        back, depth = media.read_png_sequence(root / case)  # the PNGs hold exactly the golden input
        assert depth == 8 and np.array_equal(np.rint(back * 255).astype(np.uint8), frames)
        cases[case] = (root / case, float(data["downsample_ratio"]))
    return cases


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("semantics", ["tfjs", "torch"])
@pytest.mark.parametrize("case", GOLDEN_CASES)
@pytest.mark.parametrize("form", ["folder", "pattern"])
def test_png_sequence_alpha_matches_golden(golden_dir, weights_dir, golden_frames, tmp_path, case, semantics, form,
                                           backend):
    """The frames given as a folder or as a frame pattern (frames/%06d.png) are the same input."""
    frames, ratio = golden_frames[case]
    if form == "pattern":
        frames = frames / "%06d.png"
    golden = golden_dir / (f"{case}.npz" if semantics == "tfjs" else f"torch_semantics/{case}.npz")
    expected = np.load(golden, allow_pickle=False)["pha"][:8, ..., 0]
    out = tmp_path / "alpha"
    args = [frames, "--weights", WEIGHTS, "--downsample-ratio", repr(ratio), "--out", f"{out}/", "--png-depth", 16,
            "--backend", backend]
    if semantics == "tfjs":
        args += ["--semantics", "tfjs"]
    result = vmatte("run", *args, "-q")
    assert result.exit_code == 0, result.output
    assert [p.name for p in media.png_files(out)] == [f"{t:06d}.png" for t in range(8)]
    alpha, depth = media.read_png_sequence(out)
    assert depth == 16
    assert_matches_golden(alpha, expected, f"{case} {semantics} pha")


def test_quality_standard_is_the_golden_default(golden_dir, weights_dir, golden_frames, tmp_path):
    """--quality standard, said explicitly, is the plain model: still the golden outputs."""
    case = "bedroom_320x180_r0.5"
    frames, ratio = golden_frames[case]
    expected = np.load(golden_dir / f"torch_semantics/{case}.npz", allow_pickle=False)["pha"][:8, ..., 0]
    out = tmp_path / "alpha"
    result = vmatte("run", frames, "--weights", WEIGHTS, "--downsample-ratio", repr(ratio), "--quality", "standard",
                    "--out", f"{out}/", "--png-depth", 16, "-q")
    assert result.exit_code == 0, result.output
    alpha, _ = media.read_png_sequence(out)
    assert_matches_golden(alpha, expected, f"{case} --quality standard pha")


def test_png_output_keeps_the_source_frame_numbers(samples_dir, tmp_path):
    """Plates numbered 1001, 1002, 1004 give mattes 1001, 1002, 1004 (a gap stays a gap, so the matte stays
    in sync with its plate); --overwrite over an earlier 0-based result leaves none of its frames behind."""
    plate = cv2.resize(cv2.imread(str(samples_dir / "portrait_images/skimage_astronaut.png")), (96, 96))
    plates = tmp_path / "plates"
    plates.mkdir()
    for number in (1001, 1002, 1004):
        cv2.imwrite(str(plates / f"shot_{number}.png"), plate)
    out = tmp_path / "matte"
    out.mkdir()
    for index in range(4):  # an earlier result numbered from 0
        cv2.imwrite(str(out / f"matte.{index:04d}.png"), plate[..., 0])
    result = vmatte("run", plates, "--out", f"{out}/matte.%04d.png", "--overwrite", "-q")
    assert result.exit_code == 0, result.output
    assert media.visible_entries(out) == ["matte.1001.png", "matte.1002.png", "matte.1004.png"]


@pytest.mark.parametrize("form", ["folder", "pattern"])
def test_an_image_sequence_with_a_preset_and_out_dir_is_one_clip(golden_frames, tmp_path, form):
    """Named by the preset's templates like a video (the folder's name, or the pattern's name before the number),
    not taken for a batch of videos."""
    frames, ratio = golden_frames["webcamface_320x214_r0.375"]
    named = tmp_path / "shot_a"
    named.symlink_to(frames)
    source = named if form == "folder" else named / "%06d.png"
    result = vmatte("run", source, "--preset", "png16", "--out-dir", tmp_path / "out", "-r", ratio, "-q")
    assert result.exit_code == 0, result.output
    assert media.visible_entries(tmp_path / "out") == ["shot_a.alpha"]  # "%06d.png" names no shot: its folder does
    assert len(media.png_files(tmp_path / "out" / "shot_a.alpha")) == 8


def test_fps_sets_an_image_sequence_rate(golden_frames, tmp_path):
    """Plates are often 23.976: --fps 23.976 writes exactly 24000/1001 (frame k at k * 1001/24000 s)."""
    frames, ratio = golden_frames["webcamface_320x214_r0.375"]
    out = tmp_path / "alpha.mov"
    result = vmatte("run", frames, "--fps", "23.976", "--out", out, "-r", ratio, "-q")
    assert result.exit_code == 0, result.output
    track = media.read_track(out)
    assert track.guessed_rate == Fraction(24000, 1001)
    assert track.times == [Fraction(1001 * k, 24000) for k in range(8)]


def test_fps_is_refused_for_a_video_file(samples_dir, tmp_path):
    result = vmatte("run", samples_dir / SMALL, "--fps", "24", "--out", tmp_path / "alpha.mov", "-q")
    assert_cli_failure(result, "--fps", "image sequences")
    assert list(tmp_path.iterdir()) == []


def test_photo_to_single_pngs(samples_dir, tmp_path):
    """A one-frame input (a photo) can go to single .png files: grey matte, RGBA foreground, RGB composite."""
    photo = samples_dir / "portrait_images/matplotlib_grace_hopper.jpg"
    result = vmatte("run", photo, "--out", tmp_path / "matte.png", "--fgr", tmp_path / "fgr.png",
                    "--comp", tmp_path / "comp.png", "--png-depth", "8", "-q")
    assert result.exit_code == 0, result.output
    assert media.visible_entries(tmp_path) == ["comp.png", "fgr.png", "matte.png"]
    height, width = cv2.imread(str(photo)).shape[:2]
    matte, fgr, comp = (cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)
                        for name in ("matte.png", "fgr.png", "comp.png"))
    assert (matte.shape, fgr.shape, comp.shape) == ((height, width), (height, width, 4), (height, width, 3))
    assert matte.min() == 0 and matte.max() == 255  # a person was found, and background


def test_single_png_for_a_clip_is_refused(samples_dir, tmp_path):
    result = vmatte("run", samples_dir / SMALL, "--out", tmp_path / "matte.png", "-q")
    assert_cli_failure(result, "matte.png", "one picture", "3 frames")
    assert list(tmp_path.iterdir()) == []


def test_semantics_option_changes_the_matte(weights_dir, golden_frames, tmp_path):
    """--semantics is not ignored: at ratio < 1 the two semantics give visibly different mattes."""
    frames, ratio = golden_frames["webcamface_320x214_r0.375"]
    mattes = []
    for semantics in ("tfjs", "torch"):
        out = tmp_path / semantics
        result = vmatte("run", frames, "--weights", WEIGHTS, "-r", ratio, "--out", f"{out}/", "--semantics",
                        semantics, "-q")
        assert result.exit_code == 0, result.output
        mattes.append(media.read_png_sequence(out)[0])
    assert np.abs(mattes[0] - mattes[1]).max() > 0.05


# --- help, version, info ---------------------------------------------------------------------------------------

def test_version():
    result = vmatte_process("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"vmatte {__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", __version__)


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["clip.mp4", "--help"]],
                         ids=["vmatte", "run", "shorthand"])
def test_help_shows_examples(args):
    result = vmatte_process(*args)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Examples" in text, f"no examples in 'vmatte {' '.join(args)}':\n{text}"
    assert "vmatte clip.mp4 --fgr fgr.mov" in text and "clip.alpha.mov" in text


@pytest.mark.parametrize("command", ["", "run", "pull", "info", "eval", "models", "presets"])
def test_help_fits_80_columns(command):
    """Every option name shows in full and no line is cut or runs past 80 columns; the run's options come in
    groups."""
    import click
    import typer.main

    args = [command, "--help"] if command else ["--help"]
    result = subprocess.run([sys.executable, "-m", "vmatte", *args], capture_output=True, text=True, timeout=120,
                            env={**media.env_for_cli(), "COLUMNS": "80", "TERM": "dumb"})
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "\u2026" not in text and "..." not in text.replace("ARGS]...", ""), f"something is cut:\n{text}"
    assert max(map(len, text.splitlines())) <= 80, text
    group = typer.main.get_group(app)
    cli_command = group.commands[command] if command else group
    names = [name for param in cli_command.params if isinstance(param, click.Option)
             for name in (*param.opts, *param.secondary_opts) if name.startswith("--")]
    missing = [name for name in names if not re.search(rf"{re.escape(name)}(?![\w-])", text)]
    assert not missing, f"option names cut or missing: {missing}\n{text}"
    if command == "run":
        for panel in ("Inputs and outputs", "Quality", "Time and range", "Performance", "Batch"):
            assert panel in text


LOADS_NO_TORCH = """
import sys
from vmatte.cli import main
assert "torch" not in sys.modules, "importing vmatte.cli imported torch"
for argv in (["--version"], ["--help"], ["presets"], ["models"], ["info", sys.argv[1]]):
    sys.argv = ["vmatte", *argv]
    try:
        main()
    except SystemExit as exit:
        assert exit.code in (None, 0), (argv, exit.code)
    assert "torch" not in sys.modules, f"'vmatte {' '.join(argv)}' imported torch"
"""


def test_commands_that_load_no_model_do_not_import_torch(samples_dir):
    """Importing torch takes seconds: --version, --help, presets, models and info start at once."""
    result = subprocess.run([sys.executable, "-c", LOADS_NO_TORCH, str(samples_dir / SMALL)], capture_output=True,
                            text=True, timeout=120, env=media.env_for_cli())
    assert result.returncode == 0, result.stderr


def test_an_unforeseen_error_is_one_line_unless_debugging(monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr("vmatte.presets.list_presets", broken)
    result = vmatte("presets")
    assert_cli_failure(result, "unexpected RuntimeError: boom", "VMATTE_DEBUG=1")
    monkeypatch.setenv("VMATTE_DEBUG", "1")
    assert isinstance(vmatte("presets").exception, RuntimeError)


def test_info_of_a_frame_pattern(golden_frames):
    frames, _ = golden_frames["bedroom_256x144_r1.0"]
    fields = info_of(frames / "%06d.png")
    assert fields["frames"] == "8 (numbered 0-7)" and fields["size"].startswith("256x144")


def info_fields(text: str) -> dict[str, str]:
    """``vmatte info``'s "name: value" lines."""
    return dict(line.strip().split(": ", 1) for line in text.splitlines() if ": " in line)


def info_of(path) -> dict[str, str]:
    """``vmatte info PATH`` in-process, which must succeed, as its fields."""
    result = vmatte("info", path)
    assert result.exit_code == 0, result.output
    return info_fields(result.stdout)


def test_info_reports_size_rotation_frames_rate(samples_dir):
    result = vmatte_process("info", samples_dir / "robustness_videos/androidx_portrait_4k60_rot90_vfr.mp4")
    assert result.returncode == 0, result.stderr
    fields = info_fields(result.stdout)
    assert fields["size"].startswith("2160x3840")
    assert fields["rotation"].startswith("90")
    assert fields["frames"] == "18"
    assert "variable" in fields["frame rate"]


def test_info_reports_colour(samples_dir):
    fields = info_of(samples_dir / "robustness_videos/androidx_hdr10_av1_10bit_portrait.mp4")
    assert fields["colour"] == "matrix bt2020nc, tv range, primaries bt2020, transfer smpte2084"


def test_info_exact_rate(samples_dir):
    fields = info_of(samples_dir / "robustness_videos/mmaction2_basketball_2997_426x240.mp4")
    assert fields["size"].startswith("426x240")
    assert fields["rotation"].startswith("0")
    assert fields["frames"] == "300"
    assert fields["frame rate"].startswith("30000/1001") and "variable" not in fields["frame rate"]


def test_info_of_a_png_with_an_icc_profile_exits_cleanly(samples_dir):
    """The astronaut PNG carries an ICC profile whose side-data metadata PyAV 18 frees twice if it is read
    off the decoded frame: the process crashed at exit (status 139) after printing its answer."""
    result = vmatte_process("info", samples_dir / "portrait_images/skimage_astronaut.png")
    assert result.returncode == 0, (result.returncode, result.stderr)
    fields = info_fields(result.stdout)
    assert fields["size"].startswith("512x512")
    assert fields["pixel aspect"] == "1"


def test_info_reports_anamorphic_pixels(samples_dir):
    assert info_of(samples_dir / "backgrounds/mmaction2_pool_340x256.mp4")["pixel aspect"] == "1024/765 (anamorphic)"


def test_info_reports_interlacing(samples_dir, tmp_path):
    clip = tmp_path / "interlaced.mp4"
    media.write_numbered_clip(clip, "libx264", 3, options={"x264-params": "interlaced=1:tff=1"})
    assert info_of(clip)["scan"] == "interlaced, top field first (matted frame by frame)"
    assert info_of(samples_dir / SMALL)["scan"] == "progressive"


def test_info_of_missing_file_is_a_clean_error(tmp_path):
    result = vmatte("info", tmp_path / "nope.mp4")
    assert_cli_failure(result, "nope.mp4")


# --- a successful run through the real entry point ---------------------------------------------------------------

def test_shorthand_run_writes_prores_and_prints_one_line_notice(samples_dir, tmp_path):
    """``vmatte CLIP --out a.mov`` works as ``vmatte run``; the model in use is one line naming its weights."""
    out = tmp_path / "alpha.mov"
    result = vmatte_process(samples_dir / SMALL, "--out", out, "-r", "0.5", "-q")
    assert result.returncode == 0, result.stderr
    track = media.read_track(out)
    assert track.codec == "prores" and len(track.times) == 3 and (track.width, track.height) == (568, 320)
    notice = [line for line in result.stderr.splitlines() if line.strip() and "preparing the CPU graph" not in line]
    assert len(notice) == 1 and notice[0].startswith("model: rvm-mobilenetv3-onnx (rvm_mobilenetv3_fp32.onnx)"), \
        f"notice not on one line:\n{result.stderr}"
    assert media.visible_entries(tmp_path) == ["alpha.mov"]


@pytest.mark.usefixtures("weights_dir")
def test_run_on_an_xvid_avi_with_packed_b_frames(tmp_path):
    """Issue 11: an Xvid AVI with packed B-frames and MP3 audio stopped at 'corrupt frame at index 2'. Every
    frame comes out, at the times FFmpeg gives them (those of the same pictures before packing), audio kept."""
    original, clip = tmp_path / "original.avi", tmp_path / "xvid.avi"
    media.write_numbered_clip(original, "mpeg4", 12, container_format="avi", codec_tag="XVID", audio="mp3",
                              options={"bf": "2", "g": "12", "sc_threshold": "1000000000"})
    media.pack_b_frames(original, clip, "XVID")
    alpha, fgr = tmp_path / "a.mov", tmp_path / "f.mov"
    result = vmatte_process(clip, "--out", alpha, "--fgr", fgr, "-q", timeout=600)
    assert result.returncode == 0, result.stderr
    expected = media.decoded_times(original)[0]
    assert len(expected) == 12 and expected[0] == Fraction(1, 25)
    assert media.read_track(alpha).times == media.read_track(fgr).times == expected
    with av.open(str(clip)) as container:
        (source_audio,) = media.audio_spans(container)
    (audio,) = media.read_track(fgr).audio
    assert audio.duration == pytest.approx(source_audio.duration, abs=float(source_audio.packet_seconds))


# --- bad input ---------------------------------------------------------------------------------------------------

def test_missing_file_real_process(tmp_path):
    """Through the installed script, without -q: still one error line and no traceback."""
    result = vmatte_process(tmp_path / "missing.mp4", "--out", tmp_path / "alpha.mov")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "missing.mp4" in errors[0], result.stderr
    assert media.visible_entries(tmp_path) == []


@pytest.mark.parametrize("name", ["missing.mp4", "take[/b].mp4", "take[red]1.mp4"],
                         ids=["plain", "closing-tag", "style-tag"])
def test_missing_file(tmp_path, name):
    """The path is shown as given, even when it looks like console markup."""
    result = vmatte("run", tmp_path / name, "--out", tmp_path / "alpha.mov", "-q")
    assert_cli_failure(result, name)
    assert media.visible_entries(tmp_path) == []


def test_text_file_renamed_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    result = vmatte("run", fake, "--out", tmp_path / "alpha.mov", "-q")
    assert_cli_failure(result, "notes.mp4")
    assert media.visible_entries(tmp_path) == ["notes.mp4"]


def test_video_codec_without_a_decoder(samples_dir, tmp_path):
    """An AVI whose video fourcc no decoder knows (the birds clip with FMP4 renamed)."""
    data = (samples_dir / "robustness_videos/androidx_birds_23976_mpeg4_mp3.avi").read_bytes()
    clip = tmp_path / "odd.avi"
    clip.write_bytes(data.replace(b"FMP4", b"ZZZZ"))
    for command in (["info", clip], ["run", clip, "--out", tmp_path / "alpha.mov", "-q"]):
        assert_cli_failure(vmatte(*command), "odd.avi", "codec")
    assert media.visible_entries(tmp_path) == ["odd.avi"]


def test_audio_codec_without_a_decoder_is_left_out(samples_dir, tmp_path):
    """A Matroska clip whose audio codec id no decoder knows: the video is matted, the audio left out."""
    source = samples_dir / "portrait_videos/androidx_face_htc_rotation_ac3.mkv"
    clip = tmp_path / "odd.mkv"
    clip.write_bytes(source.read_bytes().replace(b"A_AC3", b"A_ZZZ", 1))
    assert info_of(clip)["audio"] == "none"
    result = vmatte("run", clip, "--fgr", tmp_path / "fgr.mov", "-r", "0.25", "-q")
    assert result.exit_code == 0, result.output
    track = media.read_track(tmp_path / "fgr.mov")
    assert track.audio == [] and len(track.times) == len(media.read_track(source).times)


def test_existing_output_needs_overwrite(samples_dir, tmp_path):
    out = tmp_path / "alpha.mov"
    out.write_bytes(b"an earlier result")
    result = vmatte("run", samples_dir / SMALL, "--out", out, "-r", "0.5", "-q")
    assert_cli_failure(result, "alpha.mov", "--overwrite")
    assert out.read_bytes() == b"an earlier result"
    assert media.visible_entries(tmp_path) == ["alpha.mov"]
    result = vmatte("run", samples_dir / SMALL, "--out", out, "-r", "0.5", "-q", "--overwrite")
    assert result.exit_code == 0, result.output
    track = media.read_track(out)
    assert track.codec == "prores" and len(track.times) == 3
    assert media.visible_entries(tmp_path) == ["alpha.mov"]


@pytest.mark.parametrize("target", ["alpha.mov", "alpha/"], ids=["mov", "png"])
def test_unwritable_output_folder(samples_dir, tmp_path, target):
    """The output's parent is a regular file (chmod would not stop root)."""
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = vmatte("run", samples_dir / SMALL, "--out", f"{blocker}/{target}", "-r", "0.5", "-q")
    assert_cli_failure(result, "afile")
    assert media.visible_entries(tmp_path) == ["afile"] and blocker.read_text() == "x"


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--model", "nope"], ["nope"]),
        (["--png-depth", "12"], ["12"]),
        (["--downsample-ratio", "0"], ["0"]),
        (["--downsample-ratio", "abc"], ["abc"]),
        (["--device", "cuda"], ["cuda"]),
    ],
    ids=["unknown-model", "png-depth-12", "ratio-0", "ratio-abc", "device-cuda"],
)
def test_bad_option(samples_dir, tmp_path, args, needles):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a CUDA device is present here")
    result = vmatte("run", samples_dir / SMALL, "--out", tmp_path / "alpha.mov", *args, "-q")
    assert_cli_failure(result, *needles)
    assert media.visible_entries(tmp_path) == []


def test_no_outputs_given_writes_the_matte_beside_the_clip(samples_dir, tmp_path):
    """The default the help states: CLIP.alpha.mov beside the clip (a second run finds it finished)."""
    (tmp_path / "take.mov").symlink_to(samples_dir / SMALL)
    result = vmatte("run", tmp_path / "take.mov", "-r", "0.5", "-q")
    assert result.exit_code == 0, result.output
    assert media.visible_entries(tmp_path) == ["take.alpha.mov", "take.mov"]
    assert len(media.read_track(tmp_path / "take.alpha.mov").times) == 3
    assert_cli_failure(vmatte("run", tmp_path / "take.mov", "-r", "0.5", "-q"), "take.alpha.mov", "--overwrite")


@pytest.mark.parametrize("option, name", [("--out", "x.mp4"), ("--fgr", "x.mp4"), ("--out", "x.avi")],
                         ids=["alpha-mp4", "fgr-mp4", "alpha-avi"])
def test_unsupported_output_is_refused_before_any_work(samples_dir, tmp_path, option, name):
    """Refused up front, naming the path as given: no work folder, no model loaded, no progress bar."""
    result = vmatte("run", samples_dir / SMALL, option, tmp_path / name, "-r", "0.5")
    assert_cli_failure(result, f"{tmp_path / name}:", "supported")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("output", ["clip.mov", "frames/", "frames/%04d.png"], ids=["mov", "png-folder", "pattern"])
def test_output_over_its_own_input_is_refused(samples_dir, tmp_path, output):
    (tmp_path / "frames").mkdir()
    for index in range(2):
        (tmp_path / "frames" / f"{index:04d}.png").write_bytes(
            (samples_dir / "portrait_images/skimage_astronaut.png").read_bytes())
    source = tmp_path / ("clip.mov" if output == "clip.mov" else "frames")
    if output == "clip.mov":
        source.write_bytes((samples_dir / SMALL).read_bytes())
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = vmatte("run", source, "--out", tmp_path / output, "--overwrite", "-q")
    assert_cli_failure(result, "own input")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_damaged_weight_file_is_one_short_line(samples_dir, tmp_path):
    weights = tmp_path / "rvm_mobilenetv3.pth"
    weights.write_bytes(b"PK\x03\x04 half a download")
    result = vmatte("run", samples_dir / SMALL, "--out", tmp_path / "alpha.mov", "--weights", weights, "-q")
    assert_cli_failure(result, "rvm_mobilenetv3.pth", "not a readable PyTorch weight file")
    assert len(result.stderr.strip()) < 200, result.stderr


def test_corrupt_clip_midway(samples_dir, tmp_path):
    """Fails at the damaged frame (index 30, 3.000 s) after 30 good ones: no output, only the work folder."""
    out = tmp_path / "alpha.mov"
    result = vmatte("run", samples_dir / CORRUPT, "--out", out, "--fgr", f"{tmp_path}/fgr/", "-r", "0.125", "-q")
    assert_cli_failure(result, "index 30", "t=3.000 s")
    assert not out.exists() and not (tmp_path / "fgr").exists()
    assert media.visible_entries(tmp_path) == []
    assert set(p.name for p in tmp_path.iterdir()) <= {".alpha.mov.vmatte", ".fgr.vmatte"}


def test_models_lists_every_known_model_and_where_it_is(weights_dir, monkeypatch):
    from vmatte.models.weights import MODELS

    monkeypatch.setenv("VMATTE_WEIGHTS", str(weights_dir))
    result = vmatte("models")
    assert result.exit_code == 0, result.output
    for name in MODELS:
        assert name in result.stdout
    assert str(weights_dir / "rvm_mobilenetv3_tfjs_int8") in result.stdout
    assert "vmatte models pull rvm-resnet50" in result.stdout
    assert f"the default (rvm-mobilenetv3) runs rvm-mobilenetv3-onnx: {weights_dir / 'rvm_mobilenetv3_fp32.onnx'}" \
        in result.stdout


def test_models_pull_offline_says_what_to_do(tmp_path, monkeypatch):
    from vmatte.models.weights import MODELS

    monkeypatch.setenv("VMATTE_HOME", str(tmp_path))
    monkeypatch.setenv("VMATTE_OFFLINE", "1")
    result = vmatte("models", "pull", "rvm-resnet50")
    assert_clean_failure(result.exit_code, result.stdout, result.stderr, result.exception,
                         MODELS["rvm-resnet50"].url, str(tmp_path))
    unknown = vmatte("models", "pull", "rvm-tiny")
    assert_clean_failure(unknown.exit_code, unknown.stdout, unknown.stderr, unknown.exception, "unknown model")


ENDS_AT_ONCE = """import atexit, sys
from vmatte.__main__ import exit_at_once
atexit.register(lambda: print("handler ran"))
print("written", end=" ")
exit_at_once(int(sys.argv[1]) if sys.argv[1].isdigit() else sys.argv[1])
"""


@pytest.mark.parametrize("code, returncode, stderr", [("0", 0, ""), ("3", 3, ""), ("stopped", 1, "stopped\n")])
def test_the_program_ends_after_its_exit_handlers_with_its_code(code, returncode, stderr):
    """The command skips the interpreter's teardown (0.5-0.8 s with PyTorch loaded), not what exit does for it."""
    result = subprocess.run([sys.executable, "-c", ENDS_AT_ONCE, code], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (returncode, "written handler ran\n", stderr)


def test_output_into_a_closed_pipe_ends_quietly(samples_dir):
    """`vmatte info clip | head -1`: the reader goes away; no error line, the shell's SIGPIPE status."""
    process = subprocess.Popen(["vmatte", "info", str(samples_dir / SMALL)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # before vmatte writes: its first line meets a closed pipe
    _, stderr = process.communicate(timeout=120)
    assert (process.returncode, stderr) == (141, b"")
