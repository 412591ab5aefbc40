"""Quality levels: ``--quality fast|standard|best``, and the ensemble of model passes behind ``best``.

An ensemble runs the model more than once on every chunk, each pass on a transformed picture (its mirror
image, another internal size, or the picture shifted) with its own recurrent state, turns each result back,
and merges only the mattes and foregrounds; the states never mix. ``EnsembleEngine`` wraps a ``MattingEngine``
behind the same ``run(frames, state, ratio)`` interface and carries all passes' states as one flat list, so
everything built on an engine (pre-roll and cut resets in ``temporal.py``, checkpoints and exact resume,
batches) works unchanged: a cut resets every pass, a checkpoint holds every pass's state.

The passes and merge of ``best`` were chosen on ``benchmarks/quality.py`` (README, "Quality settings"); so was
keeping the model's own foreground (blur-fusion estimation from the matte, ``benchmarks/blur_fusion.py``,
measured worse). ``best`` takes the median of the clip, its mirror image and a 1.25x larger internal size: the
median of three lies between the two passes at the clip's own ratio, so a given ``--downsample-ratio`` still
bounds the result, and the larger pass only chooses within that range.
"""

import torch

from .inference import MattingEngine
from .models.matting_network import MattingOutput
from .settings import Ensemble, Pass


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

    @torch.inference_mode()
    def run(self, frames: torch.Tensor, state: list | None, downsample_ratio: float,
            need_fgr: bool = True) -> MattingOutput:
        passes = self.ensemble.passes_at(downsample_ratio)
        states = _split(state, len(passes))
        mattes, foregrounds, new_states = [], [], []
        for (one, ratio), pass_state in zip(passes, states):
            margin = min(round(one.shift / ratio), *(size - 1 for size in frames.shape[-2:]))  # in the clip's pixels
            out = self.engine.run(_mirrored_margin(frames.flip(-1) if one.mirror else frames, margin),
                                  pass_state, ratio, need_fgr)
            mattes.append(_turned_back(out.pha, one, margin))
            if need_fgr:
                foregrounds.append(_turned_back(out.fgr, one, margin))
            new_states.append(out.state)
        fgr = torch.stack(foregrounds).mean(0) if need_fgr else None
        return MattingOutput(fgr, merge_mattes(mattes, self.ensemble.merge),
                             None if new_states[0] is None else [r for s in new_states for r in s])


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


def _split(state: list | None, parts: int) -> list:
    if state is None:
        return [None] * parts
    size = len(state) // parts
    return [state[i * size:(i + 1) * size] for i in range(parts)]


def for_quality(engine: MattingEngine, ensemble: Ensemble) -> MattingEngine | EnsembleEngine:
    """The engine itself for a single plain pass (so standard runs exactly as before), else the ensemble."""
    return engine if ensemble.is_plain else EnsembleEngine(engine, ensemble)
