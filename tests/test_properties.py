"""Property-based tests (Hypothesis): I/O round trips and tiling inside the pipeline.

Files are written by an encoder independent of remaster (Pillow for 8 bits, OpenCV or a
few lines of zlib for 16 bits), then loaded, passed through an identity pipeline, saved by
remaster and loaded again: pixels and metadata must come back unchanged.
"""

from __future__ import annotations

import io
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from PIL import ImageCms

from remaster import Remasterer, Stage, StageInfo, Tiling
from remaster import io as rio

CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png16(array: np.ndarray) -> bytes:
    """A 16-bit PNG of ``(H, W, C)`` samples, written by hand (filter 0), any of the 4 colour types."""
    height, width, channels = array.shape
    rows = np.ascontiguousarray(array, ">u2").reshape(height, width * channels).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def encode(array: np.ndarray, mode: str, fmt: str, icc: bytes | None) -> bytes:
    """Bytes of ``array`` (``(H, W, C)``, uint8 or uint16) as a PNG or TIFF file."""
    if array.dtype == np.uint8:
        buffer = io.BytesIO()
        image = PILImage.fromarray(array[..., 0] if mode == "L" else array, mode)
        image.save(buffer, format={"png": "PNG", "tif": "TIFF"}[fmt], **({"icc_profile": icc} if icc else {}))
        return buffer.getvalue()
    if fmt == "png":
        return png16(array)
    bgr = array if array.shape[2] == 1 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR if array.shape[2] == 3
                                                        else cv2.COLOR_RGBA2BGRA)
    return cv2.imencode(".tiff", bgr)[1].tobytes()


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from(list(CHANNELS)),
    depth=st.sampled_from([8, 16]),
    height=st.integers(1, 20),
    width=st.integers(1, 20),
    fmt=st.sampled_from(["png", "tif"]),
    with_icc=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_file_round_trip_through_an_identity_pipeline(mode, depth, height, width, fmt, with_icc, seed):
    channels = CHANNELS[mode]
    # Documented limits: OpenCV writes deep TIFFs without ICC and turns 16-bit gray+alpha into RGBA.
    assume(not (depth == 16 and fmt == "tif" and mode == "LA"))
    icc = SRGB if with_icc and depth == 8 and channels >= 3 else None
    dtype = np.uint8 if depth == 8 else np.uint16
    array = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, (height, width, channels),
                                                 dtype=dtype, endpoint=True)
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / f"in.{fmt}", Path(folder) / f"out.{fmt}"
        source.write_bytes(encode(array, mode, fmt, icc))
        original = rio.load(source)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing about this round trip deserves a warning
            Remasterer("nearest(scale=1)").run_file(source, target)
        again = rio.load(target)

    assert (again.width, again.height, again.channels) == (width, height, 1 if channels <= 2 else 3)
    torch.testing.assert_close(again.pixels, original.pixels, rtol=0, atol=0)
    if channels in (2, 4):
        torch.testing.assert_close(again.alpha, original.alpha, rtol=0, atol=0)
    else:
        assert again.alpha is None
    for field in ("bit_depth", "grayscale", "has_alpha", "icc_profile"):
        assert getattr(again.meta, field) == getattr(original.meta, field), field
    assert (original.meta.bit_depth, original.meta.icc_profile) == (depth, icc)
    expected = array[..., 0] if channels == 1 else array
    np.testing.assert_array_equal(rio.to_numpy(again), expected)


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    shape=st.tuples(st.integers(1, 16), st.integers(1, 16), st.sampled_from([0, 1, 2, 3, 4])),
    seed=st.integers(0, 2**32 - 1),
)
def test_array_round_trip_through_an_identity_pipeline(dtype, shape, seed):
    height, width, channels = shape
    rng = np.random.default_rng(seed)
    size = (height, width) if channels == 0 else (height, width, channels)
    if dtype == np.float32:
        array = rng.random(size, dtype=np.float32)
    else:
        array = rng.integers(0, np.iinfo(dtype).max, size, dtype=dtype, endpoint=True)
    out = Remasterer("nearest(scale=1)").run(array)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


_CONV = torch.nn.Conv2d(3, 3, 3, padding=1)


class _LocalUpscaler(Stage):
    """A local operation (3x3 conv, receptive radius 1) after nearest x2, with size requirements."""

    def __init__(self, multiple_of: int, min_size: int):
        super().__init__()
        self.info = StageInfo(scale=2, tiling=Tiling.SUPPORTED, tile_overlap=4, multiple_of=multiple_of,
                              min_size=min_size)

    def run(self, pixels, ctx):
        with torch.no_grad():
            return torch.sigmoid(_CONV(torch.nn.functional.interpolate(pixels, scale_factor=2, mode="nearest")))


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 60),
    width=st.integers(1, 60),
    tile=st.integers(8, 48),
    multiple_of=st.sampled_from([1, 2, 4, 8]),
    min_size=st.sampled_from([1, 16]),
    seed=st.integers(0, 2**32 - 1),
)
def test_tiled_pipeline_equals_untiled(height, width, tile, multiple_of, min_size, seed):
    image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))
    stage = _LocalUpscaler(multiple_of, min_size)
    whole = Remasterer([stage], tile=0).run(image)
    tiled = Remasterer([stage], tile=tile).run(image)
    assert whole.shape == tiled.shape == (3, 2 * height, 2 * width)
    assert (whole - tiled).abs().max().item() < 1e-5


def test_png16_writer_is_valid():
    """The test's own 16-bit PNG writer agrees with OpenCV's reader."""
    array = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 3000
    decoded = cv2.imdecode(np.frombuffer(png16(array), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), array)
