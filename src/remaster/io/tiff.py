"""TIFF headers read without decoding: the first image directory and the pages chained after it, and the layouts
remaster refuses as unsupported (it would not keep them whole), never as corrupt."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import TiffImagePlugin

from remaster.errors import UnsupportedImageError

__all__ = ["check_tiff_layout", "tiff_first_ifd"]


def check_tiff_layout(ifd: Any, samples: int, depth: int, path: Path | None) -> None:
    """Refuse, as unsupported (not corrupt), a TIFF whose layout remaster cannot keep whole."""
    formats = ifd.get(339, (1,))
    if 3 in (formats if isinstance(formats, tuple) else (formats,)) and depth == 16:
        raise UnsupportedImageError("16-bit float (half) samples are not supported", path=path,
                                    hint="save it as 32-bit float or 16-bit integer TIFF, or as PNG")
    if samples > 4:
        raise UnsupportedImageError(f"{samples} samples per pixel are not supported (gray, gray+alpha, RGB, RGBA)",
                                    path=path, hint="keep the colour and alpha channels only, or save as PNG")


def tiff_first_ifd(data: bytes) -> tuple[TiffImagePlugin.ImageFileDirectory_v2, int]:
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
