"""WebM with alpha: VP9 for foregrounds (and mattes) over web pages, and composites, in browsers.

Alpha needs the libvpx encoder (``yuva420p``): it codes the alpha as a second VP9 stream that travels in each
block's BlockAdditional data, and the ``alpha_mode`` tag tells decoders to look for it (Chrome, Firefox and
FFmpeg's libvpx decoder do; FFmpeg's native vp9 decoder shows the colour only). The foreground is straight
(browsers composite unpremultiplied video), unless --premultiplied. BT.709, 8-bit 4:2:0, odd sizes padded as
for the H.264 preview. No audio: WebM holds Opus or Vorbis, and a web overlay is usually silent.
"""

from __future__ import annotations

import av
import numpy as np

from vmatte.io.frame_writer import BT709, VideoFileWriter
from vmatte.io.h264 import yuv420_frame


class WebmWriter(VideoFileWriter):
    container_format = "webm"
    codec = "libvpx-vp9"
    carries_audio = False

    def _configure(self, stream: av.VideoStream) -> None:
        stream.width = self.info.width + self.info.width % 2
        stream.height = self.info.height + self.info.height % 2
        stream.pix_fmt = "yuv420p" if self.kind == "comp" else "yuva420p"
        if self.kind != "comp":
            stream.metadata["alpha_mode"] = "1"
        # Constant quality (crf with no bitrate cap); 'good' at cpu-used 4 with row threading is a fair speed.
        stream.options = {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
        self._colour = BT709

    def _frame(self, image: np.ndarray) -> av.VideoFrame:
        return yuv420_frame(image, self._stream.width, self._stream.height, self._colour.matrix,
                            self._stream.pix_fmt)
