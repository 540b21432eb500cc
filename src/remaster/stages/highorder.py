"""Real-ESRGAN's high-order degradation: two rounds of blur, resize, noise and JPEG, then a final sinc.

Written for remaster after Real-ESRGAN (Wang et al. 2021, "Real-ESRGAN: Training
Real-World Blind Super-Resolution with Pure Synthetic Data"): the kernel
families follow ``basicsr/data/degradations.py`` (``random_mixed_kernels``,
``circular_lowpass_kernel``), the order of operations and the default
probabilities/ranges ``realesrgan/models/realesrgan_model.py`` (``feed_data``)
with ``options/train_realesrgan_x4plus.yml``. Differences, on purpose:

- JPEG is a real libjpeg round trip (OpenCV, as :class:`~remaster.stages.degrade.Jpeg`)
  instead of the differentiable DiffJPEG approximation; nothing back-propagates
  through the degradation, and real JPEG is what users' images carry.
- Poisson noise counts 256 photons per unit intensity (see ``degrade.py``) rather
  than one count per distinct tone of the batch.
- No unsharp masking of the target; the fine-tuning losses compare with the
  original high-resolution image.

The whole batch is processed on its own device (blur, resize, noise), with one
kernel per image and one random resize per round for the batch, as Real-ESRGAN
does. Random parameters come from a NumPy generator, the noise from a torch
generator on the device; both are seeded by ``seed`` and their state can be
saved and restored (:meth:`RealESRGANDegradation.state_dict`), which is what lets
a fine-tuning run resume exactly.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from remaster.errors import UsageError
from remaster.io.image import LUMA_BT601
from remaster.pipeline.stage import RunContext, Stage, scaled_size
from remaster.stages.degrade import jpeg_roundtrip, reflect_index

__all__ = ["RealESRGANSettings", "RealESRGANDegradation", "RealESRGANDegrade", "load_settings", "KERNEL_TYPES"]

#: Blur kernel families, in Real-ESRGAN's order.
KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_RESIZE_MODES = ("area", "bilinear", "bicubic")
_KERNEL_SIZE = 21  # every kernel is padded to this size so a batch shares one convolution
_KERNEL_SIZES = tuple(range(7, 22, 2))  # Real-ESRGAN's kernel_range: 7, 9, ..., 21


@dataclass
class RealESRGANSettings:
    """Probabilities and ranges of the degradation; defaults are Real-ESRGAN x4plus's training settings.

    Ranges are ``[low, high]``; ``resize_prob`` is ``[up, down, keep]``.
    Noise sigmas are in 8-bit units, Poisson scales as BasicSR's.
    """

    kernel_prob: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_prob: float = 0.1
    blur_sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])
    betag_range: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range: list[float] = field(default_factory=lambda: [1.0, 2.0])
    resize_prob: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])
    resize_range: list[float] = field(default_factory=lambda: [0.15, 1.5])
    gaussian_noise_prob: float = 0.5
    noise_range: list[float] = field(default_factory=lambda: [1.0, 30.0])
    poisson_scale_range: list[float] = field(default_factory=lambda: [0.05, 3.0])
    gray_noise_prob: float = 0.4
    jpeg_range: list[float] = field(default_factory=lambda: [30.0, 95.0])

    second_blur_prob: float = 0.8
    kernel_prob2: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_prob2: float = 0.1
    blur_sigma2: list[float] = field(default_factory=lambda: [0.2, 1.5])
    betag_range2: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range2: list[float] = field(default_factory=lambda: [1.0, 2.0])
    resize_prob2: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.3])
    resize_range2: list[float] = field(default_factory=lambda: [0.3, 1.2])
    gaussian_noise_prob2: float = 0.5
    noise_range2: list[float] = field(default_factory=lambda: [1.0, 25.0])
    poisson_scale_range2: list[float] = field(default_factory=lambda: [0.05, 2.5])
    gray_noise_prob2: float = 0.4
    jpeg_range2: list[float] = field(default_factory=lambda: [30.0, 95.0])

    final_sinc_prob: float = 0.8

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str | Path | None = None) -> RealESRGANSettings:
        """Defaults overridden by ``values``; unknown keys and malformed values are refused.

        Raises:
            UsageError: naming the key, the file and the valid keys.
        """
        defaults = cls()
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UsageError(f"unknown degradation setting {unknown[0]!r}", path=source,
                             hint=f"valid settings: {', '.join(sorted(names))}")
        merged = {}
        for name in names:
            default = getattr(defaults, name)
            value = values.get(name, default)
            if isinstance(default, list):
                ok = isinstance(value, (list, tuple)) and len(value) == len(default) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                value = [float(v) for v in value] if ok else value
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0
                value = float(value) if ok else value
            if not ok:
                raise UsageError(f"degradation setting {name!r} must be "
                                 + (f"a list of {len(default)} numbers" if isinstance(default, list)
                                    else "a probability between 0 and 1") + f", not {value!r}", path=source)
            merged[name] = value
        return cls(**merged)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Largest degradation settings file read.
_MAX_CONFIG_BYTES = 256 * 1024


def load_settings(path: str | Path | None) -> RealESRGANSettings:
    """Settings from a JSON or TOML file (top level, or its ``[degradation]`` table); defaults for ``None``.

    Raises:
        UsageError: the file is missing, unreadable or holds unknown/malformed settings.
    """
    if path is None or str(path) == "":
        return RealESRGANSettings()
    file = Path(path)
    try:
        # A settings file is a few hundred bytes: a device (/dev/zero) or a huge file is refused before reading.
        if not file.exists():
            raise UsageError("cannot read the degradation config: no such file", path=file)
        if not file.is_file():
            raise UsageError("the degradation config is not a regular file", path=file)
        with open(file, "rb") as handle:
            raw = handle.read(_MAX_CONFIG_BYTES + 1)
        if len(raw) > _MAX_CONFIG_BYTES:
            raise UsageError(f"the degradation config is over {_MAX_CONFIG_BYTES // 1024} KiB: not a settings file",
                             path=file)
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the degradation config is not UTF-8 text", path=file) from None
    except OSError as exc:
        raise UsageError(f"cannot read the degradation config: {exc.strerror or exc}", path=file) from None
    try:
        if file.suffix.lower() != ".toml":
            data: Any = json.loads(text)
        elif sys.version_info >= (3, 11):
            import tomllib

            data = tomllib.loads(text)
        else:
            raise UsageError("TOML configs need Python 3.11 or newer", path=file, hint="write the config as JSON")
    except ValueError as exc:
        raise UsageError(f"the degradation config is not valid {'TOML' if file.suffix.lower() == '.toml' else 'JSON'}:"
                         f" {exc}", path=file) from None
    if isinstance(data, dict) and isinstance(data.get("degradation"), dict):
        data = data["degradation"]
    if not isinstance(data, dict):
        raise UsageError("the degradation config must be a table of settings", path=file)
    return RealESRGANSettings.from_mapping(data, source=file)


# --------------------------------------------------------------------------- kernels (NumPy, per image)


def _mesh(size: int) -> tuple[np.ndarray, np.ndarray]:
    ax = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
    return np.meshgrid(ax, ax)


def _inverse_covariance(sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    covariance = rotation @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rotation.T
    return np.linalg.inv(covariance)


def _gaussian_family(kind: str, size: int, rng: np.random.Generator, sigma: Sequence[float],
                     betag: Sequence[float], betap: Sequence[float]) -> np.ndarray:
    """One kernel of ``kind`` (see :data:`KERNEL_TYPES`), as basicsr's ``random_*_kernel`` functions draw it."""
    isotropic = kind.endswith("iso") and not kind.endswith("aniso")
    sigma_x = rng.uniform(sigma[0], sigma[1])
    sigma_y = sigma_x if isotropic else rng.uniform(sigma[0], sigma[1])
    theta = 0.0 if isotropic else rng.uniform(-np.pi, np.pi)
    xx, yy = _mesh(size)
    grid = np.stack([xx, yy], axis=-1)
    # Squared Mahalanobis distance of every tap from the centre.
    distance = np.einsum("...i,ij,...j->...", grid, _inverse_covariance(sigma_x, sigma_y, theta), grid)
    if kind.startswith("generalized"):
        beta = rng.uniform(betag[0], 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, betag[1])
        kernel = np.exp(-0.5 * np.power(distance, beta))
    elif kind.startswith("plateau"):
        beta = rng.uniform(betap[0], 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, betap[1])
        kernel = 1.0 / (np.power(distance, beta) + 1.0)
    else:
        kernel = np.exp(-0.5 * distance)
    return kernel / kernel.sum()


