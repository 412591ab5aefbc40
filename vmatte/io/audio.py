"""Carry a source's first decodable audio stream into an output container, interleaved with the video as it
is written.

Codecs MOV can hold are stream-copied (packets and timestamps untouched). Others (Vorbis, Opus, FLAC, ...) are
decoded to PCM: 16-bit when the source decodes to 16-bit samples, else 24-bit (a 24-bit FLAC stays 24-bit). PCM
has no encoder delay, so the duration is unchanged.

An MP4 (the H.264 preview) holds what MP4 players and editors take: AAC and MP3 are copied, anything else is
encoded to AAC (PCM in MP4 is refused by many of them); the MP4 muxer's edit list hides the encoder's delay.

The audio of a range of a clip (an ``AudioCut``) is always decoded (and encoded again where it goes to an MP4),
so it is cut at the sample where the range's first frame starts and its last frame ends (a copied AAC packet
holds 1024 samples).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vmatte.errors import VmatteError

MOV_COPYABLE = {
    "aac", "alac", "mp3", "ac3", "eac3",
    "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_s32be", "pcm_f32le", "pcm_f32be",
}
MP4_COPYABLE = {"aac", "mp3"}
SIXTEEN_BIT_FORMATS = {"u8", "u8p", "s16", "s16p"}
AAC_FRAME_SAMPLES = 1024  # the AAC encoder takes frames of exactly this many samples (the last may be shorter)
AAC_BIT_RATE = 256_000  # stereo; transparent for a preview's sound


@dataclass(frozen=True)
class AudioCut:
    """The audio of a range: source seconds [start, end), moved ``shift`` seconds earlier in the output."""

    start: float
    end: float
    shift: float


class AudioTrack:
    """Feeds the output's audio stream up to the time of the video written so far."""

    def __init__(self, output: av.container.OutputContainer, source: av.container.InputContainer,
                 source_stream: av.AudioStream, cut: AudioCut | None = None) -> None:
        self._output = output
        self._input = source
        self._cut = cut
        context = source_stream.codec_context
        mp4 = output.format.name == "mp4"
        self._copy = context.codec.canonical_name in (MP4_COPYABLE if mp4 else MOV_COPYABLE) and cut is None
        # AAC frames are re-cut to the encoder's size here; the first sample still waiting is at _fifo_next.
        self._fifo = av.AudioFifo() if mp4 and not self._copy else None
        self._fifo_next = 0
        if self._copy:
            self._stream = output.add_stream_from_template(source_stream)
        else:
            sixteen_bit = context.format.name in SIXTEEN_BIT_FORMATS
            codec, sample_format = (("aac", "fltp") if mp4 else ("pcm_s16le", "s16") if sixteen_bit
                                    else ("pcm_s24le", "s32"))
            self._stream = output.add_stream(codec, rate=context.sample_rate, layout=context.layout)
            if mp4:
                self._stream.bit_rate = AAC_BIT_RATE * max(1, len(context.layout.channels)) // 2
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
            if self._fifo is not None and self._fifo.samples:
                self._output.mux(list(self._encoded_from_fifo(self._fifo.samples)))
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
                first = self._next_sample
                self._next_sample += pcm.samples
                if self._cut is not None:
                    pcm, first = self._within_cut(pcm, first)
                    if pcm is None:
                        continue
                pcm.time_base = self._stream.time_base
                if self._fifo is None:
                    pcm.pts = first
                    yield from self._stream.encode(pcm)
                    continue
                if not self._fifo.samples:
                    self._fifo_next = first
                pcm.pts = None  # the FIFO would check the times of its input; the output's are set below
                self._fifo.write(pcm)
                while self._fifo.samples >= AAC_FRAME_SAMPLES:
                    yield from self._encoded_from_fifo(AAC_FRAME_SAMPLES)

    def _encoded_from_fifo(self, samples: int) -> Iterator[av.Packet]:
        pcm = self._fifo.read(samples)
        pcm.pts, pcm.time_base = self._fifo_next, self._stream.time_base
        self._fifo_next += pcm.samples
        yield from self._stream.encode(pcm)

    def _within_cut(self, pcm: av.AudioFrame, first: int) -> tuple[av.AudioFrame | None, int]:
        """The samples of ``pcm`` (starting at sample ``first``) inside the cut, and where they go in the output."""
        rate = self._stream.rate
        start, end = round(self._cut.start * rate), round(self._cut.end * rate)
        keep_from, keep_to = max(first, start), min(first + pcm.samples, end)
        if keep_to <= keep_from:
            return None, 0
        if (keep_from, keep_to) != (first, first + pcm.samples):
            channels = len(pcm.layout.channels)
            samples = pcm.to_ndarray()  # packed: one row of interleaved samples
            kept = np.ascontiguousarray(samples[:, (keep_from - first) * channels : (keep_to - first) * channels])
            cut = av.AudioFrame.from_ndarray(kept, format=pcm.format.name, layout=pcm.layout.name)
            cut.sample_rate = rate
            pcm = cut
        return pcm, keep_from - round(self._cut.shift * rate)


def open_audio_track(output: av.container.OutputContainer, source: str | Path,
                     cut: AudioCut | None = None) -> AudioTrack | None:
    """An AudioTrack for the source's first decodable audio stream (only its ``cut``, when given), or None when
    it has none."""
    try:
        container = av.open(str(source))
    except av.FFmpegError as error:
        raise VmatteError(f"{source}: cannot read its audio ({error})") from None
    streams = decodable_audio_streams(container)
    if not streams:
        container.close()
        return None
    return AudioTrack(output, container, streams[0], cut)


def decodable_audio_streams(container: av.container.InputContainer) -> list[av.AudioStream]:
    """The audio streams FFmpeg has a decoder for (others cannot be converted, nor described)."""
    return [stream for stream in container.streams.audio if stream.codec_context is not None]
