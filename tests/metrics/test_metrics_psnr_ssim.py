"""PSNR, SSIM and MS-SSIM: known values, conventions, layouts, and parity with scikit-image and BasicSR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from remaster.errors import RemasterError, UsageError
from remaster.metrics import MetricError, ms_ssim, psnr, ssim
from remaster.metrics.psnr_ssim import MS_SSIM_WEIGHTS


def _nchw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


# --------------------------------------------------------------------------- PSNR


def test_psnr_of_a_constant_offset_is_the_formula():
    a = np.full((16, 20, 3), 100, np.uint8)
    b = a + np.uint8(5)
    assert psnr(a, b, data_range=255) == pytest.approx(10 * math.log10(255 ** 2 / 25), abs=1e-12)
    assert psnr(a / 255, b / 255, data_range=1.0) == pytest.approx(10 * math.log10(255 ** 2 / 25), abs=1e-9)
    assert psnr(a, a, data_range=255) == math.inf
    assert isinstance(psnr(a, b, data_range=255), float)


def test_psnr_crop_border_ignores_the_edges():
    a = np.zeros((20, 24), np.float64)
    b = a.copy()
    b[:3, :] = 1.0  # differences only within 3 pixels of the edge
    b[:, -2:] = 1.0
    assert math.isfinite(psnr(a, b, data_range=1.0, crop_border=2))
    assert psnr(a, b, data_range=1.0, crop_border=3) == math.inf
    inner = np.zeros((14, 18))
    inner[0, 0] = 0.5
    c = a.copy()
    c[3:-3, 3:-3] = inner
    assert psnr(a, c, data_range=1.0, crop_border=3) == pytest.approx(10 * math.log10(1 / (0.25 / inner.size)))
    with pytest.raises(MetricError, match="crop_border"):
        psnr(a, b, data_range=1.0, crop_border=10)
    with pytest.raises(MetricError, match="crop_border"):
        psnr(a, b, data_range=1.0, crop_border=-1)


def test_psnr_y_channel_is_matlab_rgb2ycbcr_luma():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)

    def luma(img: np.ndarray) -> list[float]:  # by hand, pixel by pixel, on the 0..255 scale
        return [16 + (65.481 * int(r) + 128.553 * int(g) + 24.966 * int(bl)) / 255
                for r, g, bl in img.reshape(-1, 3)]

    mse = sum((ya - yb) ** 2 for ya, yb in zip(luma(a), luma(b))) / (6 * 7)
    expected = 10 * math.log10(255 ** 2 / mse)
    assert psnr(a, b, data_range=255, y_channel=True) == pytest.approx(expected, rel=1e-12)
    # The same on the [0, 1] scale: Y is scaled with data_range (16/255 .. 235/255), so PSNR does not change.
    assert psnr(a / 255, b / 255, data_range=1.0, y_channel=True) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(MetricError, match="RGB"):
        psnr(a[..., 0], b[..., 0], data_range=255, y_channel=True)


def test_numpy_and_torch_agree_and_batches_give_per_image_values(photo, noisy):
    for metric in (psnr, ssim):
        one = metric(noisy, photo, data_range=255, crop_border=4, y_channel=True)
        as_tensor = metric(_nchw(noisy), _nchw(photo), data_range=255, crop_border=4, y_channel=True)
        assert as_tensor.shape == (1,) and as_tensor.dtype == torch.float64
        assert as_tensor.item() == pytest.approx(one, rel=1e-12)
        # float [0, 1] tensors, as networks produce them
        scaled = metric(_nchw(noisy).float() / 255, _nchw(photo).float() / 255, data_range=1.0, crop_border=4,
                        y_channel=True)
        assert scaled.item() == pytest.approx(one, rel=1e-5)

    batch_a = torch.stack([_nchw(noisy)[0], _nchw(photo)[0], _nchw(photo[::-1].copy())[0]]).double()
    batch_b = torch.stack([_nchw(photo)[0], _nchw(photo)[0], _nchw(photo)[0]]).double()
    values = ssim(batch_a, batch_b, data_range=255)
    assert values.shape == (3,)
    for i in range(3):
        single = ssim(batch_a[i].permute(1, 2, 0).numpy(), batch_b[i].permute(1, 2, 0).numpy(), data_range=255)
        assert values[i].item() == pytest.approx(single, rel=1e-12)
    assert values[1].item() == pytest.approx(1.0)
    assert ssim(batch_a, batch_b, data_range=255, reduction="mean").item() == pytest.approx(values.mean().item())
    p = psnr(batch_a, batch_b, data_range=255)
    assert p.shape == (3,) and p[1].item() == math.inf and math.isfinite(p[0].item())


def test_data_range_is_required_and_checked(photo):
    with pytest.raises(TypeError):
        psnr(photo, photo)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ssim(photo, photo)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        psnr(photo, photo, 255)  # type: ignore[misc]  # keyword-only
    with pytest.raises(MetricError, match="data_range is required"):
        psnr(photo, photo, data_range=None)  # type: ignore[arg-type]
    for bad in (0, -1.0, math.inf, math.nan):
        with pytest.raises(MetricError, match="data_range"):
            psnr(photo, photo, data_range=bad)
    with pytest.raises(TypeError):
        psnr(photo, photo, data_range="255")  # type: ignore[arg-type]


def test_bad_inputs_are_usage_errors_and_value_errors(photo):
    with pytest.raises(MetricError, match="different shapes") as info:
        psnr(photo, photo[:-1], data_range=255)
    assert isinstance(info.value, ValueError) and isinstance(info.value, UsageError)
    assert isinstance(info.value, RemasterError)
    with pytest.raises(MetricError, match=r"\(N, C, H, W\)"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), data_range=1.0)
    with pytest.raises(MetricError, match="numpy array and the other a torch tensor"):
        psnr(photo, _nchw(photo), data_range=255)
    with pytest.raises(MetricError, match="reduction"):
        psnr(photo, photo, data_range=255, reduction="sum")
    with pytest.raises(MetricError, match="11x11"):
        ssim(photo[:10, :10], photo[:10, :10], data_range=255)


# --------------------------------------------------------------------------- SSIM


def test_ssim_identical_is_one_and_symmetric(photo, noisy):
    assert ssim(photo, photo, data_range=255) == pytest.approx(1.0, abs=1e-12)
    forward = ssim(noisy, photo, data_range=255)
    assert 0 < forward < 1
    assert ssim(photo, noisy, data_range=255) == pytest.approx(forward, abs=1e-12)
    assert ssim(noisy, photo, data_range=255, y_channel=True) > forward  # luma averages the channels' noise


def test_psnr_matches_scikit_image(photo, noisy):
    from skimage.metrics import peak_signal_noise_ratio

    assert psnr(photo, noisy, data_range=255) == pytest.approx(
        peak_signal_noise_ratio(photo, noisy, data_range=255), abs=1e-4)
    as_float = photo.astype(np.float32) / 255, noisy.astype(np.float32) / 255
    assert psnr(*as_float, data_range=1.0) == pytest.approx(peak_signal_noise_ratio(*as_float, data_range=1.0),
                                                            abs=1e-4)


def test_ssim_matches_scikit_image_on_the_valid_region(photo, noisy):
    """scikit-image pads (reflect) and then crops (win_size - 1) / 2 pixels before averaging, so with the same
    Gaussian window (truncate=3.5 gives 11 taps for sigma 1.5) its mean is over exactly our 'valid' region."""
    from skimage.metrics import structural_similarity

    grey_a = photo[..., 1].astype(np.float64)
    grey_b = noisy[..., 1].astype(np.float64)
    expected = structural_similarity(grey_a, grey_b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255)
    assert ssim(grey_a, grey_b, data_range=255) == pytest.approx(expected, abs=1e-10)
    expected_rgb = structural_similarity(photo, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         data_range=255, channel_axis=-1)
    assert ssim(photo, noisy, data_range=255) == pytest.approx(expected_rgb, abs=1e-10)


def test_ssim_gradient_flows_to_the_input(photo, noisy):
    x = (_nchw(noisy).double() / 255).requires_grad_()
    value = ssim(x, _nchw(photo).double() / 255, data_range=1.0, reduction="mean")
    value.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_parity_with_basicsr(photo, noisy, basicsr_module):
    ref = basicsr_module("metrics.psnr_ssim")
    # basicsr takes BGR HWC arrays on the 0..255 scale (its test_y_channel converts BGR)
    bgr_a, bgr_b = noisy[..., ::-1], photo[..., ::-1]
    for crop_border in (0, 4):
        for y_channel in (False, True):
            kwargs = dict(crop_border=crop_border)
            expected = ref.calculate_psnr(bgr_a, bgr_b, test_y_channel=y_channel, **kwargs)
            # basicsr converts to Y in float32: agreement to ~1e-8 relative, not bit for bit
            assert psnr(noisy, photo, data_range=255, y_channel=y_channel, **kwargs) == pytest.approx(expected,
                                                                                                       rel=1e-7)
            expected = ref.calculate_ssim(bgr_a, bgr_b, test_y_channel=y_channel, **kwargs)
            assert ssim(noisy, photo, data_range=255, y_channel=y_channel, **kwargs) == pytest.approx(expected,
                                                                                                       rel=1e-7)
    # The tensor versions take RGB (N, C, H, W) in [0, 1]; calculate_psnr_pt adds 1e-8 to the MSE (a cap at
    # 80 dB), which moves this value by about 6e-5 dB, where we give inf for identical images.
    a, b = _nchw(noisy).float() / 255, _nchw(photo).float() / 255
    assert psnr(a, b, data_range=1.0, crop_border=4, y_channel=True).item() == pytest.approx(
        ref.calculate_psnr_pt(a, b, 4, test_y_channel=True).item(), abs=1e-4)
    assert ssim(a, b, data_range=1.0, crop_border=4, y_channel=True).item() == pytest.approx(
        ref.calculate_ssim_pt(a, b, 4, test_y_channel=True).item(), rel=1e-6)


# --------------------------------------------------------------------------- MS-SSIM


def test_ms_ssim_is_one_for_identical_images_and_falls_with_noise(photo):
    assert ms_ssim(photo, photo, data_range=255) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(3)
    values = []
    for sigma in (4, 12, 30):
        noisy = np.clip(photo + rng.normal(0, sigma, photo.shape), 0, 255)
        values.append(ms_ssim(noisy, photo, data_range=255))
    assert 1 > values[0] > values[1] > values[2] > 0
    # symmetric, and three scales work on smaller images
    noisy = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255)
    assert ms_ssim(photo, noisy, data_range=255) == pytest.approx(ms_ssim(noisy, photo, data_range=255))
    small = ms_ssim(noisy[:60, :60], photo[:60, :60], data_range=255, weights=MS_SSIM_WEIGHTS[:3])
    assert 0 < small < 1
    # one scale is SSIM itself
    assert ms_ssim(noisy, photo, data_range=255, weights=(1.0,)) == pytest.approx(
        ssim(noisy, photo, data_range=255), rel=1e-12)


def test_ms_ssim_halves_odd_sizes_by_repeating_the_last_row(photo):
    from remaster.metrics.psnr_ssim import _halve

    t = torch.arange(15, dtype=torch.float64).view(1, 1, 3, 5)
    # the last row and column are averaged with themselves
    expected = torch.tensor([[[[3.0, 5.0, 6.5], [10.5, 12.5, 14.0]]]], dtype=torch.float64)
    torch.testing.assert_close(_halve(t), expected)
    assert ms_ssim(photo[:161, :161], photo[:161, :161], data_range=255) == pytest.approx(1.0)


def test_ms_ssim_says_how_big_the_image_must_be(photo):
    with pytest.raises(MetricError, match="161x161") as info:
        ms_ssim(photo[:100], photo[:100], data_range=255)
    assert "fewer weights" in str(info.value)
