"""Reading images: everything outside becomes an :class:`~remaster.io.image.Image`.

:func:`load` turns a path, bytes, a PIL image, a numpy array or a torch tensor
into the one internal representation, within the pixel limit
(:func:`max_pixels_from_env`), with EXIF orientation applied and ICC profile,
EXIF, DPI and bit depth kept in :class:`~remaster.io.image.Meta`.

Decoding is done by Pillow, except for 16-bit colour PNG/TIFF (Pillow reduces
those to 8 bits) and TIFFs Pillow cannot open (float RGB), which OpenCV
decodes. Either way the header is read first, so the pixel limit is enforced
before any pixel data is decompressed.

The only module of :mod:`remaster.io` that builds an ``Image``, so the only one
that imports :mod:`remaster.io.image`.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image as PILImage
from PIL import TiffImagePlugin, UnidentifiedImageError

from remaster.errors import ImageTooLargeError, InputError, UnsupportedImageError, UsageError
from remaster.io.atomic import os_reason
from remaster.io.conversion import INT32_MAX, icc_matching
from remaster.io.header import Header, check_jpeg_data, check_png_checksums, check_png_data
from remaster.io.image import Image, Meta
from remaster.io.orientation import ORIENTATION_TAG, orient, orientation_and_exif
from remaster.io.tiff import check_tiff_layout, tiff_first_ifd

__all__ = ["DEFAULT_MAX_PIXELS", "max_pixels_from_env", "load", "read_header", "HeaderCheck"]

#: Largest image (width x height) accepted by default; Pillow's own error threshold.
DEFAULT_MAX_PIXELS = 178_956_970

_ENV_MAX_PIXELS = "REMASTER_MAX_PIXELS"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_FLOAT_SLACK = 1e-3  # resampling overshoot we silently clip; anything wider is a scaling mistake
_pillow_limit_lock = threading.Lock()


# --------------------------------------------------------------------------- limits


def max_pixels_from_env() -> int:
    """The pixel limit: ``REMASTER_MAX_PIXELS`` if set, else :data:`DEFAULT_MAX_PIXELS`.

    Raises:
        UsageError: The variable is set but is not a positive integer.
    """
    raw = os.environ.get(_ENV_MAX_PIXELS, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise UsageError(
            f"{_ENV_MAX_PIXELS}={raw!r} is not a positive whole number of pixels",
            hint=f"e.g. {_ENV_MAX_PIXELS}=400000000, or unset it for the default {DEFAULT_MAX_PIXELS:,}",
        )
    return value


def _check_size(width: int, height: int, limit: int, path: Path | None) -> None:
    if width * height <= limit:
        return
    raise ImageTooLargeError(
        f"image is {width}x{height} = {width * height / 1e6:.1f} MP, over the limit of "
        f"{limit:,} pixels ({limit / 1e6:.1f} MP)",
        path=path,
        hint=f"if you trust this file, raise the limit with {{opt:max_pixels}} or {_ENV_MAX_PIXELS}=N",
    )


@contextmanager
def _pillow_bomb_check_off() -> Iterator[None]:
    # Pillow would raise its own DecompressionBombError (or warn) inside open(),
    # before we see the size; switch it off only for the duration of our open so
    # callers' settings stay untouched and ours is the message users get.
    with _pillow_limit_lock:
        saved = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved


# --------------------------------------------------------------------------- load


#: What :func:`load` calls with a file's :class:`~remaster.io.header.Header` before decoding it; it raises to refuse.
HeaderCheck = Callable[[Header], None]


def load(source: Any, *, max_pixels: int | None = None, check: HeaderCheck | None = None) -> Image:
    """Read an image from a file, bytes, PIL image, numpy array or torch tensor.

    Args:
        source: One of

            * a path (``str`` / ``os.PathLike``); the format is sniffed from the
              bytes, never from the extension;
            * ``bytes`` holding an encoded image;
            * a ``PIL.Image.Image`` in any common mode (1, L, P, RGB, RGBA, LA,
              PA, CMYK, YCbCr, LAB, I;16*, I, F);
            * a numpy array, ``(H, W)`` or ``(H, W, C)`` with C in 1-4 (gray,
              gray+alpha, RGB, RGBA), dtype uint8, uint16 or float in ``[0, 1]``;
            * a torch tensor, ``(C, H, W)`` or ``(1, C, H, W)`` with C in 1-4,
              float in ``[0, 1]`` (or uint8), on any device;
            * an :class:`Image`, returned unchanged.

        max_pixels: Largest accepted width x height; defaults to
            :func:`max_pixels_from_env`. Files are checked from their header,
            before any pixel data is decoded.
        check: Called with the file's :class:`~remaster.io.header.Header` (for
            a path or bytes) after the pixel limit and before any pixel data is
            decoded, so that what a caller would refuse from the size alone (a
            pipeline's output limit) costs no decoding; it raises to refuse.

    Returns:
        The image with float pixels on the CPU. EXIF orientation has been
        applied to the pixels (and reset to 1 in ``meta.exif``); ``meta`` records
        bit depth, grayscale, alpha, ICC profile, DPI, format and source path.

    Raises:
        InputError: Unreadable, empty, truncated or corrupt input, or arrays
            with NaN/Inf or values outside ``[0, 1]``.
        UnsupportedImageError: Not an image, an unusable mode/shape/dtype, or
            more than one frame (animations, multi-page TIFF).
        ImageTooLargeError: More pixels than the limit.
    """
    if isinstance(source, Image):
        return source
    limit = max_pixels_from_env() if max_pixels is None else max_pixels
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _from_bytes(_read_file(path), path, limit, check)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), None, limit, check)
    if isinstance(source, PILImage.Image):
        return _from_pil(source, None, limit)
    if isinstance(source, np.ndarray):
        return _from_array(source, limit, what="array")
    if isinstance(source, torch.Tensor):
        return _from_tensor(source, limit)
    raise UnsupportedImageError(
        f"cannot load an image from a {type(source).__name__}",
        hint="pass a path, bytes, a PIL image, a numpy array or a torch tensor",
    )


class _HeaderRead(Exception):
    def __init__(self, header: Header):
        super().__init__(header)
        self.header = header


def read_header(source: str | os.PathLike[str] | bytes, *, max_pixels: int | None = None) -> Header:
    """A file's :class:`~remaster.io.header.Header`, checked as :func:`load` checks it, without decoding its pixels.

    Raises:
        InputError, UnsupportedImageError, ImageTooLargeError: as :func:`load` would, from the header.
    """
    def stop(header: Header) -> None:
        raise _HeaderRead(header)

    try:
        load(source, max_pixels=max_pixels, check=stop)
    except _HeaderRead as found:
        return found.header
    raise InputError("has no header to read")  # only a path or bytes reach here, and both are read from a header


def _read_file(path: Path) -> bytes:
    # One read of the whole file: the header sniff, Pillow and OpenCV all work
    # from these bytes, which also sidesteps OpenCV's trouble with non-ASCII paths.
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", path=path, hint="check the path and its spelling") from None
    except IsADirectoryError:
        raise InputError("is a folder, not an image file", path=path) from None
    except PermissionError:
        raise InputError("permission denied while reading", path=path, hint="check the file's permissions") from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {os_reason(exc)}", path=path) from exc


def _from_bytes(data: bytes, path: Path | None, limit: int, check: HeaderCheck | None = None) -> Image:
    if not data:
        raise InputError("file is empty (0 bytes)", path=path, hint="re-export or re-download it")
    if data.startswith(_PNG_SIGNATURE):
        check_png_checksums(data, path)
    try:
        with _pillow_bomb_check_off():
            im = PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data[:4] in _TIFF_MAGIC:  # e.g. float RGB TIFF: valid, but beyond Pillow's modes
            return _from_tiff_with_opencv(data, path, limit, check)
        raise UnsupportedImageError(
            "not an image (or a format remaster cannot read)",
            path=path,
            hint="use PNG, JPEG, WebP, TIFF, BMP or GIF",
        ) from None
    except Exception as exc:  # Pillow raises many types on malformed headers
        raise InputError(f"image header is corrupt: {exc}", path=path) from exc
    return _from_pil(im, path, limit, data=data, check=check)


def _from_pil(im: PILImage.Image, path: Path | None, limit: int, data: bytes | None = None,
              check: HeaderCheck | None = None) -> Image:
    _check_size(*im.size, limit, path)
    try:
        # MPO (many phone JPEGs) appends previews/depth maps; frame 0 is the photo itself.
        frames = 1 if im.format == "MPO" else getattr(im, "n_frames", 1)
    except Exception as exc:
        raise InputError(f"image data is truncated or corrupt: {exc}", path=path) from exc
    if frames > 1:
        raise UnsupportedImageError(
            f"has {frames} frames (animation or multi-page file); only single images are supported",
            path=path,
            hint="split the frames into separate files first",
        )
    fmt = "JPEG" if im.format == "MPO" else im.format
    if isinstance(im, TiffImagePlugin.TiffImageFile):
        bits = im.tag_v2.get(258, (8,))
        check_tiff_layout(im.tag_v2, int(im.tag_v2.get(277, 1)),
                           max(bits) if isinstance(bits, tuple) else int(bits), path)
    if data is not None:
        if check is not None:
            check(_header_of(im, fmt, path, data))
        if fmt == "PNG":
            check_png_data(data, path)
        elif fmt == "JPEG":
            check_jpeg_data(data, path)
    deep = None if data is None else _deep_layout(im, data)
    if deep is not None and data is not None:  # deep is only ever found in data
        array = _decode_with_opencv(data, path)
        if array.dtype != np.uint16:  # OpenCV can quietly fall back to 8 bits on odd layouts
            raise UnsupportedImageError(
                f"16-bit {deep} {fmt} cannot be decoded without losing data", path=path, hint="convert it to PNG"
            )
        if deep == "gray+alpha" and array.ndim == 3 and array.shape[2] == 4:
            array = array[..., [0, 3]]  # OpenCV expands gray+alpha to BGRA; keep it gray
    else:
        try:
            im.load()
        except Exception as exc:
            raise InputError(f"image data is truncated or corrupt: {exc}", path=path) from exc
        array = _pil_pixels(im, path)
    orientation, exif = orientation_and_exif(im)
    dpi = im.info.get("dpi")
    return _image_from_array(
        orient(array, orientation),
        icc_profile=im.info.get("icc_profile"),
        exif=exif,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi and all(dpi) else None,
        format=fmt,
        source=path,
    )


def _header_of(im: PILImage.Image, fmt: str | None, path: Path | None, data: bytes) -> Header:
    """The header of an opened (not decoded) image, as it will load: EXIF orientation applied, alpha apart."""
    width, height = im.size
    orientation = 1
    if im.format != "PNG" or "exif" in im.info:  # as _orientation_and_exif reads it, without decoding a PNG
        with suppress(Exception):
            orientation = int(im.getexif().get(ORIENTATION_TAG, 1))
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    bands = im.getbands()
    has_alpha = "A" in bands or "a" in bands or (im.mode in ("P", "L", "RGB") and "transparency" in im.info)
    gray = im.mode in ("1", "L", "LA", "La", "I", "F") or im.mode.startswith("I;16")
    deep = _deep_layout(im, data)
    if deep is not None:
        gray = deep == "gray+alpha"
    bits = 32 if im.mode in ("I", "F") else 16 if (deep is not None or im.mode.startswith("I;16")) else 8
    return Header(width, height, 1 if gray else 3, has_alpha, bits, fmt, path)


def _deep_layout(im: PILImage.Image, data: bytes) -> str | None:
    """``"colour"`` or ``"gray+alpha"`` for a 16-bit image Pillow would cut to 8 bits, else ``None``.

    Decided from the header, never from pixel values: a dark 16-bit image is
    still a 16-bit image. (16-bit gray without alpha Pillow reads itself, as I;16.)
    """
    if im.mode not in ("RGB", "RGBA", "LA"):
        return None
    if im.format == "PNG" and data[12:16] == b"IHDR" and data[24] == 16:
        return "gray+alpha" if data[25] == 4 else "colour"  # IHDR colour type 4 = gray+alpha
    if im.format == "TIFF" and isinstance(im, TiffImagePlugin.TiffImageFile):
        bits = im.tag_v2.get(258, (8,))
        if max(bits if isinstance(bits, tuple) else (bits,)) == 16:
            return "gray+alpha" if im.tag_v2.get(262) in (0, 1) else "colour"  # photometric 0/1 = gray
    return None


def _decode_with_opencv(data: bytes, path: Path | None) -> np.ndarray:
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        array, cause = None, str(exc).strip().splitlines()[-1]
    else:
        cause = "OpenCV could not decode it"
    if array is None:
        raise InputError(f"image data is truncated or corrupt: {cause}", path=path)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB if array.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    if array.dtype not in (np.uint8, np.uint16) and array.dtype.kind != "f":
        raise UnsupportedImageError(
            f"{array.dtype} samples are not supported", path=path, hint="convert to 8/16-bit or float"
        )
    return _finite_unit(array, path, strict=False) if array.dtype.kind == "f" else array


def _from_tiff_with_opencv(data: bytes, path: Path | None, limit: int, check: HeaderCheck | None = None) -> Image:
    """TIFFs Pillow cannot open: read the header with Pillow's IFD parser, decode with OpenCV."""
    try:
        ifd, pages = tiff_first_ifd(data)
        width, height = int(ifd[256]), int(ifd[257])
    except Exception as exc:
        raise InputError(f"TIFF header is corrupt: {exc}", path=path) from exc
    _check_size(width, height, limit, path)
    samples, bits = int(ifd.get(277, 1)), ifd.get(258, (8,))
    depth = max(bits) if isinstance(bits, tuple) else int(bits)
    check_tiff_layout(ifd, samples, depth, path)
    if check is not None:
        check(Header(width, height, 1 if samples <= 2 else 3, samples in (2, 4), 32 if depth > 16 else depth,
                     "TIFF", path))
    if pages > 1:
        raise UnsupportedImageError(
            f"has {pages} frames (multi-page TIFF); only single images are supported",
            path=path,
            hint="split the pages into separate files first",
        )
    array = _decode_with_opencv(data, path)
    bits, samples = ifd.get(258, (8,)), int(ifd.get(277, 1))
    bits = max(bits) if isinstance(bits, tuple) else int(bits)
    if (array.dtype.itemsize * 8, array.shape[2] if array.ndim == 3 else 1) != (bits, samples):
        # OpenCV "succeeds" on some layouts (e.g. 16-bit gray+alpha) by quietly
        # returning 8-bit gray; refuse rather than lose data.
        raise UnsupportedImageError(
            f"{samples}-channel {bits}-bit TIFF cannot be decoded without losing data",
            path=path,
            hint="convert it to PNG, or to a gray or RGB(A) TIFF",
        )
    dpi = None
    if 282 in ifd and 283 in ifd and ifd.get(296, 2) in (2, 3):
        per_inch = 2.54 if ifd.get(296, 2) == 3 else 1.0
        dpi = (float(ifd[282]) * per_inch, float(ifd[283]) * per_inch)
    return _image_from_array(
        orient(array, ifd.get(ORIENTATION_TAG, 1)),
        icc_profile=ifd.get(34675),
        dpi=dpi if dpi and all(dpi) else None,
        format="TIFF",
        source=path,
    )


def _pil_pixels(im: PILImage.Image, path: Path | None) -> np.ndarray:
    """Pixels of a decoded PIL image as uint8, uint16 or float32 ``(H, W[, C])``."""
    mode = im.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("L", "RGB") and "transparency" in im.info:  # tRNS colour key
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    elif mode in ("RGBa", "La"):  # premultiplied
        im = im.convert(mode.upper())
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(im)
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)  # also turns big-endian I;16B native
    if mode == "I":
        values = np.asarray(im)
        if values.min() >= 0 and values.max() <= 65535:
            return values.astype(np.uint16)
        # Wider than 16 bits: keep it as float over the int32 range (negatives clip).
        return (np.clip(values, 0, None) / INT32_MAX).astype(np.float32)
    if mode == "F":
        return _finite_unit(np.asarray(im, dtype=np.float32), path, strict=False)
    raise UnsupportedImageError(
        f"image mode {mode!r} is not supported", path=path, hint="convert it to RGB or grayscale"
    )


