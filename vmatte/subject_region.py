"""The subject's region for ``--quality best``'s magnified pass: where the person is, followed like a camera.

In a wide shot the person covers a small part of the frame and the network sees them at a few dozen pixels,
where its mattes are worst. The region pass crops a window around the person (found in the chunk's matte from
the full-frame passes), enlarges it to the working size of a full frame, and runs the model there with its own
recurrent state. The state stays valid because the window moves like a camera operator would move it: its
shape (aspect ratio, and so the working size) is fixed from the shot's first chunk, it follows the person
smoothly, grows at once when the person would leave it, and shrinks only slowly. Everything it carries is a
small tensor in the ensemble's state, so checkpoints, exact resume and cut resets hold it as they hold the rest:
whole steps of 1/256 of the frame, which every precision a state is kept in (down to bfloat16) holds exactly.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SUBJECT_ALPHA = 0.1  # pixels above this in the full-frame matte belong to the subject
CONTEXT = 0.25  # margin around the subject's box on each side, as a share of the box's larger side
FOLLOW = 0.5  # share of the way the window's centre moves towards the subject's in one chunk
SHRINK = 0.1  # share of the way the window shrinks towards the subject's size in one chunk
# Window shapes (width / height) a shot may take besides the frame's own: a few, so that a compiled backend
# builds a few graphs only.
ASPECTS = (0.5, 0.75, 1.0, 4 / 3, 16 / 9, 2.0)
FRAME_SHAPE = len(ASPECTS)  # the shape index of the frame's own aspect
FEATHER = 0.08  # blend width at a window side inside the frame, as a share of the window's smaller side
STEPS = 256  # the window's coordinates are whole steps of 1/STEPS of the frame's width or height


def aspect_of(shape: int, frame_width: int, frame_height: int) -> float:
    """Width / height of a window shape: one of ASPECTS, or the frame's own."""
    return frame_width / frame_height if shape == FRAME_SHAPE else ASPECTS[shape]


