"""The sepia stage itself."""

from __future__ import annotations

import torch

from remaster import RunContext, Stage

# The classic sepia matrix (rows: output R, G, B).
_SEPIA = torch.tensor([
    [0.393, 0.769, 0.189],
    [0.349, 0.686, 0.168],
    [0.272, 0.534, 0.131],
])


class Sepia(Stage):
    """Mixes each pixel towards its sepia tone by ``strength``."""

    def __init__(self, strength: float = 1.0):
        super().__init__(strength=strength)
        self.strength = strength

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        matrix = _SEPIA.to(device=pixels.device, dtype=pixels.dtype)
        toned = torch.einsum("oc,nchw->nohw", matrix, pixels).clamp(0.0, 1.0)
        return torch.lerp(pixels, toned, self.strength)