def _from_tensor(tensor: torch.Tensor, limit: int) -> Image:
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 2, 3, 4):
        raise UnsupportedImageError(
            f"tensor of shape {tuple(tensor.shape)} is not an image",
            hint="pass (C, H, W) or (1, C, H, W) with C = 1, 2 (gray+alpha), 3 or 4",
        )
    tensor = tensor.detach().to("cpu")
    if tensor.dtype.is_floating_point:
        tensor = tensor.float()  # numpy has no bfloat16
    elif tensor.dtype != torch.uint8:
        raise UnsupportedImageError(
            f"tensor dtype {tensor.dtype} is not supported", hint="pass a float tensor in [0, 1] or uint8"
        )
    return _from_array(tensor.numpy().transpose(1, 2, 0), limit, what="tensor")


def _from_array(array: np.ndarray, limit: int, *, what: str) -> Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4)):
        raise UnsupportedImageError(
            f"{what} of shape {array.shape} is not an image",
            hint="pass (H, W) or (H, W, C) with C = 1, 2 (gray+alpha), 3 or 4, in RGB(A) order",
        )
    if array.dtype not in (np.uint8, np.uint16) and array.dtype.kind != "f":
        raise UnsupportedImageError(
            f"{what} dtype {array.dtype} is not supported", hint="use uint8, uint16, or float scaled to [0, 1]"
        )
    _check_size(array.shape[1], array.shape[0], limit, None)
    if array.dtype.kind == "f":
        array = _finite_unit(array, None, strict=True, what=what)
    return _image_from_array(array)


