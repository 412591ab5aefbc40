"""Media input and output through PyAV: probing, frame sources, output writers and backgrounds."""

from vmatte.io.background import Background, open_background
from vmatte.io.probe import AudioInfo, VideoInfo, probe
from vmatte.io.reader import FrameSource, SourceFrame, open_source
from vmatte.io.writer import FrameWriter, open_writer

__all__ = [
    "AudioInfo",
    "Background",
    "FrameSource",
    "FrameWriter",
    "SourceFrame",
    "VideoInfo",
    "open_background",
    "open_source",
    "open_writer",
    "probe",
]
