"""The Real-ESRGAN stage with half weights: the network in bf16 on the CPU (fp16 on a GPU), exact fp32 after.

Tiny inputs only: bf16 is emulated, and slow, on CPUs without AVX512-BF16/AMX.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from remaster import Remasterer, io

MODEL = "realesr-animevideov3"


def crop(bits: int = 8) -> np.ndarray:
    part = data.astronaut()[100:116, 180:196].copy()
    return part if bits == 8 else part.astype(np.uint16) * 257


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_half_weights_hold_the_network_in_bf16_and_report_it():
    remasterer = Remasterer(MODEL, device="cpu", precision="bf16", tile=0, half_weights=True)
    result = remasterer.run_image(io.load(crop()))
    assert result.meta.extras["stages"][0] == {"stage": MODEL, "device": "cpu", "precision": "bf16",
                                                "weights": "bf16"}
    network = remasterer.stages[0].instance(torch.device("cpu"), torch.bfloat16).descriptor.model
    assert {p.dtype for p in network.parameters()} == {torch.bfloat16}
    fp32 = Remasterer(MODEL, device="cpu", precision="fp32", tile=0).run(crop())
    autocast = Remasterer(MODEL, device="cpu", precision="bf16", tile=0).run(crop())
    half = io.to_numpy(result)
    # Both ways of running in bf16 are rounding away from fp32, and about as far.
    assert psnr(half, fp32) >= 30 and psnr(autocast, fp32) >= 30


def test_after_half_weights_a_16_bit_image_runs_with_the_exact_float32_weights():
    remasterer = Remasterer(MODEL, device="cpu", precision="bf16", tile=0, half_weights=True)
    remasterer.run(crop())
    # A 16-bit image asked in fp32 re-prepares the stage: its weights go back, bit for bit.
    deep = remasterer.run_image(io.load(crop(16)), precision="fp32")
    assert "weights" not in deep.meta.extras["stages"][0]
    expected = Remasterer(MODEL, device="cpu", precision="fp32", tile=0).run(crop(16))
    assert np.array_equal(io.to_numpy(deep), expected)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_fp16_weights_on_the_gpu_agree_with_fp16_autocast():
    image = data.astronaut()[160:224, 180:244].copy()
    expected = Remasterer(MODEL, device="cpu", precision="fp32", tile=0).run(image)
    result = Remasterer(MODEL, device="cuda", precision="fp16", tile=0, half_weights=True).run_image(io.load(image))
    assert result.meta.extras["stages"][0]["weights"] == "fp16"
    autocast = Remasterer(MODEL, device="cuda", precision="fp16", tile=0).run(image)
    assert psnr(io.to_numpy(result), expected) >= 35 and psnr(autocast, expected) >= 35
