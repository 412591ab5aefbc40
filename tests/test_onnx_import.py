"""The ONNX release importer: every tensor of the official graph lands where it belongs, the float16 layout reads
the same way, and a file that is not an RVM release is one clear error."""

import os
import subprocess
import sys

import media
import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from vmatte.errors import VmatteError
from vmatte.models import onnx_release
from vmatte.models.loader import load_rvm, prepare_for_inference
from vmatte.models.onnx_release import import_onnx

ONNX = "rvm_mobilenetv3_fp32.onnx"


@pytest.fixture(scope="module")
def release(weights_dir):
    return weights_dir / ONNX


@pytest.fixture(scope="module")
def proto(release):
    return onnx.load(str(release))


def conv_modules_in_graph_order(model: torch.nn.Module, graph) -> list:
    """The prepared network's convolutions whose folded weights are the graph's, matched by value: a strong check
    that each graph tensor went to one module and came back unchanged through BatchNorm folding."""
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    matched = []
    for node in (n for n in graph.node if n.op_type == "Conv"):
        weight = tensors[node.input[1]]
        found = [m for m in convs if tuple(m.weight.shape) == weight.shape
                 and np.allclose(m.weight.detach().numpy(), weight, rtol=1e-6, atol=1e-9)]
        assert len(found) == 1, f"{node.input[1]}: {len(found)} modules carry it"
        if len(node.input) > 2:
            bias = found[0].bias.detach().numpy()
            np.testing.assert_allclose(bias, tensors[node.input[2]], rtol=1e-5, atol=1e-7)
        matched.append(found[0])
    return matched


def test_every_graph_tensor_lands_once(release, proto):
    model = prepare_for_inference(load_rvm(release), torch.device("cpu"), torch.float32)
    matched = conv_modules_in_graph_order(model, proto.graph)
    used = {id(m) for m in matched}
    unused = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and id(m) not in used]
    assert unused == ["project_seg.conv"], unused  # the segmentation head is not in the export
    assert model.refiner_name == "deep_guided_filter" and model.semantics.refine_at_ratio_one


def test_float16_layout_reads_the_same(tmp_path, proto, release):
    """The fp16 release stores the same graph with float16 tensors: read as float32, each is the float32
    release's tensor rounded to float16."""
    half = onnx.ModelProto()
    half.CopyFrom(proto)
    for init in half.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    path = tmp_path / "rvm_mobilenetv3_fp16.onnx"
    onnx.save(half, str(path))
    full, _ = import_onnx(release)
    rounded, variant = import_onnx(path)
    assert variant == "mobilenetv3" and full.keys() == rounded.keys()
    for key, value in full.items():
        if value.is_floating_point() and "running_var" not in key:  # 1 - eps is vmatte's, not the file's
            torch.testing.assert_close(rounded[key], value.half().float(), rtol=0, atol=0, msg=key)


def edited(proto, tmp_path, change) -> str:
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    change(copy.graph)
    path = tmp_path / "edited.onnx"
    onnx.save(copy, str(path))
    return str(path)


def replace_tensor(graph, name: str, value: np.ndarray) -> None:
    for init in graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(value, name))


def test_a_tensor_of_another_shape_is_named(tmp_path, proto):
    path = edited(proto, tmp_path, lambda g: replace_tensor(g, "827", np.zeros((16, 1, 5, 5), np.float32)))
    with pytest.raises(VmatteError, match=r"convolution .* does not fit: shape \(16, 1, 5, 5\) where "
                                          r"backbone.features.1.block.0.0 has \(16, 1, 3, 3\)"):
        load_rvm(path)


def test_a_named_tensor_in_the_wrong_place_is_named(tmp_path, proto):
    def rename(g):
        for init in g.initializer:
            if init.name == "project_mat.conv.weight":
                init.name = "project_seg.conv.weight"
        for node in g.node:
            node.input[:] = ["project_seg.conv.weight" if i == "project_mat.conv.weight" else i for i in node.input]
    with pytest.raises(VmatteError, match="its weight is named 'project_seg.conv.weight' where "
                                          "project_mat.conv.weight comes"):
        load_rvm(edited(proto, tmp_path, rename))


def test_another_network_is_refused(tmp_path, proto):
    def drop_last_conv(g):
        nodes = [n for n in g.node]
        last = max(i for i, n in enumerate(nodes) if n.op_type == "Conv")
        nodes[last].op_type = "Identity"
        del nodes[last].input[1:]
        del nodes[last].attribute[:]
    with pytest.raises(VmatteError, match="convolutions where RVM mobilenetv3"):
        load_rvm(edited(proto, tmp_path, drop_last_conv))


