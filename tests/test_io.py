"""Tests for remaster.io: loading, saving, conversions and their failure modes."""

from __future__ import annotations

import errno
import functools
import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageCms, ImageFile, ImageOps

from remaster import io as rio
from remaster.errors import (
    ImageTooLargeError,
    InputError,
    OutputError,
    RemasterWarning,
    UnsupportedImageError,
    UsageError,
)
from remaster.io.image import Image

RNG = np.random.default_rng(1234)


# --------------------------------------------------------------------------- helpers


def rand(shape: tuple[int, ...], dtype: type = np.uint8) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return RNG.random(shape, dtype=np.float32).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)


def pil_bytes(im: PILImage.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@functools.cache
def srgb_icc() -> bytes:
    # Made once: the profile holds its creation time, so two made a second apart differ.
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- 8-bit round trips


@pytest.mark.parametrize(
    ("mode", "shape", "grayscale", "has_alpha"),
    [
        ("RGB", (5, 7, 3), False, False),
        ("RGBA", (5, 7, 4), False, True),
        ("L", (5, 7), True, False),
        ("LA", (5, 7, 2), True, True),
    ],
)
@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_8bit_round_trip(
    tmp_path: Path, mode: str, shape: tuple[int, ...], grayscale: bool, has_alpha: bool, ext: str
) -> None:
    pixels = rand(shape)
    src = tmp_path / f"in{ext}"
    options = {"lossless": True} if ext == ".webp" else {}
    PILImage.fromarray(pixels).save(src, **options)
    image = rio.load(src)
    assert (image.meta.bit_depth, image.meta.has_alpha) == (8, has_alpha)
    if ext != ".webp":  # WebP has no gray mode: Pillow stores gray as RGB
        assert image.meta.grayscale == grayscale
        assert image.channels == (1 if grayscale else 3)
        assert np.array_equal(rio.to_numpy(image), pixels)
        out = rio.save(image, tmp_path / f"out{ext}")
        again = PILImage.open(out)
        assert again.mode == mode
        assert np.array_equal(np.asarray(again), pixels)


def test_png_reads_by_content_not_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "actually_a_jpeg.png", pil_bytes(PILImage.new("RGB", (4, 4), "red"), "JPEG"))
    assert rio.load(path).meta.format == "JPEG"
    assert rio.load(path).meta.source == path


def test_bytes_and_image_inputs() -> None:
    data = pil_bytes(PILImage.fromarray(rand((3, 4, 3))), "PNG")
    image = rio.load(data)
    assert image.meta.format == "PNG" and image.meta.source is None
    assert rio.load(image) is image
    assert rio.convert_like(image, data) is image


# --------------------------------------------------------------------------- deep images


