"""The OpenVINO backend: the same RVM network, compiled for the CPU.

The network's work at its working size (``MattingNetwork.low_resolution``: encoder, decoder, and the guided
filter's coefficients) is traced from vmatte's own modules with the loaded weights, as a plain graph from
(frame, r1, r2, r3, r4) to (x, y, r1, r2, r3, r4) whose height and width are left open, converted in process by
OpenVINO and saved as OpenVINO IR in the cache (``$VMATTE_HOME/compiled``). Converting is the slow part (seconds
on an idle machine, a minute on a busy one) and happens once; each working size then fixes the open dimensions
and compiles in a fraction of a second, to the same graph, speed and output as one converted for that size
(docs/robustness.md, "The CPU graph"). The downsampling before it and the full-resolution step after it stay in
PyTorch, shared with the PyTorch path: they are passes over full-size memory, which OpenVINO ran several times
slower (README, "Speed and memory"). The file name is a digest of everything the graph depends on, so a later
run reads it at once, and a change of weights, semantics, network code or library version builds a new one.
Everything runs in float32 (the guided filter must: see ``MattingNetwork.low_resolution``); the golden tests hold
this backend to the same tolerances as the PyTorch path.

The recurrent state stays a list of PyTorch tensors, as the PyTorch engine returns it, so pre-roll, shot cuts
and resume (``temporal.py``, ``resume.py``) work unchanged.
"""

import hashlib
import json
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .compiled_cache import compiled_dir, mark_used, prune, put_in_place
from .errors import VmatteError
from .inference import MattingEngine
from .models.matting_network import MattingNetwork, MattingOutput, full_resolution
from .models.weights import network_code_digest

# fp32 explicitly: on CPUs with bf16 units OpenVINO would otherwise lower the precision by itself.
COMPILE_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}
MISSING = "--backend openvino needs the openvino package (pip install openvino), which is not installed here"


def import_openvino():
    # OpenVINO's model converter sends usage statistics to Google Analytics unless the user has opted out; vmatte
    # sends nothing anywhere. With its telemetry package unimportable, the converter uses its own no-op stub.
    sys.modules.setdefault("openvino_telemetry", None)
    try:
        import openvino
    except ImportError:
        raise VmatteError(MISSING) from None
    return openvino


def available() -> bool:
    try:
        import_openvino()
    except VmatteError:
        return False
    return True


class FrameGraph(torch.nn.Module):
    """One downsampled frame through the network with the state as explicit tensors: what is traced and
    converted."""

    def __init__(self, network: MattingNetwork, refine: bool, need_fgr: bool):
        super().__init__()
        self.network, self.refine, self.need_fgr = network, refine, need_fgr

    def forward(self, base, r1, r2, r3, r4):
        (x, y), state = self.network.low_resolution(base, [r1, r2, r3, r4], self.refine, self.need_fgr)
        return x, y, *state


def state_shapes(network: MattingNetwork, height: int, width: int) -> list[tuple]:
    """Shapes of r1..r4 for one downsampled frame: the network's own run on a blank frame says them exactly."""
    with torch.inference_mode():
        _, state = network.low_resolution(torch.zeros(1, 3, height, width), [None] * 4, False, False)
    return [tuple(r.shape) for r in state]


