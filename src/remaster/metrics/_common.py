"""Input handling shared by the metrics: layouts, ``data_range``, border crop, BT.601 luma, reduction."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
import torch

from remaster.plugin.metrics import MetricError

__all__ = ["Batch", "prepare", "finish", "check_data_range", "check_reduction", "crop", "to_y", "compute_dtype"]

ArrayLike = np.ndarray | torch.Tensor

#: MATLAB ``rgb2ycbcr`` (ITU-R BT.601, studio swing) luma: Y = 16 + 65.481 R + 128.553 G + 24.966 B, R,G,B in [0, 1].
Y_OFFSET = 16.0
Y_COEFFS = (65.481, 128.553, 24.966)


class Batch:
    """Images as an ``(N, C, H, W)`` tensor plus what is needed to give results back in the caller's form."""

    def __init__(self, tensor: torch.Tensor, numpy: bool):
        self.tensor = tensor
        self.numpy = numpy


def check_data_range(data_range: Any) -> float:
    """``data_range`` as a float; it must be a positive finite number (it is never guessed from the dtype)."""
    if data_range is None:
        raise MetricError("data_range is required",
                          hint="pass data_range=255 for 8-bit images, 1.0 for float images in [0, 1]")
    if isinstance(data_range, bool) or not isinstance(data_range, Real):
        raise TypeError(f"data_range must be a number, not {type(data_range).__name__}")
    value = float(data_range)
    if not math.isfinite(value) or value <= 0:
        raise MetricError(f"data_range must be a positive number, not {data_range!r}")
    return value


def check_reduction(reduction: str) -> str:
    if reduction not in ("none", "mean"):
        raise MetricError(f"reduction must be 'none' or 'mean', not {reduction!r}")
    return reduction


def compute_dtype(device: torch.device, precise: bool = True) -> torch.dtype:
    """float64 for the pixel-statistics metrics (MPS has no float64: float32 there), float32 for networks."""
    if precise and device.type != "mps":
        return torch.float64
    return torch.float32


def _as_tensor(img: Any, *, what: str, precise: bool) -> Batch:
    if isinstance(img, torch.Tensor):
        if img.ndim != 4:
            raise MetricError(f"{what} is a tensor of shape {tuple(img.shape)}",
                              hint="give tensors as (N, C, H, W); numpy arrays as (H, W) or (H, W, C)")
        if img.is_complex():
            raise MetricError(f"{what} is complex")
        return Batch(img.to(compute_dtype(img.device, precise)), numpy=False)
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise MetricError(f"{what} is an array of shape {img.shape}",
                              hint="give one image as a (H, W) or (H, W, C) array, or a batch as an (N, C, H, W) "
                                   "tensor")
        if not (np.issubdtype(img.dtype, np.number) or img.dtype == np.bool_) or np.iscomplexobj(img):
            raise MetricError(f"{what} has the dtype {img.dtype}")
        arr = np.asarray(img, dtype=np.float64 if precise else np.float32)
        arr = arr[None, None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))[None]
        return Batch(torch.from_numpy(np.ascontiguousarray(arr)), numpy=True)
    raise MetricError(f"{what} is a {type(img).__name__}", hint="give a numpy array or a torch tensor")


def prepare(a: Any, b: Any = None, *, precise: bool = True) -> tuple[Batch, Batch | None]:
    """Both images as ``(N, C, H, W)`` tensors of the compute dtype; same kind and shape required."""
    first = _as_tensor(a, what="the image" if b is None else "the first image", precise=precise)
    if b is None:
        return first, None
    second = _as_tensor(b, what="the second image", precise=precise)
    if first.numpy != second.numpy:
        raise MetricError("one image is a numpy array and the other a torch tensor", hint="give two of the same kind")
    if first.tensor.shape != second.tensor.shape:
        shape = (lambda t: tuple(t.shape[2:]) + (t.shape[1],)) if first.numpy else (lambda t: tuple(t.shape))
        raise MetricError(f"the images have different shapes: {shape(first.tensor)} and {shape(second.tensor)}")
    if first.tensor.device != second.tensor.device:
        raise MetricError(f"the images are on different devices: {first.tensor.device} and {second.tensor.device}")
    return first, second


def crop(t: torch.Tensor, crop_border: int, *, min_size: int = 1) -> torch.Tensor:
    """Cut ``crop_border`` pixels from each edge; at least ``min_size`` pixels must remain each way."""
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise MetricError(f"crop_border must be a non-negative integer, not {crop_border!r}")
    h, w = t.shape[-2:]
    if min(h, w) - 2 * crop_border < min_size:
        raise MetricError(f"an image of {w}x{h} pixels with crop_border={crop_border} leaves less than "
                          f"{min_size}x{min_size} pixels", hint="use a smaller crop_border or a bigger image")
    if crop_border:
        t = t[..., crop_border:h - crop_border, crop_border:w - crop_border]
    return t


def to_y(t: torch.Tensor, data_range: float) -> torch.Tensor:
    """BT.601 luma of RGB ``(N, 3, H, W)`` on the input's scale, exactly MATLAB's ``rgb2ycbcr``.

    With r, g, b = R, G, B / data_range: Y = (16 + 65.481 r + 128.553 g + 24.966 b) / 255 * data_range,
    i.e. Y in [16, 235] for ``data_range=255`` and in [16/255, 235/255] for ``data_range=1``.
    """
    if t.shape[1] != 3:
        raise MetricError(f"y_channel=True needs RGB images (3 channels), not {t.shape[1]}",
                          hint="pass y_channel=False for grey images")
    r, g, b = t[:, 0:1], t[:, 1:2], t[:, 2:3]
    kr, kg, kb = Y_COEFFS
    return (Y_OFFSET * data_range + kr * r + kg * g + kb * b) / 255.0


def finish(values: torch.Tensor, batch: Batch, reduction: str) -> Any:
    """Per-image ``(N,)`` values → a float for a numpy image, else the tensor or its mean."""
    if batch.numpy:
        return float(values[0])
    if reduction == "mean":
        return values.mean()
    return values
