"""The default host as metrics and weights see it (remaster.plugin.host), and passing a host or registry instead."""

from __future__ import annotations

import numpy as np
import pytest

from remaster.errors import RemasterError
from remaster.metrics import MetricRegistry, UnknownMetricError, compute, get_metric, metric_specs
from remaster.plugin import WeightsRegistry
from remaster.plugin.host import default_host, set_default_host_provider
from remaster.plugins import get_host
from remaster.weights import get_manager


class FakeHost:
    """A host with no metric and no weights: whoever looks something up in it finds nothing."""

    def __init__(self) -> None:
        self.metrics = MetricRegistry()
        self.weights = WeightsRegistry()

    def ensure_loaded(self) -> FakeHost:
        return self


@pytest.fixture
def fake_default_host():
    fake = FakeHost()
    previous = set_default_host_provider(lambda: fake)
    try:
        yield fake
    finally:
        set_default_host_provider(previous)


def test_import_remaster_installs_the_process_wide_host_as_the_default():
    assert default_host() is get_host()


def test_by_name_metrics_and_get_manager_ask_the_installed_provider(fake_default_host):
    a = np.zeros((8, 8), np.uint8)
    with pytest.raises(UnknownMetricError):
        compute("psnr", a, a, data_range=255)
    assert metric_specs() == []
    assert get_manager().registry is fake_default_host.weights


def test_a_given_registry_or_host_wins_over_the_default(fake_default_host):
    a, b = np.zeros((8, 8), np.uint8), np.full((8, 8), 10, np.uint8)
    host = get_host()
    assert compute("psnr", a, b, data_range=255, registry=host.metrics) == pytest.approx(28.1308, abs=1e-3)
    assert get_metric("psnr", host=host).name == "psnr"
    with pytest.raises(UnknownMetricError):
        compute("psnr", a, b, data_range=255, host=FakeHost(), registry=MetricRegistry())
    assert get_manager(host).registry is host.weights


def test_without_a_provider_the_default_host_is_a_clear_error():
    previous = set_default_host_provider(None)
    try:
        with pytest.raises(RemasterError, match="no default plugin host") as info:
            default_host()
        assert info.value.hint and "pass a host" in info.value.hint
    finally:
        set_default_host_provider(previous)
