"""Every ``vmatte`` command the README and the pages in docs/ show, run with the same arguments on sample footage.

The commands are read from the files themselves (every line of their ```bash blocks that starts with ``vmatte``),
so a command edited there is the command tested here. Their placeholders (``clip.mp4``, ``clip.mov``,
``camera.mov``, ``photo.jpg``, ``frames/``, ``plates/``, ``footage/``, ``pred/``, ``gt/``) are made from real
sample footage; ``[--flag]`` (an optional flag) is run with the flag given. The README's Use block runs top to
bottom in one folder, as a reader would type it; each docs command runs in a fresh folder of its own. Pages whose
commands need inputs of their own (an edit to pull from, a report to open) are run by their own tests, named in
``OWN_TESTS``. Benchmark commands (``python benchmarks/...``) run in tests/test_benchmarks.py.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import replace
from pathlib import Path

import av
import cv2
import media
import numpy as np
import pytest
from typer.testing import CliRunner

from vmatte.cli import app, with_command
from vmatte.models.weights import MODELS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
DOCS = sorted((REPO / "docs").glob("*.md"))
# Pages whose commands a test of their own runs (it reads them from the page, as this file does).
OWN_TESTS = {"pulls.md": "test_pull.py", "review.md": "test_review.py", "robustness.md": "test_robustness.py"}
SMALL = "robustness_videos/decord_rot0.mov"  # 3 frames, 568x320
CAMERA = "robustness_videos/mmaction2_basketball_2997_426x240.mp4"  # 110 frames of it, with a timecode track
OUTPUT_OPTIONS = ("--out", "--fgr", "--comp", "--out-dir", "--csv", "--plot")
SUBCOMMANDS = ("run", "info", "models", "presets", "eval", "pull", "preview")


def code_block_after(heading: str) -> str:
    """The first ```bash block after ``heading``."""
    return re.search(r"```bash\n(.*?)```", README[README.index(heading):], re.S).group(1)


def bash_blocks(text: str) -> str:
    return "\n".join(re.findall(r"```bash\n(.*?)```", text, re.S))


def vmatte_commands(block: str) -> list[list[str]]:
    """Each ``vmatte ...`` line of a code block as arguments, without its comment; ``[--flag]`` given."""
    commands = []
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line.strip())
        if line.startswith("vmatte "):
            commands.append(shlex.split(re.sub(r"\[(--[^\]]+)\]", r"\1", line))[1:])
    return commands


def run(args: list[str]):
    result = CliRunner().invoke(app, with_command(args))
    assert result.exit_code == 0, f"vmatte {shlex.join(args)}\n{result.output}"
    assert "Traceback" not in result.output
    return result


def assert_outputs_written(args: list[str], cwd: Path) -> None:
    for option, value in zip(args, args[1:]):
        if option in OUTPUT_OPTIONS:
            target = cwd / value.split("%")[0]
            assert target.exists() and (target.is_file() or any(target.iterdir())), f"{option} {value}: nothing"


def test_the_first_command_mattes_the_shipped_sample(tmp_path, monkeypatch, weights_dir):
    install_and_run = code_block_after("# vmatte").splitlines()[1]
    environment, command = re.search(r"&& (\w+=\S+) vmatte (.*)$", install_and_run).groups()
    name, value = environment.split("=", 1)
    monkeypatch.setenv(name, str((REPO / value).resolve()))  # as given, from the repo root
    monkeypatch.setenv("VMATTE_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    args = shlex.split(command)
    sample = REPO / args[0]
    assert sample.is_file() and sample.stat().st_size <= 1 << 20, "the shipped sample is missing or over 1 MB"
    args[0] = str(sample)
    run(args)
    assert_outputs_written(args, tmp_path)
    assert len(media.read_track(tmp_path / "fgr.mov").times) == 30 and media.read_track(tmp_path / "fgr.mov").audio


def make_placeholders(folder: Path, samples_dir: Path) -> None:
    """Every input the commands name, made from sample footage in ``folder``."""
    small = samples_dir / SMALL
    media.write_timecoded_clip(folder / "camera.mov", samples_dir / CAMERA, 110, "01:00:10:05")
    (folder / "clip.mp4").symlink_to(folder / "camera.mov")  # long enough for the ranges the commands take
    (folder / "clip.mov").symlink_to(small)
    (folder / "photo.jpg").symlink_to(samples_dir / "portrait_images/matplotlib_grace_hopper.jpg")
    with av.open(str(small)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    media.write_png_sequence(frames, folder / "frames")
    media.write_png_sequence(frames, folder / "plates")
    (folder / "footage/day2").mkdir(parents=True)
    (folder / "footage/take1.mov").symlink_to(small)
    (folder / "footage/day2/take2.mov").symlink_to(samples_dir / "robustness_videos/decord_rot90.mov")
    alpha = cv2.imread(str(samples_dir / "image_alpha_pseudogt_p3m/p_0865636e.alpha.png"), cv2.IMREAD_GRAYSCALE)
    for name, blur in (("gt", 1), ("pred", 9)):
        (folder / name).mkdir()
        for t in range(3):
            shifted = np.roll(cv2.resize(alpha, (320, 214)), 4 * t, axis=1)
            cv2.imwrite(str(folder / name / f"{t:06d}.png"), cv2.blur(shifted, (blur, blur)))


@pytest.fixture(scope="module")
def inputs(samples_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    make_placeholders(folder, samples_dir)
    return folder


def fresh_folder(inputs: Path, folder: Path) -> Path:
    """A folder holding (links to) every placeholder input, and nothing else."""
    folder.mkdir(exist_ok=True)
    for entry in inputs.iterdir():
        (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture()
def placeholders(inputs, tmp_path, monkeypatch) -> Path:
    """A scratch folder holding every input the commands name; 'vmatte models pull' served from a local file."""
    fresh_folder(inputs, tmp_path)
    # 'vmatte models pull' fetches through the real download code, from a local file:// URL (no network).
    served = tmp_path / "served" / "rvm_resnet50.pth"
    served.parent.mkdir()
    served.write_bytes(b"stand-in for the release file" * 100)
    monkeypatch.setitem(MODELS, "rvm-resnet50", replace(
        MODELS["rvm-resnet50"], url=served.as_uri(), sha256=hashlib.sha256(served.read_bytes()).hexdigest()))
    monkeypatch.setenv("VMATTE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_documented(args: list[str], folder: Path, monkeypatch) -> None:
    """One documented command, as a reader would run it in ``folder``, and what it promises to write."""
    pull = args[:2] == ["models", "pull"]
    if pull:  # served from a local file:// URL (the placeholders fixture), through the real download code
        monkeypatch.delenv("VMATTE_OFFLINE")
    result = run(args)
    assert_outputs_written(args, folder)
    if pull:
        assert (folder / "home" / "rvm_resnet50.pth").is_file(), result.output
        monkeypatch.setenv("VMATTE_OFFLINE", "1")
    if args[0] not in SUBCOMMANDS and not set(args) & set(OUTPUT_OPTIONS) and "--preset" not in args:
        default = folder / f"{Path(args[0]).stem}.alpha.mov"
        assert default.is_file(), f"vmatte {shlex.join(args)}: no {default.name} (the default output)"


def test_every_command_of_the_use_block_runs(placeholders, monkeypatch):
    """Top to bottom in one folder, as a reader types them: no command collides with an earlier one's output."""
    commands = vmatte_commands(code_block_after("## Use"))
    assert len(commands) >= 12, commands
    for args in commands:
        run_documented(args, placeholders, monkeypatch)


DOC_PAGES = [page for page in DOCS if page.name not in OWN_TESTS and vmatte_commands(bash_blocks(page.read_text()))]


def test_pages_with_commands_of_their_own_are_run_by_their_tests():
    for page, test in OWN_TESTS.items():
        assert vmatte_commands(bash_blocks((REPO / "docs" / page).read_text())), f"{page} shows no command"
        assert f"docs/{page}" in (REPO / "tests" / test).read_text(), f"{test} does not read docs/{page}"


@pytest.mark.parametrize("page", DOC_PAGES, ids=[page.name for page in DOC_PAGES])
def test_every_docs_command_runs(page, placeholders, monkeypatch):
    """Each page's commands top to bottom in one folder, as the README's."""
    for args in vmatte_commands(bash_blocks(page.read_text())):
        run_documented(args, placeholders, monkeypatch)


def test_the_readme_picture_is_what_its_command_makes(tmp_path, weights_dir, monkeypatch):
    """The picture's caption gives the command that made it; run from the repo root (output redirected), it
    makes a sheet of the same size."""
    command = re.search(r"`(vmatte preview [^`]+)`", " ".join(README.split())).group(1)
    args = shlex.split(command)[1:]
    picture = REPO / args[args.index("--out") + 1]
    args[args.index("--out") + 1] = str(tmp_path / "preview.png")
    monkeypatch.chdir(REPO)
    run(args)
    made, committed = (cv2.imread(str(path)) for path in (tmp_path / "preview.png", picture))
    assert made is not None and committed is not None and made.shape == committed.shape
    assert picture.stat().st_size < 1 << 20
