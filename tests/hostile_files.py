"""Small crafted files whose headers lie (issue 21): made in the test, a few hundred bytes each."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image as PILImage


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_rows(width: int, height: int, rows: int, *, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG whose IHDR says ``width``×``height`` but whose (valid, finished) zlib stream holds ``rows`` rows."""
    samples = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = b"".join(b"\x00" + bytes(width * samples * depth // 8) for _ in range(rows))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int, *, real: tuple[int, int] = (32, 24)) -> bytes:
    """A complete JPEG of ``real`` pixels whose SOF says ``width``×``height``."""
    buffer = io.BytesIO()
    PILImage.new("RGB", real, (200, 10, 10)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def jpeg_cut(width: int = 256, height: int = 192) -> bytes:
    """A JPEG cut in the middle of its data, with an end-of-image marker added: Pillow decodes it without a word."""
    buffer = io.BytesIO()
    noise = PILImage.effect_noise((width, height), 64).convert("RGB")
    noise.save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    return data[: len(data) // 2] + b"\xff\xd9"
