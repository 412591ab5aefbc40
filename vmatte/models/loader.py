"""Builds a ready-to-run RVM network from a weight file of any supported format."""

import tempfile
import zipfile
from pathlib import Path

import torch

from ..errors import VmatteError
from .folding import fold_batchnorm
from .imported import cached_import
from .matting_network import MattingNetwork
from .onnx_release import import_onnx
from .semantics import BY_NAME, ONNX_EXPORT, TORCH
from .tfjs import ABSENT_PREFIXES, import_tfjs


def _tfjs_model_json(path: Path) -> Path | None:
    if path.is_dir() and (path / "model.json").is_file():
        return path / "model.json"
    if path.name == "model.json":
        return path
    return None


def read_state_dict(path: Path) -> dict:
    """The tensors of a PyTorch weight file (a bare state dict, or one under a "state_dict" key)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files (EOFError, RuntimeError, UnpicklingError)
        # torch's own text runs to many lines of advice about weights_only; the type says enough.
        raise VmatteError(f"{path}: not a readable PyTorch weight file ({type(exc).__name__}): damaged, "
                          "incomplete, or not a .pth/.ckpt") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise VmatteError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def _load(model: MattingNetwork, state: dict, path: Path, absent: tuple[str, ...] = ()) -> None:
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise VmatteError(f"{path}: not an RVM {model.variant} state dict ({detail})") from None
    missing = [k for k in result.missing_keys if not k.startswith(absent)]
    if missing or result.unexpected_keys:
        problems = [f"missing {k}" for k in missing[:3]] + [f"unexpected {k}" for k in result.unexpected_keys[:3]]
        raise VmatteError(f"{path}: not an RVM {model.variant} state dict ({len(missing)} missing, "
                          f"{len(result.unexpected_keys)} unexpected keys: {', '.join(problems)})")


def load_rvm(path: Path, semantics: str = "torch", refiner: str | None = None) -> MattingNetwork:
    """An RVM network in eval mode with the weights of ``path``: an official ``.pth`` release file, an official
    ONNX release file (``.onnx``), or the official TF.js export (its folder, its ``model.json`` or its ``.zip``).

    ``semantics``: "torch" (the official PyTorch code's numerics, the better mattes: see the README; with ONNX
    weights, as that export runs them) or "tfjs" (the TF.js graph's, for parity with that export; its own
    constants when the weights are the export). ``refiner`` defaults to what the weights carry: deep guided
    filter for ``.pth`` and ``.onnx``, fast for TF.js.
    """
    path = Path(path)
    if not path.exists():
        raise VmatteError(f"{path}: weight file not found")
    if path.suffix == ".zip":
        with tempfile.TemporaryDirectory() as tmp:
            try:
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(tmp)
            except zipfile.BadZipFile as exc:
                raise VmatteError(f"{path}: damaged zip archive ({exc})") from None
            found = next(Path(tmp).rglob("model.json"), None)
            if found is None:
                raise VmatteError(f"{path}: no model.json inside; not the RVM TF.js export")
            return load_rvm(found, semantics, refiner)
    if model_json := _tfjs_model_json(path):
        if refiner == "deep_guided_filter":
            raise VmatteError(f"{path}: the TF.js export has no deep guided filter weights; use the fast one")
        state, own_semantics = import_tfjs(model_json)
        variant, refiner, absent = "mobilenetv3", "fast_guided_filter", ABSENT_PREFIXES
    else:
        if path.suffix == ".onnx":
            state, variant = cached_import(path, import_onnx)
            own_semantics = ONNX_EXPORT
        else:
            state = {k.removeprefix("module."): v for k, v in read_state_dict(path).items()}
            own_semantics = TORCH
            if "backbone.features.0.0.weight" in state:
                variant = "mobilenetv3"
            elif "backbone.conv1.weight" in state:
                variant = "resnet50"
            else:
                raise VmatteError(f"{path}: not an RVM state dict (no MobileNetV3 or ResNet-50 backbone keys)")
        absent = ("project_seg.",)
        trained_refiner = "deep_guided_filter" if "refiner.box_filter.weight" in state else "fast_guided_filter"
        refiner = refiner or trained_refiner
        if refiner == "deep_guided_filter" != trained_refiner:
            raise VmatteError(f"{path}: has no deep guided filter weights; use the fast guided filter")
        if refiner != trained_refiner:  # a refiner the export did not run: the PyTorch code's way
            state = {k: v for k, v in state.items() if not k.startswith("refiner.")}
            absent += ("refiner.",)
            own_semantics = TORCH
    if semantics not in BY_NAME:
        raise VmatteError(f"semantics {semantics!r}: choose {' or '.join(BY_NAME)}")
    chosen = own_semantics if own_semantics.name == semantics else BY_NAME[semantics]
    model = MattingNetwork(variant, refiner, chosen)
    _load(model, state, path, absent)
    return model.eval().requires_grad_(False)


def prepare_for_inference(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """BatchNorm folded into the convolutions, moved to the device and precision it will run at, in the
    channels-last layout (decoded frames arrive in it, and CPU convolutions run several times faster in it
    at the decoder's odd channel counts). RVM's guided-filter refiner stays in float32 (see MattingNetwork)."""
    model = fold_batchnorm(model).to(device=device, dtype=dtype, memory_format=torch.channels_last)
    if isinstance(model, MattingNetwork):
        model.refiner.float()
    return model
