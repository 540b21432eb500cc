"""The Real-ESRGAN stages on a GPU: every precision, batched tiles, out-of-memory back-off (make gpu-check).

These skip without an NVIDIA GPU; the device-independent logic is tested on the CPU elsewhere.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data

from remaster import Remasterer
from remaster import io as rio

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

MODELS = ["realesr-animevideov3", "realesrgan-x4plus"]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    return data.astronaut()[160:224, 180:244].copy()


def gpu_precisions() -> list[str]:
    return ["fp16", "fp32"] + (["bf16"] if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else [])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("precision", gpu_precisions())
def test_each_precision_on_the_gpu_matches_the_cpu_in_fp32(model, precision, crop):
    expected = Remasterer(model, device="cpu", precision="fp32", tile=0).run(crop)
    result = Remasterer(model, device="cuda", precision=precision, tile=0).run_image(
        rio.load(crop))
    assert result.meta.extras["stages"][0] == {"stage": model, "device": "cuda:0", "precision": precision}
    out = rio.to_numpy(result)
    # fp16/bf16 differ from fp32 by rounding only; 8-bit outputs stay within a level or two
    assert psnr(out, expected) >= (50 if precision == "fp32" else 35)


def test_auto_on_the_gpu_is_fp16_for_8_bit_and_fp32_for_16_bit(crop):
    remasterer = Remasterer("realesr-animevideov3", device="cuda")
    assert remasterer.run_image(rio.load(crop)).meta.extras["stages"][0]["precision"] == "fp16"
    deep = (crop.astype(np.uint16) * 257)
    assert remasterer.run_image(rio.load(deep)).meta.extras["stages"][0]["precision"] == "fp32"


@pytest.mark.parametrize("model", MODELS)
def test_batched_tiles_on_the_gpu_match_the_whole_image(model):
    image = data.astronaut()[:192, :192].copy()
    whole = Remasterer(model, device="cuda", precision="fp32", tile=0).run(image)
    tiled = Remasterer(model, device="cuda", precision="fp32", tile=64).run(image)  # 9 tiles, 4 per batch
    assert psnr(tiled, whole) >= 45


def test_out_of_memory_backs_off_to_smaller_tiles():
    image = np.tile(data.astronaut(), (3, 3, 1))[:1536, :1536].copy()  # x4: 6144², several GB untiled
    reference = Remasterer("realesrgan-x4plus", device="cuda", precision="fp16", tile=256).run(image[:256, :256])
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(0.5, 3 * 2**30 / total), 0)
    try:
        out = Remasterer("realesrgan-x4plus", device="cuda", precision="fp16", tile=0).run(image)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()
    assert out.shape == (6144, 6144, 3)
    # away from the tile seams of the reference, the corner matches an ordinary tiled run
    assert psnr(out[:768, :768], reference[:768, :768]) >= 35
