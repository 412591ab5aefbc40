"""OpenEXR sequences, read back with the OpenEXR library (not vmatte's reader): half-float channels named as
compositors expect, lossless PIZ compression, the source's chromaticities; the matte equals the 16-bit PNG matte
(of the same run, and of a run with the same settings) within half precision; colour is linearised from the
source's transfer function (BT.601's, the same as BT.709's, here) and premultiplied, or kept display-encoded
with --exr-display-encoded."""

import dataclasses

import cv2
import media
import numpy as np
import OpenEXR
import pytest
from typer.testing import CliRunner

from vmatte.cli import app
from vmatte.errors import VmatteError
from vmatte.io import open_writer, probe
from vmatte.io.exr import CHROMATICITIES, LINEARISE

WEBCAM = "portrait_videos/androidx_webcam_face_640x428.mov"  # a face; BT.601 (smpte170m) primaries
HALF = 2.0 ** -11  # relative precision of a half float


def vmatte(*args):
    result = CliRunner().invoke(app, ["run", *map(str, args)])
    assert result.exit_code == 0, result.stderr
    return result


def read_exr(path):
    with OpenEXR.File(str(path), separate_channels=True) as file:
        # Copies: the bindings empty the header when the file closes.
        return dict(file.header()), {name: channel.pixels.copy() for name, channel in file.channels().items()}


def read_png16(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint16
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return image / 65535.0


def assert_within_half(exr, expected, what):
    """Equal to ``expected`` (from a 16-bit PNG) within the rounding of both."""
    error = np.abs(exr.astype(np.float64) - expected)
    assert (error <= np.abs(expected) * HALF + 0.5 / 65535 + 1e-7).all(), f"{what}: off by {error.max():.2e}"


@pytest.fixture(scope="module")
def runs(samples_dir, tmp_path_factory):
    """The README's commands (every output as EXR; a display-encoded EXR foreground beside a 16-bit PNG matte),
    and the same clip as 16-bit PNGs for reference (a run is deterministic)."""
    root = tmp_path_factory.mktemp("exr")
    clip = root / "clip.mov"  # three frames of the webcam clip, untagged SD: BT.601 assumed
    media.write_timecoded_clip(clip, samples_dir / WEBCAM, 3, "00:00:00:00", size=(320, 214))
    vmatte(clip, "--out", root / "matte/%06d.exr", "--fgr", root / "fgr/%06d.exr", "--comp", root / "comp/%06d.exr")
    vmatte(clip, "--fgr", root / "display/%06d.exr", "--exr-display-encoded", "--out", f"{root}/alpha/")
    vmatte(clip, "--out", f"{root}/png/matte/", "--fgr", f"{root}/png/fgr/", "--comp", f"{root}/png/comp/")
    return root


def test_matte_is_one_half_channel_equal_to_the_png_matte(runs):
    assert media.visible_entries(runs / "matte") == ["000000.exr", "000001.exr", "000002.exr"]
    for index in range(3):
        header, channels = read_exr(runs / "matte" / f"{index:06d}.exr")
        assert list(channels) == ["Y"] and channels["Y"].dtype == np.float16
        assert header["compression"] == OpenEXR.PIZ_COMPRESSION
        png = read_png16(runs / "png" / "matte" / f"{index:06d}.png")
        assert 0.02 < png.mean() < 0.98
        assert_within_half(channels["Y"], png, f"matte {index}")
        # The same run's 16-bit PNG matte against the display-encoded run's foreground alpha.
        _, display = read_exr(runs / "display" / f"{index:06d}.exr")
        assert_within_half(display["A"], read_png16(runs / "alpha" / f"{index:06d}.png"), f"alpha {index}")


def test_foreground_is_linear_premultiplied_rgba(runs):
    header, channels = read_exr(runs / "fgr" / "000000.exr")
    assert sorted(channels) == ["A", "B", "G", "R"] and all(c.dtype == np.float16 for c in channels.values())
    assert np.allclose(header["chromaticities"], CHROMATICITIES["smpte170m"], atol=1e-6)
    png = read_png16(runs / "png" / "fgr" / "000000.png")  # straight RGBA
    assert_within_half(channels["A"], png[..., 3], "alpha")
    for index, name in enumerate("RGB"):
        expected = LINEARISE["smpte170m"](png[..., index]) * png[..., 3]
        assert np.abs(channels[name] - expected).max() < 2 * HALF, name  # 16-bit and half roundings


def test_composite_is_linearised_rgb(runs):
    header, channels = read_exr(runs / "comp" / "000000.exr")
    assert sorted(channels) == ["B", "G", "R"]
    png = read_png16(runs / "png" / "comp" / "000000.png")
    for index, name in enumerate("RGB"):
        assert np.abs(channels[name] - LINEARISE["smpte170m"](png[..., index])).max() < 2 * HALF, name


def test_display_encoded_keeps_the_values_premultiplied(runs):
    _, channels = read_exr(runs / "display" / "000000.exr")
    png = read_png16(runs / "png" / "fgr" / "000000.png")
    for index, name in enumerate("RGB"):
        assert np.abs(channels[name] - png[..., index] * png[..., 3]).max() < 2 * HALF, name


def test_chromaticities_follow_the_source_primaries(samples_dir, tmp_path):
    info = probe(samples_dir / WEBCAM)
    assert info.colour_primaries == "smpte170m"
    for kind, channels in (("alpha", 1), ("fgr", 4), ("comp", 3)):
        with open_writer(kind, tmp_path / kind / "%06d.exr", info) as writer:
            writer.write(np.full((info.height, info.width, channels), 0.5, np.float32), 0)
        header, _ = read_exr(tmp_path / kind / "000000.exr")
        if kind == "alpha":
            assert "chromaticities" not in header  # coverage, not colour
        else:
            assert np.allclose(header["chromaticities"], CHROMATICITIES["smpte170m"], atol=1e-6), kind


def test_a_transfer_that_cannot_be_linearised_is_one_clear_error(samples_dir, tmp_path):
    info = dataclasses.replace(probe(samples_dir / WEBCAM), colour_transfer="iec61966-2-4")
    with pytest.raises(VmatteError, match="cannot linearise.*--exr-display-encoded"):
        open_writer("fgr", tmp_path / "f/%06d.exr", info)
    open_writer("fgr", tmp_path / "f/%06d.exr", info, exr_display_encoded=True).close()
