"""Image.save / to_pil / to_numpy: the result of ``Remasterer.run(path)`` written and converted by itself."""

from __future__ import annotations

import functools
import inspect
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageCms

from remaster import Image, OutputError, Remasterer
from remaster import io as rio

RNG = np.random.default_rng(7)


def rand(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return RNG.random(shape, dtype=np.float32)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)


@functools.cache
def srgb_icc() -> bytes:
    # Made once: the profile holds its creation time, so two made a second apart differ.
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def bicubic_x2() -> Remasterer:
    return Remasterer("bicubic(scale=2)", precision="fp32", tile=0)


def test_methods_take_the_options_of_the_io_functions() -> None:
    # Image.save(path, ...) is io.save(image, path, ...): when io.save grows an option, so must the method.
    for method, function in ((Image.save, rio.save), (Image.to_numpy, rio.to_numpy), (Image.to_pil, rio.to_pil)):
        ours = list(inspect.signature(method).parameters.values())[1:]
        theirs = list(inspect.signature(function).parameters.values())[1:]
        assert [(p.name, p.kind, p.default) for p in ours] == [(p.name, p.kind, p.default) for p in theirs]


CASES = {
    "rgb8": (rand((5, 7, 3), np.uint8), ".png", "RGB"),
    "rgb16": (rand((5, 7, 3), np.uint16), ".png", "RGB"),  # PIL has no 16-bit colour mode
    "gray8": (rand((5, 7), np.uint8), ".png", "L"),
    "gray16": (rand((5, 7), np.uint16), ".png", "I;16"),
    "rgba8": (rand((5, 7, 4), np.uint8), ".png", "RGBA"),
    "rgba16": (rand((5, 7, 4), np.uint16), ".png", "RGBA"),
    "gray_alpha8": (rand((5, 7, 2), np.uint8), ".png", "LA"),
    "float_rgb": (rand((5, 7, 3), np.float32), ".tif", "RGB"),
    "float_gray": (rand((5, 7), np.float32), ".tif", "F"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip(tmp_path: Path, name: str) -> None:
    array, ext, pil_mode = CASES[name]
    image = rio.load(array)

    # The default dtype follows the source's depth; alpha is the last channel.
    got = image.to_numpy()
    assert got.dtype == array.dtype and got.shape == array.shape
    assert np.array_equal(got, array)

    written = image.save(tmp_path / f"out{ext}")
    assert written == tmp_path / f"out{ext}" and no_temp_files(tmp_path)
    again = rio.load(written)
    assert again.meta.bit_depth == image.meta.bit_depth and again.meta.has_alpha == image.meta.has_alpha
    assert np.array_equal(again.to_numpy(), array)

    pil = image.to_pil()
    assert pil.mode == pil_mode and pil.size == image.size
    assert np.array_equal(np.asarray(pil), np.asarray(rio.to_pil(image)))


def test_to_numpy_in_another_dtype_and_layout() -> None:
    array = rand((4, 6, 4), np.uint8)
    image = rio.load(array)
    assert np.allclose(image.to_numpy(np.float32), array / 255.0, atol=1e-7)
    assert np.array_equal(image.to_numpy(np.uint16), array.astype(np.uint16) * 257)  # 255 * 257 = 65535
    assert np.array_equal(image.to_numpy(channels_last=False), array.transpose(2, 0, 1))
    deep = rio.load(rand((4, 6), np.uint16))
    assert np.array_equal(deep.to_numpy(np.uint8), np.rint(deep.to_numpy() / 65535 * 255).astype(np.uint8))


def jpeg_with_metadata(path: Path) -> Path:
    exif = PILImage.Exif()
    exif[0x010F] = "TestCam"
    buffer = io.BytesIO()
    PILImage.fromarray(rand((6, 8, 3), np.uint8)).save(buffer, "JPEG", icc_profile=srgb_icc(), exif=exif.tobytes(),
                                                       dpi=(300, 300), quality=95)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp"])
def test_run_then_save_keeps_the_metadata(tmp_path: Path, ext: str) -> None:
    result = bicubic_x2().run(jpeg_with_metadata(tmp_path / "in.jpg"))
    saved = PILImage.open(result.save(tmp_path / f"out{ext}"))
    assert saved.size == (16, 12)
    assert saved.info["icc_profile"] == srgb_icc()
    assert saved.getexif()[0x010F] == "TestCam"
    if ext != ".webp":  # Pillow writes no resolution into WebP
        assert saved.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    pil = result.to_pil()
    assert pil.info["icc_profile"] == srgb_icc() and pil.info["dpi"] == (300.0, 300.0)


def test_run_file_png_then_save(tmp_path: Path) -> None:
    source = tmp_path / "file.png"
    PILImage.fromarray(rand((9, 11, 4), np.uint8)).save(source)
    pipeline = bicubic_x2()

    result = pipeline.run(str(source))
    assert isinstance(result, Image)
    written = result.save(tmp_path / "out.png")
    assert written == tmp_path / "out.png" and no_temp_files(tmp_path)
    with PILImage.open(written) as out:
        assert (out.size, out.mode) == ((22, 18), "RGBA")
    # The same file run_file writes.
    reference, _ = pipeline.run_file(source, tmp_path / "reference.png")
    assert np.array_equal(np.asarray(PILImage.open(written)), np.asarray(PILImage.open(reference)))

    with pytest.raises(OutputError, match="already exists"):
        result.save(written)
    with pytest.raises(OutputError, match="would overwrite the input"):
        result.save(source)
    assert result.save(source, overwrite=True) == source
    assert PILImage.open(source).size == (22, 18)


def test_what_run_returns_for_each_input_type(tmp_path: Path) -> None:
    """The rule docs/usage.md states: path, bytes, Image -> Image; PIL -> PIL; numpy -> numpy; tensor -> tensor."""
    pipeline = bicubic_x2()
    array = rand((4, 6, 3), np.uint16)
    source = rio.save(rio.load(array), tmp_path / "in.png")
    for given in (source, str(source), source.read_bytes(), rio.load(source)):
        out = pipeline.run(given)
        assert isinstance(out, Image) and out.size == (12, 8) and out.to_numpy().dtype == np.uint16
    pil = pipeline.run(PILImage.fromarray(array[..., 0]))
    assert isinstance(pil, PILImage.Image) and pil.mode == "I;16" and pil.size == (12, 8)
    out = pipeline.run(array[..., :1])
    assert isinstance(out, np.ndarray) and out.dtype == np.uint16 and out.shape == (8, 12, 1)
    tensor = pipeline.run(torch.rand(1, 4, 4, 6, dtype=torch.float64))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64 and tensor.shape == (1, 4, 8, 12)