def _finite_unit(array: np.ndarray, path: Path | None, *, strict: bool, what: str = "image") -> np.ndarray:
    """Float samples as float32 in ``[0, 1]``; NaN/Inf always refused.

    ``strict`` refuses values clearly outside ``[0, 1]`` (a caller's scaling
    mistake); float files are taken as they come and clipped.
    """
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InputError(f"{what} contains NaN/Inf values", path=path, hint="replace them before passing it in")
    if strict and array.size:
        low, high = float(array.min()), float(array.max())
        if low < -_FLOAT_SLACK or high > 1 + _FLOAT_SLACK:
            raise InputError(
                f"{what} values span [{low:.4g}, {high:.4g}], outside [0, 1]",
                hint="scale to [0, 1] (e.g. divide uint8 data by 255), or pass uint8/uint16",
            )
    return np.clip(array, 0.0, 1.0)


def _image_from_array(array: np.ndarray, **meta: Any) -> Image:
    """Build an :class:`Image` from ``(H, W[, C])`` uint8/uint16/float pixels (C = 1-4)."""
    if array.ndim == 2:
        array = array[..., None]
    if array.dtype == np.uint8 or array.dtype == np.uint16:
        bit_depth = 8 if array.dtype == np.uint8 else 16
        values = array.astype(np.float32)
        values /= 255.0 if bit_depth == 8 else 65535.0
    else:
        bit_depth, values = 32, array.astype(np.float32, copy=False)
    channels = values.shape[2]
    has_alpha = channels in (2, 4)
    colour = channels - has_alpha
    tensor = torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))[None]
    icc = icc_matching(meta.pop("icc_profile", None), grayscale=colour == 1)
    return Image(
        pixels=tensor[:, :colour],
        alpha=tensor[:, colour:] if has_alpha else None,
        meta=Meta(bit_depth=bit_depth, grayscale=colour == 1, has_alpha=has_alpha, icc_profile=icc, **meta),
    )
