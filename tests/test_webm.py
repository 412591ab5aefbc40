"""WebM with alpha: VP9 yuva420p that FFmpeg's libvpx-vp9 decoder (PyAV, not vmatte's reader) decodes with an
alpha plane matching the matte, the alpha_mode tag set (also after the segment join of a resumable run); the
composite is plain VP9; the source's audio (which WebM could not hold as PCM) is left out. The clip is three
frames of real footage made into a camera-like .mov with AAC audio."""

import av
import cv2
import media
import numpy as np
import pytest
from typer.testing import CliRunner

from vmatte.cli import app

WEBCAM = "portrait_videos/androidx_webcam_face_640x428.mov"  # a face


def libvpx_frames(path):
    """(the stream's tags, every frame libvpx-vp9 decodes); FFmpeg's native vp9 decoder ignores alpha."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tags = {key.lower(): value for key, value in stream.metadata.items()}
        decoder = av.CodecContext.create("libvpx-vp9", "r")
        frames = [frame for packet in container.demux(stream) for frame in decoder.decode(packet)]
        audio = len(container.streams.audio)
    return tags, frames, audio


def alpha_plane(frame):
    plane = frame.planes[3]
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width] / 255.0


def vmatte(*args):
    result = CliRunner().invoke(app, ["run", *map(str, args)])
    assert result.exit_code == 0, result.stderr


@pytest.fixture(scope="module")
def run(samples_dir, tmp_path_factory):
    """The README's command."""
    folder = tmp_path_factory.mktemp("webm")
    clip = folder / "clip.mov"  # three frames of the webcam clip, with AAC audio
    media.write_timecoded_clip(clip, samples_dir / WEBCAM, 3, "00:00:00:00", size=(320, 214))
    vmatte(clip, "--fgr", folder / "fgr.webm", "--comp", folder / "comp.webm",
           "--out", f"{folder}/alpha/")
    return folder


def test_foreground_decodes_with_an_alpha_plane(run):
    tags, frames, audio = libvpx_frames(run / "fgr.webm")
    assert tags.get("alpha_mode") == "1" and audio == 0  # WebM could not hold the source's audio as PCM
    assert len(frames) == 3 and all(frame.format.name == "yuva420p" for frame in frames)
    assert (frames[0].width, frames[0].height) == (320, 214)
    for index, frame in enumerate(frames):
        png = cv2.imread(str(run / "alpha" / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED) / 65535.0
        error = np.abs(alpha_plane(frame) - png)
        assert 0.05 < png.mean() < 0.95 and error.mean() < 0.01, index  # VP9 is lossy; the matte comes through


def test_composite_is_plain_vp9(run):
    tags, frames, _ = libvpx_frames(run / "comp.webm")
    assert "alpha_mode" not in tags and len(frames) == 3 and frames[0].format.name == "yuv420p"

