"""Image-quality metrics: PSNR, SSIM, MS-SSIM, LPIPS, VGG distance, NIQE, and plugin-provided ones.

>>> from remaster.metrics import psnr, ssim
>>> psnr(restored, original, data_range=255, crop_border=4, y_channel=True)   # numpy HWC → float
>>> ssim(batch_a, batch_b, data_range=1.0)                                     # torch NCHW → (N,) tensor
>>> compute("niqe", img, data_range=255)                                       # any registered metric by name

``data_range`` (the value of white) is always required. See ``docs/metrics.md``.

The functions are imported lazily, so that the plugin host, which imports
:mod:`remaster.plugin.metrics` and :mod:`remaster.metrics.builtin` at
start-up, does not pay for numpy and torch here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from remaster.lazy import LazyExports
from remaster.plugin.metrics import MetricError, MetricRegistry, MetricSpec, UnknownMetricError

if TYPE_CHECKING:
    from remaster.metrics.no_reference import niqe
    from remaster.metrics.perceptual import lpips, vgg_distance
    from remaster.metrics.psnr_ssim import ms_ssim, psnr, ssim
    from remaster.plugin.host import PluginHost

__all__ = [
    "psnr",
    "ssim",
    "ms_ssim",
    "niqe",
    "lpips",
    "vgg_distance",
    "MetricSpec",
    "MetricRegistry",
    "MetricError",
    "UnknownMetricError",
    "get_metric",
    "metric_specs",
    "compute",
]

_LAZY = {
    "psnr": "psnr_ssim",
    "ssim": "psnr_ssim",
    "ms_ssim": "psnr_ssim",
    "niqe": "no_reference",
    "lpips": "perceptual",
    "vgg_distance": "perceptual",
}

_lazy = LazyExports(globals(), _LAZY)


def __getattr__(name: str) -> Any:
    return _lazy.get(name)


def __dir__() -> list[str]:
    return _lazy.names()


def _registry(registry: MetricRegistry | None, host: PluginHost | None) -> MetricRegistry:
    # Code that has a host or registry passes it down; the by-name convenience for library users falls back to
    # the process-wide host.
    if registry is not None:
        return registry
    if host is not None:
        return host.ensure_loaded().metrics
    from remaster.plugin.host import get_host

    return get_host().metrics


def get_metric(name: str, *, host: PluginHost | None = None, registry: MetricRegistry | None = None) -> MetricSpec:
    """The spec of the metric ``name`` (built-in or from a plugin).

    Args:
        host: The plugin host whose metrics to use; default the process-wide one.
        registry: The metrics to look in (``host.metrics``); wins over ``host``.

    Raises:
        UnknownMetricError: no such metric; the hint lists the closest names.
    """
    return _registry(registry, host).get(name)


def metric_specs(*, host: PluginHost | None = None, registry: MetricRegistry | None = None) -> list[MetricSpec]:
    """Every registered metric, sorted by name (of ``registry``, else of ``host``, else of the process-wide host)."""
    return list(_registry(registry, host))


def compute(name: str, a: Any, b: Any = None, *, data_range: float, host: PluginHost | None = None,
            registry: MetricRegistry | None = None, **options: Any) -> Any:
    """Compute the metric ``name``: ``func(a, b, data_range=..., **options)``, or ``func(a, ...)`` without reference.

    Args:
        name: A registered metric (``psnr``, ``ssim``, ``ms_ssim``, ``lpips``, ``vgg``, ``niqe``, ...).
        a: The image to measure (the restored one).
        b: The reference, for full-reference metrics; must be omitted for no-reference ones.
        data_range: The value of white (255 for 8-bit images, 1.0 for floats in [0, 1]).
        host: The plugin host whose metrics to use; default the process-wide one.
        registry: The metrics to look in (``host.metrics``); wins over ``host``.
        options: The metric's keyword options (``crop_border``, ``y_channel``, ``net``, ...).

    Raises:
        UnknownMetricError: no such metric.
        MetricError: a reference was missing or superfluous, or the inputs are unusable.
    """
    spec = get_metric(name, host=host, registry=registry)
    if spec.needs_reference and b is None:
        raise MetricError(f"metric {name!r} compares two images; give the reference as the second argument")
    if not spec.needs_reference and b is not None:
        raise MetricError(f"metric {name!r} measures one image without a reference; give only one image")
    func = spec.load()
    if spec.needs_reference:
        return func(a, b, data_range=data_range, **options)
    return func(a, data_range=data_range, **options)
