"""Integer results: the last stage writes its bands straight into a uint8/uint16 image, bit-identical to the float
path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from remaster import Image, Remasterer, io
from remaster.errors import StageContractError
from remaster.io.image import Meta
from remaster.io.intbuffer import IntegerBuffer
from remaster.pipeline.stage import Stage
from remaster.plugin.specs import StageInfo, Tiling

_CONV = torch.nn.Conv2d(3, 3, 3, padding=1)
torch.nn.init.normal_(_CONV.weight, 0.0, 0.4, generator=torch.Generator().manual_seed(3))


class TinyNet(Stage):
    """A local network-like stage (conv then nearest upsampling) with overshoot for the clamp to matter."""

    def __init__(self, scale: int, multiple_of: int = 1):
        super().__init__()
        self.info = StageInfo(scale=scale, tiling=Tiling.SUPPORTED, tile_overlap=4, alpha="process",
                              multiple_of=multiple_of, in_channels=(3,))
        self._scale = scale

    def run(self, pixels, ctx):
        with torch.no_grad():
            y = torch.sigmoid(_CONV(pixels) * 3) * 1.2 - 0.1
        return F.interpolate(y, scale_factor=self._scale, mode="nearest") if self._scale > 1 else y


def source(channels: int, bits: int) -> Image:
    """A 40x30 crop of a skimage photo (gray, RGB, with alpha), at 8 or 16 bits."""
    rgb = data.astronaut()[100:130, 200:240].astype(np.float32) / 255
    colour = rgb.mean(axis=2, keepdims=True) if channels in (1, 2) else rgb
    planes = [colour] + ([np.linspace(0, 1, 40, dtype=np.float32)[None, :, None].repeat(30, 0)] if channels in (2, 4)
                         else [])
    array = np.concatenate(planes, axis=2)
    array = np.rint(array * (255 if bits == 8 else 65535)).astype(np.uint8 if bits == 8 else np.uint16)
    return io.load(array[..., 0] if channels == 1 else array)


def both(stages, image: Image, **options) -> tuple[np.ndarray, Image]:
    """The float path's to_numpy, and the integer result, of the same run."""
    float_result = Remasterer(stages, precision="fp32", **options).run_image(image)
    integer_result = Remasterer(stages, precision="fp32", **options).run_image(image, quantise=True)
    return io.to_numpy(float_result), integer_result


@pytest.fixture
def tops(monkeypatch) -> list[tuple[int, bool]]:
    """Every (top, alpha) an IntegerBuffer is written at."""
    seen: list[tuple[int, bool]] = []
    write = IntegerBuffer.write

    def spy(self, top, rows, *, alpha=False):
        seen.append((top, alpha))
        write(self, top, rows, alpha=alpha)

    monkeypatch.setattr(IntegerBuffer, "write", spy)
    return seen


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_tiled_bands_equal_the_float_path(channels, bits, scale, tops):
    image = source(channels, bits)
    expected, result = both([TinyNet(scale)], image, tile=16)
    assert io.is_quantised(result)
    assert result.pixels.dtype == (torch.uint8 if bits == 8 else torch.uint16)
    got = io.to_numpy(result)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert len({top for top, alpha in tops if not alpha}) > 1  # really band by band
    assert (channels in (2, 4)) == any(alpha for _, alpha in tops)


@pytest.mark.parametrize("stages", [
    ["bicubic(scale=2)"],                        # built-in, alpha processed, gray source kept gray
    ["bicubic(scale=1.5)"],                      # non-integer scale: runs whole
    ["degrade.blur", "bicubic(scale=2)"],        # only the last stage writes integers
])
@pytest.mark.parametrize("channels", [1, 4])
def test_builtin_stages_equal_the_float_path(stages, channels):
    image = source(channels, 8)
    expected, result = both(stages, image, tile=16)
    assert np.array_equal(io.to_numpy(result), expected)


@pytest.mark.parametrize("tile", [0, 64, 16])  # untiled, one tile (the fast path), tiled
def test_untiled_fast_path_and_multiple_of_equal_the_float_path(tile):
    image = source(3, 16)
    expected, result = both([TinyNet(2, multiple_of=8)], image, tile=tile)  # 40x30 is padded to 40x32
    assert np.array_equal(io.to_numpy(result), expected)


def test_float_sources_stay_float():
    image = io.load(np.random.default_rng(0).random((12, 10, 3), dtype=np.float32))
    result = Remasterer(["bicubic(scale=2)"], tile=8, precision="fp32").run_image(image, quantise=True)
    assert result.pixels.dtype == torch.float32


def test_to_numpy_of_an_integer_image_is_its_buffer_and_conversions_are_explicit():
    image = source(4, 16)
    result = Remasterer([TinyNet(2)], tile=16, precision="fp32").run_image(image, quantise=True)
    array = io.to_numpy(result)
    assert array.shape == (60, 80, 4) and np.shares_memory(array, result.pixels.numpy(force=True))
    assert np.shares_memory(io.to_numpy(result), io.to_numpy(result))  # no copy
    assert np.array_equal(io.to_numpy(result, channels_last=False), array.transpose(2, 0, 1))
    as_float = io.to_numpy(result, np.float32)
    assert np.array_equal(np.rint(as_float * 65535).astype(np.uint16), array)
    assert np.array_equal(io.to_numpy(io.dequantised(result)), array)  # the way back quantises to the same integers
    assert io.to_numpy(result, np.uint8).dtype == np.uint8
    assert result.to_pil().mode == "RGBA"


