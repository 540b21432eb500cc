"""Writing an :class:`~remaster.io.image.Image` as PNG, JPEG, WebP or TIFF.

To a file (:func:`save`) or to bytes (:func:`encode`).

Depth, alpha and metadata are kept wherever the format allows: 16-bit PNGs
are written here (:func:`_encode_png16`, neither Pillow nor OpenCV writes all
their chunks), deep colour TIFFs by OpenCV, everything else by Pillow. Files
are written atomically (:mod:`remaster.io.atomic`).

Nothing here builds an ``Image``; it only reads one, so :mod:`remaster.io.image`
can import this module (for ``Image.save``) without an import cycle.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image as PILImage

from remaster.errors import OutputError, RemasterWarning, UsageError
from remaster.io.atomic import check_regular, refuse_overwrite, write_atomic
from remaster.io.conversion import dequantised, metadata_of, to_numpy, to_pil

if TYPE_CHECKING:  # annotations only: importing the class would make image -> io -> image a cycle
    from remaster.io.image import Image

__all__ = ["SAVE_FORMATS", "save", "encode", "saves_integers"]

#: Output extensions :func:`save` understands, and the format each one means.
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}

_DEFAULT_QUALITY = 95
# zlib level 1, as OpenCV (and so Real-ESRGAN's scripts) writes PNGs: several times faster than Pillow's 6 for files
# about a fifth larger (benchmarks/png_level.py); at 6 a folder run spends longer encoding than in the network.
_PNG_LEVEL = 1
# Warnings skip every frame inside the remaster package, not only those in io/.
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


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
    check_regular(target)  # before the work of encoding
    write_atomic(target, _encode_checked(image, fmt, quality, target, path=target), replace=overwrite)
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


def saves_integers(bit_depth: int, has_alpha: bool, path: str | os.PathLike[str]) -> bool:
    """Whether :func:`save` writes such an image to ``path`` by quantising it to its own depth, as a whole.

    True for 8- and 16-bit images, except where saving computes on the float
    pixels first or takes fewer bits: JPEG with alpha (composited onto white)
    and 16-bit images in JPEG or WebP (8-bit formats). For those, an integer
    image of the source's depth (:mod:`remaster.io.image`) gives the same file as
    the float one, so the pipeline can make it directly.
    """
    fmt = SAVE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None or bit_depth not in (8, 16):
        return False
    if fmt == "JPEG" and has_alpha:
        return False
    return bit_depth == 8 or fmt in ("PNG", "TIFF")


def _encode_checked(image: Image, fmt: str, quality: int | None, target: Path, *, path: Path | None) -> bytes:
    try:
        return _encode(image, fmt, _DEFAULT_QUALITY if quality is None else quality, target)
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"could not encode the image as {fmt}: {exc}", path=path) from exc


def _encode(image: Image, fmt: str, quality: int, target: Path) -> bytes:
    if fmt == "JPEG" and image.alpha is not None:
        _warn(f"{target}: JPEG cannot store transparency, alpha dropped (composited onto white); "
              "use .png/.webp/.tif to keep it", stacklevel=5)
        image = dequantised(image)  # compositing computes on floats
        alpha = image.alpha
        assert alpha is not None  # dequantising keeps the alpha plane
        white = 1.0 - alpha
        image = image.with_pixels(image.pixels * alpha + white.to(image.pixels), None)
    deep = image.meta.bit_depth > 8 and fmt in ("PNG", "TIFF")
    if deep and fmt == "PNG":
        return _encode_png16(to_numpy(image, np.uint16), image)
    if deep and (image.channels > 1 or image.alpha is not None):
        return _encode_tiff_opencv(image, target)
    pil = to_pil(image) if deep else PILImage.fromarray(to_numpy(image, np.uint8))
    options: dict[str, Any] = metadata_of(image)
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
        row_bytes = np.concatenate([np.full((len(block), 1), 2, np.uint8), filtered], axis=1)
        idat.append(packer.compress(row_bytes))  # type: ignore[arg-type]  # numpy types __buffer__ for 3.12+ only
    idat.append(packer.flush())
    compressed = b"".join(idat)
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))]
    meta = metadata_of(image)
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
