"""Importer for the official RVM TensorFlow.js uint8 export (``model.json`` + ``group1-shard1of1.bin``).

Every learned tensor is dequantised (value = min + q * scale) and mapped into the official PyTorch layout:
kernels go from HWIO to OIHW, and BatchNorm, which the export folded into the convolutions, becomes an
identity BatchNorm carrying the folded offset (gamma 1, mean 0, var 1 - eps). The export has no segmentation
head and no deep-guided-filter weights (it uses the fast guided filter), so those keys are absent.
"""

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from ..errors import VmatteError
from .folding import identity_batchnorm
from .semantics import Semantics, tfjs_semantics

SCOPE_PREFIX = "StatefulPartitionedCall/matting_network_wrapper/StatefulPartitionedCall/"
ENCODER = "mobile_net_v3_encoder/"
DECODER_BLOCKS = {"bottleneck_block": "decode4", "upsampling_block": "decode3", "upsampling_block_1": "decode2",
                  "upsampling_block_2": "decode1", "output_block": "decode0"}
ABSENT_PREFIXES = ("project_seg.", "refiner.")  # not in the export; see module docstring


def read_tensors(model_json: Path) -> dict[str, np.ndarray]:
    """All tensors of a TF.js graph model, dequantised, by name (with the model scope prefix removed)."""
    try:
        manifest = json.loads(model_json.read_text())["weightsManifest"]
    except (OSError, ValueError, KeyError) as exc:
        raise VmatteError(f"{model_json}: not a TensorFlow.js model.json ({exc})") from None
    tensors: dict[str, np.ndarray] = {}
    for group in manifest:
        blob = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for entry in group["weights"]:
            shape = entry["shape"]
            count = int(np.prod(shape)) if shape else 1
            quant = entry.get("quantization")
            plain = {"float32": "<f4", "int32": "<i4", "bool": "u1"}
            stored = np.dtype(quant["dtype"] if quant else plain[entry["dtype"]])
            size = count * stored.itemsize
            if offset + size > len(blob):
                raise VmatteError(f"{model_json}: weight data is truncated at tensor {entry['name']!r}")
            raw = np.frombuffer(blob, stored, count, offset)
            offset += size
            if quant:  # TF.js dequantises in double precision and stores float32
                values = (quant["min"] + raw.astype(np.float64) * quant["scale"]).astype(np.float32)
            else:
                values = raw.copy()
            tensors[entry["name"].replace(SCOPE_PREFIX, "")] = values.reshape(shape)
        if offset != len(blob):
            raise VmatteError(f"{model_json}: weight data has {len(blob) - offset} unexpected trailing bytes")
    return tensors


def _conv_kernel(hwio: np.ndarray, depthwise: bool) -> torch.Tensor:
    order = (2, 3, 0, 1) if depthwise else (3, 2, 0, 1)  # depthwise [kh, kw, in, 1] -> [in, 1, kh, kw]
    return torch.from_numpy(np.ascontiguousarray(hwio.transpose(order)))


def _batchnorm(state: dict, prefix: str, offset: np.ndarray, scale: np.ndarray | None = None) -> None:
    eps = 1e-3 if prefix.startswith("backbone.") else 1e-5  # the eps each official BatchNorm uses
    identity_batchnorm(state, prefix, torch.from_numpy(offset), eps,
                       torch.from_numpy(scale) if scale is not None else None)


def _number(text: str | None) -> int:
    return int(text) if text else 0


def _encoder_block(t: dict, block: int, names: list[str], state: dict) -> None:
    """One inverted residual: convs in graph order (expand, depthwise, project) with SE after the depthwise."""
    convs = defaultdict(dict)
    se = {}
    for name in names:
        if m := re.search(r"conv_bn_activation_(\d+)/(?:.*)(weights|bn_offset|ReadVariableOp|Scaled|Offset)$", name):
            convs[int(m[1])][m[2]] = name
        elif m := re.search(r"squeeze_excitation(?:_\d+)?/conv2d_(\d+)/(Conv2D|BiasAdd)/ReadVariableOp$", name):
            se.setdefault(int(m[1]), {})[m[2]] = name
    position = 0
    for _, parts in sorted(convs.items()):
        prefix = f"backbone.features.{block}.block.{position}."
        kernel_name = parts.get("weights") or parts["ReadVariableOp"]
        depthwise = "depthwise" in kernel_name
        state[prefix + "0.weight"] = _conv_kernel(t[kernel_name], depthwise)
        if "bn_offset" in parts:
            _batchnorm(state, prefix + "1.", t[parts["bn_offset"]])
        else:  # dilated depthwise convs kept a separate (already scaled) BatchNorm in the graph
            _batchnorm(state, prefix + "1.", t[parts["Offset"]], t[parts["Scaled"]])
        position += 1
        if depthwise and se:
            for fc, (_, p) in zip(("fc1", "fc2"), sorted(se.items())):
                se_prefix = f"backbone.features.{block}.block.{position}.{fc}."
                state[se_prefix + "weight"] = _conv_kernel(t[p["Conv2D"]], False)
                state[se_prefix + "bias"] = torch.from_numpy(t[p["BiasAdd"]])
            position += 1