def test_16bit_gray_png_round_trip(tmp_path: Path) -> None:
    pixels = rand((6, 9), np.uint16) // 300  # dark: every value < 256, must still count as 16-bit
    PILImage.fromarray(pixels).save(tmp_path / "g16.png")
    image = rio.load(tmp_path / "g16.png")
    assert (image.meta.bit_depth, image.meta.grayscale) == (16, True)
    assert np.array_equal(rio.to_numpy(image), pixels)
    out = rio.save(image, tmp_path / "out.png")
    again = PILImage.open(out)
    assert again.mode == "I;16" and np.array_equal(np.asarray(again), pixels)


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_16bit_colour_round_trip_is_exact(tmp_path: Path, channels: int, ext: str) -> None:
    rgb = rand((7, 5, channels), np.uint16)
    rgb[..., 0] = 0  # channel order would show here
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR if channels == 3 else cv2.COLOR_RGBA2BGRA))
    assert ok
    image = rio.load(write(tmp_path / f"in{ext}", encoded.tobytes()))
    assert (image.meta.bit_depth, image.meta.has_alpha, image.meta.grayscale) == (16, channels == 4, False)
    assert np.array_equal(rio.to_numpy(image), rgb)
    out = rio.save(image, tmp_path / f"out{ext}")
    assert np.array_equal(rio.to_numpy(rio.load(out)), rgb)
    # independent decoder agrees with our encoder
    decoded = cv2.imdecode(np.frombuffer(out.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded[..., 2], rgb[..., 0])


def test_16bit_png_spanning_several_row_blocks(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 300 * 4000 * 4).astype(np.uint16).reshape(300, 4000, 4)
    ramp[::7] = 12345  # rows that differ from the one above, across block boundaries
    out = rio.save(rio.load(ramp), tmp_path / "big16.png")
    assert np.array_equal(rio.to_numpy(rio.load(out)), ramp)


def test_16bit_gray_alpha_png(tmp_path: Path) -> None:
    pixels = rand((4, 6, 2), np.uint16)
    image = rio.load(pixels)
    out = rio.save(image, tmp_path / "ga16.png")
    assert out.read_bytes()[24:26] == bytes([16, 4])  # IHDR: 16-bit, gray+alpha
    again = rio.load(out)
    assert (again.meta.bit_depth, again.meta.grayscale, again.meta.has_alpha) == (16, True, True)
    assert np.array_equal(rio.to_numpy(again), pixels)


def test_16bit_png_keeps_metadata(tmp_path: Path) -> None:
    exif = PILImage.Exif()
    exif[0x010F] = "TestCam"
    image = rio.load(rand((4, 4, 3), np.uint16))
    image.meta.icc_profile, image.meta.dpi, image.meta.exif = srgb_icc(), (300.0, 300.0), exif.tobytes()
    again = PILImage.open(rio.save(image, tmp_path / "meta16.png"))
    assert again.info["icc_profile"] == srgb_icc()
    assert again.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert again.getexif()[0x010F] == "TestCam"


def test_float_tiff_gray_and_rgb(tmp_path: Path) -> None:
    gray = rand((5, 6), np.float32)
    PILImage.fromarray(gray).save(tmp_path / "f.tif")
    image = rio.load(tmp_path / "f.tif")
    assert (image.meta.bit_depth, image.meta.grayscale) == (32, True)
    assert np.array_equal(rio.to_numpy(image), gray)
    assert PILImage.open(rio.save(image, tmp_path / "f_out.tif")).mode == "F"

    rgb = rand((5, 6, 3), np.float32)
    out = rio.save(rio.load(rgb), tmp_path / "rgb_f.tif")  # Pillow cannot read this one back
    image = rio.load(out)
    assert (image.meta.bit_depth, image.meta.format) == (32, "TIFF")
    assert np.array_equal(rio.to_numpy(image), rgb)


def test_float_tiff_nan_is_refused(tmp_path: Path) -> None:
    gray = rand((3, 3), np.float32)
    gray[1, 1] = np.nan
    PILImage.fromarray(gray).save(tmp_path / "nan.tif")
    with pytest.raises(InputError, match="NaN/Inf"):
        rio.load(tmp_path / "nan.tif")


def test_tiff_opencv_would_mangle_is_refused() -> None:
    tifffile = pytest.importorskip("tifffile")
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, rand((4, 5, 2), np.uint16), photometric="minisblack", extrasamples=["unassalpha"])
    with pytest.raises(UnsupportedImageError, match="without losing data"):
        rio.load(buffer.getvalue())


def test_int32_tiff(tmp_path: Path) -> None:
    small = rand((3, 4), np.uint16).astype(np.int32)
    PILImage.fromarray(small).save(tmp_path / "i.tif")
    image = rio.load(tmp_path / "i.tif")
    assert image.meta.bit_depth == 16 and np.array_equal(rio.to_numpy(image), small)
    big = small * 1000
    PILImage.fromarray(big).save(tmp_path / "big.tif")
    image = rio.load(tmp_path / "big.tif")
    assert image.meta.bit_depth == 32 and float(image.pixels.max()) <= 1.0


def test_16bit_into_jpeg_becomes_8bit(tmp_path: Path) -> None:
    out = rio.save(rio.load(rand((4, 4, 3), np.uint16)), tmp_path / "deep.jpg")
    assert PILImage.open(out).mode == "RGB"


