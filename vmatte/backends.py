"""Which backend runs the network: the choice sits here, above the engines it picks from (PyTorch's in
``inference.py``, OpenVINO's in ``inference_openvino.py``), so neither engine imports the other's chooser."""

from pathlib import Path

import torch

from . import inference_openvino
from .errors import VmatteError
from .inference import MattingEngine
from .settings import BACKENDS


def choose_backend(name: str, device: torch.device, dtype: torch.dtype, family: str) -> str:
    """``auto``: OpenVINO for RVM in fp32 on the CPU where the package is installed (docs/speed.md, "CPU
    inference backends"), else PyTorch (GPUs, half precision, MODNet)."""
    if name not in BACKENDS:
        raise VmatteError(f"--backend {name}: choose {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    fits = device.type == "cpu" and dtype == torch.float32 and family == "rvm"
    return "openvino" if fits and inference_openvino.available() else "torch"


def load_on_backend(model_name: str = "rvm-mobilenetv3", weights: str | Path | None = None, *,
                    backend: str = "auto", **load_options) -> MattingEngine:
    """``MattingEngine.load`` (same options), run on the backend ``backend`` names or ``auto`` picks."""
    if backend not in BACKENDS:  # before the model is looked up
        raise VmatteError(f"--backend {backend}: choose {', '.join(BACKENDS)}")
    engine = MattingEngine.load(model_name, weights, **load_options)
    if choose_backend(backend, engine.device, engine.dtype, engine.family) == "openvino":
        return inference_openvino.OpenVinoEngine.from_engine(engine, load_options.get("notice", print))
    return engine
