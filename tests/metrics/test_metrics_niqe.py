"""NIQE: parity with BasicSR's calculate_niqe, conventions, layouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from remaster.metrics import MetricError, niqe


def _image(name: str) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)())


@pytest.mark.parametrize("name, crop_border", [("camera", 0), ("coffee", 4), ("chelsea", 0)])
def test_parity_with_basicsr(name, crop_border, basicsr_module):
    """BasicSR computes in float32, we in float64 as MATLAB: on these images the two agree to 1e-6..6e-5.

    (Images with clipped flat areas, such as astronaut's black background, differ by up to ~1 %: there the
    locally normalised luminance is rounding noise, whose sign decides the features of those blocks.)
    """
    ref = basicsr_module("metrics.niqe")
    img = _image(name)
    if img.ndim == 3:
        expected = ref.calculate_niqe(img[..., ::-1], crop_border, input_order="HWC", convert_to="y")  # BGR
    else:
        expected = ref.calculate_niqe(img, crop_border, input_order="HW")
    assert niqe(img, data_range=255, crop_border=crop_border) == pytest.approx(expected, rel=1e-3)


def test_niqe_of_photographs_is_plausible_and_noise_makes_it_worse():
    img = _image("coffee")[:288, :384]
    clean = niqe(img, data_range=255)
    assert 2 < clean < 8
    rng = np.random.default_rng(0)
    noisy = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).round()
    assert niqe(noisy, data_range=255) > clean + 1


def test_layouts_and_scales_agree():
    img = _image("chelsea")[:192, :288]
    expected = niqe(img, data_range=255)
    assert isinstance(expected, float)
    # floats in [0, 1]: scaled back to 0..255 before the MATLAB-style rounding, so the same value
    assert niqe(img / 255.0, data_range=1.0) == pytest.approx(expected, rel=1e-12)
    batch = torch.from_numpy(np.stack([img, img[::-1]]).transpose(0, 3, 1, 2).copy()).float() / 255
    values = niqe(batch, data_range=1.0)
    assert values.shape == (2,)
    assert values[0].item() == pytest.approx(expected, rel=1e-9)
    assert values[1].item() == pytest.approx(niqe(img[::-1].copy(), data_range=255), rel=1e-9)
    assert niqe(batch, data_range=1.0, reduction="mean").item() == pytest.approx(values.mean().item())
    # a grey image as (H, W) or (H, W, 1)
    grey = _image("camera")[:192, :192]
    assert niqe(grey[..., None], data_range=255) == pytest.approx(niqe(grey, data_range=255), rel=1e-12)


def test_needs_two_blocks_and_a_data_range():
    img = _image("camera")
    with pytest.raises(MetricError, match="two 96x96 blocks"):
        niqe(img[:100, :100], data_range=255)
    with pytest.raises(MetricError, match="crop_border"):
        niqe(img[:192, :192], data_range=255, crop_border=60)
    with pytest.raises(TypeError):
        niqe(img)  # type: ignore[call-arg]
    with pytest.raises(MetricError, match="grey .* or RGB"):
        niqe(np.zeros((192, 192, 4)), data_range=1.0)


def test_flat_image_gives_nan_not_an_exception():
    value = niqe(np.full((192, 192), 128, np.uint8), data_range=255)
    assert math.isnan(value)
