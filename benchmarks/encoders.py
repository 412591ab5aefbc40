"""The encoder settings behind vmatte's ProRes and PNG outputs, measured on real mattes and foregrounds:

    VMATTE_WEIGHTS=../shared/weights VMATTE_OFFLINE=1 python benchmarks/encoders.py [--frames 16] [--clip PATH]

The pictures: ``--frames`` frames of a clip (default the 1280x720 clip ``throughput.py`` builds) matted by the
model. ProRes 4444 (alpha and foreground .mov): FFmpeg's prores_ks with its rate control, prores_ks with the
fixed quantiser 1 vmatte uses, and prores_aw; ms per frame (encoding alone), KiB per frame, PSNR of the decoded
picture's Y' plane, the largest alpha error, and what a fully opaque pixel's alpha reads back as (of 65535).
PNG mattes (8 and 16 bits): FFmpeg's defaults against level 3 with the "up" row filter (vmatte's).
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import make_clip  # noqa: E402

from vmatte.heap import reuse_large_blocks  # noqa: E402
from vmatte.inference import MattingEngine  # noqa: E402
from vmatte.io import open_source, png, prores  # noqa: E402
from vmatte.settings import auto_downsample_ratio  # noqa: E402
from vmatte.temporal import frames_to_tensor  # noqa: E402

PRORES = {"prores_ks, rate control": ("prores_ks", {"profile": "4444", "vendor": "apl0"}, "SLICE"),
          "prores_ks, quantiser 1 (vmatte)": ("prores_ks", prores.ENCODER_OPTIONS, "SLICE"),
          "prores_aw": ("prores_aw", {"profile": "4", "vendor": "apl0"}, "FRAME")}
PNG = {"FFmpeg defaults": {}, "level 3, up filter (vmatte)": png.ENCODER_OPTIONS}


def plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    p = frame.planes[index]
    return np.frombuffer(p, np.uint16).reshape(p.height, -1)[:, : p.width].astype(np.float64)


def prores_row(name: str, frames: list[av.VideoFrame]) -> str:
    codec, options, threads = PRORES[name]
    buffer = io.BytesIO()
    height, width = frames[0].height, frames[0].width
    with av.open(buffer, "w", format="mov") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuva444p10le"
        stream.options = options
        stream.codec_context.thread_type = threads
        start = time.perf_counter()
        for index, frame in enumerate(frames):
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        ms = 1000 * (time.perf_counter() - start) / len(frames)
    size = buffer.getbuffer().nbytes / len(frames) / 1024
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = list(container.decode(video=0))
    psnr = np.mean([10 * np.log10(1023**2 / max(np.mean((plane(d.reformat(format="yuva444p10le"), 0)
                                                          - plane(f, 0)) ** 2), 1e-12))
                    for f, d in zip(frames, decoded)])
    alpha_error = max(np.abs(plane(d.reformat(format="yuva444p10le"), 3) - plane(f, 3)).max()
                      for f, d in zip(frames, decoded))
    opaque = [plane(d.reformat(format="yuva444p16le"), 3)[plane(f, 3) == 1023] for f, d in zip(frames, decoded)]
    opaque = int(min(o.min() for o in opaque if o.size)) if any(o.size for o in opaque) else "-"
    return f"| {name} | {ms:.1f} | {size:.0f} | {psnr:.1f} | {alpha_error:.0f} | {opaque} |"


def png_row(name: str, mattes: list[np.ndarray], depth: int) -> str:
    pix_fmt = "gray" if depth == 8 else "gray16be"
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = mattes[0].shape[1], mattes[0].shape[0], pix_fmt
    encoder.options = PNG[name]
    values = [np.rint(m * ((1 << depth) - 1)).astype(np.uint8 if depth == 8 else np.uint16) for m in mattes]
    start, size = time.perf_counter(), 0
    for value in values:
        size += sum(packet.size for packet in encoder.encode(av.VideoFrame.from_ndarray(value, format=pix_fmt)))
    ms = 1000 * (time.perf_counter() - start) / len(values)
    return f"| {depth}-bit | {name} | {ms:.1f} | {size / len(values) / 1024:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--clip", type=Path, help="Footage to matte (default: the 1280x720 benchmark clip).")
    args = parser.parse_args()
    reuse_large_blocks()
    clip = args.clip or make_clip(Path(tempfile.mkdtemp(prefix="vmatte-encoders-")) / "clip.mp4", 1280, 720, 150)
    with open_source(clip) as source:
        decoded = [frame for _, frame in zip(range(args.frames), source.frames())]
    engine = MattingEngine.load(device=torch.device("cpu"), precision="fp32", notice=lambda m: None)
    height, width = decoded[0].rgb.shape[:2]
    output = engine.run(frames_to_tensor(decoded), None, auto_downsample_ratio(height, width), need_fgr=True)
    mattes = list(output.pha[0, :, 0].numpy())
    foregrounds = [f.permute(1, 2, 0).numpy() for f in output.fgr[0]]
    print(f"# {' '.join(sys.argv)}; {len(mattes)} frames of {width}x{height}, {clip.name}")
    for kind in ("alpha", "fgr"):
        # As vmatte's ProRes writer builds them (BT.709)
        frames = [prores.yuv444_frame(kind, p[..., None] if kind == "alpha" else
                                      np.concatenate([f, p[..., None]], axis=2), "bt709")
                  for p, f in zip(mattes, foregrounds)]
        print(f"\n## ProRes 4444, {kind} .mov\n\n| encoder | ms/frame | KiB/frame | Y' PSNR dB | alpha max error "
              "(of 1023) | opaque alpha reads (of 65535) |\n| --- | --- | --- | --- | --- | --- |")
        for name in PRORES:
            print(prores_row(name, frames), flush=True)
    print("\n## PNG matte\n\n| depth | settings | ms/frame | KiB/frame |\n| --- | --- | --- | --- |")
    for depth in (8, 16):
        for name in PNG:
            print(png_row(name, mattes, depth), flush=True)


if __name__ == "__main__":
    main()
