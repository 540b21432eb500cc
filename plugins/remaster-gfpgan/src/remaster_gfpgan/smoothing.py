"""A One-Euro filter over a vector of points, in frames: steady when still, quick when moving.

Casiez, Roussel and Vogel, "1€ Filter: A Simple Speed-based Low-pass Filter for Noisy Input in Interactive
Systems" (CHI 2012): an exponential smoothing whose cut-off frequency rises with the speed of what it
follows, so jitter of a still face is averaged away while a moving face is followed with little lag.

Here time is counted in frames (the frames of a video are smoothed in order, whatever their timestamps), and
speed in sizes of the thing followed per frame (a face's size), so the same settings suit small and large faces.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter", "cutoff_for"]


def cutoff_for(weight: float) -> float:
    """The cut-off frequency (cycles per frame) at which one smoothing step takes ``weight`` of the new value.

    ``weight`` 1 is no smoothing (an infinite cut-off); smaller weights smooth more.
    """
    if weight >= 1.0:
        return math.inf
    return weight / (2.0 * math.pi * (1.0 - weight))


def _weight(cutoff: float) -> float:
    """The smoothing factor for a cut-off frequency (cycles per frame), one frame apart."""
    if math.isinf(cutoff):
        return 1.0
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau)


class OneEuroFilter:
    """Smooths a sequence of ``(K, 2)`` point arrays (landmarks, box corners), one call per frame.

    Args:
        min_cutoff: The cut-off (cycles per frame) of a still input: lower smooths more
            (:func:`cutoff_for` turns a weight per frame into one).
        beta: How much the cut-off rises with speed (sizes per frame): higher follows motion with less lag.
        speed_cutoff: The cut-off of the speed estimate itself.
    """

    def __init__(self, min_cutoff: float, beta: float, speed_cutoff: float = 0.15) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.speed_cutoff = speed_cutoff
        self._value: np.ndarray | None = None
        self._velocity: np.ndarray | None = None

    @property
    def value(self) -> np.ndarray | None:
        """The last smoothed value; ``None`` before the first."""
        return self._value

    def __call__(self, points: np.ndarray, size: float) -> np.ndarray:
        """Add the next frame's ``points`` and return the smoothed ones.

        Args:
            points: ``(K, 2)`` positions in pixels.
            size: The size of what they belong to, in pixels (a face's box side): speed is measured in it.
        """
        points = np.asarray(points, np.float64)
        if self._value is None or self._velocity is None or math.isinf(self.min_cutoff):
            self._value, self._velocity = points.copy(), np.zeros(2)
            return self._value.copy()
        # The speed of the points' centre: where K points jitter independently, their mean jitters √K times less
        # than each, so jitter does not pass for motion; a real move shifts them all.
        step = (points - self._value).mean(axis=0)
        self._velocity = self._velocity + _weight(self.speed_cutoff) * (step - self._velocity)
        speed = float(np.hypot(*self._velocity)) / max(size, 1.0)
        weight = _weight(self.min_cutoff + self.beta * speed)
        self._value = self._value + weight * (points - self._value)
        return self._value.copy()
