"""Quality levels and the ensemble engine: merges, mirror passes and their separate states (on a stand-in model,
so the numbers are known exactly), blur-fusion foregrounds, and --quality best through the command line."""

import sys
from pathlib import Path

import cv2
import media
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vmatte import ensemble
from vmatte.cli import app
from vmatte.ensemble import EnsembleEngine, for_quality, merge_mattes
from vmatte.errors import VmatteError
from vmatte.io import SourceFrame
from vmatte.models.matting_network import MattingOutput
from vmatte.settings import QUALITIES, Ensemble, Pass, TemporalOptions, quality_level
from vmatte.temporal import Boundary, MattedFrame, MattingStream, matted_frames

SMALL = "robustness_videos/decord_rot0.mov"  # 3 frames, 568x320


class StandIn:
    """A recurrent 'model' whose outputs are known: alpha is a left-to-right ramp (0 to ``slope``) plus ``gain``
    times the red channel, the foreground is the picture, and the state counts the frames seen (one tensor per call's
    ``marker``, so each pass's state can be told apart)."""

    recurrent = True
    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, gain: float = 0.0, slope: float = 1.0):
        self.gain = gain
        self.slope = slope
        self.calls = []

    def settings(self) -> dict:
        return {"model": "stand-in"}

    def run(self, frames, state, downsample_ratio, need_fgr=True):
        self.calls.append((None if state is None else [s.clone() for s in state], downsample_ratio))
        t, _, h, w = frames.shape
        ramp = torch.linspace(0, self.slope, w).expand(t, 1, h, w)
        seen = torch.zeros(1) if state is None else state[0]
        pha = (ramp + self.gain * frames[:, :1] + 1e-3 * seen).clamp(0, 1)
        return MattingOutput(frames[None] if need_fgr else None, pha[None], [seen + t, frames[:, 0, 0, :1].mean(0)])


def test_merges():
    a, b, c = torch.tensor([0.0, 0.2, 1.0]), torch.tensor([1.0, 0.4, 1.0]), torch.tensor([0.5, 0.9, 0.0])
    assert torch.allclose(merge_mattes([a, b], "mean"), torch.tensor([0.5, 0.3, 1.0]))
    assert torch.allclose(merge_mattes([a, b], "median"), merge_mattes([a, b], "mean"))  # median of two: mean
    assert torch.allclose(merge_mattes([a, b, c], "median"), torch.tensor([0.5, 0.4, 1.0]))
    d = torch.tensor([0.1, 0.3, 0.6])
    assert torch.allclose(merge_mattes([a, b, c, d], "median"), torch.tensor([0.3, 0.35, 0.8]))
    # Confidence: the pass further from 0.5 weighs more (0.2 is surer than 0.4).
    confident = merge_mattes([a, b], "confidence")
    assert 0.2 < confident[1] < 0.3 and torch.isclose(confident[2], torch.tensor(1.0))
    assert torch.equal(merge_mattes([a], "confidence"), a)


def test_mirror_pass_is_flipped_back_and_merged():
    frames = torch.rand(3, 3, 4, 6)
    engine = EnsembleEngine(StandIn(), Ensemble((Pass(), Pass(mirror=True))))
    out = engine.run(frames, None, 1.0, need_fgr=True)
    # A ramp is not mirror-symmetric: flipped back, the mirror pass sees the opposite ramp, so the mean is 0.5.
    assert torch.allclose(out.pha, torch.full_like(out.pha, 0.5))
    assert torch.equal(out.fgr, frames[None])  # each pass's foreground flipped back: the picture again
    # A model that only follows the picture (no ramp) gives the same matte on both passes.
    follow = EnsembleEngine(StandIn(gain=1.0), Ensemble((Pass(), Pass(mirror=True))))
    plain = StandIn(gain=1.0).run(frames, None, 1.0)
    ramp = torch.linspace(0, 1, 6).expand(3, 1, 4, 6)
    expected = ((ramp + frames[:, :1]).clamp(0, 1) + (ramp.flip(-1) + frames[:, :1]).clamp(0, 1)) / 2
    assert torch.allclose(follow.run(frames, None, 1.0).pha, expected[None]) and plain.pha.shape == expected[None].shape


def test_shifted_pass_sees_a_mirrored_margin_and_is_cropped_back():
    frames = torch.rand(2, 3, 10, 12)
    engine = EnsembleEngine(StandIn(gain=1.0), Ensemble((Pass(shift=2),)))
    out = engine.run(frames, None, 0.5)  # 2 px at the working size: 4 px of the clip
    assert torch.equal(out.fgr, frames[None])  # the picture the model saw, cropped back: the clip's own
    ramp = torch.linspace(0, 1, 16)[4:].expand(2, 1, 10, 12)  # the model saw a picture 4 px wider
    assert torch.allclose(out.pha, (ramp + frames[:, :1]).clamp(0, 1)[None])
    grown = ensemble._mirrored_margin((frames * 255).to(torch.uint8), 4)
    assert torch.equal(grown, torch.nn.functional.pad(frames * 255, (4, 0, 4, 0), mode="reflect").to(torch.uint8))