# --------------------------------------------------------------------------- modes


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = PILImage.new("P", (4, 3), 1)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.info["transparency"] = 0
    image = rio.load(write(tmp_path / "p.png", pil_bytes(im, "PNG", transparency=0)))
    assert image.meta.has_alpha and image.channels == 3
    assert float(image.alpha[0, 0, 0, 0]) == 0.0 and float(image.alpha[0, 0, 0, 1]) == 1.0
    assert rio.to_numpy(image)[0, 1].tolist() == [0, 0, 255, 255]
    assert rio.convert_like(image, im).mode == "RGBA"


def test_palette_without_transparency() -> None:
    im = PILImage.new("P", (4, 3), 0)
    im.putpalette([10, 20, 30] + [0] * 765)
    image = rio.load(im)
    assert not image.meta.has_alpha and image.channels == 3
    out = rio.convert_like(image, im)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (10, 20, 30)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = PILImage.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    image = rio.load(write(tmp_path / "cmyk.jpg", pil_bytes(cmyk, "JPEG", quality=95)))
    assert image.channels == 3 and image.meta.format == "JPEG"
    r, g, b = rio.to_numpy(image)[4, 4].tolist()
    assert r > 200 and g < 60 and b < 60
    assert rio.convert_like(image, cmyk).mode == "RGB"


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 7, "L"),
        ("1", 1, "L"),
        ("RGB", (1, 2, 3), "RGB"),
        ("RGBA", (1, 2, 3, 4), "RGBA"),
        ("LA", (9, 200), "LA"),
        ("I;16", 1234, "I;16"),
        ("I;16B", 4321, "I;16"),
        ("I", 70000, "I"),
        ("F", 0.25, "F"),
        ("YCbCr", (90, 100, 110), "RGB"),
    ],
)
def test_pil_in_pil_out(mode: str, value: object, expected: str) -> None:
    im = PILImage.new(mode, (5, 3), value)
    out = rio.convert_like(rio.load(im), im)
    assert out.mode == expected and out.size == im.size
    if expected == mode:
        assert out.tobytes() == im.tobytes()


def test_to_pil_carries_metadata() -> None:
    image = rio.load(rand((3, 3, 3)))
    image.meta.icc_profile, image.meta.dpi = srgb_icc(), (72.0, 72.0)
    pil = rio.to_pil(image)
    assert pil.info["icc_profile"] == srgb_icc() and pil.info["dpi"] == (72.0, 72.0)


# --------------------------------------------------------------------------- metadata


