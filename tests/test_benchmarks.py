"""Every benchmark command the README and the docs/ pages show, run as it is shown but small.

The commands are read from README.md and docs/*.md (code blocks and inline code alike): each
``python benchmarks/...`` with its experiments and flags, ``[--flag]`` given, so a benchmark that no longer runs,
or no longer takes the options the page gives it, fails here. Only the flags that set how much work a run does
are made small (sizes, frame counts, rounds, durations), so each takes seconds instead of minutes. The earlier
checkout the comparisons run against is made as the README makes it (its ``git worktree add`` line), in a clone
of this repository. The README's figures come from the full commands; no test times anything."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import media
import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = "\n".join(path.read_text() for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
COMMAND = re.compile(r"python (benchmarks/\w+\.py)([^`\n]*)")
# Values the README gives that would make a run long or need a setup -> small ones in their place.
IN_PLACE = {"--sweep-sizes": "160x90,320x180", "--long-sides": "96,128,160", "--long-minutes": "0.05",
            "--rounds": "1"}
# Appended to each script's command (the last value of a flag wins): how much work a run does, made small.
# quality.py needs 30 frames per clip (15 on each side of its cut).
ADDED = {"benchmarks/quality.py": ["--frames", "30", "--size", "160x90"],
         # 5 frames a clip: compare runs vmatte 12 times at sizes up to 1080p, which took 600 s on a loaded machine
         "benchmarks/throughput.py": ["--seconds", "0.2"],
         "benchmarks/model_speed.py": ["--heights", "540", "--frames", "4"],
         "benchmarks/stages.py": ["--frames", "2"],
         "benchmarks/encoders.py": ["--frames", "2"],
         "benchmarks/openvino_precision.py": ["--frames", "2", "--rounds", "1"],
         "benchmarks/cluster.py": ["--clips", "2", "--frames", "4", "--size", "160x90"],
         "benchmarks/ranges.py": ["--clips", "robustness_videos/mmaction2_basketball_2997_426x240.mp4", "--starts",
                                  "8", "--length", "5", "--width", "96", "--warmups", "preroll:4,replay:cut"],
         "benchmarks/onnxruntime_loop.py": ["--heights", "540", "--frames", "4", "--rounds", "1"],
         "benchmarks/first_error.py": ["--rounds", "1"],
         "benchmarks/startup.py": ["--rounds", "1", "--size", "160x90"],
         "benchmarks/graph_build.py": ["--sizes", "160x90,90x160", "--frames", "1", "--batch-frames", "2"]}


BASELINE = re.compile(r"^git worktree add (\S+) ([0-9a-f]{7,40})$", re.MULTILINE)


def made_small(script: str, args: list[str], clip: Path, baseline: Path) -> list[str]:
    """The README's arguments with the baseline checkout, the clip and the work made small."""
    in_place = {**IN_PLACE, "--baseline": str(baseline), "--clip": str(clip)}
    out = [in_place.get(previous, arg) if not arg.startswith("--") else arg
           for previous, arg in zip(["", *args], args)]
    return out + ADDED[script]


# Benchmarks whose page's test runs them, read from that page (tests/test_review.py for docs/review.md).
RUN_ELSEWHERE = {"benchmarks/preview.py": "test_review.py", "benchmarks/chatter.py": "test_review.py"}


def readme_benchmark_commands() -> list[tuple[str, list[str]]]:
    """(script, arguments) of each command; commands that differ only in what ``made_small`` replaces (the same
    experiments at two sizes) run once."""
    commands, seen = [], set()
    for script, rest in COMMAND.findall(DOCS):
        if script in RUN_ELSEWHERE:
            continue
        args = shlex.split(re.sub(r"\[(--[^\]]+)\]", r"\1", rest.strip()))
        small = (script, *made_small(script, args, Path("CLIP"), Path("BASE")))
        if small not in seen:
            seen.add(small)
            commands.append((script, args))
    return commands


@pytest.fixture
def scratch():
    """The run's temporary files (generated clips, compiled graphs) in a folder removed afterwards; a short path
    directly in the system's temporary folder, since Ray's socket paths under it must fit in 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="vb-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


COMMANDS = readme_benchmark_commands()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """The README's baseline checkout, made by its own command in a clone of this repository (the README's
    path replaced by a temporary one)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the baseline commit is not here")
    lines = set(BASELINE.findall(DOCS))
    assert len(lines) == 1, f"the README names one baseline checkout: {lines}"
    ((path, commit),) = lines
    assert set(re.findall(r"--baseline (\S+)", DOCS)) == {path}, "the comparisons run against that checkout"
    folder = tmp_path_factory.mktemp("baseline")
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO), str(folder / "clone")], check=True)
    subprocess.run(["git", "worktree", "add", "-q", str(folder / "base"), commit], cwd=folder / "clone", check=True)
    return folder / "base"


def test_the_readme_shows_every_benchmark():
    shown = {script for script, _ in COMMANDS} | set(RUN_ELSEWHERE)
    for script, test in RUN_ELSEWHERE.items():
        assert f"python {script}" in (REPO / "tests" / test).read_text(), f"{test} does not run {script}"
    scripts = {f"benchmarks/{path.name}" for path in (REPO / "benchmarks").glob("*.py")}
    assert scripts - shown == {"benchmarks/blur_fusion.py"}  # a module of quality.py's, not a benchmark


@pytest.mark.parametrize("script, args", COMMANDS, ids=[shlex.join([script, *args]) for script, args in COMMANDS])
def test_readme_benchmark_command_runs(script, args, samples_dir, scratch, baseline):
    clip = samples_dir / "robustness_videos/decord_rot0.mov"
    command = [sys.executable, script, *made_small(script, args, clip, baseline)]
    env = {**os.environ, **media.offline_env(), "VMATTE_HOME": str(scratch / "home"), "TMPDIR": str(scratch)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{shlex.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    assert re.search(r"\d\.\d", result.stdout), result.stdout  # it printed figures
