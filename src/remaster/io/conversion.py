"""Getting an :class:`~remaster.image.Image` out as numpy, PIL or a tensor, or as the kind of object it came in as.

Quantisation to integers happens exactly once, here (:func:`to_numpy`), so
stages never lose precision in between. Also the metadata rules both ways:
which ICC profile fits which pixels (:func:`_icc_matching`) and the
ICC/EXIF/DPI handed to Pillow (:func:`_metadata`).

Nothing here builds an ``Image``; it only reads one, so :mod:`remaster.image`
can import this module (for ``Image.to_pil`` and ``Image.to_numpy``) without
an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image as PILImage

if TYPE_CHECKING:  # annotations only: importing the class would make image -> io -> image a cycle
    from ..image import Image

__all__ = ["to_pil", "to_numpy", "to_tensor", "convert_like"]

_INT32_MAX = 2**31 - 1


def _icc_matching(icc: bytes | None, *, grayscale: bool) -> bytes | None:
    # A profile describes one colour space; after CMYK->RGB or a colourising
    # stage the old one would mislabel the pixels, so it is dropped.
    if not icc or len(icc) < 20:
        return None
    space = icc[16:20]
    return icc if space == (b"GRAY" if grayscale else b"RGB ") else None


# --------------------------------------------------------------------------- conversions


def to_numpy(image: Image, dtype: Any = None, *, channels_last: bool = True) -> np.ndarray:
    """Pixels (with alpha appended as the last channel) as a numpy array.

    Args:
        image: The image.
        dtype: ``uint8``, ``uint16`` or a float dtype; by default from
            ``meta.bit_depth`` (8 -> uint8, 16 -> uint16, 32 -> float32).
            Integers are rounded from ``[0, 1]`` once, here.
        channels_last: ``(H, W, C)`` if true, else ``(C, H, W)``. Grayscale
            without alpha is always ``(H, W)``.
    """
    if dtype is None:
        dtype = {8: np.uint8, 16: np.uint16}.get(image.meta.bit_depth, np.float32)
    dtype = np.dtype(dtype)
    if dtype.kind != "f" and dtype not in (np.uint8, np.uint16):
        raise TypeError(f"to_numpy: dtype {dtype} is not uint8, uint16 or float")
    planes = [image.pixels[0]] + ([image.alpha[0]] if image.alpha is not None else [])
    channels = sum(int(plane.shape[0]) for plane in planes)
    height, width = image.height, image.width
    out = np.empty((height, width, channels) if channels_last else (channels, height, width), dtype)
    peak = None if dtype.kind == "f" else float(np.iinfo(dtype).max)
    # Converted a band of rows at a time, so that a large result needs no float copy of its own
    # size: the output array is the only new full-size allocation.
    band = max(1, (1 << 20) // max(1, width * channels))
    for top in range(0, height, band):
        rows = torch.cat([plane[:, top:top + band] for plane in planes]).detach().to("cpu", torch.float32).numpy()
        rows = np.clip(rows, 0.0, 1.0)
        if peak is not None:
            rows = np.rint(rows * peak)
        if channels_last:
            out[top:top + band] = rows.transpose(1, 2, 0)
        else:
            out[:, top:top + band] = rows
    if channels == 1:
        return out[..., 0] if channels_last else out[0]
    return out


def to_tensor(image: Image) -> torch.Tensor:
    """``(C, H, W)`` float32 pixels with alpha appended as a channel, on the pixels' device."""
    if image.alpha is None:
        return image.pixels[0].float()
    return torch.cat([image.pixels[0], image.alpha[0].to(image.pixels)]).float()


def to_pil(image: Image) -> PILImage.Image:
    """The image as a PIL image: L, LA, RGB or RGBA at 8 bits.

    Grayscale without alpha keeps its depth: 16-bit becomes ``I;16`` and float
    becomes ``F`` (PIL has no deeper colour modes). ICC profile, EXIF and DPI are
    placed in ``.info``.
    """
    deep_gray = image.meta.bit_depth > 8 and image.channels == 1 and image.alpha is None
    dtype = (np.uint16 if image.meta.bit_depth == 16 else np.float32) if deep_gray else np.uint8
    pil = PILImage.fromarray(to_numpy(image, dtype))
    pil.info.update(_metadata(image))
    return pil


def convert_like(image: Image, original: Any) -> Any:
    """Return ``image`` as the same kind of object as ``original`` (what :func:`remaster.io.load` was given).

    * PIL -> PIL of the same mode family: L, I;16, I and F stay; P with
      transparency, PA and RGBA give RGBA; P, CMYK and other colour modes give RGB.
    * numpy -> numpy with the same dtype, rank and channel count.
    * tensor -> tensor with the same dtype, rank, device and channel count.
    * anything else (path, bytes, :class:`Image`) -> the :class:`Image` itself.

    If a stage changed the number of colour channels (e.g. colourised a gray
    image), the result follows the image rather than the original.
    """
    if isinstance(original, PILImage.Image):
        if original.mode == "I":
            scale = 65535 if image.meta.bit_depth <= 16 else _INT32_MAX
            return PILImage.fromarray(np.rint(to_numpy(image, np.float64) * scale).astype(np.int32))
        return to_pil(image)
    if isinstance(original, np.ndarray):
        out = to_numpy(_alpha_like(image, original.ndim == 3 and original.shape[2] in (2, 4)), original.dtype)
        return out[..., None] if original.ndim == 3 and out.ndim == 2 else out
    if isinstance(original, torch.Tensor):
        channels = original.shape[-3] if original.ndim >= 3 else 0
        planes = to_tensor(_alpha_like(image, channels in (2, 4)))
        if original.dtype == torch.uint8:
            planes = (planes.clamp(0, 1) * 255).round().to(torch.uint8)
        planes = planes.to(device=original.device, dtype=original.dtype)
        return planes[None] if original.ndim == 4 else planes
    return image


def _alpha_like(image: Image, want_alpha: bool) -> Image:
    # Keep the caller's channel count even if a stage dropped alpha.
    if want_alpha and image.alpha is None:
        return image.with_pixels(image.pixels, torch.ones_like(image.pixels[:, :1]))
    return image


def _metadata(image: Image) -> dict[str, Any]:
    """ICC / EXIF / DPI that fit this image, as Pillow keyword arguments."""
    meta: dict[str, Any] = {}
    icc = _icc_matching(image.meta.icc_profile, grayscale=image.channels == 1)
    if icc:
        meta["icc_profile"] = icc
    if image.meta.exif:
        meta["exif"] = image.meta.exif
    if image.meta.dpi:
        meta["dpi"] = image.meta.dpi
    return meta