def oriented_jpeg(orientation: int) -> bytes:
    im = PILImage.new("RGB", (40, 20), "blue")
    im.paste((255, 0, 0), (0, 0, 10, 5))  # red block at top-left of the stored pixels
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    return pil_bytes(im, "JPEG", exif=exif.tobytes(), quality=95)


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif", ".webp"])
def test_exif_orientation_applied_and_reset(tmp_path: Path, ext: str) -> None:
    path = write(tmp_path / "rot.jpg", oriented_jpeg(6))
    image = rio.load(path)
    assert image.size == (20, 40)
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(path)))
    assert np.array_equal(rio.to_numpy(image), expected)
    kept = PILImage.Exif()
    kept.load(image.meta.exif)
    assert kept[0x0112] == 1
    saved = PILImage.open(rio.save(image, tmp_path / f"out{ext}"))
    assert saved.size == (20, 40)
    assert saved.getexif()[0x0112] == 1 and saved.getexif()[0x010F] == "TestCam"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(orientation: int) -> None:
    pixels = rand((3, 5, 3))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    data = pil_bytes(PILImage.fromarray(pixels), "PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(io.BytesIO(data))))
    assert np.array_equal(rio.to_numpy(rio.load(data)), expected)


def test_orientation_applied_to_16bit_opencv_decode(tmp_path: Path) -> None:
    rgb = rand((3, 5, 3), np.uint16)
    exif = PILImage.Exif()
    exif[0x0112] = 8
    image = rio.load(rgb)
    image.meta.exif = exif.tobytes()  # written as given; load is what applies it
    loaded = rio.load(rio.save(image, tmp_path / "rot16.png"))
    assert loaded.size == (3, 5) and np.array_equal(rio.to_numpy(loaded), np.rot90(rgb, 1))
    kept = PILImage.Exif()
    kept.load(loaded.meta.exif)
    assert kept[0x0112] == 1


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp"])
def test_icc_profile_kept(tmp_path: Path, ext: str) -> None:
    icc = srgb_icc()
    green = PILImage.new("RGB", (4, 4), "green")
    src = write(tmp_path / f"in{ext}", pil_bytes(green, rio.SAVE_FORMATS[ext], icc_profile=icc))
    image = rio.load(src)
    assert image.meta.icc_profile == icc
    assert PILImage.open(rio.save(image, tmp_path / f"out{ext}")).info["icc_profile"] == icc


def test_cmyk_profile_is_not_kept_on_rgb_pixels() -> None:
    fake_cmyk_icc = srgb_icc()[:16] + b"CMYK" + srgb_icc()[20:]
    data = pil_bytes(PILImage.new("CMYK", (4, 4)), "JPEG", icc_profile=fake_cmyk_icc)
    assert rio.load(data).meta.icc_profile is None


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_dpi_kept(tmp_path: Path, ext: str) -> None:
    src = write(tmp_path / f"in{ext}", pil_bytes(PILImage.new("L", (4, 4)), rio.SAVE_FORMATS[ext], dpi=(300, 150)))
    image = rio.load(src)
    assert image.meta.dpi == pytest.approx((300, 150), abs=0.02)  # PNG stores dots per metre
    assert PILImage.open(rio.save(image, tmp_path / f"out{ext}")).info["dpi"] == pytest.approx((300, 150), abs=0.02)


# --------------------------------------------------------------------------- numpy and tensors


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 1), (6, 4, 2), (6, 4, 3), (6, 4, 4)])
def test_numpy_round_trip_exact(dtype: type, shape: tuple[int, ...]) -> None:
    array = rand(shape, dtype)
    image = rio.load(array)
    assert image.meta.bit_depth == {np.uint8: 8, np.uint16: 16, np.float32: 32}[dtype]
    assert image.meta.has_alpha == (len(shape) == 3 and shape[-1] in (2, 4))
    out = rio.convert_like(image, array)
    assert out.dtype == array.dtype and out.shape == array.shape
    assert np.array_equal(out, array)


def test_float64_numpy_round_trip() -> None:
    array = rand((3, 4, 3), np.float64)
    out = rio.convert_like(rio.load(array), array)
    assert out.dtype == np.float64 and np.allclose(out, array, atol=1e-6)


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.uint8])
def test_tensor_round_trip(batched: bool, channels: int, dtype: torch.dtype) -> None:
    if dtype == torch.uint8:
        tensor = torch.randint(0, 256, (channels, 5, 6), dtype=torch.uint8)
    else:
        tensor = torch.rand(channels, 5, 6, dtype=dtype)
    if batched:
        tensor = tensor[None]
    image = rio.load(tensor)
    assert image.pixels.dtype == torch.float32 and image.pixels.device.type == "cpu"
    out = rio.convert_like(image, tensor)
    assert out.shape == tensor.shape and out.dtype == tensor.dtype and out.device == tensor.device
    if dtype == torch.float64:
        assert torch.allclose(out, tensor, atol=1e-6)
    else:
        assert torch.equal(out, tensor)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_tensor_on_gpu_comes_back_on_gpu() -> None:
    tensor = torch.rand(3, 4, 5, device="cuda")
    image = rio.load(tensor)
    assert image.pixels.device.type == "cpu"
    out = rio.convert_like(image, tensor)
    assert out.device == tensor.device and torch.equal(out, tensor)