def test_each_pass_keeps_its_own_state_and_scale():
    stand_in = StandIn()
    engine = EnsembleEngine(stand_in, Ensemble((Pass(), Pass(mirror=True), Pass(ratio_scale=0.5))))
    frames = torch.rand(2, 3, 4, 6)
    first = engine.run(frames, None, 0.8, need_fgr=False)
    assert len(first.state) == 6 and first.fgr is None
    assert [ratio for _, ratio in stand_in.calls] == [0.8, 0.8, 0.4]
    stand_in.calls.clear()
    engine.run(frames, first.state, 0.8)
    passed = [state for state, _ in stand_in.calls]
    assert [s[0].item() for s in passed] == [2, 2, 2]
    # The mirror pass gets the state it made (from the flipped picture's first column), not the plain pass's.
    assert torch.equal(passed[0][1], frames[:, 0, 0, :1].mean(0))
    assert torch.equal(passed[1][1], frames.flip(-1)[:, 0, 0, :1].mean(0))


def test_stream_resets_every_pass_at_a_cut():
    """Through MattingStream: pre-roll and a cut start every pass's state afresh."""
    engine = EnsembleEngine(StandIn(), Ensemble((Pass(), Pass(mirror=True))))
    dark, bright = np.zeros((8, 12, 3), np.uint8), np.full((8, 12, 3), 255, np.uint8)
    frames = [dark] * 4 + [bright] * 4  # a hard cut at frame 4
    matted = list(matted_frames(engine, frames, 1.0, TemporalOptions(preroll=2, cuts=True), chunk=2))
    assert [m.index for m in matted] == list(range(8))
    # Per shot: pre-roll (both passes fresh), then two chunks carrying each pass's state.
    seen = [None if state is None else state[0].item() for state, _ in engine.engine.calls]
    assert seen == [None, None, 2, 2, 4, 4] * 2


def test_stream_saves_and_restores_every_pass():
    ensemble = Ensemble((Pass(), Pass(mirror=True)))
    frames = [SourceFrame(i, i, 0.0, np.random.default_rng(i).integers(0, 256, (8, 12, 3), np.uint8))
              for i in range(8)]
    options = TemporalOptions(preroll=2, cuts=False)
    whole = MattingStream(EnsembleEngine(StandIn(), ensemble), 1.0, options, chunk=2, boundary_every=4)
    expected = [m for m in whole.push(frames) + whole.finish() if isinstance(m, MattedFrame)]
    first = MattingStream(EnsembleEngine(StandIn(), ensemble), 1.0, options, chunk=2, boundary_every=4)
    boundary = next(m for m in first.push(frames[:4]) if isinstance(m, Boundary))
    assert len(boundary.saved["state"]) == 4  # both passes' two tensors
    resumed = MattingStream(EnsembleEngine(StandIn(), ensemble), 1.0, options, chunk=2, boundary_every=4)
    resumed.restore(boundary.next_frame, boundary.saved)
    rest = [m for m in resumed.push(frames[4:]) + resumed.finish() if isinstance(m, MattedFrame)]
    assert len(rest) == 4
    for a, b in zip(expected[4:], rest):
        assert np.array_equal(a.pha, b.pha) and np.array_equal(a.fgr, b.fgr)


def test_plain_ensemble_is_the_engine_itself():
    stand_in = StandIn()
    assert for_quality(stand_in, QUALITIES["standard"].ensemble) is stand_in
    assert for_quality(stand_in, QUALITIES["fast"].ensemble) is stand_in
    best = for_quality(stand_in, QUALITIES["best"].ensemble)
    assert isinstance(best, EnsembleEngine) and best.recurrent and best.device == stand_in.device
    assert best.settings()["passes"] == ["plain", "mirror", "plain@1.25 region x2"]
    assert best.settings()["model"] == "stand-in"
    assert best.settings()["merge"] == "median"


