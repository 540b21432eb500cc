"""EXIF orientation: reading it (and the EXIF to keep, reset to 1) and applying it to pixels, as
``ImageOps.exif_transpose`` does, without decoding anything twice."""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage

__all__ = ["ORIENTATION_TAG", "orientation_and_exif", "orient"]

#: The EXIF tag of the orientation.
ORIENTATION_TAG = 0x0112


def orientation_and_exif(im: PILImage.Image) -> tuple[int, bytes | None]:
    """EXIF orientation, and the EXIF bytes to keep with orientation reset to 1."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1, None  # getexif() would decode the whole PNG just to find nothing
    exif = im.getexif()
    orientation = exif.get(ORIENTATION_TAG, 1)
    if "exif" not in im.info:  # TIFF: getexif() lists the file's own tags, not an EXIF block to carry
        return (orientation if orientation in range(1, 9) else 1), None
    if ORIENTATION_TAG in exif:
        exif[ORIENTATION_TAG] = 1
    return (orientation if orientation in range(1, 9) else 1), exif.tobytes()


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
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