def test_to_numpy_and_to_tensor_layouts() -> None:
    image = rio.load(rand((4, 5, 4)))
    assert rio.to_numpy(image).shape == (4, 5, 4)
    assert rio.to_numpy(image, channels_last=False).shape == (4, 4, 5)
    assert rio.to_numpy(image, np.float32).dtype == np.float32
    assert rio.to_tensor(image).shape == (4, 4, 5)
    assert rio.to_numpy(rio.load(rand((4, 5)))).shape == (4, 5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_refused(bad: float) -> None:
    array = rand((3, 3, 3), np.float32)
    array[0, 0, 0] = bad
    with pytest.raises(InputError, match="NaN/Inf"):
        rio.load(array)
    with pytest.raises(InputError, match="NaN/Inf"):
        rio.load(torch.from_numpy(array).permute(2, 0, 1))


def test_float_range() -> None:
    with pytest.raises(InputError, match=r"outside \[0, 1\]") as info:
        rio.load(np.full((2, 2), 255.0, np.float32))
    assert "scale to [0, 1]" in str(info.value)
    image = rio.load(np.array([[-1e-4, 1 + 1e-4]], np.float32))  # resampling overshoot is clipped
    assert float(image.pixels.min()) == 0.0 and float(image.pixels.max()) == 1.0


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 2, 5), np.uint8),
        np.zeros((2, 2, 3), np.int32),
        np.zeros((2,), np.uint8),
        torch.zeros(5, 3, 3),
        torch.zeros(3, 2, 2, dtype=torch.int64),
        object(),
    ],
)
def test_unusable_inputs(bad: object) -> None:
    with pytest.raises(UnsupportedImageError):
        rio.load(bad)


# --------------------------------------------------------------------------- limits


