"""Quality levels: ``--quality fast|standard|best``, and the ensemble of model passes behind ``best``.

An ensemble runs the model more than once on every chunk, each pass on a transformed picture (its mirror
image, another internal size, the picture shifted, or the subject's region enlarged: ``subject_region.py``) with
its own recurrent state, turns each result back, and merges only the mattes and foregrounds; the states never
mix. ``EnsembleEngine`` wraps a ``MattingEngine`` behind the same ``run(frames, state, ratio)`` interface and
carries all passes' states (and the region passes' windows) as one flat list, so everything built on an engine
(pre-roll and cut resets in ``temporal.py``, checkpoints and exact resume, ranges, batches) works unchanged: a cut
resets every pass, a checkpoint holds every pass's state.

The passes and merge of ``best`` were chosen on ``benchmarks/quality.py``'s close-ups and wide shots
(docs/quality.md); so was keeping the model's own foreground (blur-fusion estimation from the matte,
``benchmarks/blur_fusion.py``, measured worse). ``best`` takes the median of the clip, its mirror image and the
subject's region enlarged up to 2x at 1.25x the ratio: the median of three lies between the two passes at the
clip's own ratio, so a given ``--downsample-ratio`` still bounds the result, and the region pass only chooses
within that range. On a close-up the region is the whole frame, and the third pass is the frame at 1.25x the
ratio (where that is the clip's own ratio already, it would repeat the plain pass: it then takes the plain
pass's result and state and has no vote, and ``best`` is the mean of the clip and its mirror image).
"""

import torch

from .inference import MattingEngine
from .models.matting_network import MattingOutput
from .settings import Ensemble, Pass
from .subject_region import Window, crop, follow, paste, working_size


