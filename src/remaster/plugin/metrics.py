"""Metric specs and the registry the plugin host fills through ``remaster_register_metrics`` (no torch, no numpy).

Imported by the plugin host at start-up, so it imports neither numpy nor torch:
a spec names its function as ``"package.module:function"`` and the module is
imported only when the metric is first computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from remaster.errors import PluginError, StageParamError, UnknownNameError, UsageError
from remaster.plugin.reference import Reference, is_reference, load_reference
from remaster.plugin.registries import SpecRegistry
from remaster.plugin.specs import Param

__all__ = ["MetricSpec", "MetricRegistry", "MetricError", "UnknownMetricError"]

class MetricError(UsageError, ValueError):
    """A metric was called with unusable input: shapes differ, a bad layout, a bad ``data_range`` or option.

    A :class:`~remaster.errors.UsageError` (so ``except RemasterError`` catches it) and a
    :class:`ValueError` (as scikit-image and kornia raise for the same mistakes).
    """


class UnknownMetricError(UnknownNameError):
    """No metric is registered under the requested name."""


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
        options: The keyword options of ``func`` (besides ``data_range``), as
            :class:`~remaster.plugin.Param`; a metric string (``"lpips(net=vgg)"``) may set only these,
            and its values are converted and checked by them. ``remaster eval`` passes ``y_channel``
            only to metrics that declare it. Empty: the metric takes no options there.
        weights_by_option: Which of ``weights`` an option's value needs, when not all of them are:
            ``{"net": {"alex": ("torchvision-alexnet", ...), "vgg": (...)}}``. The option's default
            applies when it is not given; weights named under no option are always needed.
        plugin: The plugin that registered it; set by the registry.
    """

    name: str
    func: Reference
    higher_is_better: bool
    needs_reference: bool
    summary: str = ""
    weights: tuple[str, ...] = field(default=())
    options: tuple[Param, ...] = field(default=())
    weights_by_option: Mapping[str, Mapping[Any, tuple[str, ...]]] = field(default_factory=dict, hash=False)
    plugin: str | None = None

    def option(self, name: str) -> Param | None:
        """The declared option ``name``, or ``None``."""
        return next((param for param in self.options if param.name == name), None)

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The ``given`` options converted and checked by their declarations (defaults are not filled in).

        Raises:
            MetricError: an option is not declared, or its value has the wrong type or is out of range.
        """
        unknown = sorted(set(given) - {param.name for param in self.options})
        if unknown:
            raise MetricError(f"metric {self.name!r} has no option {', '.join(unknown)}",
                              hint=f"its options: {', '.join(p.name for p in self.options) or 'none'}")
        resolved: dict[str, Any] = {}
        for name, value in given.items():
            param = self.option(name)
            assert param is not None
            try:
                resolved[name] = param.coerce(value, self.name)
            except StageParamError as exc:
                raise MetricError(f"metric {self.name!r}: option {exc.message.removeprefix('parameter ')}",
                                  hint=exc.hint or param.describe()) from None
        return resolved

    def weights_for(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The weights this metric reads with ``options`` (resolved ones): :attr:`weights`, narrowed by
        :attr:`weights_by_option`; a value the mapping does not list needs all of them."""
        if not self.weights_by_option:
            return tuple(self.weights)
        chosen = {name for by_value in self.weights_by_option.values() for names in by_value.values()
                  for name in names}
        needed = set(self.weights) - chosen  # named under no option: always read
        for option, by_value in self.weights_by_option.items():
            param = self.option(option)
            value = options.get(option, param.default if param is not None else None)
            if value not in by_value:
                return tuple(self.weights)
            needed.update(by_value[value])
        return tuple(name for name in self.weights if name in needed)

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
        self._check_options(spec, plugin)
        self._check_weights_by_option(spec, plugin)

    def _check_options(self, spec: MetricSpec, plugin: str) -> None:
        if isinstance(spec.options, (str, Param)) or not all(isinstance(p, Param) for p in spec.options):
            raise PluginError(f"metric {spec.name!r} has options={spec.options!r}", path=plugin,
                              hint="give a tuple of remaster.plugin.Param")
        names = [param.name for param in spec.options]
        if len(names) != len(set(names)):
            raise PluginError(f"metric {spec.name!r} declares an option twice", path=plugin)
        for param in spec.options:
            if not isinstance(param.name, str) or not param.name.isidentifier():
                raise PluginError(f"metric {spec.name!r} has an option named {param.name!r}", path=plugin,
                                  hint="name options as Python keywords")
            if param.name == "data_range":
                raise PluginError(f"metric {spec.name!r} declares data_range as an option", path=plugin,
                                  hint="leave it out: every metric is given data_range")
            if not isinstance(param.type, type):
                raise PluginError(f"metric {spec.name!r} has option {param.name} of type {param.type!r}",
                                  path=plugin, hint="give int, float, str, bool, tuple or object")
            if param.default is not None:
                try:
                    param.coerce(param.default, spec.name)
                except StageParamError as exc:
                    raise PluginError(f"metric {spec.name!r} has an invalid default: {exc.message}",
                                      path=plugin) from None

    def _check_weights_by_option(self, spec: MetricSpec, plugin: str) -> None:
        if not isinstance(spec.weights_by_option, Mapping):
            raise PluginError(f"metric {spec.name!r} has weights_by_option={spec.weights_by_option!r}",
                              path=plugin, hint="give {option: {value: (weights names, ...)}}")
        for option, by_value in spec.weights_by_option.items():
            param = spec.option(option)
            if param is None:
                raise PluginError(f"metric {spec.name!r} gives weights for the undeclared option {option!r}",
                                  path=plugin, hint="declare it in options")
            if not isinstance(by_value, Mapping):
                raise PluginError(f"metric {spec.name!r} has weights_by_option[{option!r}]={by_value!r}",
                                  path=plugin, hint="give {value: (weights names, ...)}")
            for value, names in by_value.items():
                try:
                    param.coerce(value, spec.name)
                except StageParamError as exc:
                    raise PluginError(f"metric {spec.name!r} gives weights for {option}={value!r}, which the option "
                                      f"rejects: {exc.message}", path=plugin) from None
                if isinstance(names, str) or not all(isinstance(n, str) and n in spec.weights for n in names):
                    raise PluginError(f"metric {spec.name!r} has weights_by_option[{option!r}][{value!r}]="
                                      f"{names!r}", path=plugin, hint="give a tuple of names listed in weights")

    def _attributed(self, spec: MetricSpec, plugin: str) -> MetricSpec:
        by_option = {option: {value: tuple(names) for value, names in by_value.items()}
                     for option, by_value in spec.weights_by_option.items()}
        return replace(spec, plugin=plugin, weights=tuple(spec.weights), options=tuple(spec.options),
                       weights_by_option=by_option)


