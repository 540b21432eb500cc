"""Metric specs and their registry: defined in :mod:`remaster.plugin.metrics`, the torch-free plugin surface."""

from __future__ import annotations

from ..plugin.metrics import MetricError, MetricRegistry, MetricSpec, UnknownMetricError

__all__ = ["MetricSpec", "MetricRegistry", "MetricError", "UnknownMetricError"]
