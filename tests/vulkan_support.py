"""Helpers of the tests that run the server and Ray workers on Vulkan (tests/test_server_vulkan.py,
tests/distributed/test_ray_vulkan.py): the skip when Vulkan cannot be used here, the images and the PSNR bar.

As plugins/remaster-realesrgan/tests/test_vulkan.py, they run on whatever Vulkan device ncnn sees first; on a machine
without a GPU that is Mesa's lavapipe (``make vulkan-env``), which computes on the CPU, so the images are tiny and
the network is realesr-animevideov3, the fast one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skimage import data

from remaster.errors import UsageError

#: The bar of issue 25: Vulkan gives the CPU's fp32 result to at least this many dB.
BAR_DB = 45.0
#: What fp16 storage and arithmetic keep (plugins/remaster-realesrgan/tests/test_vulkan.py's fp16 bar).
FP16_BAR_DB = 40.0
ANIME = "realesr-animevideov3"


def vulkan_devices_or_skip() -> tuple[Any, ...]:
    """The Vulkan devices ncnn sees; the calling module is skipped, with the reason, when there are none or Vulkan
    cannot be used here (no loader, no ncnn, no Real-ESRGAN plugin)."""
    vulkan = pytest.importorskip("remaster_realesrgan.vulkan", reason="the Real-ESRGAN plugin is not installed")
    try:
        devices = tuple(vulkan.vulkan_devices())
    except UsageError as exc:
        pytest.skip(f"Vulkan cannot be used here: {exc}", allow_module_level=True)
    if not devices:
        pytest.skip("ncnn sees no Vulkan device (make vulkan-env installs lavapipe)", allow_module_level=True)
    return devices


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two images of the same integer depth (rescaled to [0, 1]) or two float images in [0, 1]."""
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, a.shape, b.dtype, b.shape)
    if not np.issubdtype(a.dtype, np.floating):
        peak = float(np.iinfo(a.dtype).max)
        a, b = a / peak, b / peak
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def photo(size: int, top: int = 100, left: int = 180) -> np.ndarray:
    """A ``size``×``size`` 8-bit RGB crop of skimage's astronaut (a face: detail a network changes)."""
    return np.ascontiguousarray(data.astronaut()[top:top + size, left:left + size])
