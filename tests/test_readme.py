"""Every command the README shows, run with the same arguments on sample footage.

The commands are read from README.md itself (the run in its first code block, and each line of its "Use"
block), so a command edited there is the command tested here. The Use block's placeholders (``clip.mp4``,
``photo.jpg``, ``frames/``, ``plates/``, ``footage/``, ``pred/``, ``gt/``) are made from real sample footage in
a scratch folder the commands run in; ``[--flag]`` (an optional flag) is run with the flag given.
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
SMALL = "robustness_videos/decord_rot0.mov"  # 3 frames, 568x320
OUTPUT_OPTIONS = ("--out", "--fgr", "--comp", "--out-dir", "--csv", "--plot")


def code_block_after(heading: str) -> str:
    """The first ```bash block after ``heading``."""
    return re.search(r"```bash\n(.*?)```", README[README.index(heading):], re.S).group(1)


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


@pytest.fixture()
def placeholders(tmp_path, samples_dir, monkeypatch) -> Path:
    """A scratch folder holding every input the Use block names, made from sample footage."""
    small = samples_dir / SMALL
    (tmp_path / "clip.mp4").symlink_to(small)
    (tmp_path / "photo.jpg").symlink_to(samples_dir / "portrait_images/matplotlib_grace_hopper.jpg")
    with av.open(str(small)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    media.write_png_sequence(frames, tmp_path / "frames")
    media.write_png_sequence(frames, tmp_path / "plates")
    (tmp_path / "footage/day2").mkdir(parents=True)
    (tmp_path / "footage/take1.mov").symlink_to(small)
    (tmp_path / "footage/day2/take2.mov").symlink_to(samples_dir / "robustness_videos/decord_rot90.mov")
    alpha = cv2.imread(str(samples_dir / "image_alpha_pseudogt_p3m/p_0865636e.alpha.png"), cv2.IMREAD_GRAYSCALE)
    for folder, blur in (("gt", 1), ("pred", 9)):
        (tmp_path / folder).mkdir()
        for t in range(3):
            shifted = np.roll(cv2.resize(alpha, (320, 214)), 4 * t, axis=1)
            cv2.imwrite(str(tmp_path / folder / f"{t:06d}.png"), cv2.blur(shifted, (blur, blur)))
    # 'vmatte models pull' fetches through the real download code, from a local file:// URL (no network).
    served = tmp_path / "served" / "rvm_resnet50.pth"
    served.parent.mkdir()
    served.write_bytes(b"stand-in for the release file" * 100)
    monkeypatch.setitem(MODELS, "rvm-resnet50", replace(
        MODELS["rvm-resnet50"], url=served.as_uri(), sha256=hashlib.sha256(served.read_bytes()).hexdigest()))
    monkeypatch.setenv("VMATTE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_command_of_the_use_block_runs(placeholders, monkeypatch):
    commands = vmatte_commands(code_block_after("## Use"))
    assert len(commands) >= 12, commands
    for args in commands:
        if args[:2] == ["models", "pull"]:
            monkeypatch.delenv("VMATTE_OFFLINE")
        result = run(args)
        assert_outputs_written(args, placeholders)
        if args[:2] == ["models", "pull"]:
            assert (placeholders / "home" / "rvm_resnet50.pth").is_file(), result.output
            monkeypatch.setenv("VMATTE_OFFLINE", "1")
