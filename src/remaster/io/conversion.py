"""Getting an :class:`~remaster.io.image.Image` out as numpy, PIL or a tensor, or as the kind of object it came in as.

Quantisation to integers happens exactly once, with :func:`quantise`: in
:func:`to_numpy`, or band by band while the pipeline's last stage runs (an
*integer image*, see :mod:`remaster.io.image`), so stages never lose precision in
between. An integer image converts to its own dtype without any arithmetic. Also the metadata rules both ways:
which ICC profile fits which pixels (:func:`icc_matching`) and the
ICC/EXIF/DPI handed to Pillow (:func:`metadata_of`).

Nothing here builds an ``Image``; it only reads one, so :mod:`remaster.io.image`
can import this module (for ``Image.to_pil`` and ``Image.to_numpy``) without
an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image as PILImage

if TYPE_CHECKING:  # annotations only: importing the class would make image -> io -> image a cycle
    from remaster.io.image import Image

__all__ = ["to_pil", "to_numpy", "to_tensor", "convert_like", "quantise", "is_quantised", "dequantised",
           "returns_integers"]

INT32_MAX = 2**31 - 1


def icc_matching(icc: bytes | None, *, grayscale: bool) -> bytes | None:
    # A profile describes one colour space; after CMYK->RGB or a colourising
    # stage the old one would mislabel the pixels, so it is dropped.
    if not icc or len(icc) < 20:
        return None
    space = icc[16:20]
    return icc if space == (b"GRAY" if grayscale else b"RGB ") else None


# --------------------------------------------------------------------------- quantisation

_TORCH_INTEGERS = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16}
_INTEGER_DTYPES = {torch_dtype: dtype for dtype, torch_dtype in _TORCH_INTEGERS.items()}


def quantise(values: torch.Tensor, dtype: Any) -> torch.Tensor:
    """Float samples in ``[0, 1]`` as ``uint8``/``uint16`` integers, on the tensor's own device.

    The one quantisation: clamp to ``[0, 1]``, multiply by the dtype's peak in
    float32, round half to even (as ``np.rint``). Done on the device, so that only
    integers need to cross to the host.
    """
    dtype = np.dtype(dtype)
    if dtype not in _TORCH_INTEGERS:
        raise TypeError(f"quantise: dtype {dtype} is not uint8 or uint16")
    peak = float(np.iinfo(dtype).max)
    # clamp makes the one temporary; the rest works in it (the same float32 operations, in place).
    return values.float().clamp(0.0, 1.0).mul_(peak).round_().to(_TORCH_INTEGERS[dtype])


def is_quantised(image: Image) -> bool:
    """Whether ``image`` is an integer image (``uint8``/``uint16`` pixels, already quantised).

    Raises:
        TypeError: the pixels are integers of another dtype, which no image may have.
    """
    if image.pixels.is_floating_point():
        return False
    if image.pixels.dtype not in _INTEGER_DTYPES:
        raise TypeError(f"integer image pixels must be uint8 or uint16, not {image.pixels.dtype}")
    return True


def dequantised(image: Image) -> Image:
    """An integer image as float pixels in ``[0, 1]`` (each value / the dtype's peak); a float image unchanged.

    The explicit way back, for anything that computes on the pixels (a stage,
    compositing). Quantising the result again gives the same integers.
    """
    if not is_quantised(image):
        return image
    peak = float(torch.iinfo(image.pixels.dtype).max)
    alpha = None if image.alpha is None else image.alpha.float() / peak
    return image.with_pixels(image.pixels.float() / peak, alpha)


def returns_integers(original: Any, bit_depth: int) -> bool:
    """Whether :func:`convert_like` turns a result into ``original``'s kind by quantising it to its own depth.

    True for uint8/uint16 numpy arrays and 8-bit PIL images: for those the
    pipeline may make an integer image directly, and the result is the same.
    """
    if isinstance(original, np.ndarray):
        return original.dtype in _TORCH_INTEGERS
    if isinstance(original, PILImage.Image):
        return bit_depth == 8 and original.mode not in ("I", "F")
    return False


def _packed(image: Image) -> np.ndarray | None:
    """The ``(H, W, C)`` host array an integer image's colour and alpha are views of, or None if they are not."""
    pixels, alpha = image.pixels, image.alpha
    if pixels.device.type != "cpu" or pixels.shape[0] != 1:
        return None
    colour, height, width = pixels.shape[1:]
    channels = colour + (alpha is not None)
    strides = (1, width * channels, channels)
    if tuple(pixels.stride()[1:]) != strides:
        return None
    if alpha is not None and (
            alpha.dtype != pixels.dtype or tuple(alpha.stride()[1:]) != strides
            or alpha.untyped_storage().data_ptr() != pixels.untyped_storage().data_ptr()
            or alpha.storage_offset() != pixels.storage_offset() + colour):
        return None
    return torch.as_strided(pixels, (height, width, channels), (width * channels, channels, 1),
                            pixels.storage_offset()).numpy()


# --------------------------------------------------------------------------- conversions


def to_numpy(image: Image, dtype: Any = None, *, channels_last: bool = True) -> np.ndarray:
    """Pixels (with alpha appended as the last channel) as a numpy array.

    Args:
        image: The image.
        dtype: ``uint8``, ``uint16`` or a float dtype; by default from
            ``meta.bit_depth`` (8 -> uint8, 16 -> uint16, 32 -> float32), or
            an integer image's own dtype. Float pixels are quantised
            (:func:`quantise`) once, here. An integer image asked for its own
            dtype is not converted at all: channels last, the array is the
            image's own buffer (no copy; copy it before changing it). Asked
            for another dtype, it is converted explicitly through floats
            (:func:`dequantised`), which is not the same as quantising the
            float result to that dtype.
        channels_last: ``(H, W, C)`` if true, else ``(C, H, W)``. Grayscale
            without alpha is always ``(H, W)``.
    """
    if dtype is None and is_quantised(image):
        dtype = _INTEGER_DTYPES[image.pixels.dtype]
    if dtype is None:
        dtype = {8: np.uint8, 16: np.uint16}.get(image.meta.bit_depth, np.float32)
    dtype = np.dtype(dtype)
    if dtype.kind != "f" and dtype not in (np.uint8, np.uint16):
        raise TypeError(f"to_numpy: dtype {dtype} is not uint8, uint16 or float")
    if is_quantised(image):
        if _TORCH_INTEGERS.get(dtype) != image.pixels.dtype:
            return to_numpy(dequantised(image), dtype, channels_last=channels_last)
        packed = _packed(image) if channels_last else None
        if packed is not None:
            return packed[..., 0] if packed.shape[2] == 1 else packed
    planes = [image.pixels[0]] + ([image.alpha[0]] if image.alpha is not None else [])
    channels = sum(int(plane.shape[0]) for plane in planes)
    height, width = image.height, image.width
    out = np.empty((height, width, channels) if channels_last else (channels, height, width), dtype)
    integers = is_quantised(image)
    # Converted a band of rows at a time, so that a large result needs no float copy of its own
    # size: the output array is the only new full-size allocation.
    band = max(1, (1 << 20) // max(1, width * channels))
    for top in range(0, height, band):
        band_pixels = torch.cat([plane[:, top:top + band] for plane in planes]).detach()
        rows: np.ndarray
        if integers:
            rows = band_pixels.cpu().numpy()
        elif dtype.kind == "f":
            rows = np.clip(band_pixels.to("cpu", torch.float32).numpy(), 0.0, 1.0)
        else:
            rows = quantise(band_pixels.to("cpu", torch.float32), dtype).numpy()
        if channels_last:
            out[top:top + band] = rows.transpose(1, 2, 0)
        else:
            out[:, top:top + band] = rows
    if channels == 1:
        return out[..., 0] if channels_last else out[0]
    return out


def to_tensor(image: Image) -> torch.Tensor:
    """``(C, H, W)`` float32 pixels with alpha appended as a channel, on the pixels' device."""
    image = dequantised(image)
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
    pil.info.update(metadata_of(image))
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
            scale = 65535 if image.meta.bit_depth <= 16 else INT32_MAX
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
        opaque = 1.0 if image.pixels.is_floating_point() else torch.iinfo(image.pixels.dtype).max
        return image.with_pixels(image.pixels, torch.full_like(image.pixels[:, :1], opaque))
    return image


def metadata_of(image: Image) -> dict[str, Any]:
    """ICC / EXIF / DPI that fit this image, as Pillow keyword arguments."""
    meta: dict[str, Any] = {}
    icc = icc_matching(image.meta.icc_profile, grayscale=image.channels == 1)
    if icc:
        meta["icc_profile"] = icc
    if image.meta.exif:
        meta["exif"] = image.meta.exif
    if image.meta.dpi:
        meta["dpi"] = image.meta.dpi
    return meta
