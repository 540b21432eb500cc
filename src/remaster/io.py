"""Reading and writing images: everything outside becomes an :class:`Image`.

:func:`load` turns a path, bytes, a PIL image, a numpy array or a torch tensor
into the one internal representation; :func:`save` writes it back to disk
atomically; :func:`convert_like` hands a result back in the same kind of object
the caller passed in. Quantisation to integers happens exactly once, at the
very end (:func:`to_numpy`, :func:`save`), so stages never lose precision in
between.

Decoding is done by Pillow, except for 16-bit colour PNG/TIFF (Pillow reduces
those to 8 bits) and TIFFs Pillow cannot open (float RGB), which OpenCV
decodes. Either way the header is read first, so the pixel limit is enforced
before any pixel data is decompressed.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image as PILImage
from PIL import TiffImagePlugin, UnidentifiedImageError

from .errors import ImageTooLargeError, InputError, OutputError, RemasterWarning, UnsupportedImageError, UsageError
from .image import Image, Meta

__all__ = [
    "write_atomic",
    "DEFAULT_MAX_PIXELS",
    "SAVE_FORMATS",
    "max_pixels_from_env",
    "load",
    "save",
    "encode",
    "to_pil",
    "to_numpy",
    "to_tensor",
    "convert_like",
]

#: Largest image (width x height) accepted by default; Pillow's own error threshold.
DEFAULT_MAX_PIXELS = 178_956_970

#: Output extensions :func:`save` understands, and the format each one means.
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}

_ENV_MAX_PIXELS = "REMASTER_MAX_PIXELS"
_DEFAULT_QUALITY = 95
_PNG_LEVEL = 6
_ORIENTATION = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_FLOAT_SLACK = 1e-3  # resampling overshoot we silently clip; anything wider is a scaling mistake
_INT32_MAX = 2**31 - 1
_pillow_limit_lock = threading.Lock()
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


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
        hint=f"if you trust this file, raise the limit with --max-pixels N or {_ENV_MAX_PIXELS}=N",
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


def load(source: Any, *, max_pixels: int | None = None) -> Image:
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
        return _from_bytes(_read_file(path), path, limit)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), None, limit)
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
        raise InputError(f"cannot read the file: {_reason(exc)}", path=path) from exc


def _from_bytes(data: bytes, path: Path | None, limit: int) -> Image:
    if not data:
        raise InputError("file is empty (0 bytes)", path=path, hint="re-export or re-download it")
    if data.startswith(_PNG_SIGNATURE):
        _check_png_checksums(data, path)
    try:
        with _pillow_bomb_check_off():
            im = PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data[:4] in _TIFF_MAGIC:  # e.g. float RGB TIFF: valid, but beyond Pillow's modes
            return _from_tiff_with_opencv(data, path, limit)
        raise UnsupportedImageError(
            "not an image (or a format remaster cannot read)",
            path=path,
            hint="use PNG, JPEG, WebP, TIFF, BMP or GIF",
        ) from None
    except Exception as exc:  # Pillow raises many types on malformed headers
        raise InputError(f"image header is corrupt: {exc}", path=path) from exc
    return _from_pil(im, path, limit, data=data)


def _check_png_checksums(data: bytes, path: Path | None) -> None:
    """Refuse a PNG whose chunk checksums are wrong, as libpng does.

    Pillow checks only the chunks before the pixel data, and reports a bad one
    as "not an image"; a damaged IDAT it decodes without a word, which can turn
    flipped bits into wrong pixels. The bytes are in memory, so checking every
    chunk costs one CRC pass.
    """
    offset = len(_PNG_SIGNATURE)
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 8 + length
        if end + 4 > len(data):
            return  # truncated: the decoder says so with its own message
        if zlib.crc32(data[offset + 4:end]) != struct.unpack(">I", data[end:end + 4])[0]:
            name = kind.decode("latin-1")
            raise InputError(f"PNG is corrupt: chunk {name!r} at byte {offset} has a wrong checksum (CRC)",
                             path=path, hint="re-export or re-download it")
        if kind == b"IEND":
            return
        offset = end + 4


def _from_pil(im: PILImage.Image, path: Path | None, limit: int, data: bytes | None = None) -> Image:
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
    deep = None if data is None else _deep_layout(im, data)
    if deep is not None:
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
    orientation, exif = _orientation_and_exif(im)
    dpi = im.info.get("dpi")
    return _image_from_array(
        _orient(array, orientation),
        icc_profile=im.info.get("icc_profile"),
        exif=exif,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi and all(dpi) else None,
        format=fmt,
        source=path,
    )


def _deep_layout(im: PILImage.Image, data: bytes) -> str | None:
    """``"colour"`` or ``"gray+alpha"`` for a 16-bit image Pillow would cut to 8 bits, else ``None``.

    Decided from the header, never from pixel values: a dark 16-bit image is
    still a 16-bit image. (16-bit gray without alpha Pillow reads itself, as I;16.)
    """
    if im.mode not in ("RGB", "RGBA", "LA"):
        return None
    if im.format == "PNG" and data[12:16] == b"IHDR" and data[24] == 16:
        return "gray+alpha" if data[25] == 4 else "colour"  # IHDR colour type 4 = gray+alpha
    if im.format == "TIFF":
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


def _from_tiff_with_opencv(data: bytes, path: Path | None, limit: int) -> Image:
    """TIFFs Pillow cannot open: read the header with Pillow's IFD parser, decode with OpenCV."""
    try:
        ifd, pages = _tiff_first_ifd(data)
        width, height = int(ifd[256]), int(ifd[257])
    except Exception as exc:
        raise InputError(f"TIFF header is corrupt: {exc}", path=path) from exc
    _check_size(width, height, limit, path)
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
        _orient(array, ifd.get(_ORIENTATION, 1)),
        icc_profile=ifd.get(34675),
        dpi=dpi if dpi and all(dpi) else None,
        format="TIFF",
        source=path,
    )


