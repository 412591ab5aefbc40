"""Carry a source's first decodable audio stream into an output container, interleaved with the video as it
is written.

Codecs MOV can hold are stream-copied (packets and timestamps untouched). Others (Vorbis, Opus, FLAC, ...) are
decoded to PCM: 16-bit when the source decodes to 16-bit samples, else 24-bit (a 24-bit FLAC stays 24-bit). PCM
has no encoder delay, so the duration is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from vmatte.errors import VmatteError

MOV_COPYABLE = {
    "aac", "alac", "mp3", "ac3", "eac3",
    "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_s32be", "pcm_f32le", "pcm_f32be",
}
SIXTEEN_BIT_FORMATS = {"u8", "u8p", "s16", "s16p"}


class AudioTrack:
    """Feeds the output's audio stream up to the time of the video written so far."""

    def __init__(self, output: av.container.OutputContainer, source: av.container.InputContainer,
                 source_stream: av.AudioStream) -> None:
        self._output = output
        self._input = source
        context = source_stream.codec_context
        self._copy = context.codec.canonical_name in MOV_COPYABLE
        if self._copy:
            self._stream = output.add_stream_from_template(source_stream)
        else:
            sixteen_bit = context.format.name in SIXTEEN_BIT_FORMATS
            codec, sample_format = ("pcm_s16le", "s16") if sixteen_bit else ("pcm_s24le", "s32")
            self._stream = output.add_stream(codec, rate=context.sample_rate, layout=context.layout)
            self._stream.time_base = Fraction(1, context.sample_rate)
            self._resampler = av.AudioResampler(format=sample_format, layout=context.layout, rate=context.sample_rate)
            self._next_sample: int | None = None
        self._packets = self._output_packets(source_stream)
        self._next: av.Packet | None = None

    def mux_until(self, seconds: float) -> None:
        """Mux the audio that starts up to ``seconds``, so audio and video stay interleaved."""
        while True:
            if self._next is None:
                self._next = next(self._packets, None)
                if self._next is None:
                    return
            if self._next.pts is not None and self._next.pts * self._next.time_base > seconds:
                return
            self._output.mux(self._next)
            self._next = None

    def finish(self) -> None:
        self.mux_until(float("inf"))
        if not self._copy:
            self._output.mux(self._stream.encode(None))

    def close(self) -> None:
        self._input.close()

    def _output_packets(self, source_stream: av.AudioStream) -> Iterator[av.Packet]:
        for packet in self._input.demux(source_stream):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            if self._copy:
                packet.stream = self._stream
                yield packet
            else:
                yield from self._transcoded(source_stream, packet)

    def _transcoded(self, source_stream: av.AudioStream, packet: av.Packet) -> Iterator[av.Packet]:
        for frame in source_stream.decode(packet):
            if self._next_sample is None:  # keep the source's start time
                self._next_sample = round(frame.time * self._stream.rate) if frame.time is not None else 0
            for pcm in self._resampler.resample(frame):
                pcm.pts = self._next_sample
                pcm.time_base = self._stream.time_base
                self._next_sample += pcm.samples
                yield from self._stream.encode(pcm)


def open_audio_track(output: av.container.OutputContainer, source: str | Path) -> AudioTrack | None:
    """An AudioTrack for the source's first decodable audio stream, or None when it has none."""
    try:
        container = av.open(str(source))
    except av.FFmpegError as error:
        raise VmatteError(f"{source}: cannot read its audio ({error})") from None
    streams = decodable_audio_streams(container)
    if not streams:
        container.close()
        return None
    return AudioTrack(output, container, streams[0])


def decodable_audio_streams(container: av.container.InputContainer) -> list[av.AudioStream]:
    """The audio streams FFmpeg has a decoder for (others cannot be converted, nor described)."""
    return [stream for stream in container.streams.audio if stream.codec_context is not None]
