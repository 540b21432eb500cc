"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik 2013): no reference, lower is better.

A port of BasicSR's ``calculate_niqe`` (``convert_to='y'``), itself a port of
the official MATLAB release: the image is converted to MATLAB's BT.601 luma on
the 0..255 scale and rounded, cut into 96×96 blocks (the part that does not
fill a block is dropped), 18 statistics of the locally normalised luminance
are fitted per block at full and half resolution (MATLAB ``imresize``, bicubic
with antialiasing), and the multivariate Gaussian of those 36 features is
compared with the one fitted to pristine natural images. The pristine model is
BasicSR's ``niqe_pris_params.npz`` (see ``data/NOTICE.md``). numpy and the
standard library only; float64 throughout.
"""

from __future__ import annotations

import functools
import math
import warnings
from importlib import resources
from typing import Any

import numpy as np

from remaster.metrics._common import check_data_range, check_reduction, crop, finish, prepare, to_y
from remaster.plugin.metrics import MetricError

__all__ = ["niqe", "niqe_y", "BLOCK_SIZE"]

#: Side of the square blocks the image is cut into (the official recommendation).
BLOCK_SIZE = 96


def niqe(img: Any, *, data_range: float, crop_border: int = 0, reduction: str = "none") -> Any:
    """NIQE of an image: lower is better (pristine photographs score about 3 to 5).

    RGB images are measured on their BT.601 luma (MATLAB ``rgb2ycbcr``, as
    BasicSR's ``calculate_niqe(..., convert_to='y')``); grey ones as they are.
    Either is brought to the 0..255 scale (``* 255 / data_range``) and rounded,
    as MATLAB's uint8 conversion does.

    Args:
        img: numpy ``(H, W)``/``(H, W, 1)`` grey or ``(H, W, 3)`` RGB, or torch ``(N, 1|3, H, W)``.
        data_range: The value of white (255 for 8-bit images, 1.0 for floats in [0, 1]).
        crop_border: Pixels cut from each edge before measuring.
        reduction: ``"none"`` or ``"mean"``, as :func:`remaster.metrics.psnr`.

    Returns:
        A float for a numpy image; for tensors an ``(N,)`` float64 tensor (on the CPU: NIQE is computed
        with numpy), or a 0-d tensor. ``nan`` if the image has too little texture to fit the model
        (e.g. it is flat).

    Raises:
        MetricError: fewer than two 96×96 blocks fit in the (cropped) image.
    """
    data_range = check_data_range(data_range)
    check_reduction(reduction)
    batch, _ = prepare(img)
    t = batch.tensor.detach()
    channels = t.shape[1]
    if channels == 3:
        t = to_y(t, data_range) * (255.0 / data_range)
    elif channels == 1:
        t = t * (255.0 / data_range)
    else:
        raise MetricError(f"niqe needs grey (1 channel) or RGB (3 channel) images, not {channels} channels")
    t = crop(t, crop_border, min_size=BLOCK_SIZE)
    planes = t[:, 0].to("cpu", dtype=t.dtype).double().numpy()
    import torch

    values = torch.tensor([niqe_y(np.round(plane)) for plane in planes], dtype=torch.float64)
    return finish(values, batch, reduction)


def niqe_y(y: np.ndarray, *, block_size: int = BLOCK_SIZE) -> float:
    """NIQE of a luma plane already on the 0..255 scale (and rounded, for MATLAB parity).

    This is BasicSR's ``niqe()`` function: no colour conversion, no crop, no rounding.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise MetricError(f"niqe_y needs a 2-D luma plane, not an array of shape {y.shape}")
    mu_pris, cov_pris, window = _pristine()
    h, w = y.shape
    blocks_h, blocks_w = h // block_size, w // block_size
    if blocks_h * blocks_w < 2:
        raise MetricError(f"niqe needs at least two {block_size}x{block_size} blocks, and an image of {w}x{h} "
                          f"pixels has {blocks_h * blocks_w}", hint="measure a bigger image")
    img = y[:blocks_h * block_size, :blocks_w * block_size]

    features = []
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # flat blocks give nan features, dropped below as MATLAB
        for scale in (1, 2):
            mu = _filter_nearest(img, window)
            sigma = np.sqrt(np.abs(_filter_nearest(img * img, window) - mu * mu))
            normalised = (img - mu) / (sigma + 1.0)
            size = block_size // scale
            feats = [_block_features(normalised[i * size:(i + 1) * size, j * size:(j + 1) * size])
                     for j in range(blocks_w) for i in range(blocks_h)]
            features.append(np.array(feats))
            if scale == 1:
                img = _imresize_half(img / 255.0) * 255.0
        dist = np.concatenate(features, axis=1)
        mu_dist = np.nanmean(dist, axis=0)
        usable = dist[~np.isnan(dist).any(axis=1)]
        if len(usable) < 2:  # a flat image: no block has a distribution to fit
            return math.nan
        cov_dist = np.cov(usable, rowvar=False)
        try:
            inv = np.linalg.pinv((cov_pris + cov_dist) / 2.0)
        except np.linalg.LinAlgError:
            return math.nan
        diff = mu_pris - mu_dist
        quality = float(np.squeeze(diff @ inv @ diff.T))
    return math.sqrt(quality) if quality >= 0 else math.nan


@functools.lru_cache(maxsize=1)
def _pristine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with resources.files(__package__).joinpath("data/niqe_pris_params.npz").open("rb") as file:
        data = np.load(file)
        return (np.array(data["mu_pris_param"], dtype=np.float64),
                np.array(data["cov_pris_param"], dtype=np.float64),
                np.array(data["gaussian_window"], dtype=np.float64))


def _filter_nearest(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.convolve(img, window, mode='nearest')`` for an odd, symmetric window, in float64."""
    kh, kw = window.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(img, ((ph, ph), (pw, pw)), mode="edge")
    h, w = img.shape
    out = np.zeros_like(img)
    flipped = window[::-1, ::-1]  # convolution; a no-op for the symmetric Gaussian, kept to be exact
    for i in range(kh):
        for j in range(kw):
            out += flipped[i, j] * padded[i:i + h, j:j + w]
    return out


@functools.lru_cache(maxsize=1)
def _aggd_table() -> tuple[np.ndarray, np.ndarray]:
    gam = np.arange(0.2, 10.001, 0.001)
    gamma = np.vectorize(math.gamma, otypes=[np.float64])
    r_gam = gamma(2.0 / gam) ** 2 / (gamma(1.0 / gam) * gamma(3.0 / gam))
    return gam, r_gam


def _aggd(block: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit: (alpha, beta_left, beta_right), by moment matching on a grid."""
    gam, r_gam = _aggd_table()
    block = block.ravel()
    left_std = np.sqrt(np.mean(block[block < 0] ** 2))
    right_std = np.sqrt(np.mean(block[block > 0] ** 2))
    gammahat = left_std / right_std
    rhat = np.mean(np.abs(block)) ** 2 / np.mean(block ** 2)
    rhatnorm = rhat * (gammahat ** 3 + 1) * (gammahat + 1) / (gammahat ** 2 + 1) ** 2
    alpha = gam[np.argmin((r_gam - rhatnorm) ** 2)]
    factor = math.sqrt(math.gamma(1.0 / alpha) / math.gamma(3.0 / alpha))
    return float(alpha), float(left_std * factor), float(right_std * factor)


def _block_features(block: np.ndarray) -> list[float]:
    alpha, beta_l, beta_r = _aggd(block)
    feat = [alpha, (beta_l + beta_r) / 2.0]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, beta_l, beta_r = _aggd(block * np.roll(block, shift, axis=(0, 1)))
        mean = (beta_r - beta_l) * (math.gamma(2.0 / alpha) / math.gamma(1.0 / alpha))
        feat.extend([alpha, mean, beta_l, beta_r])
    return feat


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _resize_matrix(in_length: int, scale: float) -> np.ndarray:
    """MATLAB ``imresize`` bicubic weights (antialiased when shrinking) as an ``(out, in)`` matrix.

    The borders are extended symmetrically (edge pixel repeated), as MATLAB does.
    """
    out_length = math.ceil(in_length * scale)
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    p = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(p)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if scale < 1 else _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    idx = indices.astype(np.int64) - 1  # 1-based → 0-based
    idx = np.where(idx < 0, -idx - 1, idx)
    idx = np.where(idx >= in_length, 2 * in_length - idx - 1, idx)
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), p), idx.ravel()), weights.ravel())
    return matrix


def _imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` (bicubic, antialiased), rows then columns."""
    rows = _resize_matrix(img.shape[0], 0.5)
    cols = _resize_matrix(img.shape[1], 0.5)
    return rows @ img @ cols.T
