"""Degraders: the classic ways to make a clean image worse, for training pairs.

Conventions follow BasicSR / Real-ESRGAN (``basicsr/data/degradations.py``)
so that pairs made here look like the ones those models were trained on:
noise strengths are in 8-bit units, JPEG goes through a real OpenCV
encode/decode, and Poisson noise counts photons the way ``add_poisson_noise``
does.

Randomness: every stochastic stage takes ``seed``. With a seed, each image of
a batch gets its own generator seeded with it, so an image is degraded the
same way whether it is run alone or in a batch, on the CPU or a GPU (noise is
drawn on the CPU with NumPy and moved over). Without a seed, fresh entropy is
used. The global NumPy and torch RNGs are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from remaster.io.image import LUMA_BT601
from remaster.pipeline.stage import RunContext, Stage, scaled_size
from remaster.stages.interpolate import resize

__all__ = [
    "Downsample", "Noise", "Jpeg", "Blur", "jpeg_roundtrip", "reflect_index", "NOISE_KINDS", "DOWNSAMPLE_METHODS",
]

#: Values ``Noise(kind=...)`` accepts.
NOISE_KINDS: tuple[str, ...] = ("gaussian", "poisson")

#: Values ``Downsample(method=...)`` accepts.
DOWNSAMPLE_METHODS: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "area", "lanczos")


# Photon count per unit intensity for Poisson noise. BasicSR uses
# 2 ** ceil(log2(number of distinct 8-bit values)), which is 256 for any
# image with more than 128 tones; fixing it keeps the noise independent of
# image content (and thus identical for an image alone or in a batch).
_POISSON_VALS = 256.0


def _generators(seed: int | None, count: int) -> Iterator[np.random.Generator]:
    """One generator per image: seeded alike when ``seed`` is given, else one fresh generator."""
    if seed is None:
        fresh = np.random.default_rng()
        for _ in range(count):
            yield fresh
    else:
        for _ in range(count):
            yield np.random.default_rng(seed)


class Downsample(Stage):
    """Shrink by ``scale`` with a chosen filter (antialiased, see :mod:`.interpolate`).

    Args:
        scale: Output size divided by input size, in (0, 1].
        method: One of :data:`DOWNSAMPLE_METHODS`; ``area`` averages the
            covered input pixels (OpenCV's INTER_AREA).
        seed: Accepted for uniformity with the other degraders; unused.
    """

    def __init__(self, *, scale: float = 0.25, method: str = "bicubic", seed: int | None = None, **params: Any):
        super().__init__(scale=scale, method=method, seed=seed, **params)
        if method not in DOWNSAMPLE_METHODS:
            raise ValueError(f"unknown downsample method {method!r}; expected one of {', '.join(DOWNSAMPLE_METHODS)}")
        self.scale = float(scale)
        self.method = method

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        size = ctx.out_size or scaled_size(int(pixels.shape[-2]), int(pixels.shape[-1]), self.scale)
        return resize(pixels, size, self.method).clamp_(0.0, 1.0)


class Noise(Stage):
    """Add Gaussian or Poisson noise, as Real-ESRGAN's degradation pipeline does.

    Args:
        sigma: Strength in 8-bit units. Gaussian: standard deviation
            ``sigma / 255``. Poisson: BasicSR's ``scale`` is ``sigma / 10``
            (so Real-ESRGAN's poisson_scale_range 0.05..3 is sigma 0.5..30).
        kind: ``"gaussian"`` or ``"poisson"``.
        gray: Use the same noise for every channel (BasicSR's gray noise; for
            Poisson the photons are counted on the luma).
        seed: Seed for the noise; ``None`` for fresh randomness each run.
    """

    def __init__(self, *, sigma: float = 10.0, kind: str = "gaussian", gray: bool = False, seed: int | None = None,
                 **params: Any):
        super().__init__(sigma=sigma, kind=kind, gray=gray, seed=seed, **params)
        if kind not in NOISE_KINDS:
            raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
        self.sigma = float(sigma)
        self.kind = kind
        self.gray = bool(gray)
        self.seed = seed

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        n, c, h, w = pixels.shape
        if self.sigma == 0:
            return pixels.clone()
        host = pixels.detach().to("cpu", torch.float32).numpy()
        noise = np.empty((n, c, h, w), dtype=np.float32)
        for i, rng in enumerate(_generators(self.seed, n)):
            if self.kind == "gaussian":
                noise[i] = self._gaussian(rng, c, h, w)
            else:
                noise[i] = self._poisson(rng, host[i])
        noisy = pixels + torch.from_numpy(noise).to(pixels.device)
        return noisy.clamp_(0.0, 1.0)

    def _gaussian(self, rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
        std = self.sigma / 255.0
        if self.gray:
            return np.broadcast_to(rng.standard_normal((1, h, w), dtype=np.float32) * std, (c, h, w))
        return rng.standard_normal((c, h, w), dtype=np.float32) * std

    def _poisson(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        """BasicSR's ``generate_poisson_noise`` for one ``(C, H, W)`` image."""
        if self.gray and image.shape[0] == 3:
            # BasicSR's gray noise uses cv2's BGR2GRAY, whose weights these are (ordered for RGB).
            image = np.tensordot(np.asarray(LUMA_BT601, dtype=np.float32), image, axes=1)[None]
        elif self.gray:
            image = image[:1]
        # Photons are counted on the 8-bit image, as BasicSR rounds first.
        quantised = np.clip(np.round(image * 255.0), 0, 255) / 255.0
        counts = rng.poisson(quantised * _POISSON_VALS)
        noise = (counts / _POISSON_VALS - quantised).astype(np.float32) * (self.sigma / 10.0)
        return noise  # a (1, H, W) gray noise broadcasts over the channels


class Jpeg(Stage):
    """Compress with a real JPEG encoder (OpenCV / libjpeg, 4:2:0 chroma) and decode again.

    Args:
        quality: JPEG quality, 1 (worst) to 100.
        seed: Accepted for uniformity with the other degraders; JPEG is deterministic.
    """

    def __init__(self, *, quality: int = 50, seed: int | None = None, **params: Any):
        super().__init__(quality=quality, seed=seed, **params)
        self.quality = int(quality)

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return jpeg_roundtrip(pixels, [self.quality] * pixels.shape[0])


def jpeg_roundtrip(pixels: torch.Tensor, qualities: Sequence[int]) -> torch.Tensor:
    """Encode each image of ``(N, C, H, W)`` as JPEG with its own quality and decode it again.

    OpenCV / libjpeg on the CPU (4:2:0 chroma); the result goes back to the input's device.
    """
    n, c, h, w = pixels.shape
    if c not in (1, 3):
        raise ValueError(f"JPEG needs 1 or 3 channels, got {c}")
    host = pixels.detach().to("cpu", torch.float32).clamp(0.0, 1.0).numpy()
    result = np.empty((n, c, h, w), dtype=np.float32)
    for i in range(n):
        eight_bit = np.round(host[i] * 255.0).astype(np.uint8)
        # OpenCV wants H x W (gray) or H x W x BGR.
        plane = eight_bit[0] if c == 1 else np.ascontiguousarray(eight_bit.transpose(1, 2, 0)[:, :, ::-1])
        ok, encoded = cv2.imencode(".jpg", plane, [cv2.IMWRITE_JPEG_QUALITY, int(qualities[i])])
        if not ok:
            raise RuntimeError("OpenCV failed to encode the image as JPEG")
        decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise RuntimeError("OpenCV failed to decode its own JPEG")
        if c == 1:
            result[i, 0] = decoded
        else:
            result[i] = decoded[:, :, ::-1].transpose(2, 0, 1)
    return torch.from_numpy(result / np.float32(255.0)).to(pixels.device)


def reflect_index(length: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices of a reflect-padded axis (edge pixel not repeated, like ``F.pad(mode='reflect')``).

    Unlike ``F.pad``, the reflection folds back as often as needed, so the
    padding may be wider than the axis (a large sigma on a small image).
    """
    index = torch.arange(-radius, length + radius, device=device)
    if length == 1:
        return torch.zeros_like(index)
    period = 2 * (length - 1)
    index = torch.remainder(index, period)
    return torch.where(index >= length, period - index, index)


class Blur(Stage):
    """Isotropic Gaussian blur: separable convolution, reflect padding, radius ``ceil(3 * sigma)``.

    Args:
        sigma: Standard deviation of the Gaussian in pixels.
        seed: Accepted for uniformity with the other degraders; blur is deterministic.
    """

    def __init__(self, *, sigma: float = 1.0, seed: int | None = None, **params: Any):
        super().__init__(sigma=sigma, seed=seed, **params)
        self.sigma = float(sigma)
        if self.sigma <= 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        self.radius = math.ceil(3.0 * self.sigma)
        # Tiles need exactly the kernel's reach (up to 150 px at sigma 50) to equal the untiled blur.
        self.tile_overlap = self.radius

    def _kernel(self, device: torch.device) -> torch.Tensor:
        offsets = torch.arange(-self.radius, self.radius + 1, dtype=torch.float64)
        kernel = torch.exp(-(offsets**2) / (2.0 * self.sigma**2))
        # Normalised in float64 so the blur preserves brightness to rounding.
        return (kernel / kernel.sum()).to(device=device, dtype=torch.float32)

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        n, c, h, w = pixels.shape
        r = self.radius
        kernel = self._kernel(pixels.device)
        x = pixels.to(torch.float32)
        # Rows then columns; each channel convolved on its own (groups=c).
        x = x.index_select(-1, reflect_index(w, r, pixels.device))
        x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        x = x.index_select(-2, reflect_index(h, r, pixels.device))
        x = F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
        return x.clamp_(0.0, 1.0)
