"""Getting an :class:`~remaster.image.Image` out: as numpy, PIL or a tensor, as encoded bytes, or as a file.

Quantisation to integers happens exactly once, here (:func:`to_numpy`,
:func:`save`), so stages never lose precision in between. Files are written
atomically (:func:`write_atomic`).

Nothing here builds an ``Image``; it only reads one. That is why this is a
module of its own rather than part of :mod:`remaster.io` (which reads images,
so needs the class): :mod:`remaster.image` imports it for ``Image.save``,
``Image.to_pil`` and ``Image.to_numpy`` without an import cycle.
:mod:`remaster.io` re-exports everything public here, and stays the one place
callers look.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import struct
import sys
import warnings
import zlib
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from PIL import Image as PILImage

from .errors import OutputError, RemasterWarning, UsageError

if TYPE_CHECKING:  # annotations only: importing the class would make image -> export -> image a cycle
    from .image import Image

__all__ = [
    "SAVE_FORMATS",
    "save",
    "encode",
    "refuse_overwrite",
    "write_atomic",
    "to_pil",
    "to_numpy",
    "to_tensor",
    "convert_like",
]

#: Output extensions :func:`save` understands, and the format each one means.
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}

_DEFAULT_QUALITY = 95
_PNG_LEVEL = 6
_INT32_MAX = 2**31 - 1
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


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
