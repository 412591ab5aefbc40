"""Joining finished video segments into one file by stream copy (no re-encode), with the source's audio.

A resumable run writes each output as a series of closed segments (ProRes is intra-only; the H.264 preview
has no B-frames and starts every segment on a keyframe), so the joined file decodes to exactly the frames
an uninterrupted run writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import av

from vmatte.errors import VmatteError
from vmatte.io.audio import open_audio_track
from vmatte.io.frame_writer import open_output_container, partial_path, tag_timecode
from vmatte.io.probe import VideoInfo

CONTAINER_FORMATS = {".mov": "mov", ".mp4": "mp4", ".webm": "webm"}


def join_segments(segments: list[Path], path: Path, info: VideoInfo, audio_from: str | Path | None = None) -> None:
    """Concatenates the video packets of ``segments`` into ``path`` (built under a partial name, renamed when
    complete), adding the first audio stream of ``audio_from`` interleaved with the video."""
    if not segments:
        raise VmatteError(f"{path}: no frames were written")
    partial = partial_path(path)
    options = {"movflags": "+faststart"} if path.suffix.lower() == ".mp4" else {}
    output = open_output_container(path, partial, info, CONTAINER_FORMATS[path.suffix.lower()], options)
    audio = None
    try:
        with av.open(str(segments[0])) as first:
            template = first.streams.video[0]
            stream = output.add_stream_from_template(template)
            # The template leaves these blank: MOV would then say ProRes 422 HQ, and square pixels.
            stream.codec_tag = template.codec_tag
            if template.sample_aspect_ratio:
                stream.codec_context.sample_aspect_ratio = template.sample_aspect_ratio
            tag_timecode(stream, info)
            # VP9 alpha travels in each block's additional data; the tag (read back upper-case) announces it.
            if alpha_mode := {key.lower(): value for key, value in template.metadata.items()}.get("alpha_mode"):
                stream.metadata["alpha_mode"] = alpha_mode
        if audio_from is not None:
            audio = open_audio_track(output, audio_from, info.audio_cut)
        for segment in segments:
            with av.open(str(segment)) as container:
                for packet in container.demux(container.streams.video[0]):
                    if packet.dts is None:  # end-of-stream marker
                        continue
                    packet.stream = stream
                    output.mux(packet)
                    if audio is not None:
                        audio.mux_until(float(packet.pts * packet.time_base))
        if audio is not None:
            audio.finish()
        output.close()
        os.replace(partial, path)
    except (av.FFmpegError, OSError) as error:
        raise VmatteError(f"{path}: could not join its segments ({error})") from None
    finally:
        if audio is not None:
            audio.close()
        if partial.exists():
            output.close()
            partial.unlink()