def test_an_integer_image_given_to_a_pipeline_is_converted_to_floats():
    seen = []

    class Spy(Stage):
        info = StageInfo()

        def run(self, pixels, ctx):
            seen.append(pixels.dtype)
            return pixels

    integer = Remasterer([TinyNet(1)], tile=16, precision="fp32").run_image(source(3, 8), quantise=True)
    result = Remasterer([Spy()], precision="fp32").run_image(integer)
    assert seen == [torch.float32] and np.array_equal(io.to_numpy(result), io.to_numpy(integer))


@pytest.mark.parametrize("suffix,bits,channels", [(".png", 8, 4), (".png", 16, 3), (".tif", 16, 1), (".tif", 16, 4),
                                                  (".jpg", 8, 3), (".webp", 8, 4)])
def test_run_file_writes_the_same_bytes_as_the_float_path(tmp_path, suffix, bits, channels):
    array = io.to_numpy(source(channels, bits))
    src = tmp_path / ("in.png" if bits == 8 or channels != 1 else "in.tif")
    io.save(io.load(array), src)
    remasterer = Remasterer([TinyNet(2)], tile=16, precision="fp32")
    _, result = remasterer.run_file(src, tmp_path / f"new{suffix}")
    assert io.is_quantised(result)
    old = remasterer.run_image(io.load(src))  # the float path, then save's own quantisation
    io.save(old, tmp_path / f"old{suffix}")
    assert (tmp_path / f"new{suffix}").read_bytes() == (tmp_path / f"old{suffix}").read_bytes()


def test_run_file_keeps_floats_where_saving_computes_on_them(tmp_path):
    src = tmp_path / "in.png"
    io.save(source(4, 8), src)
    with pytest.warns(Warning, match="JPEG cannot store transparency"):
        _, result = Remasterer([TinyNet(2)], tile=16, precision="fp32").run_file(src, tmp_path / "out.jpg")
    assert not io.is_quantised(result)  # JPEG composites alpha onto white in floats


def test_run_with_an_integer_array_quantises_directly():
    array = io.to_numpy(source(3, 8))
    remasterer = Remasterer([TinyNet(4)], tile=16, precision="fp32")
    got = remasterer.run(array)
    assert got.dtype == np.uint8 and np.array_equal(got, io.to_numpy(remasterer.run_image(io.load(array))))
    pil = remasterer.run(io.to_pil(source(1, 8)))
    assert np.array_equal(np.asarray(pil), io.to_numpy(remasterer.run_image(io.load(io.to_pil(source(1, 8))))))


def test_saving_an_integer_image_with_alpha_as_jpeg_composites_explicitly(tmp_path):
    result = Remasterer([TinyNet(1)], tile=16, precision="fp32").run_image(source(4, 8), quantise=True)
    with pytest.warns(Warning, match="JPEG cannot store transparency"):
        io.save(result, tmp_path / "a.jpg")
    with pytest.warns(Warning, match="JPEG cannot store transparency"):
        io.save(io.dequantised(result), tmp_path / "b.jpg")
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()


class NanInBf16(Stage):
    info = StageInfo(scale=2, tiling=Tiling.SUPPORTED, tile_overlap=2, dtypes=(torch.float32, torch.bfloat16))

    def run(self, pixels, ctx):
        up = F.interpolate(pixels.float(), scale_factor=2, mode="nearest")
        if ctx.dtype == torch.bfloat16 and pixels.shape[-2] < 30:  # a tile, not the whole image
            up[..., 0, 0] = float("nan")
        return up


def test_nan_in_a_band_reruns_the_stage_in_fp32():
    image = source(3, 8)
    result = Remasterer([NanInBf16()], tile=16, precision="bf16").run_image(image, quantise=True)
    expected = Remasterer([NanInBf16()], tile=16, precision="fp32").run_image(image)
    assert result.meta.extras["stages"][0]["precision"] == "fp32"
    assert np.array_equal(io.to_numpy(result), io.to_numpy(expected))


def test_implausible_band_values_are_refused():
    class Scaled255(Stage):
        info = StageInfo(tiling=Tiling.SUPPORTED)

        def run(self, pixels, ctx):
            return pixels * 255

    with pytest.raises(StageContractError, match="expected \\[0, 1\\]"):
        Remasterer([Scaled255()], tile=16, precision="fp32").run_image(source(3, 8), quantise=True)


def test_integer_buffer_refuses_rows_that_do_not_fit():
    buffer = IntegerBuffer(4, 5, np.uint8, alpha=True)
    with pytest.raises(ValueError, match="alpha"):
        buffer.write(0, torch.zeros(1, 1, 4, 5), alpha=True)
    buffer.write(0, torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="do not fit"):
        buffer.write(2, torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="colour channels"):
        buffer.write(0, torch.zeros(1, 1, 4, 5))
    with pytest.raises(TypeError):
        IntegerBuffer(4, 5, np.int32, alpha=False)
    assert IntegerBuffer(1, 1, np.uint8, alpha=False) and buffer.image(Meta()).alpha is not None