def merge_mattes(mattes: list[torch.Tensor], how: str) -> torch.Tensor:
    """One matte from the passes' mattes (same shape): their mean, median, or mean weighted by each pass's
    confidence (how far its alpha is from the undecided 0.5)."""
    stacked = torch.stack(mattes)
    if how == "mean" or len(mattes) == 1:
        return stacked.mean(0)
    if how == "median":  # with an even count, the mean of the middle two (torch.median takes the lower one)
        middle = stacked.sort(0).values[(len(mattes) - 1) // 2:len(mattes) // 2 + 1]
        return middle.mean(0)
    weights = (2 * stacked - 1).abs() + 1e-3
    return (weights * stacked).sum(0) / weights.sum(0)


class EnsembleEngine:
    """A ``MattingEngine`` that runs an ensemble of passes; see the module's docstring."""

    def __init__(self, engine: MattingEngine, ensemble: Ensemble):
        self.engine = engine
        self.ensemble = ensemble

    def __getattr__(self, name: str):  # model, device, dtype, recurrent, weights_sha256 ...: the wrapped engine's
        return getattr(self.engine, name)

    def settings(self) -> dict:
        return {**self.engine.settings(), **self.ensemble.describe()}

    def describe(self) -> str:
        return f"{self.engine.describe()}, passes {'+'.join(str(p) for p in self.ensemble.passes)}"

    def state_after(self, frames: torch.Tensor, state: list | None, downsample_ratio: float,
                    need_fgr: bool = True) -> list | None:
        # The region passes' windows follow the mattes: the state needs the whole run.
        return self.run(frames, state, downsample_ratio, need_fgr=False).state

    @torch.inference_mode()
    def run(self, frames: torch.Tensor, state: list | None, downsample_ratio: float,
            need_fgr: bool = True) -> MattingOutput:
        passes = self.ensemble.passes_at(downsample_ratio)
        regions = [index for index, (one, _) in enumerate(passes) if one.zoom != 1]
        states, windows = _split(state, len(passes), len(regions))
        height, width = frames.shape[-2:]
        outputs: list[MattingOutput | None] = [None] * len(passes)
        for index, (one, ratio) in enumerate(passes):  # the full-frame passes first
            if one.zoom == 1:
                margin = min(round(one.shift / ratio), width - 1, height - 1)  # in the clip's pixels
                out = self.engine.run(_mirrored_margin(frames.flip(-1) if one.mirror else frames, margin),
                                      states[index], ratio, need_fgr)
                outputs[index] = MattingOutput(_turned_back(out.fgr, one, margin) if need_fgr else None,
                                               _turned_back(out.pha, one, margin), out.state)
        repeats, new_windows = set(), []
        if regions:  # then each region pass, in a window found in the full-frame passes' mean matte
            whole = _merged([out for out in outputs if out is not None], "mean", need_fgr)
            for index, saved in zip(regions, windows or [None] * len(regions)):
                one, ratio = passes[index]
                window = follow(None if saved is None else Window.from_tensor(saved, width, height), whole.pha,
                                one.zoom)
                new_windows.append(window.as_tensor(width, height))
                same = _same_full_frame_pass(passes, index, window, width, height)
                if same is not None:  # it would run that pass again: it takes its result and state, and no vote
                    outputs[index] = outputs[same]
                    repeats.add(index)
                    continue
                picture = crop(frames, window)
                out = self.engine.run(picture.flip(-1) if one.mirror else picture, states[index], ratio, need_fgr)
                outputs[index] = MattingOutput(
                    paste(whole.fgr, out.fgr.flip(-1) if one.mirror else out.fgr, window) if need_fgr else None,
                    paste(whole.pha, out.pha.flip(-1) if one.mirror else out.pha, window), out.state)
        voting = [index for index in range(len(passes)) if index not in repeats]
        if self.ensemble.merge == "region" and set(regions) - repeats:  # the region passes' result in its window
            merged = _merged([outputs[index] for index in regions if index not in repeats], "mean", need_fgr)
        else:
            merged = _merged([outputs[index] for index in voting], self.ensemble.merge, need_fgr)
        if outputs[0].state is None:
            return merged
        return MattingOutput(merged.fgr, merged.pha, [r for out in outputs for r in out.state] + new_windows)


def _same_full_frame_pass(passes: list[tuple[Pass, float]], index: int, window: Window, width: int,
                          height: int) -> int | None:
    """The full-frame pass a region pass would repeat: its window is the whole frame, unscaled, and that pass
    runs the same picture (mirrored or not, unshifted) at the same ratio. None when there is none."""
    one, ratio = passes[index]
    if window.bounds(width, height) != (0, 0, width, height) or working_size(window.aspect, width, height) != (
            width, height):
        return None
    return next((other for other, (two, two_ratio) in enumerate(passes) if two.zoom == 1 and two.shift == 0
                 and two.mirror == one.mirror and two_ratio == ratio), None)


def _merged(outputs: list[MattingOutput], how: str, need_fgr: bool) -> MattingOutput:
    """The passes' mattes merged ``how``, and the mean of their foregrounds (no state)."""
    fgr = torch.stack([out.fgr for out in outputs]).mean(0) if need_fgr else None
    return MattingOutput(fgr, merge_mattes([out.pha for out in outputs], "mean" if how == "region" else how), None)


def _turned_back(image: torch.Tensor, one: Pass, margin: int) -> torch.Tensor:
    """A pass's output in the clip's own frame: its margin cut off, its mirror image flipped back."""
    image = image[..., margin:, margin:]
    return image.flip(-1) if one.mirror else image


def _mirrored_margin(frames: torch.Tensor, margin: int) -> torch.Tensor:
    """(N, C, H, W) frames grown by ``margin`` rows on top and columns on the left, each the mirror image of the
    rows (columns) beside it, as reflect padding (written out: ``F.pad`` does not reflect integer pictures)."""
    if margin == 0:
        return frames
    frames = torch.cat([frames[..., 1:margin + 1, :].flip(-2), frames], dim=-2)
    return torch.cat([frames[..., 1:margin + 1].flip(-1), frames], dim=-1)


def _split(state: list | None, parts: int, windows: int) -> tuple[list, list]:
    """The passes' states, and the region passes' windows (kept after all the passes' states)."""
    if state is None:
        return [None] * parts, []
    size = (len(state) - windows) // parts
    return [state[i * size:(i + 1) * size] for i in range(parts)], state[len(state) - windows:]


def for_quality(engine: MattingEngine, ensemble: Ensemble) -> MattingEngine | EnsembleEngine:
    """The engine itself for a single plain pass (so standard runs exactly as before), else the ensemble."""
    return engine if ensemble.is_plain else EnsembleEngine(engine, ensemble)
