"""The one representation of a picture between loading and saving: :class:`Image` and its :class:`Meta`.

Stages never receive an ``Image``: the pipeline hands them its pixels as tensors
(:meth:`remaster.Stage.run`), and keeps alpha and the metadata itself.

Pixels are a float32 tensor shaped ``(1, C, H, W)`` with values in ``[0, 1]``,
where ``C`` is 1 (grayscale) or 3 (RGB). Alpha, when present, is kept apart in
``alpha`` (``(1, 1, H, W)``) so colour stages never see it; the pipeline
resizes or processes it alongside the colour as each stage asks. Everything
needed to write the image back the way it came in (bit depth, colour mode, ICC
profile, EXIF, DPI) rides along in :class:`Meta`.

**Integer images.** The result of a run that is wanted as integers
(:meth:`remaster.Remasterer.run_file`, or ``run_image(..., quantise=True)``)
is already quantised: ``pixels`` and ``alpha`` are ``uint8`` (values 0-255) or
``uint16`` (0-65535) tensors, views of one ``(H, W, C)`` host array with alpha
as the last channel, which the pipeline's last stage filled band by band.
Their values are exactly what :func:`~remaster.io.to_numpy` would have made of
the float result. ``to_numpy``, ``to_pil``, ``save`` and ``encode`` take them
without converting back to floats; :func:`remaster.io.dequantised` is the
explicit way back, and :meth:`remaster.Remasterer.run_image` applies it to an
integer image it is given, so stages always see float images.

``Image.save``, ``Image.to_pil`` and ``Image.to_numpy`` are the functions of
:mod:`remaster.io.encoding` and :mod:`remaster.io.conversion` (re-exported by
:mod:`remaster.io`) as methods, so a result of ``Remasterer().run("photo.jpg")``
can be written or converted without importing anything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage

from remaster.io import conversion, encoding

__all__ = ["Image", "Meta", "LUMA_BT601"]

#: ITU-R BT.601 luma weights for R, G, B: what Pillow uses for RGB -> L and OpenCV for BGR2GRAY (and so BasicSR),
#: so that gray round trips match them.
LUMA_BT601: tuple[float, float, float] = (0.299, 0.587, 0.114)


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
    """Pixels plus metadata: what :func:`remaster.io.load` makes and :meth:`remaster.Remasterer.run_image` takes and
    gives (stages get the pixels as tensors, not the ``Image``).

    Also what :meth:`remaster.Remasterer.run` returns for a path, bytes or an
    ``Image``: write it with :meth:`save`, or convert it with :meth:`to_pil`
    and :meth:`to_numpy`.

    Attributes:
        pixels: ``(1, C, H, W)`` float tensor in ``[0, 1]``, C in {1, 3}; in an
            integer image (see the module docstring) ``uint8``/``uint16``, already quantised.
        alpha: ``(1, 1, H, W)`` tensor like ``pixels``, or ``None``.
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

    def save(self, path: str | os.PathLike[str], *, quality: int | None = None, overwrite: bool = False) -> Path:
        """Write the image to ``path`` atomically, in the format its extension names.

        The same as :func:`remaster.io.save` (depth, alpha, ICC profile, EXIF
        and DPI are kept where the format allows; an existing file, or the
        image's own source, is replaced only with ``overwrite``).

        Args:
            path: Target file: ``.png``, ``.jpg``/``.jpeg``, ``.webp`` or ``.tif``/``.tiff``.
            quality: JPEG/WebP quality 1-100 (default 95); ignored otherwise.
            overwrite: Replace an existing file (including the input itself).

        Returns:
            The path written.

        Raises:
            OutputError: Unknown extension, the target exists without
                ``overwrite``, or the file cannot be encoded or written.
            UsageError: ``quality`` is outside 1-100.
        """
        return encoding.save(self, path, quality=quality, overwrite=overwrite)

    def to_pil(self) -> PILImage.Image:
        """The image as a PIL image, as :func:`remaster.io.to_pil` makes it.

        L, LA, RGB or RGBA at 8 bits; grayscale without alpha keeps its depth
        (``I;16`` for 16-bit, ``F`` for float). ICC profile, EXIF and DPI are in
        ``.info``.
        """
        return conversion.to_pil(self)

    def to_numpy(self, dtype: Any = None, *, channels_last: bool = True) -> np.ndarray:
        """The pixels as a numpy array, alpha (when present) as the last channel.

        The same as :func:`remaster.io.to_numpy`.

        Args:
            dtype: ``uint8``, ``uint16`` or a float dtype. By default it follows
                the source: uint8 for 8-bit, uint16 for 16-bit, float32 for float.
            channels_last: ``(H, W, C)`` if true, else ``(C, H, W)``. Grayscale
                without alpha is always ``(H, W)``.
        """
        return conversion.to_numpy(self, dtype, channels_last=channels_last)
