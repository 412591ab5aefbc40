"""Official state-dict layouts load strictly; damaged, truncated or foreign weight files are refused by name."""

import re
import shutil

import pytest
import torch

from vmatte.errors import VmatteError
from vmatte.models.loader import load_rvm
from vmatte.models.weights import MODELS, resolve, verify

DTYPES = {"float32": torch.float32, "int64": torch.int64}


def layout(path):
    """(key, dtype, shape) rows of a KEYS-*.txt file."""
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, dtype, shape = line.split("\t")
        rows.append((key, DTYPES[dtype], [int(n) for n in re.findall(r"\d+", shape)]))
    return rows


def state_from_layout(path, fill=0.01):
    return {key: torch.full(shape, fill, dtype=dtype) for key, dtype, shape in layout(path)}


@pytest.mark.parametrize("variant,count", [("mobilenetv3", 380), ("resnet50", 390)])
def test_official_layout_loads_strictly(weights_dir, tmp_path, variant, count):
    state = state_from_layout(weights_dir / f"KEYS-rvm_{variant}.pth.txt")
    assert len(state) == count
    path = tmp_path / f"rvm_{variant}.pth"
    torch.save(state, path)
    model = load_rvm(path)
    assert model.variant == variant and model.refiner_name == "deep_guided_filter"
    assert model.semantics.name == "torch"
    assert set(model.state_dict()) == set(state)
    model.load_state_dict(state, strict=True)
    with torch.inference_mode():
        out = model(torch.rand(1, 2, 3, 64, 96), None, 0.5)
    assert out.pha.shape == (1, 2, 1, 64, 96)


def test_truncated_file_is_refused_by_name(weights_dir, tmp_path):
    path = tmp_path / "rvm_mobilenetv3.pth"
    torch.save(state_from_layout(weights_dir / "KEYS-rvm_mobilenetv3.pth.txt"), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VmatteError, match="rvm_mobilenetv3.pth"):
        load_rvm(path)