def test_a_pass_that_comes_out_the_same_runs_once():
    """On a close-up best's region pass covers the whole frame at 1.25x the ratio; capped at the clip's own size it
    would be the plain pass again: it runs once, the region pass takes its result and state, and the merge is over
    the others (median of two: the mean)."""
    stand_in = StandIn()
    best = EnsembleEngine(stand_in, QUALITIES["best"].ensemble)
    frames = torch.rand(2, 3, 4, 6)  # the stand-in's ramp covers the frame: the subject is everywhere
    out = best.run(frames, None, 1.0)
    assert [ratio for _, ratio in stand_in.calls] == [1.0, 1.0] and len(out.state) == 7  # 3 passes, the window
    assert torch.allclose(out.pha, torch.full_like(out.pha, 0.5))  # plain and mirror ramps averaged
    assert all(a is b for a, b in zip(out.state[4:6], out.state[:2]))
    stand_in.calls.clear()
    out = best.run(frames, None, 0.5)
    assert [ratio for _, ratio in stand_in.calls] == [0.5, 0.5, 0.625] and len(out.state) == 7
    # Plain and larger pass see the ramp, the mirror pass its reverse: the median is the ramp, not the mean 0.5.
    assert torch.allclose(out.pha, torch.linspace(0, 1, 6).expand(1, 2, 1, 4, 6))


def test_quality_levels():
    assert quality_level("fast").auto_ratio(540, 960) == pytest.approx(0.4)  # 384 px long side
    assert quality_level("fast").refiner == "fast_guided_filter"
    assert quality_level("standard").auto_ratio(540, 960) == pytest.approx(640 / 960)
    assert quality_level("best").auto_ratio(200, 300) == 1.0  # never upsampled
    with pytest.raises(VmatteError, match="choose fast, standard, best"):
        quality_level("ultra")


def test_blur_fusion_recovers_foreground_colour_at_soft_edges():
    """The quality benchmark's blur-fusion baseline (benchmarks/blur_fusion.py) is right on a synthetic edge."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from blur_fusion import estimate_foreground

    """A red person with a soft edge over a green-blue background: the picture at the edge is a mix; the
    estimate takes the background out of it, and leaves the picture alone where alpha is 1."""
    height, width = 60, 80
    alpha = np.clip((np.arange(width, dtype=np.float32) - 30) / 4, 0, 1)[None].repeat(height, 0)
    foreground = np.zeros((height, width, 3), np.float32)
    foreground[..., 0] = 0.9
    background = np.zeros_like(foreground)
    background[..., 1:] = cv2.resize(np.linspace(0.3, 0.8, 8, dtype=np.float32)[None], (width, height))[..., None]
    image = alpha[..., None] * foreground + (1 - alpha[..., None]) * background
    estimated = estimate_foreground(image, alpha)
    edge = (alpha > 0.1) & (alpha < 0.9)
    before = np.abs(image[edge] - foreground[edge]).mean()
    after = np.abs(estimated[edge] - foreground[edge]).mean()
    assert after < before / 10, (before, after)
    assert np.allclose(estimated[alpha == 1], image[alpha == 1], atol=1e-6)
    assert estimated.dtype == np.float32 and estimated.min() >= 0 and estimated.max() <= 1


def test_quality_best_through_the_command_line(samples_dir, tmp_path, monkeypatch):
    """The README's command (on the first frames of a webcam portrait): a matte and a foreground; unlike
    standard's."""
    monkeypatch.chdir(tmp_path)
    clip = samples_dir / "portrait_videos/androidx_webcam_face_640x428.mov"
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(clip), "--quality", "best", "--out", "alpha.mov", "--fgr", "fgr.mov",
                                 "--end", "3"])
    assert result.exit_code == 0, result.output
    standard = runner.invoke(app, ["run", str(clip), "--out", "standard.mov", "--end", "3", "-q"])
    assert standard.exit_code == 0, standard.output
    best, plain = media.read_track(tmp_path / "alpha.mov"), media.read_track(tmp_path / "standard.mov")
    assert len(best.times) == 3 and (best.width, best.height) == (640, 428)
    assert media.matte_from_prores(tmp_path / "standard.mov").mean() > 0.1  # a person is there
    assert media.read_track(tmp_path / "fgr.mov").codec == "prores"
    assert sorted(media.visible_entries(tmp_path)) == ["alpha.mov", "fgr.mov", "standard.mov"]
    assert best.times == plain.times
    difference = np.abs(media.matte_from_prores(tmp_path / "alpha.mov") - media.matte_from_prores(
        tmp_path / "standard.mov"))
    assert 0 < difference.mean() < 0.02  # the mirror pass moves the matte a little, not wholesale


def test_bad_quality_is_one_clear_error(samples_dir, tmp_path):
    result = CliRunner().invoke(app, ["run", str(samples_dir / SMALL), "--quality", "ultra", "--out",
                                      str(tmp_path / "a.mov")])
    assert result.exit_code != 0 and "--quality ultra: choose fast, standard, best" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "a.mov").exists()