def _decoder_block(t: dict, target: str, names: list[str], state: dict) -> None:
    convs, gru = {}, {}
    for name in names:
        if m := re.search(r"conv_gru(?:_\d+)?/conv2d_(\d+)/(Conv2D|BiasAdd)/ReadVariableOp$", name):
            gru.setdefault(int(m[1]), {})[m[2]] = name
        elif m := re.search(r"sequential_\d+/conv2d_(\d+)/Conv2D_(weights|bn_offset)$", name):
            convs.setdefault(int(m[1]), {})[m[2]] = name
    for position, (_, p) in zip((0, 3), sorted(convs.items())):  # Conv, BN, ReLU, Conv, BN, ReLU
        state[f"decoder.{target}.conv.{position}.weight"] = _conv_kernel(t[p["weights"]], False)
        _batchnorm(state, f"decoder.{target}.conv.{position + 1}.", t[p["bn_offset"]])
    for gate, (_, p) in zip(("ih", "hh"), sorted(gru.items())):
        state[f"decoder.{target}.gru.{gate}.0.weight"] = _conv_kernel(t[p["Conv2D"]], False)
        state[f"decoder.{target}.gru.{gate}.0.bias"] = torch.from_numpy(t[p["BiasAdd"]])


def import_tfjs(model_json: Path) -> tuple[dict[str, torch.Tensor], Semantics]:
    """The export as an official-layout state dict (minus ``ABSENT_PREFIXES``) and its TF.js semantics."""
    t = read_tensors(model_json)
    floats = [n for n, v in t.items() if v.dtype == np.float32 and v.ndim > 0]
    state: dict[str, torch.Tensor] = {}
    try:
        blocks = defaultdict(list)
        for name in floats:
            if m := re.match(ENCODER + r"inverted_residual(?:_(\d+))?/", name):
                blocks[_number(m[1]) + 1].append(name)
        for block, names in blocks.items():
            _encoder_block(t, block, names, state)
        for name in floats:
            if m := re.match(ENCODER + r"conv_bn_activation(_\d+)?/conv2d(?:_\d+)?/Conv2D_weights$", name):
                index = 0 if m[1] is None else len(blocks) + 1  # stem, or the last 1x1 conv
                state[f"backbone.features.{index}.0.weight"] = _conv_kernel(t[name], False)
                _batchnorm(state, f"backbone.features.{index}.1.", t[name.replace("_weights", "_bn_offset")])
        state["aspp.aspp1.0.weight"] = _conv_kernel(t["lraspp/sequential_15/conv2d_47/Conv2D_weights"], False)
        _batchnorm(state, "aspp.aspp1.1.", t["lraspp/sequential_15/conv2d_47/Conv2D_bn_offset"])
        state["aspp.aspp2.1.weight"] = _conv_kernel(t["lraspp/conv2d_48/Conv2D/ReadVariableOp"], False)
        for block, target in DECODER_BLOCKS.items():
            names = [n for n in floats if n.startswith(f"recurrent_decoder/{block}/")]
            _decoder_block(t, target, names, state)
        state["project_mat.conv.weight"] = _conv_kernel(t["conv2d_62/Conv2D/ReadVariableOp"], False)
        state["project_mat.conv.bias"] = torch.from_numpy(t["conv2d_62/BiasAdd/ReadVariableOp"])
        mean = tuple(float(v) for v in t[ENCODER + "Const"])
        inv_std = tuple(float(v) for v in t["ConstantFolding/" + ENCODER + "truediv_recip"])
    except KeyError as exc:
        raise VmatteError(f"{model_json}: not the RVM MobileNetV3 TF.js export (missing tensor {exc})") from None
    return state, tfjs_semantics(mean, inv_std)