def _tiff_first_ifd(data: bytes) -> tuple[TiffImagePlugin.ImageFileDirectory_v2, int]:
    """The first directory of a TIFF and how many pages are chained after it."""
    header = data[:16] if data[2:4] in (b"+\x00", b"\x00+") else data[:8]  # BigTIFF has a longer header
    fp = io.BytesIO(data)
    first, pages, offset, seen = None, 0, TiffImagePlugin.ImageFileDirectory_v2(header).next, set()
    while offset and offset not in seen:  # `seen` guards against IFD loops in crafted files
        seen.add(offset)
        fp.seek(offset)
        ifd = TiffImagePlugin.ImageFileDirectory_v2(header)
        ifd.load(fp)
        if first is None:
            first = ifd
        pages, offset = pages + 1, ifd.next
    if first is None:
        raise ValueError("no image directory")
    return first, pages


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
        return (np.clip(values, 0, None) / _INT32_MAX).astype(np.float32)
    if mode == "F":
        return _finite_unit(np.asarray(im, dtype=np.float32), path, strict=False)
    raise UnsupportedImageError(
        f"image mode {mode!r} is not supported", path=path, hint="convert it to RGB or grayscale"
    )


def _orientation_and_exif(im: PILImage.Image) -> tuple[int, bytes | None]:
    """EXIF orientation, and the EXIF bytes to keep with orientation reset to 1."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1, None  # getexif() would decode the whole PNG just to find nothing
    exif = im.getexif()
    orientation = exif.get(_ORIENTATION, 1)
    if "exif" not in im.info:  # TIFF: getexif() lists the file's own tags, not an EXIF block to carry
        return (orientation if orientation in range(1, 9) else 1), None
    if _ORIENTATION in exif:
        exif[_ORIENTATION] = 1
    return (orientation if orientation in range(1, 9) else 1), exif.tobytes()


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to ``(H, W[, C])`` pixels, as ``ImageOps.exif_transpose`` does."""
    moves = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    move = moves.get(orientation)
    return array if move is None else np.ascontiguousarray(move(array))


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
    icc = _icc_matching(meta.pop("icc_profile", None), grayscale=colour == 1)
    return Image(
        pixels=tensor[:, :colour],
        alpha=tensor[:, colour:] if has_alpha else None,
        meta=Meta(bit_depth=bit_depth, grayscale=colour == 1, has_alpha=has_alpha, icc_profile=icc, **meta),
    )


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
    """Return ``image`` as the same kind of object as ``original`` (what :func:`load` was given).

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


# --------------------------------------------------------------------------- save


def save(image: Image, path: str | os.PathLike[str], *, quality: int | None = None, overwrite: bool = False) -> Path:
    """Write ``image`` to ``path`` atomically, in the format its extension names.

    ``.png``, ``.jpg``/``.jpeg``, ``.webp`` and ``.tif``/``.tiff`` are written.
    Grayscale stays grayscale and alpha is kept, except in JPEG, which cannot
    store it: the image is composited onto white and a
    :class:`~remaster.errors.RemasterWarning` is issued.
    16-bit and float images stay deep in PNG (16-bit) and TIFF (16-bit, float
    TIFF for ``bit_depth`` 32); JPEG and WebP are 8-bit.

    ICC profile, EXIF and DPI are written wherever the format allows. One
    limitation: 16-bit or float TIFFs in colour or with alpha are encoded by
    OpenCV, which cannot embed ICC or EXIF (DPI is kept) and cannot write gray
    plus alpha, so those become RGBA; a warning says so. PNG has no such limit.

    The file is encoded in memory, written to a hidden temporary file next to
    the target, synced and renamed over it, so a failure never leaves a partial
    file. Missing parent folders are created.

    Args:
        image: What to write.
        path: Target file.
        quality: JPEG/WebP quality 1-100 (default 95); ignored otherwise.
        overwrite: Replace an existing file (including the input itself).

    Returns:
        The path written.

    Raises:
        OutputError: Unknown extension, the target exists (or is the input)
            without ``overwrite``, or the file cannot be encoded or written.
        UsageError: ``quality`` is outside 1-100.
    """
    target = Path(path)
    fmt = SAVE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise OutputError(
            f"cannot tell the output format from the extension {target.suffix or '(none)'!r}",
            path=target,
            hint="use one of " + ", ".join(SAVE_FORMATS),
        )
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError(f"quality must be between 1 and 100, not {quality}")
    if not overwrite:
        refuse_overwrite(target, image.meta.source)
    write_atomic(target, _encode_checked(image, fmt, quality, target, path=target))
    return target


def encode(image: Image, format: str, *, quality: int | None = None) -> bytes:
    """The bytes :func:`save` would write for ``image`` as ``format`` (``"png"``, ``"tiff"``, ...), in memory.

    For callers that send images rather than write them (the server); depth,
    alpha and metadata are kept exactly as :func:`save` keeps them.

    Raises:
        OutputError: Unknown format, or the image cannot be encoded in it.
    """
    name = f"result.{format.lower().lstrip('.')}"
    fmt = SAVE_FORMATS.get(Path(name).suffix)
    if fmt is None:
        raise OutputError(f"cannot encode images as {format!r}", hint="use one of " + ", ".join(SAVE_FORMATS))
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError(f"quality must be between 1 and 100, not {quality}")
    return _encode_checked(image, fmt, quality, Path(name), path=None)


def _encode_checked(image: Image, fmt: str, quality: int | None, target: Path, *, path: Path | None) -> bytes:
    try:
        return _encode(image, fmt, _DEFAULT_QUALITY if quality is None else quality, target)
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"could not encode the image as {fmt}: {exc}", path=path) from exc


def refuse_overwrite(target: Path, source: Path | None) -> None:
    """Raise :class:`OutputError` when ``target`` exists (saying so when it is ``source`` itself)."""
    if not (target.exists() or target.is_symlink()):
        return
    hint = "pass --overwrite or choose another name"
    with suppress(OSError):
        if source is not None and os.path.samefile(source, target):
            raise OutputError("would overwrite the input", path=target, hint=hint)
    raise OutputError("already exists", path=target, hint=hint)


def _encode(image: Image, fmt: str, quality: int, target: Path) -> bytes:
    if fmt == "JPEG" and image.alpha is not None:
        _warn(f"{target}: JPEG cannot store transparency, alpha dropped (composited onto white); "
              "use .png/.webp/.tif to keep it", stacklevel=5)
        white = 1.0 - image.alpha
        image = image.with_pixels(image.pixels * image.alpha + white.to(image.pixels), None)
    deep = image.meta.bit_depth > 8 and fmt in ("PNG", "TIFF")
    if deep and fmt == "PNG":
        return _encode_png16(to_numpy(image, np.uint16), image)
    if deep and (image.channels > 1 or image.alpha is not None):
        return _encode_tiff_opencv(image, target)
    pil = to_pil(image) if deep else PILImage.fromarray(to_numpy(image, np.uint8))
    options: dict[str, Any] = _metadata(image)
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    elif fmt == "PNG":
        options["compress_level"] = _PNG_LEVEL
    else:
        options["compression"] = "tiff_adobe_deflate"
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _encode_png16(array: np.ndarray, image: Image) -> bytes:
    """A 16-bit PNG with its ICC/EXIF/DPI chunks (neither Pillow nor OpenCV writes all of these)."""
    if array.ndim == 2:
        array = array[..., None]
    height, width, channels = array.shape
    rows = np.ascontiguousarray(array, dtype=">u2").reshape(height, width * channels).view(np.uint8)
    packer, idat = zlib.compressobj(_PNG_LEVEL), []
    step = max(1, (4 << 20) // rows.shape[1])  # a few MB of rows at a time keeps memory flat for huge images
    for top in range(0, height, step):
        block = rows[top : top + step]
        # PNG "Up" filter (type 2): each row minus the one above, mod 256. Cheap in
        # numpy and compresses far better than no filter.
        above = np.empty_like(block)
        above[0], above[1:] = (rows[top - 1] if top else 0), block[:-1]
        filtered = block - above
        idat.append(packer.compress(np.concatenate([np.full((len(block), 1), 2, np.uint8), filtered], axis=1)))
    idat.append(packer.flush())
    compressed = b"".join(idat)
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))]
    meta = _metadata(image)
    if "icc_profile" in meta:
        parts.append(chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(meta["icc_profile"])))
    if "dpi" in meta:
        x, y = (round(d / 0.0254) for d in meta["dpi"])
        parts.append(chunk(b"pHYs", struct.pack(">IIB", x, y, 1)))
    if "exif" in meta:
        exif = meta["exif"]
        parts.append(chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    limit = 1 << 30  # a chunk may hold at most 2**31 - 1 bytes
    parts += [chunk(b"IDAT", compressed[i : i + limit]) for i in range(0, len(compressed), limit)]
    parts.append(chunk(b"IEND", b""))
    return b"".join(parts)


def _encode_tiff_opencv(image: Image, target: Path) -> bytes:
    """16-bit/float TIFF in colour or with alpha, which Pillow cannot write."""
    array = to_numpy(image, np.uint16 if image.meta.bit_depth == 16 else np.float32)
    lost = [name for name, value in (("ICC profile", image.meta.icc_profile), ("EXIF", image.meta.exif)) if value]
    if array.ndim == 3 and array.shape[2] == 2:
        array = array[..., [0, 0, 0, 1]]
        lost.append("grayscale (written as RGBA)")
    if lost:
        _warn(f"{target}: a {image.meta.bit_depth}-bit colour TIFF cannot keep its {', '.join(lost)}; "
              "save as PNG, or as an 8-bit TIFF, to keep them", stacklevel=6)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    params = [cv2.IMWRITE_TIFF_COMPRESSION, 8]  # 8 = Adobe deflate
    if image.meta.dpi:
        x, y = image.meta.dpi
        params += [cv2.IMWRITE_TIFF_RESUNIT, 2, cv2.IMWRITE_TIFF_XDPI, round(x), cv2.IMWRITE_TIFF_YDPI, round(y)]
    ok, encoded = cv2.imencode(".tiff", array, params)
    if not ok:
        raise OutputError("OpenCV could not encode the TIFF", path=target)
    return encoded.tobytes()


def _warn(message: str, stacklevel: int) -> None:
    """A :class:`RemasterWarning` attributed to the caller's code, not to a line inside remaster."""
    if sys.version_info >= (3, 12):
        warnings.warn(message, RemasterWarning, skip_file_prefixes=(_PACKAGE_DIR,))
    else:  # the public entry points (save, encode) are this many frames up
        warnings.warn(message, RemasterWarning, stacklevel=stacklevel)


def write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a synced temporary file and a rename; no partial file on failure."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {target.parent}: {_reason(exc)}", path=target) from exc
    temp: Path | None = None
    try:
        temp, fd = _create_temp(target)
        with open(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException as exc:  # even Ctrl-C must not leave a temp file behind
        if temp is not None:
            with suppress(OSError):
                temp.unlink()
        if isinstance(exc, OSError):
            raise OutputError(f"could not write the file: {_reason(exc)}", path=target, hint=_write_hint(exc)) from exc
        raise


def _create_temp(target: Path) -> tuple[Path, int]:
    # Not NamedTemporaryFile: it creates files 0600, and the rename would hand
    # that mode to the result. os.open with 0666 lets the umask decide, as for
    # any normally created file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue


def _reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)


def _write_hint(exc: OSError) -> str | None:
    if exc.errno == errno.ENOSPC:
        return "free some space or write somewhere else"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a folder you can write to"
    return None