@dataclass(frozen=True)
class Window:
    """A region of the frame: its centre and height in pixels, and its shape, fixed for a shot."""

    centre_x: float
    centre_y: float
    height: float
    shape: int  # an index into ASPECTS, or FRAME_SHAPE
    aspect: float  # width / height

    def on_grid(self, frame_width: int, frame_height: int) -> "Window":
        """The window moved to the nearest whole steps, as the state keeps it."""
        return Window.from_tensor(self.as_tensor(frame_width, frame_height), frame_width, frame_height)

    def as_tensor(self, frame_width: int, frame_height: int) -> torch.Tensor:
        return torch.tensor([round(self.centre_x / frame_width * STEPS), round(self.centre_y / frame_height * STEPS),
                             round(self.height / frame_height * STEPS), self.shape], dtype=torch.float32)

    @classmethod
    def from_tensor(cls, values: torch.Tensor, frame_width: int, frame_height: int) -> "Window":
        x, y, height, shape = (float(v) for v in values)
        return cls(x * frame_width / STEPS, y * frame_height / STEPS, height * frame_height / STEPS, round(shape),
                   aspect_of(round(shape), frame_width, frame_height))

    def bounds(self, frame_width: int, frame_height: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in whole pixels, inside the frame."""
        width = min(max(round(self.height * self.aspect), 2), frame_width)
        height = min(max(round(self.height), 2), frame_height)
        x0 = min(max(round(self.centre_x - width / 2), 0), frame_width - width)
        y0 = min(max(round(self.centre_y - height / 2), 0), frame_height - height)
        return x0, y0, x0 + width, y0 + height


def subject_box(mattes: torch.Tensor) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) around every subject pixel of a chunk's mattes (..., H, W), or None when there is none."""
    found = (mattes > SUBJECT_ALPHA).flatten(0, -3).any(0)
    rows, columns = found.any(1).nonzero(), found.any(0).nonzero()
    if len(rows) == 0:
        return None
    return float(columns[0]), float(rows[0]), float(columns[-1]) + 1, float(rows[-1]) + 1


def working_size(aspect: float, frame_width: int, frame_height: int) -> tuple[int, int]:
    """(width, height) the window is enlarged to: as many pixels as the frame, in the window's shape."""
    height = (frame_width * frame_height / aspect) ** 0.5
    return max(round(height * aspect), 2), max(round(height), 2)


def follow(previous: Window | None, mattes: torch.Tensor, zoom: float) -> Window:
    """The window for this chunk, from the last one and this chunk's full-frame mattes (..., H, W). Magnifies
    by at most ``zoom``; with no subject in sight the window stays (or, at a shot's start, is the whole frame)."""
    frame_height, frame_width = mattes.shape[-2:]
    box = subject_box(mattes)
    if box is None:
        return previous or Window(frame_width / 2, frame_height / 2, frame_height, FRAME_SHAPE,
                                  frame_width / frame_height).on_grid(frame_width, frame_height)
    x0, y0, x1, y1 = box
    margin = CONTEXT * max(x1 - x0, y1 - y0)  # within the frame: beyond its edge there is nothing to see
    x0, y0, x1, y1 = max(x0 - margin, 0), max(y0 - margin, 0), min(x1 + margin, frame_width), min(y1 + margin,
                                                                                                  frame_height)
    if previous:
        shape = previous.shape
    else:  # the shape nearest the subject's, or the frame's own where a window of that shape could not hold them
        shape = min(range(len(ASPECTS)), key=lambda index: abs(ASPECTS[index] - (x1 - x0) / (y1 - y0)))
        if (x1 - x0) > frame_height * ASPECTS[shape]:
            shape = FRAME_SHAPE
    aspect = aspect_of(shape, frame_width, frame_height)
    smallest = (frame_width * frame_height / aspect) ** 0.5 / zoom  # the least height: at most zoom x
    needed = max(y1 - y0, (x1 - x0) / aspect, smallest)  # the height that holds the subject
    height = needed if previous is None else max(needed, previous.height + SHRINK * (needed - previous.height))
    height = min(height, frame_height, frame_width / aspect)  # the window never leaves the frame
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    if previous is not None:
        centre_x += (1 - FOLLOW) * (previous.centre_x - centre_x)
        centre_y += (1 - FOLLOW) * (previous.centre_y - centre_y)
    # The subject's box inside the window wherever the window is large enough to hold it.
    half_width, half_height = height * aspect / 2, height / 2
    centre_x = min(max(centre_x, x1 - half_width), x0 + half_width) if x1 - x0 <= 2 * half_width else (x0 + x1) / 2
    centre_y = min(max(centre_y, y1 - half_height), y0 + half_height) if y1 - y0 <= 2 * half_height else (y0 + y1) / 2
    return Window(centre_x, centre_y, height, shape, aspect).on_grid(frame_width, frame_height)


def crop(frames: torch.Tensor, window: Window) -> torch.Tensor:
    """(T, C, H, W) frames -> the window's picture enlarged to its working size."""
    x0, y0, x1, y1 = window.bounds(frames.shape[-1], frames.shape[-2])
    width, height = working_size(window.aspect, frames.shape[-1], frames.shape[-2])
    return F.interpolate(frames[..., y0:y1, x0:x1].float(), size=(height, width), mode="bilinear",
                         align_corners=False)


def paste(whole: torch.Tensor, region: torch.Tensor, window: Window) -> torch.Tensor:
    """``whole`` (..., C, H, W, the full-frame result) with the window's result (..., C, h, w at the working size)
    brought back to the window's size and blended in, feathered where the window's side lies inside the frame."""
    frame_height, frame_width = whole.shape[-2:]
    x0, y0, x1, y1 = window.bounds(frame_width, frame_height)
    lead = region.shape[:-3]
    region = F.interpolate(region.flatten(0, -4), size=(y1 - y0, x1 - x0), mode="area").unflatten(0, lead)
    feather = max(1.0, FEATHER * min(x1 - x0, y1 - y0))
    weight = torch.ones(y1 - y0, x1 - x0)
    for axis, inside_start, inside_end in ((1, x0 > 0, x1 < frame_width), (0, y0 > 0, y1 < frame_height)):
        steps = torch.arange(weight.shape[axis], dtype=torch.float32)
        ramp = torch.ones_like(steps)
        if inside_start:
            ramp = torch.minimum(ramp, (steps + 0.5) / feather)
        if inside_end:
            ramp = torch.minimum(ramp, (weight.shape[axis] - steps - 0.5) / feather)
        weight = weight * (ramp.clamp(0, 1)[None] if axis == 1 else ramp.clamp(0, 1)[:, None])
    out = whole.clone()
    inside = out[..., y0:y1, x0:x1]
    out[..., y0:y1, x0:x1] = inside + weight * (region - inside)
    return out
