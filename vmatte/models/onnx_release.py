"""Importer for the official RVM ONNX release files (``rvm_mobilenetv3_fp32.onnx`` and its siblings).

The exporter folded every BatchNorm into the convolution before it and renamed those convolutions' weights
with bare numbers, so most tensors cannot be matched by name. They are matched by the graph's structure
instead: the graph's convolutions, in the order the graph runs them, against vmatte's own convolutions, in
the order vmatte's network runs them (recorded once on a tiny frame), each pair checked for shape, stride,
padding, dilation and groups. A folded convolution comes back as vmatte's convolution plus an identity
BatchNorm carrying the folded offset; a tensor that kept its state-dict name must land on that very name (a
wrapper module's prefix aside).
Every learned tensor is used exactly once; anything that does not fit is one error naming what differs.
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import VmatteError
from .folding import identity_batchnorm
from .matting_network import MattingNetwork
from .semantics import ONNX_EXPORT

INPUTS = ("src", "r1i", "r2i", "r3i", "r4i", "downsample_ratio")
OUTPUTS = ("fgr", "pha", "r1o", "r2o", "r3o", "r4o")
# The first convolution's kernel tells the encoder apart.
STEM_VARIANTS = {(16, 3, 3, 3): "mobilenetv3", (64, 3, 7, 7): "resnet50"}


def _read_graph(path: Path):
    import onnx  # only runs that read an ONNX file pay for importing it
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path))
    except (DecodeError, OSError, ValueError, RuntimeError) as exc:
        raise VmatteError(f"{path}: not a readable ONNX model ({type(exc).__name__}): damaged, incomplete, "
                          "or not an .onnx file") from None
    graph = model.graph
    inputs, outputs = tuple(i.name for i in graph.input), tuple(o.name for o in graph.output)
    if inputs[:len(INPUTS)] != INPUTS or outputs != OUTPUTS:
        raise VmatteError(f"{path}: not an RVM release graph (inputs {', '.join(inputs) or 'none'}; outputs "
                          f"{', '.join(outputs) or 'none'}; RVM has {', '.join(INPUTS)} -> {', '.join(OUTPUTS)})")
    return graph


def _initializers(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    # float16 releases hold the same tensors rounded; the network is built in float32 and cast later.
    return {init.name: numpy_helper.to_array(init).astype(np.float32) for init in graph.initializer
            if init.data_type in (1, 10)}  # TensorProto.FLOAT, FLOAT16


def _graph_convolutions(graph, tensors: dict) -> list[dict]:
    """The graph's convolutions in running order, one per weight (the box filter's weight is applied four
    times, to the same module)."""
    import onnx

    # Newer exporters store equal tensors once and pass copies on through Identity nodes.
    alias = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "Identity"}
    convolutions, seen = [], {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight = alias.get(node.input[1], node.input[1])
        bias = alias.get(node.input[2], node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if weight not in tensors or (bias and bias not in tensors):
            raise VmatteError(f"convolution {node.output[0]} takes weights that are not stored tensors")
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        conv = {"weight": weight, "bias": bias, "node": node.output[0],
                "stride": tuple(attributes.get("strides", (1, 1))),
                "dilation": tuple(attributes.get("dilations", (1, 1))),
                "groups": attributes.get("group", 1),
                "padding": tuple(attributes.get("pads", (0, 0, 0, 0)))}
        if weight in seen:
            if seen[weight] != conv | {"node": seen[weight]["node"]}:
                raise VmatteError(f"weight {weight!r} is applied by convolutions that differ")
            continue
        seen[weight] = conv
        convolutions.append(conv)
    return convolutions


def _network_convolutions(network: MattingNetwork) -> list[tuple[str, nn.Conv2d, tuple | None]]:
    """vmatte's convolutions in running order, each with the BatchNorm that follows it (or None), recorded
    from one small frame through every part (ratio 0.5, so the refiner runs)."""
    names = {module: name for name, module in network.named_modules()}
    calls: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append(m)) for m in network.modules()
             if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
    try:
        with torch.inference_mode():
            network.eval()(torch.rand(1, 1, 3, 64, 64), None, 0.5)
    finally:
        for hook in hooks:
            hook.remove()
    order, seen = [], set()
    for position, module in enumerate(calls):
        if isinstance(module, nn.Conv2d) and module not in seen:
            seen.add(module)
            following = calls[position + 1] if position + 1 < len(calls) else None
            bn = (names[following], following) if isinstance(following, nn.BatchNorm2d) else None
            order.append((names[module], module, bn))
    return order


def _check_fits(conv: dict, name: str, module: nn.Conv2d, tensors: dict) -> None:
    expected = {"shape": tuple(module.weight.shape), "stride": module.stride, "dilation": module.dilation,
                "groups": module.groups, "padding": tuple(module.padding) * 2}
    found = {"shape": tensors[conv["weight"]].shape, "stride": conv["stride"], "dilation": conv["dilation"],
             "groups": conv["groups"], "padding": conv["padding"]}
    differ = [f"{key} {found[key]} where {name} has {expected[key]}" for key in expected
              if tuple(np.atleast_1d(found[key])) != tuple(np.atleast_1d(expected[key]))]
    kept_name = conv["weight"].endswith(".weight")  # else an exporter's name ("824", "onnx::Conv_1009")
    if kept_name and not conv["weight"].endswith("." + name + ".weight") and conv["weight"] != name + ".weight":
        differ.append(f"its weight is named {conv['weight']!r} where {name}.weight comes")
    if differ:
        raise VmatteError(f"convolution {conv['node']} does not fit: {'; '.join(differ)}")


def import_onnx(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The release file as an official-layout state dict (no segmentation head) and its encoder variant."""
    graph = _read_graph(path)
    tensors = _initializers(graph)
    try:
        convolutions = _graph_convolutions(graph, tensors)
    except VmatteError as exc:
        raise VmatteError(f"{path}: {exc}") from None
    stem = tuple(tensors[convolutions[0]["weight"]].shape) if convolutions else ()
    if stem not in STEM_VARIANTS:
        raise VmatteError(f"{path}: not an RVM release graph (first convolution {stem or 'absent'}; RVM's "
                          "MobileNetV3 and ResNet-50 start with (16, 3, 3, 3) and (64, 3, 7, 7))")
    variant = STEM_VARIANTS[stem]
    network_convolutions = _network_convolutions(MattingNetwork(variant, "deep_guided_filter"))
    if len(convolutions) != len(network_convolutions):
        raise VmatteError(f"{path}: {len(convolutions)} convolutions where RVM {variant} with the deep guided "
                          f"filter has {len(network_convolutions)}: another network or export")
    state: dict[str, torch.Tensor] = {}
    for conv, (name, module, bn) in zip(convolutions, network_convolutions):
        try:
            _check_fits(conv, name, module, tensors)
        except VmatteError as exc:
            raise VmatteError(f"{path}: {exc}") from None
        state[name + ".weight"] = torch.from_numpy(tensors[conv["weight"]])
        bias = torch.from_numpy(tensors[conv["bias"]]) if conv["bias"] else None
        if (bias is not None) != (module.bias is not None or bn is not None):
            raise VmatteError(f"{path}: convolution {conv['node']} {'has' if bias is not None else 'lacks'} "
                              f"a bias where {name} {'does not' if bias is not None else 'does'}")
        if module.bias is not None:
            state[name + ".bias"] = bias
        elif bn is not None:
            identity_batchnorm(state, bn[0] + ".", bias, bn[1].eps)
    _check_normalisation(graph, path)
    return state, variant


def _check_normalisation(graph, path: Path) -> None:
    """The graph normalises its input with constants; vmatte's ONNX semantics uses the ImageNet ones."""
    from onnx import numpy_helper

    constants = [numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"]
    found = [tuple(c.ravel().astype(np.float32)) for c in constants if c.squeeze().shape == (3,)]
    expected = [tuple(np.float32(v) for v in values) for values in (ONNX_EXPORT.mean, ONNX_EXPORT.std)]
    if found[:2] != expected:
        raise VmatteError(f"{path}: normalises its input with {found[:2]}, not RVM's mean and std {expected}")
