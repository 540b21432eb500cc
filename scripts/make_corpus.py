"""Write the input corpus in ``tests/corpus/``: one small file per input case of docs/reliability.md.

    python scripts/make_corpus.py            # (re)write tests/corpus/
    python scripts/make_corpus.py --check    # exit 1 if tests/corpus/ lacks a file or holds a stray one

Every file is made here from numbers (seeded), Pillow and OpenCV, so the corpus can be rebuilt
and extended on any machine; tests/test_corpus.py says what remaster must do with each one.
Bytes may differ between library versions (encoders, ICC creation dates), names never do.
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import zlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image, ImageCms

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _rgb(width: int = 24, height: int = 16, seed: int = 0) -> np.ndarray:
    """A smooth gradient plus a little noise: realistic enough for JPEG, exact for PNG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) * 127 // max(1, width + height - 2)], -1)
    return np.clip(base + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def good_png() -> bytes:
    return _encode(Image.fromarray(_rgb()), "PNG")


def text_named_png() -> bytes:
    return b"These are my holiday notes, saved with the wrong name.\n"


def random_bytes_named_jpg() -> bytes:
    data = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return b"\x00" + data[1:]  # never a real magic number by chance


def truncated_jpeg() -> bytes:
    data = _encode(Image.fromarray(_rgb(64, 48)), "JPEG", quality=90)
    return data[: len(data) // 2]


def png_bad_crc() -> bytes:
    """A valid PNG whose IDAT chunk checksum is wrong (one bit flipped in the stored CRC)."""
    data = bytearray(good_png())
    at = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[at:at + 4])[0]
    crc_at = at + 8 + length
    data[crc_at] ^= 0x01
    return bytes(data)


def png_bad_crc_header() -> bytes:
    """A PNG whose IHDR checksum is wrong."""
    data = bytearray(good_png())
    data[29] ^= 0x01
    return bytes(data)


def bomb_png() -> bytes:
    """Declares 30000x30000 (900 MP) in its header; the whole file is a few hundred bytes."""
    row = b"\x00" + b"\x00" * 30000
    packer = zlib.compressobj(9)
    idat = packer.compress(row * 64) + packer.flush(zlib.Z_SYNC_FLUSH)  # the first rows only: a header-only bomb
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def one_by_one() -> bytes:
    return _encode(Image.fromarray(np.array([[[200, 30, 90]]], np.uint8)), "PNG")


def one_by_n() -> bytes:
    return _encode(Image.fromarray(_rgb(1, 37)), "PNG")


def n_by_one() -> bytes:
    return _encode(Image.fromarray(_rgb(37, 1)), "PNG")


def gray16() -> bytes:
    values = np.linspace(0, 65535, 20 * 14).round().astype(np.uint16).reshape(14, 20)
    return cv2.imencode(".png", values)[1].tobytes()


def gray16_dark() -> bytes:
    """16-bit, but every value below 256: must still be read and written as 16-bit."""
    values = (np.arange(20 * 14) % 200).astype(np.uint16).reshape(14, 20)
    return cv2.imencode(".png", values)[1].tobytes()


def rgb16() -> bytes:
    rng = np.random.default_rng(16)
    rgb = rng.integers(0, 65536, (14, 20, 3), dtype=np.uint16)
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def rgba_garbage_under_alpha() -> bytes:
    """Alpha from 0 to 255 across the image; random colour wherever alpha is 0."""
    rng = np.random.default_rng(4)
    rgba = np.zeros((16, 24, 4), np.uint8)
    rgba[..., :3] = _rgb()
    rgba[..., 3] = np.linspace(0, 255, 24).round().astype(np.uint8)[None, :]
    rgba[:, :6, 3] = 0
    rgba[:, :6, :3] = rng.integers(0, 256, (16, 6, 3), dtype=np.uint8)
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def palette_transparency() -> bytes:
    indices = (np.arange(16 * 24).reshape(16, 24) // 7 % 4).astype(np.uint8)
    image = Image.fromarray(indices, "L").convert("P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0] + [0] * (252 * 3))
    return _encode(image, "PNG", transparency=2)


def cmyk_jpeg() -> bytes:
    return _encode(Image.fromarray(_rgb()).convert("CMYK"), "JPEG", quality=95)


def exif_orientation_6() -> bytes:
    """Stored 24 wide x 16 high; EXIF orientation 6 says "rotate 90 degrees clockwise to view"."""
    image = Image.fromarray(_rgb())
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(image, "JPEG", quality=95, exif=exif.tobytes())


def icc_png() -> bytes:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return _encode(Image.fromarray(_rgb()), "PNG", icc_profile=icc)


def animated_gif() -> bytes:
    frames = [Image.fromarray(_rgb(seed=i)).convert("P") for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def multipage_tiff() -> bytes:
    pages = [Image.fromarray(_rgb(seed=i)) for i in range(2)]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def float32_tiff() -> bytes:
    values = (np.linspace(0, 1, 20 * 14, dtype=np.float32).reshape(14, 20))
    return _encode(Image.fromarray(values, "F"), "TIFF")


def float32_tiff_nan() -> bytes:
    values = np.full((14, 20), 0.5, np.float32)
    values[3, 4], values[5, 6] = np.nan, np.inf
    return _encode(Image.fromarray(values, "F"), "TIFF")


#: File name in tests/corpus/ -> the function making its bytes.
FILES: dict[str, Callable[[], bytes]] = {
    "good.png": good_png,
    "empty.png": lambda: b"",
    "text-file.png": text_named_png,
    "random-bytes.jpg": random_bytes_named_jpg,
    "truncated.jpg": truncated_jpeg,
    "bad-crc-idat.png": png_bad_crc,
    "bad-crc-ihdr.png": png_bad_crc_header,
    "bomb-30000x30000.png": bomb_png,
    "1x1.png": one_by_one,
    "1x37.png": one_by_n,
    "37x1.png": n_by_one,
    "gray16.png": gray16,
    "gray16-dark.png": gray16_dark,
    "rgb16.png": rgb16,
    "rgba-garbage-under-alpha.png": rgba_garbage_under_alpha,
    "palette-transparency.png": palette_transparency,
    "cmyk.jpg": cmyk_jpeg,
    "exif-orientation-6.jpg": exif_orientation_6,
    "icc-srgb.png": icc_png,
    "animated.gif": animated_gif,
    "multipage.tif": multipage_tiff,
    "float32.tif": float32_tiff,
    "float32-nan-inf.tif": float32_tiff_nan,
    "naïve café 写真.png": good_png,  # non-ASCII and spaces in the name
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare the file names in tests/corpus/")
    parser.add_argument("--out", type=Path, default=CORPUS, help="folder to write (default: tests/corpus/)")
    args = parser.parse_args(argv)
    if args.check:
        present = {p.name for p in args.out.iterdir() if p.is_file() and p.name != "README.md"}
        missing, stray = sorted(set(FILES) - present), sorted(present - set(FILES))
        for name in missing:
            print(f"missing: {name}", file=sys.stderr)
        for name in stray:
            print(f"not made by this script: {name}", file=sys.stderr)
        return 1 if missing or stray else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in FILES.items():
        (args.out / name).write_bytes(make())
    print(f"wrote {len(FILES)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
