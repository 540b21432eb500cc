"""What a file's header says, and whether its data is all there, before anything is decoded.

:class:`Header` is what :func:`remaster.io.load` hands its ``check`` before it decodes a file, so that a caller
(a pipeline planning its output, the server admitting a job) can refuse a file from its header alone: a 1 KB file
whose header claims 13000×13000 pixels costs no more memory than reading it.

A file whose pixel data is shorter than its header says is refused, not filled in: decoders (Pillow, libjpeg)
quietly pad the missing rows with gray or black. :func:`check_png_data` counts the inflated bytes of a PNG against
the size its header needs, without keeping them; :func:`check_jpeg_data` decodes a JPEG at an eighth of its size
with libjpeg-turbo (``simplejpeg``) in strict mode, which reports the premature end that Pillow passes over.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from remaster.errors import InputError

__all__ = ["Header", "check_png_checksums", "check_png_data", "check_jpeg_data"]

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # IHDR colour type -> samples per pixel
# Adam7 passes: (first column, first row, column step, row step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_INFLATE_STEP = 1 << 20  # inflated bytes looked at per step: the check's memory, whatever the image's size


@dataclass(frozen=True)
class Header:
    """A file's image as its header describes it (after EXIF orientation: width and height as loaded).

    Attributes:
        width, height: Pixels.
        channels: Colour channels as the pipeline sees them: 1 (gray) or 3 (colour); alpha is apart.
        has_alpha: Whether an alpha channel comes with them.
        bit_depth: Bits per sample as loaded: 8, 16, or 32 for float (what ``Meta.bit_depth`` will say).
        format: The file format (``"PNG"``, ``"JPEG"``, ...).
        path: The file, if it is one.
    """

    width: int
    height: int
    channels: int
    has_alpha: bool
    bit_depth: int = 8
    format: str | None = None
    path: Path | None = None


def check_png_checksums(data: bytes, path: Path | None) -> None:
    """Refuse a PNG whose chunk checksums are wrong, as libpng does.

    Pillow checks only the chunks before the pixel data, and reports a bad one
    as "not an image"; a damaged IDAT it decodes without a word, which can turn
    flipped bits into wrong pixels. The bytes are in memory, so checking every
    chunk costs one CRC pass.
    """
    offset = 8
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


def check_png_data(data: bytes, path: Path | None) -> None:
    """Refuse a PNG whose compressed pixel data inflates to less than its header's size needs.

    Raises:
        InputError: the data is truncated or corrupt ("not enough image data", as libpng says).
    """
    if len(data) < 33 or data[12:16] != b"IHDR":
        return  # not a PNG with a header to go by: the decoder speaks for itself
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    channels = _PNG_CHANNELS.get(colour)
    if channels is None or width == 0 or height == 0:
        return
    bits = channels * depth
    passes = _ADAM7 if interlace == 1 else ((0, 0, 1, 1),)
    needed = 0
    for x0, y0, dx, dy in passes:
        columns, rows = math.ceil(max(0, width - x0) / dx), math.ceil(max(0, height - y0) / dy)
        if columns and rows:
            needed += rows * (1 + math.ceil(columns * bits / 8))  # each row starts with its filter byte
    inflate, got, offset = zlib.decompressobj(), 0, 8
    try:
        while offset + 8 <= len(data) and got < needed:
            length, kind = struct.unpack(">I4s", data[offset:offset + 8])
            chunk = data[offset + 8:offset + 8 + length]
            offset += 12 + length
            if kind == b"IEND":
                break
            if kind != b"IDAT":
                continue
            pending = chunk
            while pending and got < needed:
                got += len(inflate.decompress(pending, _INFLATE_STEP))
                pending = inflate.unconsumed_tail
            if inflate.eof:
                break
    except zlib.error as exc:
        raise InputError(f"image data is truncated or corrupt: {exc}", path=path,
                         hint="re-export or re-download it") from None
    if got < needed:
        raise InputError(f"image data is truncated or corrupt: not enough image data ({got:,} of {needed:,} bytes "
                         f"for {width}x{height})", path=path, hint="re-export or re-download it")


def check_jpeg_data(data: bytes, path: Path | None) -> None:
    """Refuse a JPEG whose entropy-coded data ends before the image its header declares is complete.

    Only a premature end counts: other warnings libjpeg gives about files that decode (extraneous bytes before
    a marker, a colour space it will not convert here) are left to the decoder, as before.

    Raises:
        InputError: the data ends before the image does.
    """
    import simplejpeg

    try:
        # Scaled to 1/8 by the DCT: every coefficient is still decoded, so a short file is found, in 1/64 of the
        # memory and about a quarter of the time of a full decode.
        simplejpeg.decode_jpeg(data, strict=True, min_width=1, min_height=1)
    except ValueError as exc:
        message = str(exc)
        if "premature end" in message.lower():
            raise InputError(f"image data is truncated or corrupt: {message}", path=path,
                             hint="re-export or re-download it") from None
