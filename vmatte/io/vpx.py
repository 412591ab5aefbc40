"""Which VP8/VP9 packets produce a picture, read from the uncompressed frame header.

VP8/VP9 streams may carry hidden frames (alt-ref frames with show_frame = 0) as packets of their own, so for
these codecs a packet count over-counts what a decoder outputs.
"""

from __future__ import annotations

_SUPERFRAME_MARKER_MASK = 0xE0
_SUPERFRAME_MARKER = 0xC0


def packet_shows_frame(codec: str, data: bytes) -> bool:
    """True when decoding this packet outputs a picture (always True for codecs other than VP8/VP9)."""
    if not data:
        return False
    if codec == "vp8":
        return bool(data[0] & 0x10)  # frame tag bit 4: show_frame
    if codec == "vp9":
        return any(_vp9_frame_shown(frame) for frame in _vp9_frames(data))
    return True


def _vp9_frames(data: bytes) -> list[bytes]:
    """Split a VP9 superframe (several frames and an index at the end) into its frames."""
    marker = data[-1]
    if marker & _SUPERFRAME_MARKER_MASK == _SUPERFRAME_MARKER:
        size_bytes = ((marker >> 3) & 0x3) + 1
        count = (marker & 0x7) + 1
        index_size = 2 + size_bytes * count
        if len(data) >= index_size and data[-index_size] == marker:
            index = data[-index_size + 1 : -1]
            frames, offset = [], 0
            for i in range(count):
                size = int.from_bytes(index[i * size_bytes : (i + 1) * size_bytes], "little")
                frames.append(data[offset : offset + size])
                offset += size
            return frames
    return [data]


def _vp9_frame_shown(frame: bytes) -> bool:
    if not frame:
        return False
    bits = frame[0]
    # frame_marker (2 bits), profile_low_bit, profile_high_bit, [reserved_zero for profile 3], then
    # show_existing_frame, frame_type, show_frame.
    profile = ((bits >> 5) & 1) | (((bits >> 4) & 1) << 1)
    position = 3 if profile < 3 else 2
    if (bits >> position) & 1:  # show_existing_frame
        return True
    return bool((bits >> (position - 2)) & 1)
