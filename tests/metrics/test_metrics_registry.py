"""The metric registry, the remaster_register_metrics hook, and compute()/get_metric()."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import pytest

from remaster import StageKind, StageSpec, hookimpl
from remaster.errors import PluginError, UsageError
from remaster.metrics import MetricError, MetricSpec, UnknownMetricError, compute, get_metric, metric_specs
from remaster.plugin import Param
from remaster.plugin.host import BUILTIN_PLUGINS, PluginHost
from remaster.weights import WeightsSpec

BUILTIN = {  # name: (higher_is_better, needs_reference)
    "psnr": (True, True),
    "ssim": (True, True),
    "ms_ssim": (True, True),
    "lpips": (False, True),
    "vgg": (False, True),
    "niqe": (False, False),
}


def _host(*plugins: Any) -> PluginHost:
    return PluginHost(load_entry_points=False, extra_plugins=plugins).ensure_loaded()


def _mean_abs(a: Any, b: Any, *, data_range: float, scale: float = 1.0) -> float:
    return float(np.mean(np.abs(np.asarray(a, float) - np.asarray(b, float)))) / data_range * scale


class SharpnessPlugin:
    """A third-party plugin: one metric, one stage, one weights file."""

    @hookimpl
    def remaster_register_metrics(self, register):
        register(MetricSpec("mae", _mean_abs, higher_is_better=False, needs_reference=True,
                            summary="mean absolute error / data_range"))
        register(MetricSpec("sharpness", "numpy:std", higher_is_better=True, needs_reference=False))

    @hookimpl
    def remaster_register_stages(self, register):
        register(StageSpec("sharpness-stage", StageKind.FILTER, "x:Y"))

    @hookimpl
    def remaster_register_weights(self, register):
        register(WeightsSpec("sharpness-net", "sharpness.safetensors"))


class DuplicatePlugin:
    @hookimpl
    def remaster_register_metrics(self, register):
        register(MetricSpec("own", _mean_abs, higher_is_better=False, needs_reference=True))
        register(MetricSpec("psnr", _mean_abs, higher_is_better=True, needs_reference=True))

    @hookimpl
    def remaster_register_stages(self, register):
        register(StageSpec("duplicate-stage", StageKind.FILTER, "x:Y"))

    @hookimpl
    def remaster_register_weights(self, register):
        register(WeightsSpec("duplicate-net", "duplicate.safetensors"))


def test_builtin_metrics_are_a_plugin_like_any_other():
    host = _host()
    assert "remaster.metrics.builtin" in BUILTIN_PLUGINS
    info = next(p for p in host.plugins if p.name == "remaster.metrics.builtin")
    assert info.error is None and sorted(info.metrics) == sorted(BUILTIN)
    assert {"torchvision-vgg16", "torchvision-vgg19", "torchvision-alexnet", "lpips-vgg-v0.1",
            "lpips-alex-v0.1"} == set(info.weights)
    for spec in host.metrics:
        assert (spec.higher_is_better, spec.needs_reference) == BUILTIN[spec.name]
        assert spec.plugin == "remaster.metrics.builtin" and spec.summary
        assert callable(spec.load())
        assert all(w in host.weights for w in spec.weights)
    assert get_metric("lpips", host=host).weights and not get_metric("psnr", host=host).weights


def test_a_plugin_registers_metrics_through_the_hook():
    host = _host(SharpnessPlugin())
    info = host.plugins[-1]
    assert info.error is None and info.metrics == ["mae", "sharpness"]
    assert info.stages == ["sharpness-stage"] and info.weights == ["sharpness-net"]
    assert get_metric("mae", host=host).plugin == "SharpnessPlugin"
    a = np.zeros((4, 4, 3))
    b = np.full((4, 4, 3), 51.0)
    assert compute("mae", a, b, data_range=255, host=host) == pytest.approx(0.2)
    assert compute("mae", a, b, data_range=255, scale=10, host=host) == pytest.approx(2.0)  # options pass through
    assert [s.name for s in metric_specs(host=host)] == sorted(set(BUILTIN) | {"mae", "sharpness"})


def test_a_duplicate_metric_fails_the_whole_plugin():
    host = _host(DuplicatePlugin())
    info = host.plugins[-1]
    assert "metric 'psnr' is already registered by plugin 'remaster.metrics.builtin'" in str(info.error)
    # all or nothing: neither its other metric, nor its stage, nor its weights are kept
    assert "own" not in host.metrics and "duplicate-stage" not in host.stages and "duplicate-net" not in host.weights
    assert host.metrics.get("psnr").plugin == "remaster.metrics.builtin"


@pytest.mark.parametrize("spec, fragment", [
    (MetricSpec("Bad Name", _mean_abs, higher_is_better=True, needs_reference=True), "metric name"),
    (MetricSpec("ok", "no_colon", higher_is_better=True, needs_reference=True), "function"),
    (MetricSpec("ok", _mean_abs, higher_is_better="yes", needs_reference=True),  # type: ignore[arg-type]
     "higher_is_better"),
    (MetricSpec("ok", _mean_abs, higher_is_better=True, needs_reference=True, weights="w"),  # type: ignore[arg-type]
     "weights"),
    ("not a spec", "instead of a MetricSpec"),
    (MetricSpec("ok", _mean_abs, higher_is_better=True, needs_reference=True, options=("scale",)),  # type: ignore[arg-type]
     "give a tuple of remaster.plugin.Param"),
    (MetricSpec("ok", _mean_abs, higher_is_better=True, needs_reference=True,
                options=(Param("scale", float), Param("scale", float))), "declares an option twice"),
    (MetricSpec("ok", _mean_abs, higher_is_better=True, needs_reference=True,
                options=(Param("data_range", float),)), "every metric is given data_range"),
    (MetricSpec("ok", _mean_abs, higher_is_better=True, needs_reference=True,
                options=(Param("net", str, "alx", choices=("alex", "vgg")),)), "invalid default"),
    (MetricSpec("ok", _mean_abs, higher_is_better=True, needs_reference=True, weights=("w-alex",),
                weights_by_option={"net": {"alex": ("w-alex",)}}), "undeclared option 'net'"),
    (MetricSpec("ok", _mean_abs, higher_is_better=True, needs_reference=True, weights=("w-alex",),
                options=(Param("net", str, "alex", choices=("alex", "vgg")),),
                weights_by_option={"net": {"alex": ("w-other",)}}), "names listed in weights"),
    (MetricSpec("ok", _mean_abs, higher_is_better=True, needs_reference=True, weights=("w-alex",),
                options=(Param("net", str, "alex", choices=("alex", "vgg")),),
                weights_by_option={"net": {"squeeze": ("w-alex",)}}), "gives weights for net='squeeze'"),
])
def test_invalid_metric_specs_are_the_plugins_error(spec, fragment):
    class BadPlugin:
        @hookimpl
        def remaster_register_metrics(self, register):
            register(spec)

    host = _host(BadPlugin())
    assert isinstance(host.plugins[-1].error, PluginError)
    assert fragment in str(host.plugins[-1].error)
    assert sorted(s.name for s in host.metrics) == sorted(BUILTIN)


def test_compute_by_name(photo, noisy):
    host = _host()
    from remaster.metrics import psnr

    assert compute("psnr", noisy, photo, data_range=255, crop_border=4, host=host) == psnr(
        noisy, photo, data_range=255, crop_border=4)
    assert compute("ssim", photo, photo, data_range=255, host=host) == pytest.approx(1.0)
    assert math.isfinite(compute("niqe", photo, data_range=255, host=host))
    with pytest.raises(MetricError, match="give the reference"):
        compute("psnr", photo, data_range=255, host=host)
    with pytest.raises(MetricError, match="without a reference"):
        compute("niqe", photo, photo, data_range=255, host=host)
    with pytest.raises(TypeError):
        compute("psnr", photo, photo, host=host)  # type: ignore[call-arg]


def test_unknown_metric_suggests_close_names():
    with pytest.raises(UnknownMetricError, match="no metric named 'pnsr'") as info:
        get_metric("pnsr", host=_host())
    assert "did you mean psnr" in str(info.value)
    assert isinstance(info.value, UsageError) and isinstance(info.value, KeyError)


def test_a_metric_whose_module_is_missing_fails_when_loaded_not_when_registered():
    class Lazy:
        @hookimpl
        def remaster_register_metrics(self, register):
            register(MetricSpec("ghost", "no_such_module_anywhere:f", higher_is_better=True, needs_reference=False))

    host = _host(Lazy())
    assert host.plugins[-1].error is None
    with pytest.raises(PluginError, match="cannot load metric 'ghost'"):
        compute("ghost", np.zeros((2, 2)), data_range=1.0, host=host)


def test_the_default_host_has_the_builtins():
    assert get_metric("ms_ssim").func == "remaster.metrics.psnr_ssim:ms_ssim"
    assert set(BUILTIN) <= {s.name for s in metric_specs()}


class HeadsPlugin:
    """A metric with a shared backbone and one head per option value; its module does not exist."""

    @hookimpl
    def remaster_register_metrics(self, register):
        register(MetricSpec("heads", "no_such_module_anywhere:f", higher_is_better=True, needs_reference=True,
                            weights=("heads-base", "heads-a", "heads-b"),
                            options=(Param("head", str, "a", choices=("a", "b")), Param("gain", float, 1.0, min=0)),
                            weights_by_option={"head": {"a": ("heads-a",), "b": ("heads-b",)}}))


def test_builtin_options_mirror_the_functions_keywords():
    for spec in _host().metrics:
        parameters = inspect.signature(spec.load()).parameters.values()
        # data_range and weights_manager come from the caller (remaster eval passes both), not from a metric string.
        keywords = {p.name: p.default for p in parameters
                    if p.kind is p.KEYWORD_ONLY and p.name not in ("data_range", "weights_manager")}
        assert {p.name: p.default for p in spec.options} == keywords, spec.name


def test_weights_for_reads_the_declared_mapping():
    host = _host(HeadsPlugin())
    assert host.plugins[-1].error is None
    lpips = get_metric("lpips", host=host)
    assert lpips.weights_for({}) == ("torchvision-alexnet", "lpips-alex-v0.1")
    assert lpips.weights_for({"net": "vgg"}) == ("torchvision-vgg16", "lpips-vgg-v0.1")
    assert get_metric("vgg", host=host).weights_for({"layers": ("conv1_2",)}) == ("torchvision-vgg19",)
    assert get_metric("psnr", host=host).weights_for({}) == ()
    heads = get_metric("heads", host=host)
    assert heads.weights_for({}) == ("heads-base", "heads-a")  # weights under no option are always read
    assert heads.weights_for({"head": "b"}) == ("heads-base", "heads-b")


def test_resolve_options_converts_and_checks_by_the_declarations():
    heads = get_metric("heads", host=_host(HeadsPlugin()))
    assert heads.resolve_options({"head": "b", "gain": 2}) == {"head": "b", "gain": 2.0}
    with pytest.raises(MetricError, match="option gain=-1.0 is below the minimum 0"):
        heads.resolve_options({"gain": -1})
    with pytest.raises(MetricError, match="metric 'heads' has no option size") as info:
        heads.resolve_options({"size": 3})
    assert "its options: head, gain" in str(info.value)
