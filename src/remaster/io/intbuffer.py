"""The final integer image of a run, filled band by band as the last stage finishes rows.

A huge result never exists as floats: the tiler hands finished rows over
(:func:`remaster.pipeline.tiling.run_tiled` with ``emit``), they are quantised on the
device they were computed on (:func:`~remaster.io.conversion.quantise`) and
only the integers are copied into one host array laid out ``(H, W, C)``,
alpha last, which is what the encoders take, so writing the file needs no
further full-size conversion. :meth:`IntegerBuffer.image` wraps it as an
integer :class:`~remaster.io.image.Image` whose ``pixels``/``alpha`` are views of
that array.

Builds an ``Image``, so like :mod:`~remaster.io.decoding` it is not imported
by :mod:`remaster.io` itself (that would make ``image -> io -> image`` a cycle).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from remaster.io.conversion import quantise
from remaster.io.image import Image, Meta

__all__ = ["IntegerBuffer", "HostCopier"]


class HostCopier(Protocol):
    """How the integers reach the host array: :class:`remaster.pipeline.transfer.DeviceToHost` (pinned, non-blocking on
    CUDA) or the plain copy; injected by the pipeline, which knows the device."""

    def copy(self, target: torch.Tensor, source: torch.Tensor) -> None:
        """Copy ``source`` into host ``target``; it may land only by :meth:`flush`."""

    def flush(self) -> None:
        """Every copy begun has landed in its target."""


class _PlainCopy:
    def copy(self, target: torch.Tensor, source: torch.Tensor) -> None:
        target.copy_(source)

    def flush(self) -> None:
        pass


class IntegerBuffer:
    """A ``uint8``/``uint16`` host image of a known size, written in bands of float rows.

    Args:
        height: Rows of the final image.
        width: Columns of the final image.
        dtype: ``uint8`` or ``uint16``.
        alpha: Whether an alpha channel follows the colour.
        copier: How rows cross to the host (default: a plain copy); :meth:`image` waits for it.

    The array is allocated on the first colour write, which says how many
    colour channels there are; alpha is written after the colour.
    """

    def __init__(self, height: int, width: int, dtype: Any, *, alpha: bool, copier: HostCopier | None = None):
        self.copier: HostCopier = copier if copier is not None else _PlainCopy()
        self.height, self.width, self.dtype, self.has_alpha = height, width, np.dtype(dtype), alpha
        if self.dtype not in (np.uint8, np.uint16):
            raise TypeError(f"IntegerBuffer: dtype {self.dtype} is not uint8 or uint16")
        self._array: np.ndarray | None = None
        self._colour = 0

    def write(self, top: int, rows: torch.Tensor, *, alpha: bool = False) -> None:
        """Quantise float ``rows`` ``(1, C, h, width)`` and store them as rows ``[top, top + h)``.

        ``alpha`` writes the alpha channel (``C == 1``) instead of the colour.
        Rows may be written again (a retry overwrites them).

        Raises:
            ValueError: the rows do not fit the image, or alpha comes before colour or is not wanted.
        """
        if rows.ndim != 4 or rows.shape[0] != 1 or rows.shape[-1] != self.width or not (
                0 <= top <= top + rows.shape[-2] <= self.height):
            raise ValueError(f"rows of shape {tuple(rows.shape)} at row {top} do not fit a "
                             f"{self.width}x{self.height} image")
        channels, count = rows.shape[1], rows.shape[2]
        if alpha:
            if self._array is None or not self.has_alpha or channels != 1:
                raise ValueError("alpha is one channel, written after the colour, into a buffer made with alpha")
            first = self._colour
        else:
            if self._array is None:
                self._colour = channels
                self._array = np.empty((self.height, self.width, channels + self.has_alpha), self.dtype)
            elif channels != self._colour:
                raise ValueError(f"{channels} colour channels written into a buffer of {self._colour}")
            first = 0
        integers = quantise(rows[0], self.dtype).permute(1, 2, 0)  # on the rows' device: only integers move
        self.copier.copy(torch.from_numpy(self._array)[top:top + count, :, first:first + channels], integers)

    def image(self, meta: Meta) -> Image:
        """The integer :class:`Image`; its pixels and alpha are views of the buffer (no copy).

        Waits for the copies still in flight (:meth:`HostCopier.flush`) first.

        Raises:
            ValueError: nothing was written yet.
        """
        if self._array is None:
            raise ValueError("the integer buffer was never written")
        self.copier.flush()
        planes = torch.from_numpy(self._array).permute(2, 0, 1)[None]
        return Image(pixels=planes[:, :self._colour], alpha=planes[:, self._colour:] if self.has_alpha else None,
                     meta=meta)