def png_declaring(width: int, height: int) -> bytes:
    data = bytearray(pil_bytes(PILImage.new("L", (2, 2)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_bomb_guard_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "bomb.png", png_declaring(30000, 30000))

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(PILImage.Image, "load", no_decoding)
    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    before = PILImage.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLargeError) as info:
        rio.load(path)
    message = str(info.value)
    assert "bomb.png" in message and "30000x30000 = 900.0 MP" in message
    assert f"{rio.DEFAULT_MAX_PIXELS:,}" in message
    assert "REMASTER_MAX_PIXELS" in message and "max_pixels=N" in message  # in Python, its argument
    assert "--max-pixels N" in info.value.for_cli()  # on the command line, its flag
    assert PILImage.MAX_IMAGE_PIXELS == before  # Pillow's own setting left as it was


def test_pixel_limit_from_env_and_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    data = pil_bytes(PILImage.new("RGB", (10, 10)), "PNG")
    monkeypatch.setenv("REMASTER_MAX_PIXELS", "99")
    assert rio.max_pixels_from_env() == 99
    with pytest.raises(ImageTooLargeError):
        rio.load(data)
    assert rio.load(data, max_pixels=100).size == (10, 10)
    with pytest.raises(ImageTooLargeError):
        rio.load(np.zeros((10, 10), np.uint8))
    monkeypatch.setenv("REMASTER_MAX_PIXELS", "lots")
    with pytest.raises(UsageError, match="REMASTER_MAX_PIXELS"):
        rio.max_pixels_from_env()
    monkeypatch.delenv("REMASTER_MAX_PIXELS")
    assert rio.max_pixels_from_env() == rio.DEFAULT_MAX_PIXELS


def test_image_between_pillow_warning_and_our_limit_loads_quietly() -> None:
    data = png_declaring(2, 2)  # tiny, but run with Pillow's limit set very low
    saved = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert rio.load(data).size == (2, 2)
    finally:
        PILImage.MAX_IMAGE_PIXELS = saved


# --------------------------------------------------------------------------- bad files


def test_text_file_named_png(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImageError, match="not an image") as info:
        rio.load(write(tmp_path / "notes.png", b"hello, I am text\n"))
    assert "notes.png" in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty"):
        rio.load(write(tmp_path / "empty.png", b""))


def test_random_bytes_named_jpg(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImageError):
        rio.load(write(tmp_path / "noise.jpg", RNG.bytes(2000)))


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = pil_bytes(PILImage.fromarray(rand((64, 64, 3))), "JPEG")
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        rio.load(write(tmp_path / "cut.jpg", data[: len(data) // 2]))
    assert not isinstance(info.value, UnsupportedImageError)


def test_truncated_16bit_png(tmp_path: Path) -> None:
    ok, encoded = cv2.imencode(".png", rand((64, 64, 3), np.uint16))
    data = encoded.tobytes()
    with pytest.raises(InputError, match="truncated or corrupt"):
        rio.load(write(tmp_path / "cut16.png", data[: len(data) // 2]))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        rio.load(tmp_path / "absent.png")
    with pytest.raises(InputError, match="folder"):
        rio.load(tmp_path)


def test_animated_gif_refused(tmp_path: Path) -> None:
    frames = [PILImage.new("L", (4, 4), 80 * i) for i in range(3)]  # distinct, or Pillow merges them
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    with pytest.raises(UnsupportedImageError, match="3 frames") as info:
        rio.load(path)
    assert "split" in str(info.value)


def test_phone_mpo_jpeg_is_one_photo() -> None:
    photo, preview = PILImage.new("RGB", (8, 6), "red"), PILImage.new("RGB", (4, 3), "blue")
    image = rio.load(pil_bytes(photo, "MPO", save_all=True, append_images=[preview]))
    assert image.size == (8, 6) and image.meta.format == "JPEG"


def test_multipage_tiff_refused(tmp_path: Path) -> None:
    path = tmp_path / "pages.tif"
    PILImage.new("L", (4, 4)).save(path, save_all=True, append_images=[PILImage.new("L", (4, 4))])
    with pytest.raises(UnsupportedImageError, match="2 frames"):
        rio.load(path)


@pytest.mark.parametrize("name", ["façade ünïcode 画像.png", "with space.png", "16 bit ü.png"])
def test_unusual_paths(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "dír with space"
    folder.mkdir()
    deep = name.startswith("16")
    pixels = rand((3, 4, 3), np.uint16 if deep else np.uint8)
    path = rio.save(rio.load(pixels), folder / name)
    assert np.array_equal(rio.to_numpy(rio.load(path)), pixels)
    assert rio.save(rio.load(path), folder / ("copy " + name)).exists()


# --------------------------------------------------------------------------- saving


def test_save_is_atomic_and_leaves_no_temp(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        out = rio.save(rio.load(rand((4, 4, 3))), tmp_path / "sub" / "deeper" / "ok.png")
    finally:
        os.umask(old_umask)
    assert out.exists() and no_temp_files(out.parent)
    if os.name == "posix":  # a temp file's 0600 must not leak into the result
        assert out.stat().st_mode & 0o777 == 0o644


def test_failed_publish_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)  # publishing over a file
    monkeypatch.setattr(os, "link", disk_full)  # publishing a new one
    with pytest.raises(OutputError, match="no space left on device") as info:
        rio.save(rio.load(rand((4, 4, 3))), tmp_path / "full.png")
    assert "full.png" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_encoder_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(PILImage.Image, "save", broken)
    with pytest.raises(OutputError, match="encoder exploded"):
        rio.save(rio.load(rand((4, 4, 3))), tmp_path / "broken.jpg")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write(tmp_path / "keep.png", b"previous")

    def fsync_fails(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OutputError):
        rio.save(rio.load(rand((4, 4, 3))), target, overwrite=True)
    assert target.read_bytes() == b"previous" and no_temp_files(tmp_path)


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="needs POSIX permissions as a normal user")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            rio.save(rio.load(rand((2, 2, 3))), folder / "x.png")
    finally:
        folder.chmod(0o700)


def test_permission_denied_is_an_output_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", denied)  # works even when the tests run as root
    with pytest.raises(OutputError, match="permission denied") as info:
        rio.save(rio.load(rand((2, 2, 3))), tmp_path / "x.png")
    assert "choose a folder you can write to" in str(info.value)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    image = rio.load(rand((4, 4, 3)))
    target = write(tmp_path / "exists.png", b"old")
    with pytest.raises(OutputError, match="already exists") as info:
        rio.save(image, target)
    # Issue 21: in Python the fix is the argument (it said 'pass --overwrite'); the command says its flag.
    assert "pass overwrite=True" in str(info.value) and "--overwrite" not in str(info.value)
    assert "pass --overwrite" in info.value.for_cli()
    assert target.read_bytes() == b"old"
    rio.save(image, target, overwrite=True)
    assert rio.load(target).size == (4, 4)


def test_refuses_to_overwrite_the_input(tmp_path: Path) -> None:
    source = rio.save(rio.load(rand((4, 4, 3))), tmp_path / "photo.png")
    image = rio.load(source)
    with pytest.raises(OutputError, match="would overwrite the input"):
        rio.save(image, tmp_path / "." / "photo.png")
    rio.save(image, source, overwrite=True)


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"\.bmp") as info:
        rio.save(rio.load(rand((2, 2, 3))), tmp_path / "x.bmp")
    assert ".png" in str(info.value) and ".tiff" in str(info.value)


def test_quality_option(tmp_path: Path) -> None:
    image = rio.load(rand((32, 32, 3)))
    small = rio.save(image, tmp_path / "q10.jpg", quality=10).stat().st_size
    large = rio.save(image, tmp_path / "q95.jpg").stat().st_size
    assert small < large
    with pytest.raises(UsageError):
        rio.save(image, tmp_path / "bad.jpg", quality=0)


def test_alpha_into_jpeg_warns_and_composites_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    with pytest.warns(RemasterWarning, match="JPEG cannot store transparency, alpha dropped") as caught:
        out = rio.save(rio.load(rgba), tmp_path / "flat.jpg")
    # Attributed to the line that called save, not to a line inside remaster.io.
    assert [w.filename for w in caught] == [__file__]
    again = PILImage.open(out)
    assert again.mode == "RGB" and min(again.getpixel((1, 1))) > 245


def test_deep_gray_alpha_tiff_warns(tmp_path: Path) -> None:
    pixels = rand((3, 4, 2), np.uint16)
    with pytest.warns(RemasterWarning, match="RGBA") as caught:
        out = rio.save(rio.load(pixels), tmp_path / "ga.tif")
    assert [w.filename for w in caught] == [__file__]
    again = rio.to_numpy(rio.load(out))
    assert np.array_equal(again[..., 0], pixels[..., 0]) and np.array_equal(again[..., 3], pixels[..., 1])


def test_quantisation_happens_once() -> None:
    # Values between two 8-bit steps survive in the Image and round only on output.
    image = rio.load(np.array([[0.5 / 255, 1.6 / 255]], np.float32))
    assert rio.to_numpy(image, np.uint8).tolist() == [[0, 2]]
    assert rio.to_numpy(image).ravel().tolist() == pytest.approx([0.5 / 255, 1.6 / 255])


def test_image_instance_type() -> None:
    assert isinstance(rio.load(rand((2, 2, 3))), Image)


@pytest.mark.parametrize("chunk", [b"IHDR", b"IDAT"])
def test_png_with_a_wrong_chunk_checksum_is_refused(tmp_path: Path, chunk: bytes) -> None:
    data = bytearray(pil_bytes(PILImage.fromarray(rand((6, 5, 3))), "PNG"))
    at = data.index(chunk) - 4
    crc_at = at + 8 + struct.unpack(">I", data[at:at + 4])[0]
    data[crc_at] ^= 0x80  # the pixels are intact; only the stored checksum disagrees
    path = write(tmp_path / "damaged.png", bytes(data))
    with pytest.raises(InputError, match=f"chunk '{chunk.decode()}' at byte {at} has a wrong checksum") as info:
        rio.load(path)
    assert info.value.path == str(path)
