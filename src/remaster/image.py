"""The one image representation that travels between stages.

Pixels are a float32 tensor shaped ``(1, C, H, W)`` with values in ``[0, 1]``,
where ``C`` is 1 (grayscale) or 3 (RGB). Alpha, when present, is kept apart in
``alpha`` (``(1, 1, H, W)``) so colour stages never see it; the pipeline
resizes or processes it alongside the colour as each stage asks. Everything
needed to write the image back the way it came in (bit depth, colour mode, ICC
profile, EXIF, DPI) rides along in :class:`Meta`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

__all__ = ["Image", "Meta"]


@dataclass
class Meta:
    """What an image was before it became float pixels.

    Attributes:
        bit_depth: Bits per sample of the source: 8, 16, or 32 for float data.
        grayscale: The source had a single colour channel.
        has_alpha: The source had an alpha channel (also true for palette
            images with a transparent entry).
        icc_profile: Embedded ICC profile bytes, written back on save.
        exif: EXIF bytes with the orientation tag already reset to 1 (the
            rotation was applied to the pixels on load).
        dpi: Resolution in dots per inch, if the source declared one.
        format: Source container format as detected from its bytes
            (``"PNG"``, ``"JPEG"``, ...), or ``None`` for in-memory inputs.
        source: Path the image was read from, if any.
        extras: Free-form results stages report (e.g. faces restored).
    """

    bit_depth: int = 8
    grayscale: bool = False
    has_alpha: bool = False
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    format: str | None = None
    source: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Image:
    """Pixels plus metadata; what every stage receives and returns.

    Attributes:
        pixels: ``(1, C, H, W)`` float tensor in ``[0, 1]``, C in {1, 3}.
        alpha: ``(1, 1, H, W)`` float tensor in ``[0, 1]``, or ``None``.
        meta: Source description used when converting back.
    """

    pixels: torch.Tensor
    alpha: torch.Tensor | None = None
    meta: Meta = field(default_factory=Meta)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[-2])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, in the order Pillow uses."""
        return self.width, self.height

    def with_pixels(self, pixels: torch.Tensor, alpha: torch.Tensor | None = None) -> Image:
        """A copy of this image with new pixels (and alpha), metadata kept."""
        return replace(self, pixels=pixels, alpha=alpha)
