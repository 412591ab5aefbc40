"""Running a matting model on chunks of frames: device and precision choice, loading, recurrent state."""

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from .errors import VmatteError
from .models.loader import load_rvm, prepare_for_inference
from .models.matting_network import MattingOutput
from .models.modnet import load_modnet, predict_matte
from .models.weights import MODELS, check_weight_file, resolve, sha256_of
from .settings import PRECISION_NAMES

PRECISIONS = dict(zip(PRECISION_NAMES, (torch.float32, torch.float16, torch.bfloat16)))


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


@dataclass
class MattingEngine:
    """A loaded model on its device; ``run`` takes a chunk of frames and the recurrent state.

    RVM is recurrent (the state carries from chunk to chunk); MODNet works frame by frame (no state, and no
    foreground of its own: its foreground output is the source picture, to be cut out by the alpha).
    """

    model: torch.nn.Module
    model_name: str
    family: str  # "rvm" or "modnet"
    weights_path: Path
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def load(cls, model_name: str = "rvm-mobilenetv3", weights: str | Path | None = None, *,
             device: torch.device | None = None, precision: str = "auto", semantics: str = "torch",
             refiner: str | None = None, notice=print, quiet: bool = False) -> "MattingEngine":
        """The model on its device and precision, run by PyTorch (``load_on_backend`` picks others)."""
        device = device or choose_device()
        dtype = choose_dtype(precision, device)
        if model_name not in MODELS:
            raise VmatteError(f"unknown model {model_name!r}; known models: {', '.join(MODELS)}")
        if weights is None:
            known, path = resolve(model_name, notice=notice, quiet=quiet)
            model_name = known.name
        else:
            path = Path(weights)
            check_weight_file(path)
        family = MODELS[model_name].family
        network = load_modnet(path) if family == "modnet" else load_rvm(path, semantics=semantics, refiner=refiner)
        network = prepare_for_inference(network, device, dtype)
        return MattingEngine(network, model_name, family, path, device, dtype)

    @cached_property
    def weights_sha256(self) -> list[str]:
        """Checksums of the weight file(s), computed once: a batch fingerprints every clip with them."""
        files = sorted(self.weights_path.iterdir()) if self.weights_path.is_dir() else [self.weights_path]
        return [sha256_of(f) for f in files]

    @property
    def recurrent(self) -> bool:
        return self.family == "rvm"

    def settings(self) -> dict:
        """What about the loaded model shapes its results (for resume fingerprints and descriptions)."""
        return {"model": self.model_name, "device": self.device.type, "precision": str(self.dtype),
                "semantics": getattr(getattr(self.model, "semantics", None), "name", None),
                "refiner": getattr(self.model, "refiner_name", None), "backend": "torch"}

    def describe(self) -> str:
        """One line for the user: which weights, refiner and numerics, where and how they run."""
        s = self.settings()
        parts = [f"{s['model']} ({self.weights_path.name})"]
        if s["refiner"]:
            parts.append(f"{s['refiner'].replace('_', ' ')}, {s['semantics']} semantics")
        backend = s["backend"].split("-")[0]  # OpenVINO's build suffix says nothing to a user
        parts.append(f"{s['device']} {s['precision'].removeprefix('torch.')}, {backend}")
        return ", ".join(parts)

    @torch.inference_mode()
    def state_after(self, frames: torch.Tensor, state: list | None, downsample_ratio: float,
                    need_fgr: bool = True) -> list | None:
        """The recurrent state after ``frames``, without their mattes: what pre-roll and warm-up need, so the
        guided filter and the full-resolution step are skipped (the state comes before them). ``need_fgr`` says
        which outputs the run mattes with: a compiled backend then advances on the graph it already has."""
        if not self.recurrent:
            return None
        base, _ = self.model.working_frames(frames.to(self.device, self.dtype, non_blocking=True), downsample_ratio)
        return self.model.low_resolution(base, state or [None] * 4, False, False)[1]

    @torch.inference_mode()
    def run(self, frames: torch.Tensor, state: list | None, downsample_ratio: float,
            need_fgr: bool = True) -> MattingOutput:
        """frames: (T, 3, H, W) float in [0, 1] on any device. Returns outputs (1, T, ...) in float32 on the CPU
        and the new state on the model's device (None for MODNet). MODNet ignores ``downsample_ratio``: it
        resizes by its own rule."""
        src = frames.to(self.device, self.dtype, non_blocking=True)
        if self.family == "modnet":
            pha = predict_matte(self.model, src).float().cpu()[None]
            return MattingOutput(frames.float()[None] if need_fgr else None, pha, None)
        out = self.model(src[None], state, downsample_ratio, need_fgr)
        fgr = out.fgr.float().cpu() if out.fgr is not None else None
        return MattingOutput(fgr, out.pha.float().cpu(), out.state)