@dataclass
class OpenVinoEngine(MattingEngine):
    """A ``MattingEngine`` whose ``run`` goes through OpenVINO, one frame per call, carrying the state."""

    cache: Path = field(default_factory=compiled_dir)
    notice: Callable[[str], None] = field(default=print, repr=False)  # says when a graph is built (seconds)
    _compiled: dict = field(default_factory=dict, repr=False)  # (h, w, refine, need_fgr) -> (compiled, shapes)
    # A batch runs clips in threads on one engine: one build per shape, and one inference request per call.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_engine(cls, engine: MattingEngine, notice: Callable[[str], None] = print) -> "OpenVinoEngine":
        if engine.family != "rvm":
            raise VmatteError(f"--backend openvino runs RVM models; {engine.model_name} runs on --backend torch")
        if engine.device.type != "cpu" or engine.dtype != torch.float32:
            raise VmatteError("--backend openvino runs on the CPU in fp32; use --backend torch for "
                              f"{engine.device.type} {str(engine.dtype).removeprefix('torch.')}")
        import_openvino()
        return cls(engine.model, engine.model_name, engine.family, engine.weights_path, engine.device, engine.dtype,
                   notice=notice)

    def settings(self) -> dict:
        return {**super().settings(), "backend": f"openvino {import_openvino().__version__}"}

    def graph_key(self, refine: bool, need_fgr: bool) -> str:
        """Digest of everything the converted graph depends on (any working size runs on it)."""
        semantics = self.model.semantics
        parts = {"weights_sha256": self.weights_sha256, "refine": refine, "need_fgr": need_fgr,
                 "semantics": [semantics.name, semantics.mean, semantics.std, semantics.inv_std],
                 "refiner": self.model.refiner_name, "network_code": network_code_digest(),
                 "openvino": import_openvino().__version__, "torch": torch.__version__}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]

    def graph_path(self, refine: bool, need_fgr: bool) -> Path:
        kind = f"{'refine' if refine else 'plain'}-{'fgr' if need_fgr else 'alpha'}"
        return self.cache / f"rvm-{kind}-{self.graph_key(refine, need_fgr)}" / "model.xml"

    def _build(self, path: Path, height: int, width: int, shapes: list[tuple], refine: bool, need_fgr: bool) -> None:
        """Traces (at one working size, its state's ``shapes``) and converts the network, then puts the IR in place
        atomically (a folder renamed whole)."""
        ov = import_openvino()
        example = (torch.zeros(1, 3, height, width), *(torch.zeros(s) for s in shapes))
        with warnings.catch_warnings():
            # The tracer warns about the shape tests in the network (the crops to a skip connection's size are
            # traced as shape operations, so they hold at any size: tests/test_backends.py), and that it is
            # deprecated (OpenVINO's converter uses it for modules given as they are).
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # Height and width left open: one conversion serves every working size.
            open_sizes = [[1, 3, -1, -1]] + [[1, shape[1], -1, -1] for shape in shapes]
            graph = ov.convert_model(FrameGraph(self.model, refine, need_fgr), example_input=example,
                                     input=open_sizes)
        # keep the weights float32
        put_in_place(path.parent, lambda folder: ov.save_model(graph, folder / path.name, compress_to_fp16=False))

    def compiled(self, height: int, width: int, refine: bool, need_fgr: bool):
        """The graph compiled for this downsampled shape (converted once, or read from the cache) and its state
        shapes."""
        key = (height, width, refine, need_fgr)
        with self._lock:
            return self._compiled.get(key) or self._compile(key)

    def _compile(self, key: tuple):
        model, shapes = self.sized_graph(*key)
        self._compiled[key] = (import_openvino().Core().compile_model(model, "CPU", COMPILE_CONFIG), shapes)
        return self._compiled[key]

    def sized_graph(self, height: int, width: int, refine: bool, need_fgr: bool):
        """The converted graph (built here the first time) with its height and width fixed to this working size,
        uncompiled, and the state's shapes at that size."""
        path = self.graph_path(refine, need_fgr)
        # The state's sizes come from the network itself: where a feature map is 1 pixel high or wide, the graph's
        # own shape inference cannot tell them (the ConvGRU broadcasts it against the state).
        shapes = state_shapes(self.model, height, width)
        if not path.is_file():
            self.notice("preparing the CPU graph for the model, once (every frame size reuses it)")
            try:
                self._build(path, height, width, shapes, refine, need_fgr)
            except (OSError, RuntimeError) as exc:  # OpenVINO's save_model says only "iostream error"
                raise VmatteError(f"cannot write the compiled model to {path.parent} ({exc}): free some space "
                                  "there, set VMATTE_HOME to another folder, or use --backend torch") from None
            prune(self.cache, keep=path.parent)
        mark_used(path.parent)
        ov = import_openvino()
        model = ov.Core().read_model(path)
        # Fixed sizes let OpenVINO plan memory as for a graph converted at this size (same speed, same output).
        model.reshape(dict(zip(model.inputs, [ov.PartialShape(list(shape))
                                              for shape in [(1, 3, height, width), *shapes]])))
        return model, shapes

    @torch.inference_mode()
    def run(self, frames: torch.Tensor, state: list | None, downsample_ratio: float,
            need_fgr: bool = True) -> MattingOutput:
        fine = frames.float()
        base, refine = self.model.working_frames(fine, downsample_ratio)
        x, y, state = self._network(base, state, refine, need_fgr)
        fgr, pha = full_resolution(torch.from_numpy(x), torch.from_numpy(y), fine, refine, need_fgr)
        return MattingOutput(fgr[None] if need_fgr else None, pha[None], state)

    @torch.inference_mode()
    def state_after(self, frames: torch.Tensor, state: list | None, downsample_ratio: float,
                    need_fgr: bool = True) -> list:
        base, refine = self.model.working_frames(frames.float(), downsample_ratio)
        return self._network(base, state, refine, need_fgr)[2]

    def _network(self, base: torch.Tensor, state: list | None, refine: bool, need_fgr: bool):
        """The compiled graph over the downsampled frames, one per call: (x, y) for all of them, and the state."""
        compiled, shapes = self.compiled(*base.shape[2:], refine, need_fgr)
        request = compiled.create_infer_request()
        if state is None:
            state = [np.zeros(shape, np.float32) for shape in shapes]
        else:
            state = [np.ascontiguousarray(r.float().numpy()) for r in state]
        xs, ys = [], []
        for frame in base:
            request.infer([np.ascontiguousarray(frame[None].numpy()), *state], share_inputs=False)
            x, y, *state = [tensor.data.copy() for tensor in request.output_tensors]  # the request reuses its memory
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys), [torch.from_numpy(r) for r in state]
