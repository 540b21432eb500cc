"""The one process-wide host as the by-name conveniences see it, and passing a host or registry instead."""

from __future__ import annotations

import numpy as np
import pytest

from remaster.metrics import MetricRegistry, UnknownMetricError, compute, get_metric, metric_specs
from remaster.plugin.host import PluginHost, get_host
from remaster.weights import get_manager


class EmptyHost(PluginHost):
    """A host whose plugins register nothing: whoever looks something up in it finds nothing."""

    def __init__(self) -> None:
        super().__init__(load_entry_points=False)

    def _load(self) -> None:  # not even the built-ins
        pass


def test_get_host_is_one_object_per_process(process_host):
    process_host(None)
    first = get_host()
    assert get_host() is first and first.stages and first.metrics


def test_by_name_metrics_and_get_manager_ask_the_process_wide_host(process_host):
    empty = process_host(EmptyHost())
    a = np.zeros((8, 8), np.uint8)
    with pytest.raises(UnknownMetricError):
        compute("psnr", a, a, data_range=255)
    assert metric_specs() == []
    assert get_manager().registry is empty.weights


def test_a_given_registry_or_host_wins_over_the_process_wide_one(process_host):
    a, b = np.zeros((8, 8), np.uint8), np.full((8, 8), 10, np.uint8)
    host = PluginHost(load_entry_points=False)
    process_host(EmptyHost())
    assert compute("psnr", a, b, data_range=255, registry=host.ensure_loaded().metrics) == pytest.approx(
        28.1308, abs=1e-3)
    assert get_metric("psnr", host=host).name == "psnr"
    with pytest.raises(UnknownMetricError):
        compute("psnr", a, b, data_range=255, host=host, registry=MetricRegistry())
    assert get_manager(host).registry is host.weights