def foreign_model(path) -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    value = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in ("x", "y")]
    onnx.save(helper.make_model(helper.make_graph([node], "other", value[:1], value[1:])), str(path))


@pytest.mark.parametrize("kind", ["truncated", "garbage", "video", "foreign"])
def test_a_broken_or_foreign_file_is_one_line(tmp_path, release, samples_dir, kind):
    path = tmp_path / "weights.onnx"
    if kind == "truncated":
        path.write_bytes(release.read_bytes()[: 5 << 20])
    elif kind == "garbage":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "video":
        path.write_bytes((samples_dir / "robustness_videos/decord_rot0.mov").read_bytes())
    else:
        foreign_model(path)
    with pytest.raises(VmatteError):
        load_rvm(path)
    if kind in ("truncated", "foreign"):  # through the CLI: one line, non-zero exit, no output left behind
        result = subprocess.run(["vmatte", str(samples_dir / "robustness_videos/decord_rot0.mov"), "--out",
                                 "alpha.mov", "--weights", str(path)], cwd=tmp_path, env=media.env_for_cli(),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "weights.onnx" in lines[0], lines
        assert not (tmp_path / "alpha.mov").exists()


class ReleaseSignature(torch.nn.Module):
    """A network behind the release graph's inputs and outputs, for export (the ratio is fixed at 0.5)."""

    def __init__(self, network):
        super().__init__()
        self.net = network

    def forward(self, src, r1i, r2i, r3i, r4i, downsample_ratio):
        out = self.net(src[None] * (downsample_ratio / downsample_ratio), [r1i, r2i, r3i, r4i], 0.5)
        return (out.fgr[0], out.pha[0], *out.state)


def test_resnet50_layout_round_trips(tmp_path):
    """No ResNet-50 ONNX release can be had here, so its layout is built: vmatte's own ResNet-50 network (seeded
    weights with non-trivial BatchNorm statistics) exported by PyTorch's ONNX exporter, which folds BatchNorm and
    renames tensors as the release's exporter did. Read back, it must give the same mattes."""
    from vmatte.models.matting_network import MattingNetwork
    from vmatte.models.semantics import ONNX_EXPORT

    torch.manual_seed(0)
    network = MattingNetwork("resnet50", semantics=ONNX_EXPORT).eval()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    src = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        expected = network(src[None], None, 0.5)
        path = tmp_path / "rvm_resnet50_fp32.onnx"
        torch.onnx.export(ReleaseSignature(network), (src, *expected.state, torch.tensor([0.5])), str(path),
                          opset_version=13, dynamo=False, input_names=list(onnx_release.INPUTS),
                          output_names=list(onnx_release.OUTPUTS))
    loaded = prepare_for_inference(load_rvm(path), torch.device("cpu"), torch.float32)
    assert loaded.variant == "resnet50"
    with torch.inference_mode():
        out = loaded(src[None], None, 0.5)
    torch.testing.assert_close(out.pha, expected.pha, rtol=0, atol=1e-4)
    torch.testing.assert_close(out.fgr, expected.fgr, rtol=0, atol=1e-4)


LOAD_AND_SAVE = """import sys, torch
from vmatte.models.loader import load_rvm
torch.save(load_rvm(sys.argv[1]).state_dict(), sys.argv[2])
print("onnx" in sys.modules)
"""


def test_a_later_run_reads_the_imported_weights_from_the_cache(release, tmp_path):
    """Importing the release needs the onnx package (0.5-0.9 s to import it); later runs read the same tensors from
    the cache without it, and a damaged copy there is imported again and replaced."""
    env = {**os.environ, "VMATTE_HOME": str(tmp_path / "home")}

    def load(name: str) -> tuple[bool, dict]:
        result = subprocess.run([sys.executable, "-c", LOAD_AND_SAVE, str(release), str(tmp_path / name)], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip() == "True", torch.load(tmp_path / name)

    def same(a: dict, b: dict) -> bool:
        # The segmentation head is not in the release (matting does not use it): it keeps its random initial values.
        loaded = [key for key in a if not key.startswith("project_seg.")]
        return a.keys() == b.keys() and len(loaded) > 100 and all(torch.equal(a[key], b[key]) for key in loaded)

    imported, first = load("first.pt")
    from_cache, second = load("second.pt")
    assert imported and not from_cache and same(first, second)
    (saved,) = (tmp_path / "home" / "compiled").glob("rvm-weights-*/state.pt")
    saved.write_bytes(saved.read_bytes()[:4096])
    imported_again, third = load("third.pt")
    assert imported_again and same(first, third)
    assert not load("fourth.pt")[0]
