"""One-frame-delay (OFD) temporal smoothing of alpha mattes, after the MODNet paper (Ke et al., AAAI 2022).

A pixel of frame t is treated as a one-frame flicker when its neighbours in t-1 and t+1 agree with each other
but frame t disagrees with both; it is then replaced by the mean of the two neighbours. Everything else passes
through bit for bit. Output is delayed by one frame because frame t needs frame t+1.

The neighbours are the incoming (unsmoothed) mattes, so the output is a pure function of the input sequence
and does not depend on where a resumed run restarts.

Limitation inherent to the rule: a structure thinner than its motion per frame (a hair strand moving by its own
width) also looks like a one-frame event, and is averaged when its contrast exceeds the threshold.
"""

from typing import Any

import numpy as np
import torch

from .settings import OFD_THRESHOLD as DEFAULT_THRESHOLD

Matte = np.ndarray | torch.Tensor


def _copy(matte: Matte) -> Matte:
    return matte.clone() if isinstance(matte, torch.Tensor) else matte.copy()


def remove_one_frame_flicker(previous: Matte, current: Matte, following: Matte,
                             threshold: float = DEFAULT_THRESHOLD) -> Matte:
    """``current`` with its one-frame flicker pixels replaced by the mean of ``previous`` and ``following``."""
    neighbours_agree = abs(previous - following) < threshold
    flicker = neighbours_agree & (abs(current - previous) > threshold) & (abs(current - following) > threshold)
    mean = (previous + following) / 2
    if isinstance(current, torch.Tensor):
        return torch.where(flicker, mean, current)
    return np.where(flicker, mean, current)


class OneFrameDelaySmoother:
    """Streaming OFD stage: push mattes in display order, get them back one frame later, smoothed.

    Mattes are float numpy arrays or torch tensors (HxW or 1xHxW), all of one kind and shape within a stream.
    Each matte travels with an opaque ``payload`` (pts, foreground, ...) that is returned untouched with it.
    Pushed mattes are kept by reference until no longer needed, so callers must not overwrite them in place.
    The first and last frames are returned unchanged; frame count and order are preserved.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD):
        self.threshold = threshold
        self._previous: Matte | None = None  # raw matte of the frame before the pending one
        self._pending: tuple[Matte, Any] | None = None  # the frame waiting for its successor

    def push(self, matte: Matte, payload: Any = None) -> list[tuple[Matte, Any]]:
        """Adds the next frame; returns the frames now ready (none for the first frame, then one per push)."""
        ready = []
        if self._pending is not None:
            pending_matte, pending_payload = self._pending
            if self._previous is not None:
                pending_matte = remove_one_frame_flicker(self._previous, pending_matte, matte, self.threshold)
            ready.append((pending_matte, pending_payload))
            self._previous = self._pending[0]
        self._pending = (matte, payload)
        return ready

    def flush(self) -> list[tuple[Matte, Any]]:
        """Returns the last frame (unchanged) at the end of the stream and resets the smoother."""
        ready = [self._pending] if self._pending is not None else []
        self._previous = self._pending = None
        return ready

    def state_dict(self) -> dict[str, Any]:
        """The buffered frames, for resume checkpoints (mattes copied; the payload is kept as given)."""
        pending = self._pending
        return {
            "threshold": self.threshold,
            "previous": None if self._previous is None else _copy(self._previous),
            "pending_matte": None if pending is None else _copy(pending[0]),
            "pending_payload": None if pending is None else pending[1],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.threshold = state["threshold"]
        self._previous = None if state["previous"] is None else _copy(state["previous"])
        pending_matte = state["pending_matte"]
        self._pending = None if pending_matte is None else (_copy(pending_matte), state["pending_payload"])
