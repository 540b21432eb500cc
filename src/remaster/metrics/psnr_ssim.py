"""PSNR, SSIM and MS-SSIM with the conventions of super-resolution papers (BasicSR / MATLAB).

All three take two images of the same shape: numpy ``(H, W)`` or ``(H, W, C)``
(one image; a float comes back) or torch ``(N, C, H, W)`` (a batch; a tensor of
``N`` per-image values comes back, or their mean with ``reduction="mean"``).
``data_range`` (the value of white: 255 for 8-bit, 1.0 for float images) is
required and never guessed from the dtype. Statistics are computed in float64
(float32 on Apple MPS, which has no float64); tensors stay on their device and
gradients flow through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from remaster.metrics._common import check_data_range, check_reduction, crop, finish, prepare, to_y
from remaster.plugin.metrics import MetricError

__all__ = ["psnr", "ssim", "ms_ssim", "MS_SSIM_WEIGHTS"]

#: Per-scale exponents of MS-SSIM (Wang, Simoncelli & Bovik 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _inputs(a: Any, b: Any, data_range: Any, crop_border: int, y_channel: bool, reduction: str,
            min_size: int = 1) -> tuple[Any, torch.Tensor, torch.Tensor, float]:
    data_range = check_data_range(data_range)
    check_reduction(reduction)
    first, second = prepare(a, b)
    assert second is not None
    x = crop(first.tensor, crop_border, min_size=min_size)
    y = crop(second.tensor, crop_border, min_size=min_size)
    if y_channel:
        x, y = to_y(x, data_range), to_y(y, data_range)
    return first, x, y, data_range


def psnr(a: Any, b: Any, *, data_range: float, crop_border: int = 0, y_channel: bool = False,
         reduction: str = "none") -> Any:
    """Peak signal-to-noise ratio in dB: ``10 * log10(data_range**2 / MSE)``.

    The MSE is taken over every pixel and channel of each image (after the crop
    and the luma conversion), as BasicSR's ``calculate_psnr``. Identical images
    give ``inf``.

    Args:
        a, b: The two images, numpy ``(H, W)``/``(H, W, C)`` or torch ``(N, C, H, W)``.
        data_range: The value of white (255 for 8-bit images, 1.0 for floats in [0, 1]); also the peak.
        crop_border: Pixels cut from each edge before measuring (SR papers crop ``scale`` pixels).
        y_channel: Measure on the BT.601 luma of RGB images (MATLAB ``rgb2ycbcr``, on the
            scale of ``data_range``), as SR papers report "PSNR (Y)".
        reduction: ``"none"``: one value per image; ``"mean"``: their mean (tensors only).

    Returns:
        A float for a numpy image; for tensors an ``(N,)`` float64 tensor (or a 0-d tensor).
    """
    batch, x, y, data_range = _inputs(a, b, data_range, crop_border, y_channel, reduction)
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3))
    values = 10.0 * torch.log10(data_range ** 2 / mse)  # mse == 0 → inf, as BasicSR's numpy version
    return finish(values, batch, reduction)


def _gaussian_1d(win_size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(win_size, dtype=like.dtype, device=like.device) - (win_size - 1) / 2.0
    g = torch.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()  # as cv2.getGaussianKernel(win_size, sigma); the 2-D window is its outer product


def _filter_valid(t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Gaussian filter of ``(M, 1, H, W)``, 'valid' (no padding): the 2-D window, applied as two 1-D passes.

    On the CPU without autograd, OpenCV's separable filter does the same sums several times faster than
    ``conv2d`` on single-channel float64 planes; the border mode is irrelevant, the border being cut off.
    """
    k = g.numel()
    if t.device.type == "cpu" and t.dtype == torch.float64 and not (t.requires_grad and torch.is_grad_enabled()):
        import cv2

        r = k // 2
        kernel = g.detach().numpy().reshape(k, 1)
        planes = t.detach().numpy()
        h, w = planes.shape[-2:]
        out = np.empty(planes.shape[:2] + (h - 2 * r, w - 2 * r))
        for i in range(planes.shape[0]):
            plane = np.ascontiguousarray(planes[i, 0])
            out[i, 0] = cv2.sepFilter2D(plane, cv2.CV_64F, kernel, kernel,
                                        borderType=cv2.BORDER_REFLECT_101)[r:h - r, r:w - r]
        return torch.from_numpy(out)
    t = F.conv2d(t, g.view(1, 1, k, 1))
    return F.conv2d(t, g.view(1, 1, 1, k))


