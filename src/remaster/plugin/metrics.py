"""Metric specs and the registry the plugin host fills through ``remaster_register_metrics`` (no torch, no numpy).

Imported by the plugin host at start-up, so it imports neither numpy nor torch:
a spec names its function as ``"package.module:function"`` and the module is
imported only when the metric is first computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..errors import PluginError, UsageError
from .reference import Reference, is_reference, load_reference
from .registries import SpecRegistry

__all__ = ["MetricSpec", "MetricRegistry", "MetricError", "UnknownMetricError"]

class MetricError(UsageError, ValueError):
    """A metric was called with unusable input: shapes differ, a bad layout, a bad ``data_range`` or option.

    A :class:`~remaster.errors.UsageError` (so ``except RemasterError`` catches it) and a
    :class:`ValueError` (as scikit-image and kornia raise for the same mistakes).
    """


class UnknownMetricError(UsageError, KeyError):
    """No metric is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return UsageError.__str__(self)


@dataclass(frozen=True)
class MetricSpec:
    """One image-quality metric a plugin provides.

    Attributes:
        name: Unique name: lower case, digits, ``.``, ``-``, ``_`` (``psnr``, ``lpips``).
        func: ``"package.module:function"`` or a :class:`~remaster.plugin.Ref` (imported on
            first use), or the function itself.
            Full-reference metrics are called as ``func(a, b, *, data_range, **options)``,
            no-reference ones as ``func(img, *, data_range, **options)``.
        higher_is_better: ``True`` for PSNR/SSIM, ``False`` for distances and NIQE.
        needs_reference: ``True`` for full-reference metrics (two images), ``False`` for
            no-reference ones (one image).
        summary: One line for listings.
        weights: Names of the weights files (:class:`remaster.weights.WeightsSpec`) the
            metric may need; empty for purely computed metrics.
        plugin: The plugin that registered it; set by the registry.
    """

    name: str
    func: Reference
    higher_is_better: bool
    needs_reference: bool
    summary: str = ""
    weights: tuple[str, ...] = field(default=())
    plugin: str | None = None

    def load(self) -> Callable[..., Any]:
        """The metric function, importing its module on first use.

        Raises:
            PluginError: the module or function cannot be imported.
        """
        try:
            return load_reference(self.func)
        except Exception as exc:  # ImportError, AttributeError, or anything the module raises on import
            raise PluginError(f"cannot load metric {self.name!r} ({self.func}): {type(exc).__name__}: {exc}",
                              path=self.plugin,
                              hint=f"reinstall the plugin {self.plugin!r}" if self.plugin else None) from exc


class MetricRegistry(SpecRegistry[MetricSpec]):
    """Metric specs by name."""

    what = "metric"
    spec_type = MetricSpec
    unknown_error = UnknownMetricError
    listing_hint = "run 'remaster eval --help' or see docs/metrics.md for the known metrics"

    def _check(self, spec: MetricSpec, plugin: str) -> None:
        if not is_reference(spec.func):
            raise PluginError(f"metric {spec.name!r} has the function {spec.func!r}", path=plugin,
                              hint="give 'package.module:function' or a callable")
        for flag in ("higher_is_better", "needs_reference"):
            if not isinstance(getattr(spec, flag), bool):
                raise PluginError(f"metric {spec.name!r} has {flag}={getattr(spec, flag)!r}", path=plugin,
                                  hint="give True or False")
        if isinstance(spec.weights, str) or not all(isinstance(w, str) for w in spec.weights):
            raise PluginError(f"metric {spec.name!r} has weights={spec.weights!r}", path=plugin,
                              hint="give a tuple of weights names")

    def _attributed(self, spec: MetricSpec, plugin: str) -> MetricSpec:
        return replace(spec, plugin=plugin, weights=tuple(spec.weights))


