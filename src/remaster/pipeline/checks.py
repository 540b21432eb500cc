"""The pipeline's checks on what a stage returns: finite values in a plausible range, gathered band by band."""

from __future__ import annotations

import math

import torch

from remaster.errors import StageContractError

__all__ = ["BandChecks", "PLAUSIBLE_LOW", "PLAUSIBLE_HIGH", "CallerStop"]

# Values a stage may return that are clamped without complaint: resampling and sharp
# networks overshoot [0, 1] a little; anything past these bounds is a scaling mistake
# (e.g. 0-255 data), which clamping would turn silently into a white or black image.
PLAUSIBLE_LOW, PLAUSIBLE_HIGH = -1.0, 2.0


class BandChecks:
    """The pipeline's checks on a stage's values (finite, plausible range), gathered band by band.

    A band at row 0 starts a new pass (the tiler's retry after out-of-memory starts over).
    """

    def __init__(self) -> None:
        self.finite, self.low, self.high = True, math.inf, -math.inf

    def add(self, top: int, band: torch.Tensor) -> None:
        if top == 0:
            self.finite, self.low, self.high = True, math.inf, -math.inf
        # A sum is NaN/Inf exactly when some element is (values are bounded), without a full-size mask.
        self.finite = self.finite and bool(torch.isfinite(band.sum(dtype=torch.float64)))
        if self.finite and band.numel():
            low, high = (float(v) for v in torch.aminmax(band.float()))
            self.low, self.high = min(self.low, low), max(self.high, high)

    def plausible(self, name: str) -> None:
        """Raise when the values seen are outside what clamping may silently fix."""
        if self.low < PLAUSIBLE_LOW or self.high > PLAUSIBLE_HIGH:
            raise StageContractError(f"returned values in [{self.low:.4g}, {self.high:.4g}], expected [0, 1]",
                                     path=name, hint="this is a bug in the stage (pixels scaled to 0-255?); "
                                                     "report it to its plugin's author")


class CallerStop(BaseException):
    """Carries an exception raised by the caller's progress callback out through the stage's own error handling.

    A ``BaseException``, so that the ``except Exception`` that turns a stage's failure into a
    :class:`StageError` (and the tiler's out-of-memory retry) let it pass; :meth:`Remasterer.run_image`
    re-raises the caller's exception unchanged.
    """

    def __init__(self, error: Exception):
        super().__init__(error)
        self.error = error