def _ssim_cs(x: torch.Tensor, y: torch.Tensor, data_range: float, g: torch.Tensor, k1: float,
             k2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term per image and channel, ``(N, C)`` each."""
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    y = y.reshape(n * c, 1, h, w)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mu1 = _filter_valid(x, g)
    mu2 = _filter_valid(y, g)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter_valid(x * x, g) - mu1_sq
    sigma2_sq = _filter_valid(y * y, g) - mu2_sq
    sigma12 = _filter_valid(x * y, g) - mu1_mu2
    cs_map = (2.0 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    ssim_map = (2.0 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1) * cs_map
    return ssim_map.mean(dim=(1, 2, 3)).view(n, c), cs_map.mean(dim=(1, 2, 3)).view(n, c)


def _check_window(win_size: int, sigma: float) -> None:
    if isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 1 or win_size % 2 == 0:
        raise MetricError(f"win_size must be a positive odd integer, not {win_size!r}")
    if not sigma > 0:
        raise MetricError(f"sigma must be positive, not {sigma!r}")


def ssim(a: Any, b: Any, *, data_range: float, crop_border: int = 0, y_channel: bool = False,
         reduction: str = "none", win_size: int = 11, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03) -> Any:
    """Structural similarity (Wang et al. 2004), as the authors' MATLAB code and BasicSR compute it.

    An 11×11 Gaussian window with σ = 1.5, ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``
    with ``L = data_range``, population (not sample) statistics, 'valid'
    filtering (no padding: the SSIM map is ``(H - 10) × (W - 10)``), the map
    averaged per channel and the channels averaged. The image is not
    downsampled first (BasicSR does not either; the later ``ssim.m`` does for
    images over 256 pixels). Identical images give exactly 1.

    Args:
        a, b, data_range, crop_border, y_channel, reduction: As :func:`psnr`.
        win_size, sigma, k1, k2: The window and the stabilising constants (defaults as the paper).

    Returns:
        As :func:`psnr`.
    """
    _check_window(win_size, sigma)
    batch, x, y, data_range = _inputs(a, b, data_range, crop_border, y_channel, reduction, min_size=win_size)
    g = _gaussian_1d(win_size, sigma, x)
    ssim_nc, _ = _ssim_cs(x, y, data_range, g, k1, k2)
    return finish(ssim_nc.mean(dim=1), batch, reduction)


def _halve(t: torch.Tensor) -> torch.Tensor:
    """2×2 average; an odd last row/column is repeated first (MATLAB's 'symmetric' imfilter, then 1:2:end)."""
    h, w = t.shape[-2:]
    if h % 2 or w % 2:
        t = F.pad(t, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(t, kernel_size=2, stride=2)


def ms_ssim(a: Any, b: Any, *, data_range: float, crop_border: int = 0, y_channel: bool = False,
            reduction: str = "none", weights: Sequence[float] = MS_SSIM_WEIGHTS, win_size: int = 11,
            sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Any:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003).

    At each of ``len(weights)`` scales the contrast-structure term is measured
    (the full SSIM at the coarsest), with the same window and constants as
    :func:`ssim`; between scales both images are halved by 2×2 averaging (an
    odd last row or column is averaged with itself, as the authors' MATLAB code
    and TensorFlow's ``ssim_multiscale`` do). The result is
    ``prod(cs_j ** w_j) * ssim_M ** w_M`` per channel (negative terms clipped to
    0, as pytorch-msssim does), averaged over channels.

    With 5 scales and an 11-pixel window the image must be at least
    ``10 * 2**4 + 1 = 161`` pixels each way; pass fewer ``weights`` for smaller images.

    Args:
        a, b, data_range, crop_border, y_channel, reduction: As :func:`psnr`.
        weights: Exponent per scale, finest first (default :data:`MS_SSIM_WEIGHTS`).
        win_size, sigma, k1, k2: As :func:`ssim`.

    Returns:
        As :func:`psnr`; identical images give 1.
    """
    _check_window(win_size, sigma)
    weights = tuple(float(w) for w in weights)
    if not weights:
        raise MetricError("ms_ssim needs at least one scale weight")
    levels = len(weights)
    min_size = (win_size - 1) * 2 ** (levels - 1) + 1  # the coarsest scale still holds one window
    batch, x, y, data_range = _inputs(a, b, data_range, crop_border, y_channel, reduction)
    if min(x.shape[-2:]) < min_size:
        raise MetricError(f"ms_ssim with {levels} scales and win_size={win_size} needs images of at least "
                          f"{min_size}x{min_size} pixels (after crop_border), not {x.shape[-1]}x{x.shape[-2]}",
                          hint="pass fewer weights, e.g. weights=MS_SSIM_WEIGHTS[:3], or use ssim")
    g = _gaussian_1d(win_size, sigma, x)
    w = torch.tensor(weights, dtype=x.dtype, device=x.device)
    terms = []
    for level in range(levels):
        ssim_nc, cs_nc = _ssim_cs(x, y, data_range, g, k1, k2)
        terms.append(ssim_nc if level == levels - 1 else cs_nc)
        if level < levels - 1:
            x, y = _halve(x), _halve(y)
    stacked = torch.relu(torch.stack(terms, dim=0))  # (levels, N, C)
    per_channel = torch.prod(stacked ** w.view(-1, 1, 1), dim=0)
    return finish(per_channel.mean(dim=1), batch, reduction)