def test_wrong_architecture_is_refused(weights_dir, tmp_path):
    state = state_from_layout(weights_dir / "KEYS-rvm_mobilenetv3.pth.txt")
    del state["decoder.decode2.gru.hh.0.bias"]
    state["decoder.extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(VmatteError, match=r"broken\.pth.*missing decoder\.decode2\.gru\.hh\.0\.bias"):
        load_rvm(path)
    modnet = state_from_layout(weights_dir / "KEYS-modnet.ckpt.txt")
    torch.save(modnet, tmp_path / "modnet.ckpt")
    with pytest.raises(VmatteError, match="not an RVM state dict"):
        load_rvm(tmp_path / "modnet.ckpt")


def test_wrong_shape_is_refused(weights_dir, tmp_path):
    state = state_from_layout(weights_dir / "KEYS-rvm_mobilenetv3.pth.txt")
    state["project_mat.conv.weight"] = torch.zeros(4, 8, 1, 1)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(VmatteError, match="shape.pth"):
        load_rvm(tmp_path / "shape.pth")


def test_tfjs_export_checksums_and_corruption(weights_dir, tmp_path):
    model = MODELS["rvm-mobilenetv3-int8"]
    verify(model, weights_dir / model.filename)  # the staged export is the official one
    copy = tmp_path / model.filename
    shutil.copytree(weights_dir / model.filename, copy)
    data = bytearray((copy / "group1-shard1of1.bin").read_bytes())
    data[1000] ^= 0xFF
    (copy / "group1-shard1of1.bin").write_bytes(bytes(data))
    with pytest.raises(VmatteError, match="group1-shard1of1.bin: checksum mismatch"):
        verify(model, copy)
    (copy / "group1-shard1of1.bin").write_bytes(bytes(data[:-100]))
    with pytest.raises(VmatteError, match="truncated"):
        load_rvm(copy)


def test_lookup_order_and_offline_fallback(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VMATTE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("VMATTE_OFFLINE", "1")
    monkeypatch.setenv("VMATTE_WEIGHTS", str(weights_dir))
    notices = []
    model, path = resolve("rvm-mobilenetv3", notice=notices.append)  # the same weights, as the ONNX release
    assert model.name == "rvm-mobilenetv3-onnx" and path == weights_dir / "rvm_mobilenetv3_fp32.onnx"
    assert notices == []  # not a stand-in: the run's model line names it
    only_int8 = tmp_path / "only-int8"
    only_int8.mkdir()
    (only_int8 / "rvm_mobilenetv3_tfjs_int8").symlink_to(weights_dir / "rvm_mobilenetv3_tfjs_int8")
    monkeypatch.setenv("VMATTE_WEIGHTS", str(only_int8))
    model, path = resolve("rvm-mobilenetv3", notice=notices.append)
    assert model.name == "rvm-mobilenetv3-int8" and path == only_int8 / "rvm_mobilenetv3_tfjs_int8"
    assert len(notices) == 1 and "rvm_mobilenetv3.pth" in notices[0]
    monkeypatch.setenv("VMATTE_WEIGHTS", str(weights_dir))
    # A file in the cache is found after the VMATTE_WEIGHTS folders.
    (tmp_path / "cache").mkdir()
    state = state_from_layout(weights_dir / "KEYS-rvm_mobilenetv3.pth.txt")
    torch.save(state, tmp_path / "cache" / "rvm_mobilenetv3.pth")
    model, path = resolve("rvm-mobilenetv3", notice=notices.append)
    assert path == tmp_path / "cache" / "rvm_mobilenetv3.pth"


def test_nothing_available_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("VMATTE_HOME", str(tmp_path))
    monkeypatch.setenv("VMATTE_OFFLINE", "1")
    monkeypatch.setenv("VMATTE_WEIGHTS", "")
    with pytest.raises(VmatteError) as info:
        resolve("rvm-resnet50")
    message = str(info.value)
    assert "rvm_resnet50.pth" in message and MODELS["rvm-resnet50"].url in message and str(tmp_path) in message
    with pytest.raises(VmatteError, match="unknown model"):
        resolve("rvm-tiny")


def test_known_checksums_are_well_formed():
    for model in MODELS.values():
        for digest in [model.sha256, *(d for _, d in model.unpacked)]:
            assert digest is None or re.fullmatch(r"[0-9a-f]{64}", digest)


def test_download_checks_the_checksum_and_never_leaves_a_broken_file(tmp_path, monkeypatch):
    """The real download path, fed from a local file:// URL (urllib's own scheme; no network)."""
    import dataclasses
    import hashlib

    from vmatte.models.weights import download

    monkeypatch.setenv("VMATTE_HOME", str(tmp_path / "cache"))
    served = tmp_path / "served.pth"
    served.write_bytes(b"weights" * 1000)
    good = dataclasses.replace(MODELS["rvm-resnet50"], url=served.as_uri(),
                               sha256=hashlib.sha256(served.read_bytes()).hexdigest())
    path = download(good, quiet=True)
    assert path == tmp_path / "cache" / "rvm_resnet50.pth" and path.read_bytes() == served.read_bytes()
    path.unlink()
    bad = dataclasses.replace(good, sha256="0" * 64)
    with pytest.raises(VmatteError, match="sha256"):
        download(bad, quiet=True)
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written, nothing that looks finished


def test_download_unpacks_the_tfjs_archive_and_checks_its_files(weights_dir, tmp_path, monkeypatch):
    import dataclasses
    import zipfile

    from vmatte.models.weights import download

    monkeypatch.setenv("VMATTE_HOME", str(tmp_path / "cache"))
    archive = tmp_path / "rvm_mobilenetv3_tfjs_int8.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in (weights_dir / "rvm_mobilenetv3_tfjs_int8").iterdir():
            out.write(file, f"rvm_mobilenetv3_tfjs_int8/{file.name}")
    model = dataclasses.replace(MODELS["rvm-mobilenetv3-int8"], url=archive.as_uri())
    path = download(model, quiet=True)
    assert path == tmp_path / "cache" / "rvm_mobilenetv3_tfjs_int8"
    assert load_rvm(path).variant == "mobilenetv3"
