"""Loading the official MODNet checkpoints (``modnet_photographic_portrait_matting.ckpt``, ``..._webcam_...``)."""

from collections.abc import Mapping
from pathlib import Path

import torch

from vmatte.errors import VmatteError

from ..loader import read_state_dict
from .modnet import MODNet

# The official checkpoints were saved from an nn.DataParallel wrapper, which prefixes every key.
DATA_PARALLEL_PREFIX = "module."
_EXAMPLES_SHOWN = 3


def strip_data_parallel_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drops the ``module.`` prefix when every key has it; returns other state dicts unchanged."""
    if state_dict and all(key.startswith(DATA_PARALLEL_PREFIX) for key in state_dict):
        return {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state_dict.items()}
    return dict(state_dict)


def _shape(value: object) -> str:
    return str(list(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def _layout_problems(expected: Mapping[str, torch.Tensor], given: Mapping[str, object]) -> list[str]:
    """Human-readable differences between two state dict layouts (keys and shapes); empty when they match."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    wrong_shape = [f"{key} {_shape(given[key])} instead of {_shape(expected[key])}"
                   for key in expected if key in given and _shape(given[key]) != _shape(expected[key])]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", wrong_shape)):
        if items:
            examples = ", ".join(items[:_EXAMPLES_SHOWN]) + (", ..." if len(items) > _EXAMPLES_SHOWN else "")
            problems.append(f"{len(items)} keys {label} ({examples})")
    return problems


def load_modnet_weights(model: MODNet, state_dict: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Loads an official-layout state dict (with or without ``module.``) into ``model`` with ``strict=True``.

    ``source`` names the file in the error raised when the layout is not MODNet's.
    """
    state_dict = strip_data_parallel_prefix(state_dict)
    problems = _layout_problems(model.state_dict(), state_dict)
    if problems:
        raise VmatteError(
            f"{source} is not a MODNet checkpoint in the official layout: {'; '.join(problems)}. "
            "Use modnet_photographic_portrait_matting.ckpt or modnet_webcam_portrait_matting.ckpt "
            "from the official MODNet release."
        )
    model.load_state_dict(state_dict, strict=True)


def load_modnet(path: str | Path, device: str | torch.device = "cpu") -> MODNet:
    """Builds MODNet, loads the checkpoint at ``path`` and returns it in eval mode on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise VmatteError(f"MODNet weights not found: {path}")
    state_dict = read_state_dict(path)
    model = MODNet()
    load_modnet_weights(model, state_dict, path)
    return model.eval().to(device)
