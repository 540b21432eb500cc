"""Classic interpolators: nearest, bilinear, bicubic and Lanczos resizing, as stages.

The filters themselves are :mod:`remaster.pipeline.resample` (Pillow's, kept in float), which the
pipeline also uses to resample a fixed-scale network's output.
"""

from __future__ import annotations

from typing import Any

import torch

from remaster.pipeline.resample import METHODS, resize
from remaster.pipeline.stage import RunContext, Stage, scaled_size

__all__ = ["METHODS", "resize", "Interpolate", "Nearest", "Bilinear", "Bicubic", "Lanczos"]


class Interpolate(Stage):
    """Resize by a factor with a fixed filter; the built-in upscalers.

    Args:
        scale: Output size divided by input size; any positive factor,
            non-integer and below 1 included.
        method: Filter name, one of :data:`METHODS`.
    """

    #: Filter used when ``method`` is not given; set by the named subclasses.
    default_method: str = "bicubic"

    def __init__(self, *, scale: float = 4.0, method: str | None = None, **params: Any):
        super().__init__(scale=scale, **params)
        self.scale = float(scale)
        self.method = method or self.default_method
        if self.method not in METHODS:
            raise ValueError(f"unknown resize method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        """Resize ``pixels`` by :attr:`scale`; overshoot is clamped to [0, 1].

        Clamping here mirrors what any 8-bit resizer does implicitly, so
        ringing from bicubic and Lanczos at hard edges never leaves the range.
        """
        size = ctx.out_size or scaled_size(int(pixels.shape[-2]), int(pixels.shape[-1]), self.scale)
        return resize(pixels, size, self.method).clamp_(0.0, 1.0)


class Nearest(Interpolate):
    """Nearest-neighbour resizing (pixel repetition for integer factors)."""

    default_method = "nearest"


class Bilinear(Interpolate):
    """Bilinear (triangle filter) resizing, antialiased when shrinking."""

    default_method = "bilinear"


class Bicubic(Interpolate):
    """Bicubic resizing with a = -0.5 (MATLAB ``imresize``), antialiased when shrinking."""

    default_method = "bicubic"


class Lanczos(Interpolate):
    """Lanczos-3 resizing, antialiased when shrinking."""

    default_method = "lanczos"
