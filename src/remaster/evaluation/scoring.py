"""One metric on one pair of numpy images (crop, luma, data range), and the metrics that could not be
measured, collected as the report's warnings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from remaster.evaluation.choices import MetricChoice

if TYPE_CHECKING:
    from remaster.weights import WeightsManager


def _data_range(array: np.ndarray) -> float:
    return float(np.iinfo(array.dtype).max) if array.dtype.kind in "ui" else 1.0


def _crop(array: np.ndarray, border: int) -> np.ndarray:
    return array[border:array.shape[0] - border, border:array.shape[1] - border] if border else array


def _takes_weights_manager(func: Callable[..., Any]) -> bool:
    """Whether a metric function has a keyword parameter ``weights_manager`` (for the run's weights manager)."""
    try:
        parameter = inspect.signature(func).parameters.get("weights_manager")
    except (TypeError, ValueError):  # a builtin or C function without a signature
        return False
    return parameter is not None and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)


def score_metric(choice: MetricChoice, out: np.ndarray, ref: np.ndarray | None, *, crop_border: int,
           y_channel: bool, weights_manager: WeightsManager | None = None) -> float:
    """One metric on numpy images (``ref=None`` for no-reference metrics); crop first, luma if asked.

    A metric function with a keyword parameter ``weights_manager`` gets ``weights_manager``, the run's
    manager (over the evaluation's host), rather than looking up the process-wide one.
    """
    options = dict(choice.options)
    a = _crop(out, crop_border)
    b = None if ref is None else _crop(ref, crop_border)
    if choice.accepts("y_channel"):
        options["y_channel"] = y_channel
        if y_channel and a.ndim == 2:  # a grey image is its own luma: measured as the RGB grey it stands for
            a = np.repeat(a[..., None], 3, axis=2)
            b = None if b is None else np.repeat(b[..., None], 3, axis=2)
    func = choice.spec.load()
    if weights_manager is not None and _takes_weights_manager(func):
        options["weights_manager"] = weights_manager
    if b is None:
        value = func(a, data_range=_data_range(out), **options)
    else:
        value = func(a, b, data_range=_data_range(out), **options)
    if isinstance(value, torch.Tensor):
        value = value.item()
    return float(value)


class UnmeasuredWarnings:
    """Metrics that could not be measured, grouped per metric (first reason kept)."""

    def __init__(self) -> None:
        self._by_metric: dict[str, tuple[list[str], str]] = {}

    def add(self, metric: str, where: str, error: Exception) -> None:
        places, reason = self._by_metric.setdefault(metric, ([], str(error)))
        if where not in places:
            places.append(where)

    def lines(self) -> list[str]:
        out = []
        for metric, (places, reason) in self._by_metric.items():
            shown = ", ".join(places[:4]) + (f" and {len(places) - 4} more" if len(places) > 4 else "")
            out.append(f"{metric} was not measured on {shown}: {reason}")
        return out
