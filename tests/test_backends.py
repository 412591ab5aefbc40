"""Inference backends: which one ``auto`` picks, the compiled-model cache, the option on the command line and in
presets, and one clear line when a backend's package is missing. Golden parity per backend is in
test_model_golden.py and test_cli.py, resume per backend in test_resume.py and test_temporal.py."""

import os
import subprocess
import sys

import media
import numpy as np
import pytest
import torch
from backends import BACKENDS
from typer.testing import CliRunner

from vmatte.backends import choose_backend, load_on_backend
from vmatte.cli import app
from vmatte.errors import VmatteError
from vmatte.presets import load_preset

SMALL = "robustness_videos/decord_rot0.mov"  # 3 frames, 568x320
CPU = torch.device("cpu")
needs_openvino = pytest.mark.skipif("openvino" not in BACKENDS, reason="the openvino package is not installed")


@pytest.fixture
def tfjs_weights(weights_dir):
    return weights_dir / "rvm_mobilenetv3_tfjs_int8"


def vmatte(*args):
    return CliRunner().invoke(app, ["run", *map(str, args)])


def without_openvino(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # 'import openvino' now raises ImportError


@needs_openvino
def test_auto_picks_openvino_for_rvm_in_fp32_on_the_cpu():
    assert choose_backend("auto", CPU, torch.float32, "rvm") == "openvino"


@pytest.mark.parametrize("device, dtype, family", [(torch.device("cuda"), torch.float16, "rvm"),
                                                   (torch.device("mps"), torch.float16, "rvm"),
                                                   (CPU, torch.bfloat16, "rvm"), (CPU, torch.float32, "modnet")])
def test_auto_stays_on_torch_elsewhere(device, dtype, family):
    assert choose_backend("auto", device, dtype, family) == "torch"


def test_auto_without_openvino_is_torch(monkeypatch):
    without_openvino(monkeypatch)
    assert choose_backend("auto", CPU, torch.float32, "rvm") == "torch"


def test_unknown_backend_is_refused():
    with pytest.raises(VmatteError, match="--backend tensorrt: choose auto, torch, openvino"):
        choose_backend("tensorrt", CPU, torch.float32, "rvm")


@needs_openvino
def test_openvino_refuses_half_precision(tfjs_weights):
    with pytest.raises(VmatteError, match="fp32"):
        load_on_backend("rvm-mobilenetv3-int8", tfjs_weights, device=CPU, precision="bf16", backend="openvino")


def test_missing_package_is_one_clear_line(samples_dir, tfjs_weights, tmp_path, monkeypatch):
    without_openvino(monkeypatch)
    result = vmatte(samples_dir / SMALL, "--out", tmp_path / "alpha.mov", "--weights", tfjs_weights,
                    "--backend", "openvino", "-q")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: --backend openvino needs the openvino package (pip install openvino), which is not installed here"]
    assert not (tmp_path / "alpha.mov").exists()


@needs_openvino
def test_compiled_model_is_cached_and_reused(tfjs_weights, tmp_path, monkeypatch):
    """The first engine converts the graph; a second one (a later run) reads it without converting again, and
    gives the same mattes, at any ratio (another working size). Other semantics are another graph."""
    import openvino

    monkeypatch.setenv("VMATTE_HOME", str(tmp_path))
    frames = torch.rand(2, 3, 72, 128)

    def run(semantics="torch", ratio=0.5):
        engine = load_on_backend("rvm-mobilenetv3-int8", tfjs_weights, device=CPU, semantics=semantics,
                                    backend="openvino")
        return engine.run(frames, None, ratio, need_fgr=False).pha

    first = run()
    quarter = run(ratio=0.25)
    built = sorted(p.relative_to(tmp_path) for p in (tmp_path / "compiled").rglob("model.*"))
    assert [p.name for p in built] == ["model.bin", "model.xml"]

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the compiled model is cached")

    monkeypatch.setattr(openvino, "convert_model", no_conversion)
    assert torch.equal(run(), first)
    assert torch.equal(run(ratio=0.25), quarter)
    with pytest.raises(AssertionError, match="converted again"):
        run(semantics="tfjs")


@needs_openvino
@pytest.mark.parametrize(("model", "weights"), [("rvm-mobilenetv3", "rvm_mobilenetv3_fp32.onnx"),
                                                ("rvm-mobilenetv3-int8", "rvm_mobilenetv3_tfjs_int8")])
def test_one_conversion_serves_every_working_size(weights_dir, model, weights, tmp_path, monkeypatch):
    """The graph is converted at the first working size with its height and width left open; at other sizes (odd
    ones, portrait, the region pass's) it gives PyTorch's mattes and state, and nothing is converted again."""
    import openvino

    monkeypatch.setenv("VMATTE_HOME", str(tmp_path))
    converted = []
    convert = openvino.convert_model
    monkeypatch.setattr(openvino, "convert_model", lambda *a, **k: converted.append(1) or convert(*a, **k))
    engine = load_on_backend(model, weights_dir / weights, device=CPU, backend="openvino", notice=lambda _: None)
    reference = load_on_backend(model, weights_dir / weights, device=CPU, backend="torch", notice=lambda _: None)
    generator = torch.Generator().manual_seed(0)
    # At ratio 0.5 the working sizes are 72x128, 97x61, 121x215 and 16x30 (its deepest feature map 1 pixel high),
    # and the guided filter is in the graph.
    for height, width in [(144, 256), (194, 122), (242, 430), (32, 60)]:
        frames = torch.rand(3, 3, height, width, generator=generator)
        compiled, reference_out = engine.run(frames, None, 0.5, False), reference.run(frames, None, 0.5, False)
        assert compiled.pha.shape == reference_out.pha.shape
        assert (compiled.pha - reference_out.pha).abs().max() < 1e-3, (height, width)
        for ours, theirs in zip(compiled.state, reference_out.state):
            assert ours.shape == theirs.shape and (ours - theirs).abs().max() < 1e-3
    assert len(converted) == 1


@needs_openvino
def test_backend_is_in_the_fingerprint(tfjs_weights):
    torch_engine = load_on_backend("rvm-mobilenetv3-int8", tfjs_weights, device=CPU, backend="torch")
    openvino_engine = load_on_backend("rvm-mobilenetv3-int8", tfjs_weights, device=CPU, backend="openvino")
    assert torch_engine.settings()["backend"] == "torch"
    assert openvino_engine.settings()["backend"].startswith("openvino 20")


@needs_openvino
def test_cli_backends_agree(samples_dir, tmp_path):
    """The README's command with each backend: the same mattes to the golden tolerance."""
    mattes = {}
    for backend in ("torch", "openvino"):
        out = tmp_path / backend
        result = vmatte(samples_dir / SMALL, "--out", f"{out}/", "--backend", backend, "-q")
        assert result.exit_code == 0, result.output
        mattes[backend], _ = media.read_png_sequence(out)
    diff = np.abs(mattes["torch"] - mattes["openvino"])
    assert diff.max() <= 1e-2 and diff.mean() <= 2e-4, (diff.max(), diff.mean())


def test_preset_backend_key(tmp_path):
    preset = tmp_path / "cpu.toml"
    preset.write_text('description = "d"\nbackend = "torch"\n[outputs]\nalpha = "{stem}.mov"\n')
    assert load_preset(preset).options["backend"] == "torch"
    preset.write_text('description = "d"\nbackend = "onnx"\n[outputs]\nalpha = "{stem}.mov"\n')
    with pytest.raises(VmatteError, match="line 2: backend = 'onnx' is not valid: expected one of auto, torch"):
        load_preset(preset)


@needs_openvino
def test_openvino_conversion_sends_no_usage_statistics(tmp_path):
    """OpenVINO's converter reports usage to Google Analytics by default (it writes a client id under
    ~/intel first); vmatte turns that off. CI=true would hide it (the converter skips CI), so it is unset."""
    script = ("import torch\nfrom vmatte.inference_openvino import import_openvino\n"
              "import_openvino().convert_model(torch.nn.Conv2d(3, 3, 3), example_input=torch.zeros(1, 3, 8, 8))\n")
    env = {name: value for name, value in os.environ.items() if name not in ("CI", "TF_BUILD", "JENKINS_URL")}
    result = subprocess.run([sys.executable, "-c", script], env={**env, "HOME": str(tmp_path)}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "intel").exists(), "OpenVINO's telemetry ran (it left its client id in ~/intel)"
