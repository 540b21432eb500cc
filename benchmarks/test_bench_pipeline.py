"""Speed of the shared machinery (run with `make bench`).

Model stages add their own benchmarks beside the peers they compare with.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from remaster import Remasterer
from remaster.pipeline.tiling import run_tiled


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.mark.parametrize("name", ["nearest", "bicubic", "lanczos"])
def test_interpolator_x4_512(benchmark, photo, name):
    remasterer = Remasterer(f"{name}(scale=4)")
    out = benchmark(remasterer.run, photo)
    assert out.shape == (2048, 2048, 3)


def test_tiler_overhead_x4_512(benchmark):
    pixels = torch.rand(1, 3, 512, 512)

    def nearest_x4(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")

    out = benchmark(run_tiled, nearest_x4, pixels, scale=4, tile=128, overlap=16)
    assert out.shape == (1, 3, 2048, 2048)