def _sinc_kernel(cutoff: float, size: int) -> np.ndarray:
    """Circular low-pass (2-D sinc / Airy) kernel: ringing and overshoot artifacts."""
    xx, yy = _mesh(size)
    radius = torch.from_numpy(np.sqrt(xx ** 2 + yy ** 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = (cutoff * torch.special.bessel_j1(cutoff * radius) / (2 * np.pi * radius)).numpy()
    kernel[size // 2, size // 2] = cutoff ** 2 / (4 * np.pi)  # the limit at r = 0
    return kernel / kernel.sum()


def _pad(kernel: np.ndarray) -> np.ndarray:
    pad = (_KERNEL_SIZE - kernel.shape[0]) // 2
    return np.pad(kernel, pad)


def _blur_kernel(rng: np.random.Generator, kernel_prob: Sequence[float], sinc_prob: float,
                 sigma: Sequence[float], betag: Sequence[float], betap: Sequence[float]) -> np.ndarray:
    size = int(rng.choice(_KERNEL_SIZES))
    if rng.uniform() < sinc_prob:
        cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
        return _pad(_sinc_kernel(cutoff, size))
    probabilities = np.asarray(kernel_prob, dtype=np.float64)
    kind = KERNEL_TYPES[int(rng.choice(len(KERNEL_TYPES), p=probabilities / probabilities.sum()))]
    return _pad(_gaussian_family(kind, size, rng, sigma, betag, betap))


def _final_sinc(rng: np.random.Generator, probability: float) -> np.ndarray:
    if rng.uniform() < probability:
        size = int(rng.choice(_KERNEL_SIZES))
        return _pad(_sinc_kernel(rng.uniform(np.pi / 3, np.pi), size))
    pulse = np.zeros((_KERNEL_SIZE, _KERNEL_SIZE))
    pulse[_KERNEL_SIZE // 2, _KERNEL_SIZE // 2] = 1.0
    return pulse


# --------------------------------------------------------------------------- batched operations (torch, on device)


def _filter(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve image ``i`` of the batch with ``kernels[i]`` (reflect padding), in one grouped convolution."""
    n, c, h, w = x.shape
    r = kernels.shape[-1] // 2
    x = x.index_select(-1, reflect_index(w, r, x.device)).index_select(-2, reflect_index(h, r, x.device))
    weight = kernels.to(x).repeat_interleave(c, dim=0).unsqueeze(1)  # (n*c, 1, k, k)
    return F.conv2d(x.reshape(1, n * c, h + 2 * r, w + 2 * r), weight, groups=n * c).view(n, c, h, w)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x[:, :1]
    weights = torch.tensor(LUMA_BT601, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


class RealESRGANDegradation:
    """The batched high-order degradation: ``hr (N, C, H, W)`` in [0, 1] → ``lr (N, C, H/scale, W/scale)``.

    Args:
        settings: Probabilities and ranges (default: Real-ESRGAN x4plus's).
        scale: The integer factor between the high- and low-resolution images.
        seed: Seed of both generators; ``None`` for fresh randomness.
        device: Where the noise generator lives (the images' device).
    """

    def __init__(self, settings: RealESRGANSettings | None = None, *, scale: int = 4, seed: int | None = None,
                 device: torch.device | str = "cpu"):
        self.settings = settings or RealESRGANSettings()
        self.scale = int(scale)
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        self.noise_rng = torch.Generator(device=self.device)
        if seed is None:
            self.noise_rng.seed()  # fresh entropy for this generator only; the global torch RNG is left alone
        else:
            self.noise_rng.manual_seed(int(self.rng.integers(2 ** 63)))

    # ------------------------------------------------------------------ state (for exact resume)

    def state_dict(self) -> dict[str, Any]:
        """The generators' state: ``{"numpy": JSON-able dict, "torch": uint8 tensor}``."""
        return {"numpy": self.rng.bit_generator.state, "torch": self.noise_rng.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy"]
        self.noise_rng.set_state(state["torch"])

    # ------------------------------------------------------------------ the pipeline

    def __call__(self, hr: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Degrade a batch; ``size`` is the output size (default ``H // scale, W // scale``)."""
        s = self.settings
        n, _, h, w = hr.shape
        out_h, out_w = size or (h // self.scale, w // self.scale)
        x = hr.float()

        # First round: blur, resize, noise, JPEG.
        x = _filter(x, self._kernels(n, s.kernel_prob, s.sinc_prob, s.blur_sigma, s.betag_range, s.betap_range))
        x = self._random_resize(x, s.resize_prob, s.resize_range, base=(h, w))
        x = self._noise(x, s.gaussian_noise_prob, s.noise_range, s.poisson_scale_range, s.gray_noise_prob)
        x = self._jpeg(x, s.jpeg_range)

        # Second round; the resize is relative to the final size, as in Real-ESRGAN.
        kernels2 = self._kernels(n, s.kernel_prob2, s.sinc_prob2, s.blur_sigma2, s.betag_range2, s.betap_range2)
        if self.rng.uniform() < s.second_blur_prob:
            x = _filter(x, kernels2)
        x = self._random_resize(x, s.resize_prob2, s.resize_range2, base=(out_h, out_w))
        x = self._noise(x, s.gaussian_noise_prob2, s.noise_range2, s.poisson_scale_range2, s.gray_noise_prob2)

        # Last: resize to the final size + sinc filter, and JPEG, in random order.
        sinc = torch.from_numpy(np.stack([_final_sinc(self.rng, s.final_sinc_prob) for _ in range(n)]))
        mode = _RESIZE_MODES[int(self.rng.integers(len(_RESIZE_MODES)))]
        if self.rng.uniform() < 0.5:
            x = _filter(_resize(x, (out_h, out_w), mode), sinc)
            x = self._jpeg(x, s.jpeg_range2)
        else:
            x = self._jpeg(x, s.jpeg_range2)
            x = _filter(_resize(x, (out_h, out_w), mode), sinc)
        return (x * 255.0).round().clamp_(0.0, 255.0) / 255.0  # an 8-bit image, as users' inputs are

    def _kernels(self, n: int, prob: Sequence[float], sinc_prob: float, sigma: Sequence[float],
                 betag: Sequence[float], betap: Sequence[float]) -> torch.Tensor:
        return torch.from_numpy(np.stack([_blur_kernel(self.rng, prob, sinc_prob, sigma, betag, betap)
                                          for _ in range(n)]))

    def _random_resize(self, x: torch.Tensor, prob: Sequence[float], span: Sequence[float],
                       base: tuple[int, int]) -> torch.Tensor:
        p = np.asarray(prob, dtype=np.float64)
        direction = int(self.rng.choice(3, p=p / p.sum()))  # up, down, keep
        factor = (self.rng.uniform(1.0, span[1]), self.rng.uniform(span[0], 1.0), 1.0)[direction]
        mode = _RESIZE_MODES[int(self.rng.integers(len(_RESIZE_MODES)))]
        size = (max(1, int(base[0] * factor)), max(1, int(base[1] * factor)))
        return _resize(x, size, mode)

    def _noise(self, x: torch.Tensor, gaussian_prob: float, sigma_range: Sequence[float],
               poisson_range: Sequence[float], gray_prob: float) -> torch.Tensor:
        n = x.shape[0]
        gray = torch.from_numpy(self.rng.uniform(size=n) < gray_prob).to(x.device).view(n, 1, 1, 1)
        if self.rng.uniform() < gaussian_prob:
            sigma = torch.from_numpy(self.rng.uniform(sigma_range[0], sigma_range[1], size=n) / 255.0)
            colour = torch.randn(x.shape, generator=self.noise_rng, device=x.device)
            mono = torch.randn((n, 1, *x.shape[2:]), generator=self.noise_rng, device=x.device)
            noise = torch.where(gray, mono, colour) * sigma.to(x).view(n, 1, 1, 1)
        else:
            strength = torch.from_numpy(self.rng.uniform(poisson_range[0], poisson_range[1], size=n))
            photons = 256.0
            clean = x.clamp(0.0, 1.0)
            colour = torch.poisson(clean * photons, generator=self.noise_rng) / photons - clean
            luma = _gray(clean)
            mono = torch.poisson(luma * photons, generator=self.noise_rng) / photons - luma
            noise = torch.where(gray, mono, colour) * strength.to(x).view(n, 1, 1, 1)
        return (x + noise).clamp_(0.0, 1.0)

    def _jpeg(self, x: torch.Tensor, quality_range: Sequence[float]) -> torch.Tensor:
        qualities = self.rng.uniform(quality_range[0], quality_range[1], size=x.shape[0])
        return jpeg_roundtrip(x.clamp(0.0, 1.0), [int(round(q)) for q in qualities])


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


class RealESRGANDegrade(Stage):
    """``degrade.realesrgan``: one image (or batch) through :class:`RealESRGANDegradation`.

    Args:
        scale: Output size / input size; 1/k for an integer k (0.25: x4 training pairs).
        config: A JSON or TOML file overriding the default settings.
        seed: Seed; the same seed degrades an image the same way alone or in a batch.
    """

    def __init__(self, *, scale: float = 0.25, config: str | None = None, seed: int | None = None, **params: Any):
        super().__init__(scale=scale, config=config, seed=seed, **params)
        factor = 1.0 / float(scale)
        if abs(factor - round(factor)) > 1e-6:
            raise ValueError(f"scale must be 1/k for an integer k (0.5, 0.25, ...), not {scale}")
        self.factor = int(round(factor))
        self.scale = float(scale)
        self.settings = load_settings(config)
        self.seed = seed

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        size = scaled_size(int(pixels.shape[-2]), int(pixels.shape[-1]), self.scale)
        outputs = []
        for image in pixels.split(1):  # each image its own generators, so a batch gives what singles give
            degrade = RealESRGANDegradation(self.settings, scale=self.factor, seed=self.seed, device=pixels.device)
            outputs.append(degrade(image, size))
        return torch.cat(outputs).to(pixels.dtype)
