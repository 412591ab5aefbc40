"""Running a matting model on chunks of frames: device and precision choice, loading, recurrent state."""

from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import VmatteError
from .models import MattingOutput, load_rvm, prepare_for_inference, resolve

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# RVM's authors advise an internal (downsampled) size of about 512 px on the long side for typical footage.
AUTO_TARGET_LONG_SIDE = 512


def choose_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VmatteError("--device cuda: no CUDA device is available here (try --device cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise VmatteError("--device mps: Apple Metal is not available here (try --device cpu)")
    if name not in ("cpu", "cuda", "mps"):
        raise VmatteError(f"--device {name}: choose auto, cpu, cuda or mps")
    return torch.device(name)


def choose_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        # Half precision pays on GPUs; on CPUs fp32 kernels are the fast ones.
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if precision not in PRECISIONS:
        raise VmatteError(f"--precision {precision}: choose auto, fp32, fp16 or bf16")
    if precision == "fp16" and device.type == "cpu":
        raise VmatteError("--precision fp16 is not supported on the CPU; use fp32 or bf16")
    return PRECISIONS[precision]


def auto_downsample_ratio(height: int, width: int) -> float:
    """Ratio that brings the long side to about 512 px; never upsamples."""
    return min(1.0, AUTO_TARGET_LONG_SIDE / max(height, width))


@dataclass
class MattingEngine:
    """A loaded model on its device; ``run`` takes a chunk of frames and the recurrent state."""

    model: torch.nn.Module
    model_name: str
    weights_path: Path
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def load(cls, model_name: str = "rvm-mobilenetv3", weights: str | Path | None = None, *,
             device: torch.device | None = None, precision: str = "auto", semantics: str = "auto",
             refiner: str | None = None, notice=print, quiet: bool = False) -> "MattingEngine":
        device = device or choose_device()
        dtype = choose_dtype(precision, device)
        if weights is None:
            known, path = resolve(model_name, notice=notice, quiet=quiet)
            model_name = known.name
        else:
            path = Path(weights)
        network = load_rvm(path, semantics=semantics, refiner=refiner)
        network = prepare_for_inference(network, device, dtype)
        return cls(network, model_name, path, device, dtype)

    def describe(self) -> str:
        semantics = getattr(self.model, "semantics", None)
        parts = [self.model_name, self.device.type, str(self.dtype).removeprefix("torch.")]
        if semantics is not None:
            parts.append(f"{semantics.name} semantics")
        return ", ".join(parts)

    @torch.inference_mode()
    def run(self, frames: torch.Tensor, state: list | None, downsample_ratio: float,
            need_fgr: bool = True) -> MattingOutput:
        """frames: (T, 3, H, W) float in [0, 1] on any device. Returns outputs (1, T, ...) in float32 on the CPU
        and the new state on the model's device."""
        src = frames.to(self.device, self.dtype, non_blocking=True)[None]
        out = self.model(src, state, downsample_ratio, need_fgr)
        fgr = out.fgr.float().cpu() if out.fgr is not None else None
        return MattingOutput(fgr, out.pha.float().cpu(), out.state)
