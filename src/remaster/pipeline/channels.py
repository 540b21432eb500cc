"""Pixels around a stage: padding to its size needs, colour under transparency, gray and alpha, the integer sink.

:class:`RowSink` is where the last stage of a run that wants integers writes: colour (folded to gray when the
source was gray) and alpha rows, clamped, quantised by the :class:`~remaster.io.intbuffer.IntegerBuffer` it wraps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from remaster.io.image import LUMA_BT601
from remaster.io.intbuffer import IntegerBuffer
from remaster.pipeline import tiling
from remaster.pipeline.resample import resize

__all__ = ["RowSink", "pad_to_requirements", "fill_transparent", "resample_to", "to_gray", "row_chunks",
           "write_bands"]


class RowSink:
    """The integer result of a run, filled row band by row band by its last stage.

    Args:
        buffer: The final integer image.
        gray: The source was gray: colour rows are folded back to one channel.
    """

    def __init__(self, buffer: IntegerBuffer, *, gray: bool) -> None:
        self.buffer = buffer
        self.gray = gray

    def colour_rows(self, top: int, rows: torch.Tensor) -> None:
        """Write colour rows starting at row ``top``."""
        rows = rows.clamp(0.0, 1.0)
        self.buffer.write(top, to_gray(rows) if self.gray and rows.shape[1] == 3 else rows)

    def alpha_rows(self, top: int, rows: torch.Tensor) -> None:
        """Write alpha rows starting at row ``top``."""
        rows = rows.clamp(0.0, 1.0)
        # Folded back with luma weights, as RealESRGANer's BGR2GRAY does, so results match it.
        self.buffer.write(top, to_gray(rows) if rows.shape[1] == 3 else rows, alpha=True)


def row_chunks(pixels: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """``(offset, rows)`` views of ``(1, C, H, W)`` pixels, a few MB of float32 at a time."""
    step = max(1, (4 << 20) // max(1, pixels.shape[1] * pixels.shape[-1] * 4))
    for top in range(0, pixels.shape[-2], step):
        yield top, pixels[:, :, top:top + step]


def write_bands(rows: tiling.RowsFn, pixels: torch.Tensor) -> None:
    """Hand a whole float result to ``rows`` a few MB at a time, so that no full-size float copy is made."""
    for top, chunk in row_chunks(pixels):
        rows(top, chunk)


def pad_to_requirements(pixels: torch.Tensor, min_size: int, multiple_of: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad bottom/right by reflection so a stage's size requirements hold; the caller crops after."""
    height, width = pixels.shape[-2:]
    target_h = max(height, min_size)
    target_w = max(width, min_size)
    target_h = math.ceil(target_h / multiple_of) * multiple_of
    target_w = math.ceil(target_w / multiple_of) * multiple_of
    pad_h, pad_w = target_h - height, target_w - width
    if not (pad_h or pad_w):
        return pixels, (0, 0)
    # Reflection needs the pad to be smaller than the side; replicate covers tiny images.
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(pixels, (0, pad_w, 0, pad_h), mode=mode), (pad_h, pad_w)


def pad_to_multiple(pixels: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right by repeating the edge pixels until both sides are multiples of ``multiple`` (a compiled
    artifact's bucket); the caller crops after. Repeating the edge changes the result at that edge least (it was
    measured against reflection and zeros)."""
    height, width = pixels.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    return F.pad(pixels, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else pixels


def fill_transparent(pixels: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Colour under alpha = 0 replaced by the colour of the nearest visible pixels.

    Fully transparent pixels often hold garbage (an editor's leftovers, magenta
    keys); a resampling filter would spread it into the visible edge as a fringe.
    Their colour is invisible, so it is replaced before a stage resamples, with a
    push-pull pyramid (cost: a third of the image, whatever the hole's size).
    """
    visible = alpha > 0
    if bool(visible.all()) or not bool(visible.any()):
        return pixels
    weight = visible.to(pixels.dtype)
    return torch.where(visible, pixels, _pull_mean(pixels * weight, weight))


def _pull_mean(weighted: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The weighted mean colour at every pixel, holes filled from ever coarser levels."""
    height, width = weighted.shape[-2:]
    mean = weighted / weight.clamp_min(1e-12)
    if height == 1 and width == 1:
        return mean
    kernel = (min(2, height), min(2, width))
    coarse = _pull_mean(F.avg_pool2d(weighted, kernel, ceil_mode=True), F.avg_pool2d(weight, kernel, ceil_mode=True))
    return torch.where(weight > 0, mean, F.interpolate(coarse, size=(height, width), mode="nearest"))


def resample_to(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Lanczos, antialiased when shrinking: the same filter as the ``lanczos`` stage."""
    return resize(pixels, size, "lanczos").clamp_(0.0, 1.0)


def to_gray(pixels: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA_BT601, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels * weights).sum(dim=1, keepdim=True)
